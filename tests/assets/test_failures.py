"""How a sync step ends when not everything went well, on both warehouse engines where the warehouse is involved.

* Rows left pending (the provider never decided them) make the run ``partial``: a ``pending`` count in the
  metadata, a failed WARN check ``no_pending_rows``, and a warning in the run log; the next run sends them.
* A configuration or SQL error (a view name with a typo) fails the step at once, without step retries, with the
  database's own words in the failure; the blocking source check reports it before the sync runs.
* A transient fault is retried by Dagster's step retry policy, and only a transient one.
"""

import time
from collections.abc import Iterator, Sequence
from typing import Any

import dagster as dg
import duckdb
import psycopg
import pytest
from dagster import ExecuteInProcessResult

import esp_warehouse.assets.subscribers as subscribers
from esp_warehouse.assets.checks import build_checks
from esp_warehouse.assets.failures import as_failure
from esp_warehouse.assets.subscribers import PENDING_CHECK, book_key, build_sync_asset
from esp_warehouse.config import Declarations, SyncDecl
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.demo import build_demo_warehouse
from espcore.errors import EspError
from espcore.providers.base import MemberInput, RowResult
from espcore.sync.errors import SyncError
from espcore.sync.source import SegmentSourceError
from espcore.sync.validate import email_problem
from espcore.transient import is_transient
from espcore.warehouse import PostgresWarehouse, Warehouse
from tests.pg import PgServer
from tests.pipelines.test_postgres_e2e import fresh_database
from tests.sync.fakes import FakeProvider


def decl(view: str = "segment_active_eu") -> SyncDecl:
    return Declarations.model_validate(
        {
            "syncs": [
                {
                    "name": "fake_eu",
                    "provider": "sendpulse",  # the resource key; the adapter below is a fake
                    "book": "EU",
                    "source": {"view": view},
                    "fields": {"first_name": "first_name"},
                }
            ]
        }
    ).syncs[0]


class FakeResource:
    """Stands in for a provider resource: ``get_provider()`` gives the same fake adapter to every run."""

    def __init__(self, provider: Any) -> None:
        self.provider = provider

    def get_provider(self) -> Any:
        return self.provider


class FlakyProvider(FakeProvider):
    """Fails the first ``fail`` add calls with a given error (after the HTTP layer gave up on it)."""

    def __init__(self, error: Exception, fail: int = 1) -> None:
        super().__init__(batch_size=100)
        self.error = error
        self.fail = fail
        self.calls = 0

    def upsert_members(self, book_id: str, rows: Sequence[MemberInput]) -> list[RowResult]:
        self.calls += 1
        if self.calls <= self.fail:
            raise self.error
        return super().upsert_members(book_id, rows)


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse(request: pytest.FixtureRequest, tmp_path) -> Iterator[WarehouseResource]:
    """A warehouse resource over the demo's user tables (built beforehand, as a user's would be)."""
    if request.param == "duckdb":
        path = tmp_path / "wh.duckdb"
        build_demo_warehouse(Warehouse(path))
        yield WarehouseResource(duckdb_path=str(path))
        return
    server: PgServer = request.getfixturevalue("pg_server")
    with fresh_database(server, "failures") as name:
        url = server.url(name)
        wh = PostgresWarehouse(url)
        try:
            build_demo_warehouse(wh)
        finally:
            wh.close()
        yield WarehouseResource(url=url)


def run(
    d: SyncDecl,
    provider: Any,
    warehouse: WarehouseResource,
    tmp_path,
    *,
    instance: dg.DagsterInstance,
    checks: bool = False,
) -> ExecuteInProcessResult:
    """One run of a job like the code location's main job: the sync, and (``checks``) the segment's blocking
    source check, which runs first, on the segment as the external asset it is."""
    segment = dg.AssetKey(["warehouse", d.source.relation or "segment"])
    selection = dg.AssetSelection.all()
    if checks:
        selection = selection | dg.AssetSelection.checks_for_assets(segment)
    defs = dg.Definitions(
        assets=[dg.AssetSpec(segment), build_sync_asset(d, segment)],
        asset_checks=build_checks([d], {d.name: segment}) if checks else None,
        jobs=[dg.define_asset_job("main", selection=selection)],
        resources={
            "sendpulse": FakeResource(provider),
            "warehouse": warehouse,
            "lake": LakeResource(root=str(tmp_path / "lake")),
        },
    )
    return defs.resolve_job_def("main").execute_in_process(instance=instance, raise_on_error=False)


