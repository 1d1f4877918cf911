"""The YAML declarations (syncs, campaigns) parsed into validated specs, with errors that name the file, the
entry and the field instead of a stack trace."""

import os
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from espcore.providers.registry import names
from espcore.sync.source import check_select, parse_relation, segment_sql

#: the providers registered when this module loads (for the JSON schema and field descriptions); validation asks
#: the registry itself, so a provider registered later is known too
PROVIDERS = names()


def _registered(value: str) -> str:
    if value not in names():
        raise ValueError(f"no provider {value!r} (providers: {', '.join(names())})")
    return value


#: a registered provider's name; the JSON schema lists them (for editors and ``dg check yaml``)
Provider = Annotated[str, AfterValidator(_registered), WithJsonSchema({"type": "string", "enum": list(PROVIDERS)})]
#: what a sync's or campaign's ``provider`` names: a provider (its default account) or a declared account
ACCOUNT_FIELD = (
    f"A provider ({', '.join(PROVIDERS)}: its default account) or an account declared under accounts "
    "(e.g. sendpulse_eu)."
)


class ConfigError(ValueError):
    """A declaration file is wrong; the message says where and what."""


class SourceDecl(BaseModel):
    """The segment: a ``table`` or ``view`` name (``people``, ``crm.people``, ``"My Schema"."My Table"``) or one
    read-only ``sql`` query over tables and views (see ``espcore.sync.source`` and docs/security.md)."""

    model_config = ConfigDict(extra="forbid")
    table: str | None = None
    view: str | None = None
    sql: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SourceDecl":
        if sum(x is not None for x in (self.table, self.view, self.sql)) != 1:
            raise ValueError("give exactly one of table, view or sql")
        if self.table is not None:
            parse_relation(self.table, what="segment table")
        elif self.view is not None:
            parse_relation(self.view, what="segment view")
        elif self.sql is not None:
            # the engine is not known here: the query must be safe in every dialect that parses it; the
            # run-time guard checks it again in the warehouse's own
            self.sql = check_select(self.sql)
        return self

    @property
    def relation(self) -> str | None:
        return self.table or self.view

    def as_sql(self) -> str:
        """The segment as one checked query: ``SELECT * FROM "schema"."name"`` for a table or view."""
        if self.sql is not None:
            return segment_sql("sql", self.sql)
        if self.table is not None:
            return segment_sql("table", self.table)
        return segment_sql("view", self.view or "")


class AccountDecl(BaseModel):
    """A named account of one provider, for a deployment with several (two SendPulse accounts, one per region).
    Its credentials are the provider's variables under its own prefix: account ``sendpulse_eu`` reads
    ``SENDPULSE_EU_CLIENT_ID`` and ``SENDPULSE_EU_CLIENT_SECRET``; a provider's default account is the account
    named like the provider (``SENDPULSE_CLIENT_ID``…)."""

    model_config = ConfigDict(extra="forbid")
    provider: Provider
    env_prefix: str | None = Field(
        default=None,
        pattern=r"^[A-Z][A-Z0-9_]*$",
        description="Prefix of the credential variables (default: the account name in capitals).",
    )
    requests_per_second: float | None = Field(
        default=None, ge=0, description="Client-side rate limit of this account (default: the provider's)."
    )


class _OnAccount(BaseModel):
    """What syncs and campaigns share: ``provider`` names an account; its provider is set by
    :class:`Declarations`, which knows the accounts."""

    _kind: str | None = PrivateAttr(default=None)

    @property
    def provider_kind(self) -> str:
        """The provider behind ``provider`` (``sendpulse`` for the account ``sendpulse_eu``)."""
        return self._kind or self.provider  # type: ignore[attr-defined]  # both subclasses declare it


class SyncDecl(_OnAccount):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    provider: str = Field(description=ACCOUNT_FIELD)
    book: str = Field(min_length=1, max_length=100)
    source: SourceDecl
    primary_key: str = "email"
    fields: dict[str, str] = Field(default_factory=dict)
    mode: Literal["insert", "update", "upsert", "mirror"] = "upsert"
    delete_behavior: Literal["none", "remove", "unsubscribe"] | None = None
    max_remove_pct: float = Field(default=10.0, ge=0, le=100)
    required_fields: tuple[str, ...] = Field(
        default=(), description="Mapped provider fields that must not be empty: a row without one is rejected."
    )
    abort_rejected_pct: float = Field(
        default=50.0, ge=0, le=100, description="Stop the run when the provider rejects more than this share."
    )
    max_value_length: int = Field(default=1000, gt=0, description="Longest value sent; a longer one is rejected.")
    refresh_suppressions: bool = Field(
        default=True, description="Read the provider's blacklist and unsubscribes before planning."
    )
    max_invalid_pct: float = Field(default=5.0, ge=0, le=100)
    max_duplicate_pct: float = Field(default=5.0, ge=0, le=100)
    warn_rejected_pct: float = Field(default=2.0, ge=0, le=100)
    error_rejected_pct: float = Field(default=10.0, ge=0, le=100)
    description: str | None = None
    deps: list[str] = Field(
        default_factory=list,
        description="Upstream asset keys of the sync besides its segment, '/'-separated (e.g. the dbt model that "
        "builds the segment: analytics/active_customers).",
    )
    owners: list[str] = Field(default_factory=list, description="Asset owners: emails or team:<name>.")
    tags: dict[str, str] = Field(default_factory=dict, description="Asset tags.")
    group_name: str | None = Field(default=None, description="Asset group; default <provider>_sync.")

    @field_validator("deps")
    @classmethod
    def _deps(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if not v.strip() or any(not part.strip() for part in v.split("/"))]
        if bad:
            raise ValueError(f"asset keys are '/'-separated names, e.g. analytics/customers: not {bad}")
        return value


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin)") from None
    return value


