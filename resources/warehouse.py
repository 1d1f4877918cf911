"""The warehouse resource: DuckDB file by default."""

import dagster as dg
from pydantic import Field

from espcore.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """Where segments, sync state and the landed-data views live."""

    duckdb_path: str = Field(default="data/warehouse.duckdb", description="DuckDB database file.")

    def get_warehouse(self) -> Warehouse:
        return Warehouse(self.duckdb_path)
