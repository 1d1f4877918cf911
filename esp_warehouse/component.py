"""``EspWarehouseComponent``: the package as a Dagster Component, configured in a ``defs.yaml``.

The component's attributes hold what a declarations file holds — ``syncs``, ``campaigns``, ``automation`` —
validated by the very models of :mod:`esp_warehouse.config` (one schema per concept), or name such a file with
``declarations_file`` (relative to the ``defs.yaml`` folder). Errors say the file, the entry and the field, as
:func:`esp_warehouse.config.load_declarations` does. Campaign templates (``html_file``) are read from the
``defs.yaml`` folder.

``sandbox_dir`` puts every provider on its embedded sandbox with the sandbox accounts' state in that folder (the
explicit configuration a deployment needs for sandboxes). Without it the environment decides exactly as
:func:`esp_warehouse.environment.build_resources` does: real credentials via ``dg.EnvVar``, or the sandboxes when
``ESP_SANDBOX_DIR`` is set. The warehouse and the lake always come from the environment (``ESP_WAREHOUSE_URL``,
``ESP_DATA_DIR``, ``ESP_LAKE_ROOT``): no secret is ever written in ``defs.yaml``.

Several entries in one defs folder make one code location: the first builds it from all their declarations
(:func:`merge_entries`), since jobs, schedules, landing and provider resources are the location's.

A ``defs.yaml``::

    type: esp_warehouse.component.EspWarehouseComponent
    attributes:
      sandbox_dir: .esp/sandbox
      syncs:
        - name: team_people
          provider: sendpulse
          book: Team people
          source: {table: crm.people}
"""

import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import dagster as dg
from dagster.components.utils.translation import TranslationFn, TranslationFnResolver
from pydantic import BaseModel, Field, PlainSerializer, PrivateAttr, SkipValidation, ValidationError

from esp_warehouse.assets.subscribers import SyncTranslator
from esp_warehouse.config import (
    AccountDecl,
    AutomationDecl,
    CampaignDecl,
    ConfigError,
    Declarations,
    ErasureDecl,
    SyncDecl,
    describe_validation_error,
    load_declarations,
)
from esp_warehouse.environment import build_resources
from esp_warehouse.location import Location, build_location


def _as_given(context: dg.ResolutionContext, value: Any) -> Any:
    """The YAML value as written, plain data: not rendered as a Dagster template (a campaign's subject or body may
    hold the provider's own ``{{ variable }}`` placeholders); the declarations models validate it when the
    definitions are built, where the ``defs.yaml`` folder is known (campaign templates are read from there) and
    the errors can name the entry."""
    return value


# In the YAML the attribute's JSON schema is the model's own (for editors and `dg check yaml`); its values pass
# through unvalidated until build_defs validates them with the same model and the folder as context.
def _declared(model: Any, description: str) -> dg.Resolver:
    as_given: Any = Annotated[model, PlainSerializer(_unchanged, return_type=Any), SkipValidation]
    return dg.Resolver(_as_given, model_field_type=as_given, description=description)


def _unchanged(value: Any) -> Any:
    return value


InlineSyncs = Annotated[
    list[Any], _declared(list[SyncDecl], "Syncs, as in a declarations file (esp_warehouse.config.SyncDecl).")
]
InlineCampaigns = Annotated[
    list[Any],
    _declared(
        list[CampaignDecl],
        "Campaigns, as in a declarations file (esp_warehouse.config.CampaignDecl); html_file is relative to the "
        "defs.yaml folder.",
    ),
]
SyncTranslation = Annotated[
    TranslationFn[SyncDecl],
    TranslationFnResolver[SyncDecl](template_vars_for_translation_fn=lambda decl: {"sync": decl}),
]
InlineAccounts = Annotated[
    dict[str, Any],
    _declared(
        dict[str, AccountDecl],
        "Named provider accounts (esp_warehouse.config.AccountDecl), for several accounts of one provider; syncs "
        "and campaigns name them in their provider field.",
    ),
]
InlineAutomation = Annotated[
    Any, _declared(AutomationDecl, "Schedules' cron strings and time zone (esp_warehouse.config.AutomationDecl).")
]
InlineErasure = Annotated[
    Any,
    _declared(
        ErasureDecl,
        "Erasure requests (esp_warehouse.config.ErasureDecl): a table, view or query of addresses to delete from "
        "every book of each account.",
    ),
]


class EspWarehouseScaffolder(dg.Scaffolder):
    """``dg scaffold defs esp_warehouse.component.EspWarehouseComponent <name>``: a commented ``defs.yaml`` that
    loads as it is (one example sync, on the sandboxes)."""

    def scaffold(self, request: dg.ScaffoldRequest) -> None:
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(
            scaffold_yaml(request.type_name, request.target_path.name), encoding="utf-8"
        )


