"""The demo warehouse: the customers table and the segment views the syncs read, built as real assets."""

import dagster as dg

from esp_warehouse.resources.warehouse import WarehouseResource
from espcore import demo
from espcore.demo import build_demo_warehouse

CUSTOMERS_KEY = dg.AssetKey(["warehouse", "customers"])
SEGMENT_KEYS = {name: dg.AssetKey(["warehouse", name]) for name in demo.SEGMENT_VIEWS}


@dg.multi_asset(
    name="demo_warehouse",
    specs=[
        dg.AssetSpec(CUSTOMERS_KEY, kinds={"duckdb"}, group_name="warehouse", description="Demo customers."),
        *[
            dg.AssetSpec(key, deps=[CUSTOMERS_KEY], kinds={"duckdb"}, group_name="warehouse", description=sql)
            for key, sql in zip(SEGMENT_KEYS.values(), demo.SEGMENT_VIEWS.values(), strict=True)
        ],
    ],
)
def demo_warehouse(context: dg.AssetExecutionContext, warehouse: WarehouseResource):
    """Create the deterministic demo customers (with a few bad rows) and the segment views."""
    counts = build_demo_warehouse(warehouse.get_warehouse())
    yield dg.MaterializeResult(asset_key=CUSTOMERS_KEY, metadata={"dagster/row_count": counts["customers"]})
    for name, key in SEGMENT_KEYS.items():
        yield dg.MaterializeResult(asset_key=key, metadata={"dagster/row_count": counts[name]})


defs = dg.Definitions(assets=[demo_warehouse])
