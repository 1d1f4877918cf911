"""The YAML declarations (syncs, campaigns) parsed into validated specs, with errors that name the file, the
entry and the field instead of a stack trace."""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

PIPELINES_DIR = Path(__file__).resolve().parent
PROVIDERS = ("sendpulse", "pakat", "litestartup")


class ConfigError(ValueError):
    """A declaration file is wrong; the message says where and what."""


class SourceDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    table: str | None = None
    view: str | None = None
    sql: str | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "SourceDecl":
        if sum(x is not None for x in (self.table, self.view, self.sql)) != 1:
            raise ValueError("give exactly one of table, view or sql")
        return self

    @property
    def relation(self) -> str | None:
        return self.table or self.view

    def as_sql(self) -> str:
        return self.sql if self.sql is not None else f"SELECT * FROM {self.relation}"


class SyncDecl(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    provider: Literal["sendpulse", "pakat", "litestartup"]
    book: str = Field(min_length=1, max_length=100)
    source: SourceDecl
    primary_key: str = "email"
    fields: dict[str, str] = Field(default_factory=dict)
    mode: Literal["insert", "update", "upsert", "mirror"] = "upsert"
    delete_behavior: Literal["none", "remove", "unsubscribe"] | None = None
    max_remove_pct: float = Field(default=10.0, ge=0, le=100)
    max_invalid_pct: float = Field(default=5.0, ge=0, le=100)
    max_duplicate_pct: float = Field(default=5.0, ge=0, le=100)
    warn_rejected_pct: float = Field(default=2.0, ge=0, le=100)
    error_rejected_pct: float = Field(default=10.0, ge=0, le=100)
    description: str | None = None


class Declarations(BaseModel):
    model_config = ConfigDict(extra="forbid")
    syncs: list[SyncDecl] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> "Declarations":
        seen: set[str] = set()
        books: set[tuple[str, str]] = set()
        for s in self.syncs:
            if s.name in seen:
                raise ValueError(f"sync name {s.name!r} is declared twice")
            if (s.provider, s.book) in books:
                raise ValueError(f"book {s.book!r} of {s.provider} is fed by two syncs; one segment per book")
            seen.add(s.name)
            books.add((s.provider, s.book))
        return self


def _describe(err: ValidationError, data: Any) -> str:
    lines = []
    for e in err.errors():
        loc = list(e["loc"])
        where = ""
        if len(loc) >= 2 and loc[0] == "syncs" and isinstance(loc[1], int):
            entry = data.get("syncs", [])[loc[1]] if isinstance(data, dict) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            where = f"syncs[{loc[1]}]" + (f" ({name})" if name else "")
            loc = loc[2:]
        field = ".".join(str(x) for x in loc) or "(entry)"
        lines.append(f"{where} field {field}: {e['msg']}".strip())
    return "; ".join(lines)


def load_declarations(path: str | Path | None = None) -> Declarations:
    """Parse and validate a declarations file (default ``pipelines/syncs.yaml``)."""
    path = Path(path) if path else PIPELINES_DIR / "syncs.yaml"
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return Declarations.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, data)}") from None
