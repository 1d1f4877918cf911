"""What a sync is: a segment of the warehouse kept in step with one provider book."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["insert", "update", "upsert", "mirror"]
DeleteBehavior = Literal["none", "remove", "unsubscribe"]


@dataclass(frozen=True)
class SyncSpec:
    """One sync. ``fields`` maps provider field/variable -> segment column; only mapped columns are sent."""

    name: str
    provider: str
    book: str
    source_sql: str
    primary_key: str = "email"
    fields: Mapping[str, str] = field(default_factory=dict)
    mode: Mode = "upsert"
    delete_behavior: DeleteBehavior | None = None  # None: "remove" under mirror, else "none"
    max_remove_pct: float = 10.0
    required_fields: tuple[str, ...] = ()
    abort_rejected_pct: float = 50.0
    max_value_length: int = 1000
    refresh_suppressions: bool = True

    @property
    def removal(self) -> DeleteBehavior:
        if self.delete_behavior is not None:
            return self.delete_behavior
        return "remove" if self.mode == "mirror" else "none"

    @property
    def removes(self) -> bool:
        return self.mode == "mirror" or (self.mode == "upsert" and self.removal != "none")


@dataclass(frozen=True)
class SyncOptions:
    """Per-run switches."""

    dry_run: bool = False
    full_resync: bool = False
    allow_mass_remove: bool = False
    sample_size: int = 20
