"""Sync assets in Dagster: the metadata vocabulary, zero-change re-runs, dry runs, checks, and no leaked secrets."""

import json
from typing import Any

import dagster as dg
import duckdb
import pytest

from assets.warehouse import SEGMENT_KEYS, demo_warehouse
from esp_warehouse.assets.checks import build_checks
from esp_warehouse.assets.landing import build_balance_asset
from esp_warehouse.assets.subscribers import build_sync_asset
from esp_warehouse.config import Declarations
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.litestartup import LiteStartupResource
from esp_warehouse.resources.pakat import PakatResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.sandbox.embedded import build_sandbox
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

DECLS = Declarations.model_validate(
    {
        "syncs": [
            {
                "name": "sp_eu",
                "provider": "sendpulse",
                "book": "EU",
                "source": {"view": "segment_active_eu"},
                "fields": {"first_name": "first_name", "country": "country"},
            },
            {
                "name": "pk_trial",
                "provider": "pakat",
                "book": "Trial",
                "source": {"view": "segment_trial_users"},
                "fields": {"FNAME": "first_name"},
                "mode": "mirror",
            },
        ]
    }
)
SECRET = "sp-secret-DO-NOT-LEAK-4242"


def resources(tmp_path, sp_secret: str = DEMO_CLIENT_SECRET) -> dict[str, object]:
    return {
        "sendpulse": SendPulseResource(
            client_id=DEMO_CLIENT_ID, client_secret=sp_secret, sandbox_state=str(tmp_path / "sp.json")
        ),
        "pakat": PakatResource(api_key="sandbox-demo-pakat-key", sandbox_state=str(tmp_path / "pk.json")),
        "litestartup": LiteStartupResource(api_key="sk_live_sandbox_demo", sandbox_state=str(tmp_path / "ls.json")),
        "warehouse": WarehouseResource(duckdb_path=str(tmp_path / "wh.duckdb")),
        "lake": LakeResource(root=str(tmp_path / "lake")),
    }


def assets_for(decls: Declarations):
    seg = {d.name: SEGMENT_KEYS[d.source.relation or ""] for d in decls.syncs}
    syncs = [build_sync_asset(d, seg[d.name]) for d in decls.syncs]
    return syncs, build_checks(decls.syncs, seg)


def materialized(result: Any) -> dict[str, dict[str, Any]]:
    """asset key -> plain metadata values of each materialization in a run result."""
    out: dict[str, dict[str, Any]] = {}
    for e in result.get_asset_materialization_events():
        out["/".join(e.asset_key.path)] = {k: v.value for k, v in e.materialization.metadata.items()}
    return out


def rows(sql: str) -> list[Any]:
    return duckdb.sql(sql).fetchall()  # type: ignore[union-attr]


VOCABULARY = [
    *(f"{kind}_{op}" for kind in ("planned", "successful", "failed") for op in ("add", "change", "remove")),
    *("planned_retry", "suppressed", "invalid", "skipped", "query_size", "elapsed_seconds", "dry_run"),
    "dagster/row_count",
]


def test_sync_assets_materialize_with_full_metadata_and_rerun_is_a_noop(tmp_path):
    syncs, checks = assets_for(DECLS)
    res = resources(tmp_path)
    with dg.instance_for_test() as instance:
        result = dg.materialize([demo_warehouse, *syncs, *checks], resources=res, instance=instance)
        assert result.success
        eu = materialized(result)["sendpulse/books/eu"]
        for key in VOCABULARY:
            assert key in eu, key
        assert eu["successful_add"] == eu["planned_add"] > 0
        assert eu["invalid"] >= 4  # the demo's bad rows
        assert "rejects_path" in eu
        assert {c.check_name for c in result.get_asset_check_evaluations()} >= {"rejected_pct", "sp_eu_source_ok"}
        again = dg.materialize([demo_warehouse, *syncs, *checks], resources=res, instance=instance)
        mats2 = materialized(again)
        for key in ("sendpulse/books/eu", "pakat/books/trial"):
            md = mats2[key]
            assert md["planned_add"] == md["planned_change"] == md["planned_remove"] == 0
            assert md["write_calls"] == 0
    pattern = f"{tmp_path}/lake/dataset=sync_rejects/provider=sendpulse/date=*/sp_eu.parquet"
    rejects = rows(f"SELECT reason FROM read_parquet('{pattern}')")
    assert any("invalid email" in r[0] for r in rejects)


