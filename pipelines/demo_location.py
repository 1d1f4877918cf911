"""The demo's code location: the production builder plus the demo warehouse asset, on the demo's own DuckDB file
and the three providers' embedded sandboxes — whatever the environment says about real accounts.

    DAGSTER_HOME=$PWD/data/dagster_home uv run dagster dev -m pipelines.demo_location

``defs`` is built for the demo's data folder (``ESP_DATA_DIR``, else ``data/``).
"""

import os
from pathlib import Path

from assets.warehouse import demo_warehouse
from espcore.sandbox.litestartup import DEMO_API_KEY as LITESTARTUP_DEMO_KEY
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_DEMO_KEY
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET
from pipelines.config import load_declarations
from pipelines.location import Location, build_location
from resources.lake import LakeResource
from resources.litestartup import LiteStartupResource
from resources.pakat import PakatResource
from resources.sendpulse import SendPulseResource
from resources.warehouse import WarehouseResource

ROOT = Path(__file__).resolve().parent.parent


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


def build_demo_location(data: Path) -> Location:
    return build_location(load_declarations(), demo_resources(data), segment_assets=[demo_warehouse])


defs = build_demo_location(Path(os.environ.get("ESP_DATA_DIR") or ROOT / "data").resolve()).defs