def scaffold_yaml(type_name: str, entry: str = "example") -> str:
    """The scaffolded ``defs.yaml`` of :class:`EspWarehouseComponent`; its example sync is named for the entry, so
    that a second scaffolded entry in the same defs folder loads beside the first."""
    name = re.sub(r"[^a-z0-9_]+", "_", entry.lower()).strip("_") or "example"
    name = name if name[0].isalpha() else f"e_{name}"
    book = name.replace("_", " ").capitalize()
    return textwrap.dedent(f"""\
        # esp-warehouse: sync warehouse segments into email service provider books, launch campaigns and land
        # the providers' data in the lake. The attributes hold what a declarations file holds (syncs, campaigns,
        # automation); or replace them with `declarations_file: esp.yaml` (relative to this folder).
        type: {type_name}

        attributes:
          # Every provider runs on its embedded sandbox, with the sandbox accounts' state in this folder
          # (relative to the project root, or absolute), so this loads and runs before any account exists.
          # Remove sandbox_dir once real credentials are set in the environment (SENDPULSE_CLIENT_ID and
          # SENDPULSE_CLIENT_SECRET, PAKAT_API_KEY, LITESTARTUP_API_KEY): with both, the load fails rather than
          # mixing a real account with an emulator.
          # The warehouse is ESP_WAREHOUSE_URL (e.g. postgresql://… or duckdb:///path/to/file.duckdb), else
          # warehouse.duckdb in ESP_DATA_DIR; never write a secret in this file.
          sandbox_dir: .esp/sandbox

          syncs:
            # One book at the provider, kept equal to one warehouse segment (a table, a view, or one SELECT).
            - name: {name}_people
              provider: sendpulse  # sendpulse, pakat or litestartup
              book: {book} people  # the provider's address book (list), created when missing
              source: {{table: people}}  # or {{view: crm.people}}, or {{sql: "SELECT email, name FROM …"}}
              primary_key: email
              fields: {{name: name}}  # provider variable: warehouse column
              mode: upsert  # insert, update, upsert or mirror

          # campaigns:
          #   - name: welcome
          #     provider: sendpulse
          #     sync: {name}_people
          #     subject: Welcome
          #     sender_name: Team
          #     sender_email: team@example.com
          #     html_file: welcome.html.j2  # relative to this folder
          #     schedule: "0 9 * * 1"

          # automation: {{main_cron: "0 6 * * *", landing_cron: "15 5 * * *", timezone: UTC}}

          # Each sync's asset, shaped like any component's ({{{{ sync }}}} is the declaration):
          # translation:
          #   key: "crm/{{{{ sync.name }}}}"
          #   group_name: crm_syncs
        """)


@dg.scaffold_with(EspWarehouseScaffolder)
class EspWarehouseComponent(dg.Component, dg.Resolvable, dg.Model):
    """Syncs, campaign launches and landing of esp-warehouse, declared in ``defs.yaml``."""

    declarations_file: str | None = Field(
        default=None,
        description="A declarations file (syncs, campaigns, automation), relative to the defs.yaml folder; "
        "instead of the inline attributes.",
    )
    accounts: InlineAccounts = Field(default_factory=dict)
    syncs: InlineSyncs = Field(default_factory=list)
    campaigns: InlineCampaigns = Field(default_factory=list)
    automation: InlineAutomation = None
    erasure: InlineErasure = None
    sandbox_dir: str | None = Field(
        default=None,
        description="Run every provider on its embedded sandbox, with state in this folder (relative to the "
        "project root, or absolute). Unset: real credentials from the environment, or ESP_SANDBOX_DIR.",
    )
    translation: SyncTranslation | None = Field(
        default=None,
        description="Attributes of each sync's asset (key, group_name, owners, tags, metadata, kinds, "
        "description, …), templated with {{ sync }} (the declaration: sync.name, sync.book, sync.provider) and "
        "{{ spec }} (the default spec); checks, guards, jobs and sensors follow a changed key.",
    )
    _location: Location | None = PrivateAttr(default=None)
    _leader: "EspWarehouseComponent | None" = PrivateAttr(default=None)

    def get_asset_spec(self, decl: SyncDecl, default: dg.AssetSpec) -> dg.AssetSpec:
        """A sync's asset spec: ``default`` with ``translation`` applied. Override it in a subclass for a Python
        hook."""
        return default if self.translation is None else self.translation(default, decl)

    @property
    def location(self) -> Location:
        """What :meth:`build_defs` built, by kind (assets, jobs, keys); for code and tests that need more than the
        merged ``Definitions``. Several entries in one defs folder share one location, built by the first."""
        built = self._leader._location if self._leader is not None else self._location
        if built is None:
            raise RuntimeError("the component's definitions are not built yet")
        return built

    def declarations(self, folder: Path) -> Declarations:
        """The validated declarations; ``folder`` is the ``defs.yaml`` folder (templates, ``declarations_file``)."""
        source = folder / "defs.yaml"
        if self.declarations_file is not None:
            given = [n for n in ("accounts", "syncs", "campaigns", "automation", "erasure") if getattr(self, n)]
            if given:
                raise ConfigError(f"{source}: give declarations_file or the inline {', '.join(given)}, not both")
            path = Path(self.declarations_file)
            return load_declarations(path if path.is_absolute() else folder / path)
        data: dict[str, Any] = {
            "accounts": _plain(self.accounts),
            "syncs": _plain(self.syncs),
            "campaigns": _plain(self.campaigns),
        }
        for name in ("automation", "erasure"):
            if getattr(self, name) is not None:
                data[name] = _plain(getattr(self, name))
        try:
            return Declarations.model_validate(data, context={"root": folder.resolve()})
        except ValidationError as exc:
            raise ConfigError(f"{source}: {describe_validation_error(exc, data)}") from None

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        entries = _entries(self, context)
        leader = entries[0][1]
        self._leader = leader
        if leader is not self:  # the first entry builds the location for all of them
            return dg.Definitions()
        parts = [(path, c, c.declarations(path)) for path, c in entries]
        decls = merge_entries([(path / "defs.yaml", d) for path, _, d in parts])
        folders = {c.sandbox_dir: path for path, c in entries if c.sandbox_dir is not None}
        if len(folders) > 1:
            named = ", ".join(f"{v / 'defs.yaml'} ({k})" for k, v in folders.items())
            raise ConfigError(
                f"sandbox_dir differs between the entries of this defs folder: {named}; the provider accounts "
                "are the code location's, so give sandbox_dir in one entry, or the same value in each"
            )
        sandbox = next(iter(folders), None)
        owners = {s.name: c for _, c, d in parts for s in d.syncs}
        self._location = build_location(
            decls,
            _resources(decls, sandbox, context.project_root),
            translator=_ComponentTranslator(self, owners),
        )
        return self._location.defs


