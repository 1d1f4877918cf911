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
from typing import Any

import dagster as dg

from esp_warehouse.config import AccountDecl, Declarations, providers_in_use
from esp_warehouse.resources.base import ProviderResource
from esp_warehouse.resources.lake import LakeResource
from esp_warehouse.resources.warehouse import WarehouseResource
from espcore.errors import ConfigurationError
from espcore.providers.registry import names, plugin
from espcore.warehouse import DEFAULT_OWN_SCHEMA

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_ENV = "ESP_SANDBOX_DIR"
AnyProviderResource = ProviderResource


class MissingCredentialsError(ConfigurationError):
    """A provider the declarations use has no (or half of its) credentials, and no sandbox is configured."""


def data_dir() -> Path:
    """``ESP_DATA_DIR``, else ``data/`` beside the project."""
    return Path(os.environ.get("ESP_DATA_DIR") or ROOT / "data")


def sandbox_dir() -> Path | None:
    """The folder of the sandbox accounts' state when the configuration asks for the sandboxes, else None."""
    value = os.environ.get(SANDBOX_ENV, "").strip()
    return Path(value).resolve() if value else None


def _account(name: str, account: AccountDecl | None) -> AccountDecl:
    if account is not None:
        return account
    if name not in names():
        raise ConfigurationError(f"{name} is not a provider; declare it under accounts (with its provider)")
    return AccountDecl(provider=name)


def credential_names(name: str, account: AccountDecl | None = None) -> tuple[str, ...]:
    """The credential variables of an account: its prefix and each credential field of its provider's resource
    in capitals: ``SENDPULSE_CLIENT_ID``… for the default account ``sendpulse``, ``SENDPULSE_EU_CLIENT_ID``… for
    ``sendpulse_eu`` (or its ``env_prefix``)."""
    acc = _account(name, account)
    prefix = acc.env_prefix or name.upper()
    return tuple(f"{prefix}_{field.upper()}" for field in plugin(acc.provider).credentials)


def credentials_present(name: str, account: AccountDecl | None = None) -> bool:
    """True when every credential variable of the account is set; an error when only some are."""
    names = credential_names(name, account)
    present = [n for n in names if os.environ.get(n)]
    if present and len(present) != len(names):
        missing = sorted(set(names) - set(present))
        raise MissingCredentialsError(
            f"{name}: {', '.join(present)} set but {', '.join(missing)} missing", provider=name
        )
    return bool(present)


def sandbox_resource(name: str, folder: Path, account: AccountDecl | None = None) -> AnyProviderResource:
    """An account's resource on its provider's embedded sandbox, with the sandbox account's state in ``folder``
    (``<account>.json``: each account its own sandbox account)."""
    acc = _account(name, account)
    entry = plugin(acc.provider)
    credentials = entry.sandbox_class().demo_credentials  # the emulator is loaded only when asked for
    state = str(folder / f"{name}.json")
    return entry.resource_class()(**credentials, sandbox_state=state, **_settings(name, acc))


def _settings(name: str, acc: AccountDecl) -> dict[str, Any]:
    """The resource fields an account declaration sets besides the credentials."""
    settings: dict[str, Any] = {}
    if name != acc.provider:
        settings["account"] = name
    if acc.requests_per_second is not None:
        settings["requests_per_second"] = acc.requests_per_second
    return settings


def _real_resource(name: str, acc: AccountDecl) -> AnyProviderResource:
    entry = plugin(acc.provider)
    env = {f: dg.EnvVar(n) for f, n in zip(entry.credentials, credential_names(name, acc), strict=True)}
    return entry.resource_class()(**env, **_settings(name, acc))


def provider_resource(
    provider: str,
    used_by: Iterable[str] = (),
    *,
    sandbox: Path | None = None,
    sandbox_source: str = SANDBOX_ENV,
    account: AccountDecl | None = None,
) -> AnyProviderResource:
    """The resource of one account (``provider``: a provider's name for its default account, or a named account
    with its declaration in ``account``) as the environment configures it (see the module docstring).
    ``sandbox``: a sandbox folder the configuration names explicitly (``sandbox_source`` says where, for the
    error that refuses it together with real credentials), instead of ``ESP_SANDBOX_DIR``."""
    acc = _account(provider, account)
    variables = credential_names(provider, acc)
    real = credentials_present(provider, acc)
    folder = sandbox if sandbox is not None else sandbox_dir()
    names = " and ".join(variables)
    if folder is not None:
        if real:
            raise MissingCredentialsError(
                f"{provider}: {sandbox_source} asks for the sandboxes but {names} are set too; unset one of them "
                "(a deployment never mixes a real account with an emulator)",
                provider=provider,
            )
        return sandbox_resource(provider, folder, acc)
    if real:
        return _real_resource(provider, acc)
    users = ", ".join(used_by)
    one = len(variables) == 1
    raise MissingCredentialsError(
        f"{provider} is used{f' by {users}' if users else ''} but {names} {'is' if one else 'are'} not set: set "
        f"{'it' if one else 'them'} to use the real API, or set {SANDBOX_ENV}=<folder> to run on the embedded "
        "sandboxes"
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
    providers: "Declarations | Mapping[str, Iterable[str]]",
    *,
    sandbox: Path | None = None,
    sandbox_source: str = SANDBOX_ENV,
) -> dict[str, object]:
    """Resources for the accounts the declarations use (or a mapping account -> what uses it, for providers'
    default accounts), the warehouse and the lake; ``sandbox`` as in :func:`provider_resource`."""
    if isinstance(providers, Declarations):
        decls = providers
        used: Mapping[str, Iterable[str]] = providers_in_use(decls)
        accounts = {name: decls.account(name) for name in used}
    else:
        used, accounts = providers, {}
    resources: dict[str, object] = {
        p: provider_resource(p, users, sandbox=sandbox, sandbox_source=sandbox_source, account=accounts.get(p))
        for p, users in used.items()
    }
    resources["warehouse"] = warehouse_resource()
    resources["lake"] = lake_resource()
    return resources
