"""The providers this installation knows: one :class:`ProviderPlugin` each, the only place that lists them.

Everything outside a provider's own modules reaches a provider through its entry here: the adapter class (the
:class:`~espcore.providers.base.EspProvider` the sync, campaign and landing layers use), its sandbox (imported
only when a sandbox is asked for), and the names the Dagster layer needs (the resource class, the credential
fields). Behaviour that only some providers have is an optional capability the adapter implements
(:class:`~espcore.providers.base.TestSender`, :class:`~espcore.providers.base.CostEstimator`, …), never a test of
the provider's name.

A provider shipped in another distribution registers itself through the entry point group
``esp_warehouse.providers`` (each entry point names a :class:`ProviderPlugin`), or by calling :func:`register`
before the declarations are loaded. ``docs/adding-a-provider.md`` walks through it.
"""

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "esp_warehouse.providers"


@dataclass(frozen=True)
class ProviderPlugin:
    """One provider: where its parts live (``module:attribute`` references, imported on first use)."""

    #: lower-case identifier, used in declarations (``provider: sendpulse``), asset keys and environment variables
    name: str
    #: as people write it (messages, docs)
    title: str
    #: the adapter class, built by the resource from its client
    adapter: str
    #: the sandbox class (a :class:`~espcore.sandbox.base.ProviderSandbox`), for tests, the demo and local runs
    sandbox: str
    #: the Dagster resource class (a ``ProviderResource``), used by the Dagster layer only
    resource: str
    #: the resource fields holding credentials; each is read from ``<ACCOUNT>_<FIELD>`` in capitals
    credentials: tuple[str, ...]

    def adapter_class(self) -> type[Any]:
        return _load(self.adapter)

    def sandbox_class(self) -> type[Any]:
        return _load(self.sandbox)

    def resource_class(self) -> type[Any]:
        return _load(self.resource)


def _load(reference: str) -> Any:
    module, _, attribute = reference.partition(":")
    return getattr(importlib.import_module(module), attribute)


BUILT_IN = (
    ProviderPlugin(
        name="sendpulse",
        title="SendPulse",
        adapter="espcore.providers.sendpulse:SendPulseProvider",
        sandbox="espcore.sandbox.sendpulse:SendPulseSandbox",
        resource="esp_warehouse.resources.sendpulse:SendPulseResource",
        credentials=("client_id", "client_secret"),
    ),
    ProviderPlugin(
        name="pakat",
        title="Pakat",
        adapter="espcore.providers.pakat:PakatProvider",
        sandbox="espcore.sandbox.pakat:PakatSandbox",
        resource="esp_warehouse.resources.pakat:PakatResource",
        credentials=("api_key",),
    ),
    ProviderPlugin(
        name="litestartup",
        title="LiteStartup",
        adapter="espcore.providers.litestartup:LiteStartupProvider",
        sandbox="espcore.sandbox.litestartup:LiteStartupSandbox",
        resource="esp_warehouse.resources.litestartup:LiteStartupResource",
        credentials=("api_key",),
    ),
)

_REGISTRY: dict[str, ProviderPlugin] = {}


def register(entry: ProviderPlugin) -> None:
    """Add a provider (a second registration of one name must be the same entry)."""
    known = _REGISTRY.get(entry.name)
    if known is not None and known != entry:
        raise ValueError(f"provider {entry.name!r} is registered twice, differently")
    if not entry.name.isidentifier() or entry.name != entry.name.lower():
        raise ValueError(f"provider name {entry.name!r}: lower-case letters, digits and underscores")
    _REGISTRY[entry.name] = entry


def _discover() -> None:
    for entry in BUILT_IN:
        register(entry)
    for point in entry_points(group=ENTRY_POINT_GROUP):
        found = point.load()
        if not isinstance(found, ProviderPlugin):
            raise TypeError(f"entry point {point.name} of {ENTRY_POINT_GROUP} is not a ProviderPlugin")
        register(found)


def names() -> tuple[str, ...]:
    """Every registered provider's name, built-in ones first."""
    return tuple(_REGISTRY)


def plugin(name: str) -> ProviderPlugin:
    """The provider ``name``; a clear error naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"no provider {name!r}; known: {', '.join(_REGISTRY)}") from None


def title(name: str) -> str:
    """How people write the provider's name (the name itself for an unknown one)."""
    entry = _REGISTRY.get(name)
    return entry.title if entry is not None else name


_discover()