def step_events(result: ExecuteInProcessResult, kind: dg.DagsterEventType) -> list[dg.DagsterEvent]:
    return [e for e in result.all_events if e.event_type == kind]


def test_rows_left_pending_make_the_run_partial_with_a_failed_warn_check(tmp_path):
    path = tmp_path / "wh.duckdb"
    build_demo_warehouse(Warehouse(path))
    warehouse = WarehouseResource(duckdb_path=str(path))
    provider = FakeProvider(batch_size=100)
    with Warehouse(path).connect() as con:
        rows = con.fetchall(
            "SELECT lower(trim(email)) FROM segment_active_eu GROUP BY 1 HAVING count(*) = 1 ORDER BY 1 LIMIT 20"
        )
    sendable = [r[0] for r in rows if r[0] and email_problem(r[0]) is None]
    provider.transient = set(sendable[:3])  # the provider answers these rows "try again"
    d = decl()
    with dg.instance_for_test() as instance:
        first = run(d, provider, warehouse, tmp_path, instance=instance)
        assert first.success  # nothing raised: the run completed, but not everything went through
        (mat,) = first.get_asset_materialization_events()
        md = {k: v.value for k, v in mat.materialization.metadata.items()}
        assert md["pending"] == 3
        assert md["outcome"] == "partial"
        (check,) = [c for c in first.get_asset_check_evaluations() if c.check_name == PENDING_CHECK]
        assert not check.passed
        assert check.severity == dg.AssetCheckSeverity.WARN
        assert "3 rows are pending" in (check.description or "")
        provider.transient.clear()
        second = run(d, provider, warehouse, tmp_path, instance=instance)
        (mat2,) = second.get_asset_materialization_events()
        md2 = {k: v.value for k, v in mat2.materialization.metadata.items()}
        assert (md2["pending"], md2["outcome"], md2["planned_retry"], md2["successful_add"]) == (0, "success", 3, 3)
        (check2,) = [c for c in second.get_asset_check_evaluations() if c.check_name == PENDING_CHECK]
        assert check2.passed


def test_a_typo_in_a_view_name_fails_at_once_with_the_database_message(warehouse, tmp_path):
    d = decl(view="segment_active_ue")
    provider = FakeProvider()
    started = time.monotonic()
    with dg.instance_for_test() as instance:
        result = run(d, provider, warehouse, tmp_path, instance=instance)
    assert time.monotonic() - started < 30  # no step retries (they wait 20 s, then 40 s, ...)
    assert not result.success
    assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    (failure,) = step_events(result, dg.DagsterEventType.STEP_FAILURE)
    text = str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert "segment_active_ue" in text
    assert "not transient: not retried" in text
    if isinstance(warehouse.get_warehouse(), Warehouse):
        assert "Did you mean" in text  # DuckDB's own suggestion reaches the user
    else:
        assert "does not exist" in text
    assert provider.write_calls == []


def test_the_blocking_source_check_reports_a_missing_relation_or_column_before_the_sync(warehouse, tmp_path):
    provider = FakeProvider()
    for d, expected in ((decl(view="segment_active_ue"), "segment_active_ue"), (None, "no_such_column")):
        if d is None:
            d = decl().model_copy(update={"fields": {"first_name": "no_such_column"}})
        with dg.instance_for_test() as instance:
            result = run(d, provider, warehouse, tmp_path, checks=True, instance=instance)
        assert not result.success
        evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert not evals[f"{d.name}_source_ok"].passed
        assert expected in (evals[f"{d.name}_source_ok"].description or "")
        assert result.get_asset_materialization_events() == []  # the sync never ran
        assert step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY) == []
    assert provider.write_calls == []


