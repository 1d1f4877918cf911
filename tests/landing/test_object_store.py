"""An object-store lake: every dataset lands in S3 (moto's S3 API served on 127.0.0.1), with the same layout,
schemas, atomic replacement and incremental state as on a local disk; credentials stay out of the URI."""

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from espcore.landing import collect
from espcore.landing.schemas import DATASETS
from espcore.landing.store import RemoteLake, read_table
from espcore.landing.views import ViewsUnavailable, create_lake_views
from tests.landing.test_landing_core import h, land_everything  # noqa: F401  (the provider harness fixture)
from tests.providers.test_interface import Harness


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def root(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bucket = f"lake-{abs(hash(request.node.name)) % 10**8}"
    fs = pafs.S3FileSystem(endpoint_override=s3_endpoint, scheme="http", region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(bucket)
    return f"s3://{bucket}/esp?endpoint_override={s3_endpoint}&scheme=http&region=us-east-1"


def objects(root: str) -> list[str]:
    lake = RemoteLake(root)
    infos = lake.fs.get_file_info(pafs.FileSelector(lake.base, recursive=True, allow_not_found=True))
    return sorted(i.path.removeprefix(lake.base + "/") for i in infos if i.type == pafs.FileType.File)


def test_every_dataset_lands_in_s3_with_its_schema(h: Harness, root: str) -> None:  # noqa: F811
    results = land_everything(root, h)  # type: ignore[arg-type]
    bucket = root.split("/")[2]
    for dataset, result in results.items():
        assert result.landed.path is None
        assert result.location == (
            f"s3://{bucket}/esp/dataset={dataset}/provider={h.name}/date={result.landed.day}/data.parquet"
        )
        assert "endpoint_override" not in result.location
        table = read_table(root, result.location)
        assert table.schema.remove_metadata() == DATASETS[dataset].schema.remove_metadata()
        assert table.num_rows == result.landed.rows
        with pytest.raises(ValueError, match="object store"):
            _ = result.path
    files = objects(root)
    assert all(f.endswith(".parquet") or f.startswith("_state/") for f in files), files
    assert not [f for f in files if ".tmp-" in f]
    assert f"_state/provider={h.name}/campaign_stats.json" in files


def test_relanding_replaces_the_object_and_incremental_state_lives_in_the_store(h: Harness, root: str) -> None:  # noqa: F811
    day = h.now.date()
    collect.land_campaigns(root, h.adapter, run_id="r0", now=h.now - timedelta(hours=1))  # details (Pakat)
    first = collect.land_campaign_stats(root, h.adapter, day, run_id="r1", now=h.now)
    again = collect.land_campaign_stats(root, h.adapter, day, run_id="r2", now=h.now + timedelta(hours=1))
    assert first.location == again.location
    stats_objects = [f for f in objects(root) if f.startswith("dataset=campaign_stats/")]
    assert stats_objects == [first.location.split("/esp/", 1)[1]]  # one object, replaced
    assert set(read_table(root, again.location).column("run_id").to_pylist()) == {"r2"}
    assert again.counters["stats_fetched"] == 0  # settled by the state read back from S3
    assert again.counters["stats_carried_forward"] == first.counters["campaigns"]


def test_a_failed_upload_leaves_the_previous_object(h: Harness, root: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    old = collect.land_blacklist(root, h.adapter, run_id="good", now=h.now)

    def crash(table: Any, where: Any, **kwargs: Any) -> None:
        where.write(b"PAR1 half a file")
        raise OSError("connection reset")

    monkeypatch.setattr("espcore.landing.writer.pq.write_table", crash)
    with pytest.raises(OSError, match="connection reset"):
        collect.land_blacklist(root, h.adapter, run_id="killed", now=h.now)
    assert set(read_table(root, old.location).column("run_id").to_pylist()) == {"good"}
    assert not [f for f in objects(root) if ".tmp-" in f]


def test_credentials_in_the_uri_are_refused_and_views_say_why_they_are_missing(root: str, tmp_path) -> None:
    with pytest.raises(ValueError, match="credentials do not belong in the URI") as err:
        RemoteLake("s3://AKIASECRET:hunter2@bucket/esp")
    assert "hunter2" not in str(err.value)
    assert "AKIASECRET" not in str(err.value)
    try:
        names, problem = create_lake_views(str(tmp_path / "v.duckdb"), root), ""
    except ViewsUnavailable as exc:  # no httpfs extension here (it downloads on first INSTALL)
        names, problem = [], str(exc)
    assert ("httpfs" in problem) if problem else ("lake_campaigns" in names)


def test_pyarrow_reads_the_hive_layout_back_from_s3(h: Harness, root: str) -> None:  # noqa: F811
    collect.land_book_members(root, h.adapter, run_id="r1", now=h.now)
    lake = RemoteLake(root)
    table = pq.read_table(lake.path("dataset=book_members"), filesystem=lake.fs, partitioning="hive")
    assert set(table.column("provider").to_pylist()) == {h.name}
    assert table.num_rows > 0


def test_landing_assets_and_the_balance_check_on_an_s3_lake(tmp_path, root: str) -> None:
    import dagster as dg

    from esp_warehouse.assets.landing import build_balance_check, build_landing_assets, build_views_asset
    from esp_warehouse.resources.lake import LakeResource
    from tests.assets.test_landing import fast_resources, seed
    from tests.assets.test_subscribers import materialized

    res = fast_resources(tmp_path)
    seed(tmp_path, res)
    res["lake"] = LakeResource(root=root)
    snapshots, _daily = build_landing_assets("sendpulse")
    views = build_views_asset(list(snapshots.keys))
    with dg.instance_for_test() as instance:
        result = dg.materialize([snapshots, build_balance_check("sendpulse"), views], resources=res, instance=instance)
        assert result.success
        mats = materialized(result)
        for dataset in ("campaigns", "blacklist", "balances", "book_members"):
            location = mats[f"lake/sendpulse/{dataset}"]["path"]
            assert location.startswith(f"s3://{root.split('/')[2]}/esp/dataset={dataset}/provider=sendpulse/")
            assert read_table(root, location).num_rows == mats[f"lake/sendpulse/{dataset}"]["dagster/row_count"]
        (check,) = result.get_asset_check_evaluations()
        assert check.passed  # read the balance back from S3
        skipped = mats["lake/views"].get("skipped")
        assert skipped is None or "httpfs" in skipped  # views need DuckDB's httpfs, or say why they are missing
