"""The demo's resources: every provider on its embedded sandbox, the demo's own DuckDB file and lake, all inside
the demo's data folder. Whatever the environment says about real accounts, the demo never uses them."""

from collections.abc import Mapping
from pathlib import Path

from esp_warehouse.config import PROVIDERS, AccountDecl
from esp_warehouse.environment import sandbox_resource
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.warehouse import WarehouseResource


def demo_resources(data: Path, accounts: Mapping[str, AccountDecl] | None = None) -> dict[str, object]:
    """Sandboxes for every provider and every named account, the demo's DuckDB file and lake, all inside
    ``data``."""
    resources: dict[str, object] = {p: sandbox_resource(p, data / "sandbox") for p in PROVIDERS}
    for name, account in (accounts or {}).items():
        resources[name] = sandbox_resource(name, data / "sandbox", account)
    resources["warehouse"] = WarehouseResource(duckdb_path=str(data / "warehouse.duckdb"))
    resources["lake"] = LakeResource(root=str(data / "lake"))
    return resources
