"""The production code location: the syncs, campaigns and landing of the declarations file the deployment names
(``ESP_DECLARATIONS``, else ``pipelines/syncs.yaml``), on the warehouse and provider accounts the environment
names (:mod:`pipelines.resources_setup`).

It never contains the demo: no asset here creates, replaces or drops anything in the user's warehouse outside
the product's own schema, and no provider runs on a sandbox unless ``ESP_SANDBOX_DIR`` says so. A provider in
use without credentials fails the load with a message saying what to set.
"""

from pipelines.config import load_declarations
from pipelines.location import build_location, providers_in_use
from pipelines.resources_setup import build_resources

DECLARATIONS = load_declarations()
LOCATION = build_location(DECLARATIONS, build_resources(providers_in_use(DECLARATIONS)))

PROVIDERS_IN_USE = LOCATION.providers
SEGMENT_KEYS = LOCATION.segment_keys
SYNC_ASSETS = LOCATION.sync_assets
LANDING_ASSETS = LOCATION.landing_assets
PROVIDER_SNAPSHOT_KEYS = LOCATION.provider_snapshot_keys
DAILY_LANDING_KEYS = LOCATION.daily_landing_keys

defs = LOCATION.defs