def _entries(component: "EspWarehouseComponent", context: dg.ComponentLoadContext) -> list[tuple[Path, Any]]:
    """Every ``EspWarehouseComponent`` of the defs folder, in the tree's order, with its ``defs.yaml`` folder
    (``component`` alone when it is built outside a tree)."""
    tree = context.component_tree
    found = [
        (decl.context.path, tree.load_component(loc))
        for loc, decl in tree.find_root_decl().iterate_loc_component_decl_pairs()
        if isinstance(decl.component_type, type) and issubclass(decl.component_type, EspWarehouseComponent)
    ]
    if not any(c is component for _, c in found):
        return [(context.path, component)]
    return found


def merge_entries(parts: list[tuple[Path, Declarations]]) -> Declarations:
    """The declarations of several entries of one code location as one: accounts declared alike wherever they
    appear, automation given by at most one entry, sync, book and campaign names unique across all."""
    if len(parts) == 1:
        return parts[0][1]
    files = ", ".join(str(source) for source, _ in parts)
    accounts: dict[str, tuple[Path, AccountDecl]] = {}
    automation: dict[Path, AutomationDecl] = {}
    erasure: dict[Path, ErasureDecl] = {}
    for source, decls in parts:
        for name, account in decls.accounts.items():
            first = accounts.setdefault(name, (source, account))
            if first[1] != account:
                raise ConfigError(f"{first[0]} and {source} declare account {name!r} differently; declare it once")
        if "automation" in decls.model_fields_set:
            automation[source] = decls.automation
        if decls.erasure is not None:
            erasure[source] = decls.erasure
    for name, given in (("automation", automation), ("erasure", erasure)):
        if len({v.model_dump_json() for v in given.values()}) > 1:
            raise ConfigError(f"{name} is given differently in {', '.join(map(str, given))}; give it once")
    data: dict[str, Any] = {
        "accounts": {name: account for name, (_, account) in accounts.items()},
        "syncs": [s for _, d in parts for s in d.syncs],
        "campaigns": [c for _, d in parts for c in d.campaigns],
    }
    if automation:
        data["automation"] = next(iter(automation.values()))
    if erasure:
        data["erasure"] = next(iter(erasure.values()))
    try:
        return Declarations.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{files}: {describe_validation_error(exc, data)}") from None


def _resources(decls: Declarations, sandbox_dir: str | None, project_root: Path) -> dict[str, object]:
    """The providers in use on their sandboxes when ``sandbox_dir`` is set, else as the environment says."""
    if sandbox_dir is None:
        return build_resources(decls)
    folder = Path(sandbox_dir).expanduser()
    folder = (folder if folder.is_absolute() else project_root / folder).resolve()
    return build_resources(decls, sandbox=folder, sandbox_source="sandbox_dir in defs.yaml")


def _plain(value: Any) -> Any:
    """Models given from Python back to plain data, so that one validation (with the folder) covers both."""
    if isinstance(value, BaseModel):
        return value.model_dump(exclude_unset=True)
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


class _ComponentTranslator(SyncTranslator):
    """The component's :meth:`EspWarehouseComponent.get_asset_spec` as the location's sync translator."""

    def __init__(self, component: EspWarehouseComponent, owners: Mapping[str, EspWarehouseComponent]) -> None:
        self.component = component
        self.owners = owners  # sync name -> the entry that declares it, when the location has several

    def get_asset_spec(self, decl: SyncDecl, segment_key: dg.AssetKey, warehouse_kind: str = "duckdb") -> dg.AssetSpec:
        owner = self.owners.get(decl.name, self.component)
        return owner.get_asset_spec(decl, super().get_asset_spec(decl, segment_key, warehouse_kind))