class CampaignDecl(_OnAccount):
    """One campaign launched to the book a sync maintains; ``schedule`` (cron) makes it recurring."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    provider: str = Field(description=ACCOUNT_FIELD)
    sync: str = Field(description="Name of the sync whose book the campaign targets.")
    subject: str = Field(min_length=1, max_length=255)
    sender_name: str = Field(min_length=1)
    sender_email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    template_id: str | None = None
    html_file: str | None = Field(
        default=None,
        description="HTML or Jinja file, relative to the declarations file's folder (and inside it: no absolute "
        "path, no ..).",
    )
    send_at: str = Field(default="now", description='"now", or an ISO date-time read in `timezone`.')
    timezone: str = "UTC"
    schedule: str | None = Field(default=None, description="Cron string of a recurring launch.")
    execution_timezone: str = "UTC"
    test_recipients: list[str] = Field(default_factory=list)
    max_sync_age_minutes: float = Field(default=24 * 60, gt=0)
    max_recipients: int | None = Field(default=None, gt=0)
    max_rejected_pct: float | None = Field(default=None, ge=0, le=100)
    require_test_send: bool = False
    title: str | None = Field(default=None, max_length=80, description="Readable part of the provider-side name.")
    description: str | None = None

    _tz = field_validator("timezone", "execution_timezone")(_zone)

    @field_validator("send_at")
    @classmethod
    def _send_at(cls, value: str) -> str:
        if value != "now":
            try:
                datetime.fromisoformat(value)
            except ValueError:
                raise ValueError(f'send_at must be "now" or an ISO date-time, not {value!r}') from None
        return value

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None and len(value.split()) != 5:
            raise ValueError(f"schedule must be a 5-field cron string such as '0 9 * * 1', not {value!r}")
        return value

    @field_validator("test_recipients")
    @classmethod
    def _emails(cls, value: list[str]) -> list[str]:
        bad = [v for v in value if "@" not in v or v.strip() != v]
        if bad:
            raise ValueError(f"not email addresses: {', '.join(bad)}")
        return value

    #: the declarations file's folder: templates are read from there (the working directory when the
    #: declarations were not read from a file and no ``root`` was given in the validation context)
    _root: Path = PrivateAttr(default_factory=Path.cwd)

    @model_validator(mode="after")
    def _body(self, info: ValidationInfo) -> "CampaignDecl":
        root = (info.context or {}).get("root") if isinstance(info.context, dict) else None
        if isinstance(root, str | Path):
            self._root = Path(root)
        if (self.template_id is None) == (self.html_file is None):
            raise ValueError("give exactly one of template_id or html_file")
        if self.html_file is not None and not template_path(self.html_file, self._root).is_file():
            raise ValueError(f"html_file {self.html_file!r} not found under {self._root}")
        if self.require_test_send and not self.test_recipients:
            raise ValueError("require_test_send needs test_recipients")
        return self

    def send_at_datetime(self) -> datetime | None:
        """The aware send time, or None for "now"."""
        if self.send_at == "now":
            return None
        when = datetime.fromisoformat(self.send_at)
        return when if when.tzinfo is not None else when.replace(tzinfo=ZoneInfo(self.timezone))

    def html_path(self) -> Path | None:
        return template_path(self.html_file, self._root) if self.html_file else None


def template_path(name: str, root: Path) -> Path:
    """Where a template named in the declarations is: under ``root`` (the declarations' folder), symlinks
    resolved. An absolute path, a ``..`` part, or a path (or symlink) leading outside ``root`` is a ValueError:
    the declarations only ever read files of their own folder."""
    if not name or "\x00" in name or "\\" in name:
        raise ValueError(f"html_file {name!r} is not a relative path (use / between folders)")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("~") or (len(name) > 1 and name[1] == ":"):
        raise ValueError(f"html_file {name!r} must be relative to {root.name}/, not an absolute path")
    if ".." in pure.parts:
        raise ValueError(f"html_file {name!r} must stay inside {root.name}/: '..' is not allowed")
    base = root.resolve()
    resolved = (base / pure).resolve()
    if not resolved.is_relative_to(base):
        raise ValueError(f"html_file {name!r} leads outside {root.name}/ (through a symbolic link)")
    return resolved


def _cron(value: str) -> str:
    if len(value.split()) != 5:
        raise ValueError(f"must be a 5-field cron string such as '15 5 * * *', not {value!r}")
    return value


class AutomationDecl(BaseModel):
    """When things run: the cron strings of the schedules, which the declarative automation conditions share."""

    model_config = ConfigDict(extra="forbid")
    main_cron: str = Field(default="0 6 * * *", description="The main_daily schedule (syncs, launches, landing).")
    landing_cron: str = Field(default="15 5 * * *", description="land_daily, and landing under automation.")
    suppression_read_cron: str | None = Field(
        default=None,
        description="Opt-in: when the suppression_reconcile job re-syncs every book reading all its suppressions "
        "(e.g. '0 3 * * 0'); between such runs an unchanged provider signature spares that read.",
    )
    timezone: str = "UTC"

    _tz = field_validator("timezone")(_zone)
    _crons = field_validator("main_cron", "landing_cron")(_cron)

    @field_validator("suppression_read_cron")
    @classmethod
    def _optional_cron(cls, value: str | None) -> str | None:
        return None if value is None else _cron(value)


class ErasureDecl(BaseModel):
    """Erasure requests (GDPR art. 17, CCPA): a warehouse table, view or query with a row per request. Each
    provider account gets an erasure asset that deletes the addresses from all its books (and blacklists them
    where the provider has an account blacklist); an erased address is never synced again."""

    model_config = ConfigDict(extra="forbid")
    source: SourceDecl
    email_column: str = Field(default="email", description="The column of the address to erase.")
    request_id_column: str = Field(default="request_id", description="The column of the request's id.")
    requested_at_column: str = Field(default="requested_at", description="The column of when it was requested.")
    max_age_days: float = Field(
        default=30,
        gt=0,
        description="The erasure_complete check fails when a request older than this is not done on an account "
        "(GDPR: one month).",
    )
    accounts: list[str] | None = Field(
        default=None, description="The accounts to erase from (default: every account the declarations use)."
    )


class Declarations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accounts: dict[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]*$")], AccountDecl] = Field(
        default_factory=dict,
        description="Named provider accounts, for several accounts of one provider; syncs and campaigns name "
        "them in their provider field.",
    )
    syncs: list[SyncDecl] = Field(default_factory=list)
    campaigns: list[CampaignDecl] = Field(default_factory=list)
    automation: AutomationDecl = Field(default_factory=AutomationDecl)
    erasure: ErasureDecl | None = None

    @model_validator(mode="after")
    def _unique(self) -> "Declarations":
        for name, account in self.accounts.items():
            if name in names() and account.provider != name:
                raise ValueError(f"accounts.{name}: an account named like a provider is that provider's account")
        known = f"providers: {', '.join(names())}" + (
            f"; accounts: {', '.join(self.accounts)}" if self.accounts else ""
        )
        for kind, entries in (("syncs", self.syncs), ("campaigns", self.campaigns)):
            for i, e in enumerate(entries):
                if e.provider not in names() and e.provider not in self.accounts:
                    raise ValueError(
                        f"{kind}[{i}] ({e.name}) field provider: no provider or account {e.provider!r} ({known})"
                    )
                e._kind = self.kind(e.provider)
        seen: set[str] = set()
        books: set[tuple[str, str]] = set()
        for s in self.syncs:
            if s.name in seen:
                raise ValueError(f"sync name {s.name!r} is declared twice")
            if (s.provider, s.book) in books:
                raise ValueError(f"book {s.book!r} of {s.provider} is fed by two syncs; one segment per book")
            seen.add(s.name)
            books.add((s.provider, s.book))
        syncs = {s.name: s for s in self.syncs}
        campaign_names: set[str] = set()
        for i, c in enumerate(self.campaigns):
            where = f"campaigns[{i}] ({c.name})"
            if c.name in campaign_names:
                raise ValueError(f"{where}: campaign name {c.name!r} is declared twice")
            campaign_names.add(c.name)
            sync = syncs.get(c.sync)
            if sync is None:
                known = ", ".join(sorted(syncs)) or "none"
                raise ValueError(f"{where} field sync: no sync named {c.sync!r} (declared syncs: {known})")
            if sync.provider != c.provider:
                raise ValueError(
                    f"{where} field provider: {c.provider} but sync {c.sync!r} feeds a {sync.provider} book"
                )
        if self.erasure is not None and self.erasure.accounts is not None:
            for name in self.erasure.accounts:
                if name not in names() and name not in self.accounts:
                    choices = ", ".join([*names(), *self.accounts])
                    raise ValueError(f"erasure field accounts: no provider or account {name!r} (known: {choices})")
        return self

    def erasure_accounts(self) -> list[str]:
        """The accounts the erasure asset runs on: those declared, else every account in use."""
        if self.erasure is None:
            return []
        return list(self.erasure.accounts) if self.erasure.accounts is not None else list(providers_in_use(self))

    def sync(self, name: str) -> SyncDecl:
        return next(s for s in self.syncs if s.name == name)

    def account(self, name: str) -> AccountDecl:
        """The account a sync's or campaign's ``provider`` names (a provider's name: its default account)."""
        declared = self.accounts.get(name)
        if declared is not None:
            return declared
        if name not in names():
            raise ConfigError(f"no provider or account {name!r}")
        return AccountDecl(provider=name)

    def kind(self, name: str) -> str:
        """The provider of an account (``sendpulse`` for ``sendpulse_eu``)."""
        return self.account(name).provider


def providers_in_use(decls: Declarations) -> dict[str, list[str]]:
    """Each account (a provider's name for its default account) the declarations use, with what uses it (for
    error messages)."""
    used: dict[str, list[str]] = {}
    for s in decls.syncs:
        used.setdefault(s.provider, []).append(f"sync {s.name}")
    for c in decls.campaigns:
        used.setdefault(c.provider, []).append(f"campaign {c.name}")
    if decls.erasure is not None and decls.erasure.accounts is not None:
        for name in decls.erasure.accounts:
            used.setdefault(name, []).append("erasure")
    return dict(sorted(used.items()))


def describe_validation_error(err: ValidationError, data: Any) -> str:
    """A validation error of the declarations as one line per problem: the entry (``syncs[0] (name)``) and the
    field, then the reason."""
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] in ("syncs", "campaigns") and isinstance(loc[1], int):
            entry = data.get(loc[0], [])[loc[1]] if isinstance(data, dict) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"{loc[0]}[{loc[1]}]" + (f" ({name})" if name else "")
            loc = loc[2:]
        field = ".".join(str(x) for x in loc) or "(entry)"
        lines.append(f"{where} field {field}: {e['msg']}".strip())
    return "; ".join(lines)


class DuplicateKeyError(yaml.YAMLError):
    """A mapping of a declarations file holds one key twice (YAML would silently keep the last)."""

    def __init__(self, key: object, line: int, first_line: int) -> None:
        self.key = key
        self.line = line
        self.first_line = first_line
        super().__init__(f"line {line}: duplicate key {key!r} (first given on line {first_line})")


class UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping (merge keys ``<<`` still override)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the base class reports it
                continue
            line = key_node.start_mark.line + 1
            if first is not None:
                raise DuplicateKeyError(key, line, first)
            seen[key] = line
        return super().construct_mapping(node, deep=deep)


#: the environment variable naming the deployment's declarations file
DECLARATIONS_ENV = "ESP_DECLARATIONS"


def declarations_path(path: str | Path | None = None, *, default: str | Path | None = None) -> Path:
    """Which declarations file to read: ``path`` if given, else the file ``ESP_DECLARATIONS`` names (chosen by
    the deployment), else ``default`` (a code location's own file); a ConfigError when none is given."""
    if path:
        return Path(path)
    named = os.environ.get(DECLARATIONS_ENV, "").strip()
    if named:
        return Path(named).expanduser()
    if default:
        return Path(default)
    raise ConfigError(f"no declarations file: set {DECLARATIONS_ENV} to the path of your declarations YAML")


def load_declarations(path: str | Path | None = None, *, default: str | Path | None = None) -> Declarations:
    """Parse and validate a declarations file (:func:`declarations_path`): UTF-8 YAML, no key given twice in one
    mapping, then the models' rules; every error is a :class:`ConfigError` naming the file. Campaign templates
    (``html_file``) are read from the file's own folder."""
    path = declarations_path(path, default=default)
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[: exc.start].count(b"\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line}, byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the file: {exc.strerror or exc}") from None
    if "\x00" in text:  # valid UTF-8 bytes, but UTF-16 (without a byte order mark) or a binary file
        line = text[: text.index("\x00")].count("\n") + 1
        raise ConfigError(f"{path}: not UTF-8 text (line {line} holds NUL bytes: UTF-16?); save the file as UTF-8")
    try:
        data = yaml.load(text, Loader=UniqueKeyLoader) or {}  # noqa: S506  # a SafeLoader subclass
    except DuplicateKeyError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Declarations.model_validate(data, context={"root": path.resolve().parent})
    except ValidationError as exc:
        raise ConfigError(f"{path}: {describe_validation_error(exc, data)}") from None
