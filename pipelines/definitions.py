"""The production code location: the syncs, campaigns and landing of the declarations file the deployment names
(``ESP_DECLARATIONS``, else ``pipelines/syncs.yaml``), on the warehouse and provider accounts the environment
names (:mod:`esp_warehouse.environment`).

It never contains the demo: no asset here creates, replaces or drops anything in the user's warehouse outside
the product's own schema, and no provider runs on a sandbox unless ``ESP_SANDBOX_DIR`` says so. A provider in
use without credentials fails the load with a message saying what to set.
"""

from esp_warehouse.config import load_declarations
from esp_warehouse.environment import build_resources
from esp_warehouse.location import build_location, providers_in_use
from pipelines import DEFAULT_DECLARATIONS

DECLARATIONS = load_declarations(default=DEFAULT_DECLARATIONS)
LOCATION = build_location(DECLARATIONS, build_resources(providers_in_use(DECLARATIONS)))

PROVIDERS_IN_USE = LOCATION.providers
SEGMENT_KEYS = LOCATION.segment_keys
SYNC_ASSETS = LOCATION.sync_assets
LANDING_ASSETS = LOCATION.landing_assets
PROVIDER_SNAPSHOT_KEYS = LOCATION.provider_snapshot_keys
DAILY_LANDING_KEYS = LOCATION.daily_landing_keys

defs = LOCATION.defs
