"""Resources of the production code location, from the environment — never an implicit sandbox.

* A provider used by a sync or a campaign talks to its **real API** with the credentials in the environment
  (secrets via ``dg.EnvVar``, resolved at run start, never logged).
* The embedded loopback **sandboxes** are used only when the configuration says so: ``ESP_SANDBOX_DIR=<folder>``
  puts every provider on its sandbox, with the sandbox accounts' state in that folder (the demo and the tests
  do this). Real credentials in the environment at the same time are an error: one deployment never mixes a
  real account with an emulator by accident.
* Anything else fails at load with a message naming the provider, what uses it and the variables to set: a
  forgotten variable never turns a sync or a campaign launch into a silent no-op against an emulator.

The warehouse is ``ESP_WAREHOUSE_URL`` (PostgreSQL or DuckDB; a secret, resolved at run start), else the DuckDB
file ``warehouse.duckdb`` in ``ESP_DATA_DIR`` (default ``data/``); the product's own tables go to the schema
``ESP_WAREHOUSE_SCHEMA`` (default ``esp``). The lake is ``ESP_LAKE_ROOT``, else ``lake/`` in ``ESP_DATA_DIR``.
"""

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

import dagster as dg

from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.litestartup import LiteStartupResource
from esp_warehouse.resources.pakat import PakatResource
from esp_warehouse.resources.sendpulse import SendPulseResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.errors import ConfigurationError
from espcore.warehouse import DEFAULT_OWN_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
#: each provider's credential variables
CREDENTIALS: dict[str, tuple[str, ...]] = {
    "sendpulse": ("SENDPULSE_CLIENT_ID", "SENDPULSE_CLIENT_SECRET"),
    "pakat": ("PAKAT_API_KEY",),
    "litestartup": ("LITESTARTUP_API_KEY",),
}
SANDBOX_ENV = "ESP_SANDBOX_DIR"


class MissingCredentialsError(ConfigurationError):
    """A provider the declarations use has no (or half of its) credentials, and no sandbox is configured."""


def data_dir() -> Path:
    """``ESP_DATA_DIR``, else ``data/`` beside the project."""
    return Path(os.environ.get("ESP_DATA_DIR") or ROOT / "data")


def sandbox_dir() -> Path | None:
    """The folder of the sandbox accounts' state when the configuration asks for the sandboxes, else None."""
    value = os.environ.get(SANDBOX_ENV, "").strip()
    return Path(value).resolve() if value else None


def credentials_present(provider: str) -> bool:
    """True when every credential variable of ``provider`` is set; an error when only some are."""
    names = CREDENTIALS[provider]
    present = [n for n in names if os.environ.get(n)]
    if present and len(present) != len(names):
        missing = sorted(set(names) - set(present))
        raise MissingCredentialsError(
            f"{provider}: {', '.join(present)} set but {', '.join(missing)} missing", provider=provider
        )
    return bool(present)


def sandbox_resource(provider: str, folder: Path) -> SendPulseResource | PakatResource | LiteStartupResource:
    """A provider's resource on its embedded sandbox, with the sandbox account's state in ``folder``."""
    # imported here: production code never loads the emulators unless the configuration asks for them
    from espcore.sandbox.litestartup import DEMO_API_KEY as LITESTARTUP_DEMO_KEY
    from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_DEMO_KEY
    from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET

    state = str(folder / f"{provider}.json")
    if provider == "sendpulse":
        return SendPulseResource(client_id=DEMO_CLIENT_ID, client_secret=DEMO_CLIENT_SECRET, sandbox_state=state)
    if provider == "pakat":
        return PakatResource(api_key=PAKAT_DEMO_KEY, sandbox_state=state)
    return LiteStartupResource(api_key=LITESTARTUP_DEMO_KEY, sandbox_state=state)


def _real_resource(provider: str) -> SendPulseResource | PakatResource | LiteStartupResource:
    if provider == "sendpulse":
        return SendPulseResource(
            client_id=dg.EnvVar("SENDPULSE_CLIENT_ID"), client_secret=dg.EnvVar("SENDPULSE_CLIENT_SECRET")
        )
    if provider == "pakat":
        return PakatResource(api_key=dg.EnvVar("PAKAT_API_KEY"))
    return LiteStartupResource(api_key=dg.EnvVar("LITESTARTUP_API_KEY"))


def provider_resource(
    provider: str, used_by: Iterable[str] = (), *, sandbox: Path | None = None, sandbox_source: str = SANDBOX_ENV
) -> SendPulseResource | PakatResource | LiteStartupResource:
    """The resource of one provider as the environment configures it (see the module docstring). ``sandbox``:
    a sandbox folder the configuration names explicitly (``sandbox_source`` says where, for the error that
    refuses it together with real credentials), instead of ``ESP_SANDBOX_DIR``."""
    real = credentials_present(provider)
    folder = sandbox if sandbox is not None else sandbox_dir()
    names = " and ".join(CREDENTIALS[provider])
    if folder is not None:
        if real:
            raise MissingCredentialsError(
                f"{provider}: {sandbox_source} asks for the sandboxes but {names} are set too; unset one of them "
                "(a deployment never mixes a real account with an emulator)",
                provider=provider,
            )
        return sandbox_resource(provider, folder)
    if real:
        return _real_resource(provider)
    users = ", ".join(used_by)
    raise MissingCredentialsError(
        f"{provider} is used{f' by {users}' if users else ''} but {names} "
        f"{'is' if len(CREDENTIALS[provider]) == 1 else 'are'} not set: set "
        f"{'it' if len(CREDENTIALS[provider]) == 1 else 'them'} to use the real API, or set {SANDBOX_ENV}=<folder> "
        "to run on the embedded sandboxes"
    )


def warehouse_resource() -> WarehouseResource:
    """``ESP_WAREHOUSE_URL`` (e.g. ``postgresql://user:password@host/db``, resolved at run start and never shown)
    selects the warehouse; without it, the DuckDB file in the data directory. That file also holds the lake
    views when the warehouse is PostgreSQL (which cannot read Parquet)."""
    duckdb_path = str(data_dir() / "warehouse.duckdb")
    schema = os.environ.get("ESP_WAREHOUSE_SCHEMA") or DEFAULT_OWN_SCHEMA
    if os.environ.get("ESP_WAREHOUSE_URL"):
        return WarehouseResource(url=dg.EnvVar("ESP_WAREHOUSE_URL"), duckdb_path=duckdb_path, own_schema=schema)
    return WarehouseResource(duckdb_path=duckdb_path, own_schema=schema)


def lake_resource() -> LakeResource:
    # ESP_LAKE_ROOT: another folder, or an object store (s3://bucket/prefix?region=…; credentials from the
    # environment, e.g. AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)
    return LakeResource(root=os.environ.get("ESP_LAKE_ROOT") or str(data_dir() / "lake"))


def build_resources(
    providers: Mapping[str, Iterable[str]], *, sandbox: Path | None = None, sandbox_source: str = SANDBOX_ENV
) -> dict[str, object]:
    """Resources for the providers in use (provider -> what uses it), the warehouse and the lake; ``sandbox``
    as in :func:`provider_resource`."""
    resources: dict[str, object] = {
        p: provider_resource(p, users, sandbox=sandbox, sandbox_source=sandbox_source) for p, users in providers.items()
    }
    resources["warehouse"] = warehouse_resource()
    resources["lake"] = lake_resource()
    return resources
