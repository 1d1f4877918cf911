"""esp-warehouse: drive email service providers (SendPulse, Pakat, LiteStartup) from a data warehouse with Dagster.

This package is the reusable Dagster layer on the provider-agnostic core (:mod:`espcore`, no Dagster there):
one ``ConfigurableResource`` per provider plus the warehouse and the lake (:mod:`esp_warehouse.resources`), asset
factories per family (:mod:`esp_warehouse.assets`), the declarations schema (:mod:`esp_warehouse.config`), and
:func:`build_location`, which turns declarations and resources into a code location's ``Definitions``.
Resources from the environment (real accounts, or sandboxes only when ``ESP_SANDBOX_DIR`` says so) come from
:func:`build_resources`.
"""

from esp_warehouse.component import EspWarehouseComponent
from esp_warehouse.config import AccountDecl, ConfigError, Declarations, load_declarations, providers_in_use
from esp_warehouse.environment import MissingCredentialsError, build_resources
from esp_warehouse.location import Location, build_location
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.litestartup import LiteStartupResource
from esp_warehouse.resources.pakat import PakatResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from esp_warehouse.resources.warehouse import WarehouseResource

__all__ = [
    "AccountDecl",
    "ConfigError",
    "Declarations",
    "EspWarehouseComponent",
    "LakeResource",
    "LiteStartupResource",
    "Location",
    "MissingCredentialsError",
    "PakatResource",
    "SendPulseResource",
    "WarehouseResource",
    "build_location",
    "build_resources",
    "load_declarations",
    "providers_in_use",
]
