"""The demo's resources: every provider on its embedded sandbox, the demo's own DuckDB file and lake, all inside
the demo's data folder. Whatever the environment says about real accounts, the demo never uses them."""

from pathlib import Path

from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.litestartup import LiteStartupResource
from esp_warehouse.resources.pakat import PakatResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.sandbox.litestartup import DEMO_API_KEY as LITESTARTUP_DEMO_KEY
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_DEMO_KEY
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET


def demo_resources(data: Path) -> dict[str, object]:
    """Sandboxes for every provider, the demo's DuckDB file and lake, all inside ``data``."""
    sandbox = data / "sandbox"
    return {
        "sendpulse": SendPulseResource(
            client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, sandbox_state=str(sandbox / "sendpulse.json")
        ),
        "pakat": PakatResource(api_key=PAKAT_DEMO_KEY, sandbox_state=str(sandbox / "pakat.json")),
        "litestartup": LiteStartupResource(
            api_key=LITESTARTUP_DEMO_KEY, sandbox_state=str(sandbox / "litestartup.json")
        ),
        "warehouse": WarehouseResource(duckdb_path=str(data / "warehouse.duckdb")),
        "lake": LakeResource(root=str(data / "lake")),
    }
