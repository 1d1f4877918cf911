"""The production code location: ``pipelines/defs/``, loaded the way ``dg.load_from_defs_folder`` loads a project.

Its one entry, ``pipelines/defs/esp/defs.yaml``, is an :class:`~esp_warehouse.component.EspWarehouseComponent`
over the declarations file the deployment names (``ESP_DECLARATIONS``, else ``pipelines/syncs.yaml``), on the
warehouse and provider accounts the environment names (:mod:`esp_warehouse.environment`).

It never contains the demo: no asset here creates, replaces or drops anything in the user's warehouse outside
the product's own schema, and no provider runs on a sandbox unless ``ESP_SANDBOX_DIR`` says so. A provider in
use without credentials fails the load with a message saying what to set.
"""

import dagster as dg

from esp_warehouse.component import EspWarehouseComponent
from pipelines import PROJECT_ROOT

# dg.load_from_defs_folder(project_root=PROJECT_ROOT) is this tree's build_defs(); the tree is kept so that the
# component (and the assets, keys and jobs it built) can be reached by name.
TREE = dg.ComponentTree.for_project(PROJECT_ROOT)
defs = TREE.build_defs()
COMPONENT = TREE.load_component("esp", EspWarehouseComponent)
LOCATION = COMPONENT.location

DECLARATIONS = LOCATION.declarations
PROVIDERS_IN_USE = LOCATION.providers
SEGMENT_KEYS = LOCATION.segment_keys
SYNC_ASSETS = LOCATION.sync_assets
LANDING_ASSETS = LOCATION.landing_assets
PROVIDER_SNAPSHOT_KEYS = LOCATION.provider_snapshot_keys
DAILY_LANDING_KEYS = LOCATION.daily_landing_keys
