"""The demo's code location: the production builder plus the demo warehouse asset, on the demo's own DuckDB file
and the three providers' embedded sandboxes — whatever the environment says about real accounts.

    DAGSTER_HOME=$PWD/data/dagster_home uv run dagster dev -m pipelines.demo_location

``defs`` is built for the demo's data folder (``ESP_DATA_DIR``, else ``data/``).
"""

import os
from pathlib import Path

from assets.warehouse import demo_warehouse
from esp_warehouse.config import load_declarations
from esp_warehouse.location import Location, build_location
from pipelines import DEFAULT_DECLARATIONS
from resources.demo import demo_resources

ROOT = Path(__file__).resolve().parent.parent


def build_demo_location(data: Path) -> Location:
    """The repository's declarations (whatever ``ESP_DECLARATIONS`` says) on the demo's resources."""
    decls = load_declarations(DEFAULT_DECLARATIONS)
    return build_location(decls, demo_resources(data, decls.accounts), segment_assets=[demo_warehouse])


defs = build_demo_location(Path(os.environ.get("ESP_DATA_DIR") or ROOT / "data").resolve()).defs
