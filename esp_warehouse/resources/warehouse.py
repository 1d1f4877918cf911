"""The warehouse resource: a DuckDB file by default, or PostgreSQL from a URL."""

import dagster as dg
from pydantic import Field, PrivateAttr

from espcore.warehouse import (
    DEFAULT_OWN_SCHEMA,
    BaseWarehouse,
    Warehouse,
    check_own_schema,
    keyword_dsn_keys,
    warehouse_from_url,
)


class WarehouseResource(dg.ConfigurableResource):
    """Where segments, sync state and the landed-data views live.

    Give ``url`` for PostgreSQL (``postgresql://user:password@host:5432/db``), preferably as
    ``dg.EnvVar("WAREHOUSE_URL")``: it can hold a password, so it is never part of the resource's repr and the
    run log only ever shows the warehouse's ``location`` (no password). Without ``url``, ``duckdb_path`` is used.
    """

    duckdb_path: str = Field(default="data/warehouse.duckdb", description="DuckDB database file.")
    url: str | None = Field(
        default=None,
        repr=False,
        description="Warehouse URL: postgresql://user:password@host:port/db (a secret: use an EnvVar), or "
        "duckdb:///relative/path.duckdb. When set, it is used instead of duckdb_path.",
    )

    own_schema: str = Field(
        default=DEFAULT_OWN_SCHEMA,
        description="Schema of the product's own tables (sync state, plan, changelog, runs, locks, campaign "
        "ledger) and lake views, created when missing. Nothing outside it is ever created, replaced or dropped.",
    )

    _warehouse: BaseWarehouse | None = PrivateAttr(default=None)

    def engine_kind(self) -> str:
        """``postgres`` or ``duckdb``: the engine this resource names, read without connecting (for asset kinds)."""
        url = self.url
        if isinstance(url, dg.EnvVar):
            url = url.get_value()
        text = (url or "").strip()
        if text.lower().startswith(("postgresql://", "postgres://")) or keyword_dsn_keys(text) is not None:
            return "postgres"
        return "duckdb"

    def get_warehouse(self) -> BaseWarehouse:
        if self._warehouse is None:
            warehouse = warehouse_from_url(self.url) if self.url else Warehouse(self.duckdb_path)
            warehouse.own_schema = check_own_schema(self.own_schema)
            self._warehouse = warehouse
        return self._warehouse

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.log is not None:
            context.log.info(f"warehouse: {self.get_warehouse().location}")

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._warehouse is not None:
            self._warehouse.close()
            self._warehouse = None