@pytest.mark.parametrize("transient", [True, False])
def test_only_transient_faults_are_retried_by_the_step(transient, tmp_path, monkeypatch):
    monkeypatch.setattr(subscribers, "SYNC_RETRY", dg.RetryPolicy(max_retries=2, delay=0))
    path = tmp_path / "wh.duckdb"
    build_demo_warehouse(Warehouse(path))
    error = EspError("the provider is down for maintenance", provider="fake", status=503 if transient else 401)
    error.retryable = transient
    provider = FlakyProvider(error)
    with dg.instance_for_test() as instance:
        result = run(decl(), provider, WarehouseResource(duckdb_path=str(path)), tmp_path, instance=instance)
    retries = step_events(result, dg.DagsterEventType.STEP_UP_FOR_RETRY)
    if transient:
        assert result.success
        assert len(retries) == 1
        (mat,) = result.get_asset_materialization_events()
        assert mat.asset_key == book_key(decl())
    else:
        assert not result.success
        assert retries == []
        (failure,) = step_events(result, dg.DagsterEventType.STEP_FAILURE)
        assert "maintenance" in str(failure.step_failure_data.user_failure_data.description)  # type: ignore[union-attr]
    assert provider.calls == (2 if transient else 1)


def test_what_counts_as_transient():
    locked = duckdb.IOException('Could not set lock on file "wh.duckdb": Conflicting lock is held')
    cases: list[tuple[BaseException, bool]] = [
        (psycopg.OperationalError("connection refused"), True),  # no SQLSTATE: the connection failed
        (psycopg.errors.AdminShutdown("terminating connection"), True),  # 57P01
        (psycopg.errors.SerializationFailure("could not serialize"), True),  # 40001
        (psycopg.errors.TooManyConnections("too many clients"), True),  # 53300
        (psycopg.errors.UndefinedTable('relation "x" does not exist'), False),  # 42P01
        (psycopg.errors.UndefinedColumn('column "x" does not exist'), False),
        (psycopg.errors.InsufficientPrivilege("permission denied"), False),
        (duckdb.CatalogException("Table with name x does not exist! Did you mean y?"), False),
        (duckdb.BinderException('Referenced column "x" not found'), False),
        (locked, True),
        (SegmentSourceError("segment sql must be a single SELECT"), False),
        (ValueError("bad"), False),
        (TimeoutError(), True),
        (ConnectionResetError(), True),
    ]
    retryable, permanent = EspError("503", provider="x"), EspError("401", provider="x")
    retryable.retryable = True
    cases += [(retryable, True), (permanent, False)]
    for exc, expected in cases:
        assert is_transient(exc) is expected, exc
        assert as_failure(exc).allow_retries is expected
    # the first typed error along the chain decides
    outer = RuntimeError("wrapped")
    outer.__cause__ = psycopg.errors.UndefinedTable("relation does not exist")
    assert not is_transient(outer)
    outer.__cause__ = psycopg.errors.AdminShutdown("terminating connection")
    assert is_transient(outer)


def test_a_transient_batch_failure_of_the_engine_is_retryable(tmp_path):
    """The engine stops a run whose batch hit a transient fault (rows stay pending); that stop is transient."""
    from espcore.sync.engine import run_sync
    from espcore.sync.spec import SyncSpec

    path = tmp_path / "wh.duckdb"
    build_demo_warehouse(Warehouse(path))
    error = EspError("gateway timeout", provider="fake", status=504)
    error.retryable = True
    spec = SyncSpec(name="s", provider="fake", book="B", source_sql="SELECT * FROM segment_active_eu")
    with pytest.raises(SyncError) as caught:
        run_sync(spec, FlakyProvider(error), Warehouse(path), run_id="r1")
    assert caught.value.retryable
    assert is_transient(caught.value)
    assert caught.value.counts is not None
    assert caught.value.counts["pending"] > 0
