"""The segment-change sensor: one run per change, none without a change, cursor carried between ticks."""

import dagster as dg

from espcore.warehouse import Warehouse, build_demo_warehouse
from pipelines.automation import build_segment_change_sensor
from pipelines.config import Declarations
from resources.warehouse import WarehouseResource

DECLS = Declarations.model_validate(
    {
        "syncs": [
            {"name": "eu", "provider": "sendpulse", "book": "EU", "source": {"view": "segment_active_eu"}},
            {"name": "trial", "provider": "pakat", "book": "Trial", "source": {"view": "segment_trial_users"}},
        ]
    }
)


def tick(sensor, wh_path, cursor):
    with dg.build_sensor_context(
        cursor=cursor, resources={"warehouse": WarehouseResource(duckdb_path=str(wh_path))}
    ) as ctx:
        result = sensor(ctx)
    return result.run_requests or [], result.cursor


def test_segment_change_requests_one_run_for_the_changed_sync(tmp_path):
    path = tmp_path / "wh.duckdb"
    wh = Warehouse(path)
    build_demo_warehouse(wh)
    sensor = build_segment_change_sensor(DECLS.syncs)
    requests, cursor = tick(sensor, path, None)
    assert requests == []  # the first tick only records signatures
    requests, cursor = tick(sensor, path, cursor)
    assert requests == []
    with wh.connect() as con:
        con.execute("UPDATE customers SET plan = 'trial' WHERE customer_id = 3 AND plan <> 'trial'")
        con.execute("UPDATE customers SET plan = 'pro' WHERE customer_id = 4")
    requests, cursor2 = tick(sensor, path, cursor)
    selected = {"/".join(k.path) for r in requests for k in (r.asset_selection or [])}
    assert "pakat/books/trial" in selected
    assert selected <= {"pakat/books/trial", "sendpulse/books/eu"}
    assert all(r.run_key for r in requests)
    again, _ = tick(sensor, path, cursor2)
    assert again == []