def test_dry_run_is_an_observation_and_sends_nothing(tmp_path):
    syncs, _ = assets_for(DECLS)
    res = resources(tmp_path)
    with dg.instance_for_test() as instance:
        dg.materialize([demo_warehouse], resources=res, instance=instance)
        result = dg.materialize(
            [demo_warehouse, *syncs],
            selection=[syncs[0].key],
            resources=res,
            instance=instance,
            run_config=dg.RunConfig(ops={"sp_eu": {"config": {"dry_run": True}}}),
        )
        assert result.success
        assert result.get_asset_materialization_events() == []
        obs = result.get_asset_observation_events()
        assert len(obs) == 1
        md: dict[str, Any] = {k: v.value for k, v in obs[0].asset_observation_data.asset_observation.metadata.items()}
        assert md["dry_run"] is True
        assert md["planned_add"] > 0
    sandbox = build_sandbox("sendpulse", tmp_path / "sp.json")
    assert sandbox.snapshot().get("books", {}) in ({}, [])  # nothing was created at the provider


def test_blocking_source_check_stops_the_sync(tmp_path):
    bad = Declarations.model_validate(
        {
            "syncs": [
                {
                    "name": "sp_eu",
                    "provider": "sendpulse",
                    "book": "EU",
                    "source": {"view": "segment_active_eu"},
                    "fields": {"first_name": "no_such_column"},
                }
            ]
        }
    )
    syncs, checks = assets_for(bad)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [demo_warehouse, *syncs, *checks], resources=resources(tmp_path), instance=instance, raise_on_error=False
        )
        assert not result.success
        evals = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert not evals["sp_eu_source_ok"].passed
        assert "no_such_column" in (evals["sp_eu_source_ok"].description or "")
        assert not [k for k in materialized(result) if k.startswith("sendpulse/")]


def test_no_secret_in_events_logs_or_metadata(tmp_path):
    # a sandbox account whose secret is recognisable, then a full run whose every event is scanned
    sandbox = build_sandbox("sendpulse", tmp_path / "sp.json")
    sandbox.hook("create_client", client_id=DEMO_CLIENT_ID + "-x", client_secret=SECRET)
    res = resources(tmp_path, sp_secret=SECRET)
    res["sendpulse"] = SendPulseResource(
        client_id=DEMO_CLIENT_ID + "-x", client_secret=SECRET, sandbox_state=str(tmp_path / "sp.json")
    )
    syncs, _ = assets_for(DECLS)
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [demo_warehouse, syncs[0], build_balance_asset("sendpulse")], resources=res, instance=instance
        )
        assert result.success
        records = instance.get_records_for_run(result.run_id).records
        dump = "\n".join(str(r.event_log_entry.to_json()) for r in records)
        assert "sendpulse" in dump
        assert SECRET not in dump
        for e in result.all_events:
            assert SECRET not in json.dumps(str(e))


@pytest.mark.parametrize("provider", ["sendpulse", "pakat", "litestartup"])
def test_balance_landing_per_provider(tmp_path, provider):
    asset = build_balance_asset(provider)
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset], resources=resources(tmp_path), instance=instance)
        md = materialized(result)[f"lake/{provider}/balances"]
    assert len(rows(f"SELECT * FROM read_parquet('{md['path']}')")) == 1
    if provider == "litestartup":
        assert md["amount"] == "not exposed"


def test_every_core_setting_of_a_sync_can_be_declared():
    """The declaration is the core's spec plus the segment: no field of SyncSpec is left out or copied by hand."""
    import dataclasses

    from esp_warehouse.assets.subscribers import to_spec
    from esp_warehouse.config import SyncDecl
    from espcore.sync.spec import SyncSpec

    missing = [
        f.name for f in dataclasses.fields(SyncSpec) if f.name != "source_sql" and f.name not in SyncDecl.model_fields
    ]
    assert missing == []
    decl = Declarations.model_validate(
        {
            "syncs": [
                {
                    **DECLS.syncs[0].model_dump(exclude_none=True),
                    "required_fields": ["first_name"],
                    "abort_rejected_pct": 20,
                    "max_value_length": 64,
                    "refresh_suppressions": False,
                }
            ]
        }
    ).syncs[0]
    spec = to_spec(decl)
    assert (spec.required_fields, spec.abort_rejected_pct, spec.max_value_length) == (("first_name",), 20, 64)
    assert spec.refresh_suppressions is False
    assert spec.source_sql == 'SELECT * FROM "segment_active_eu"'
