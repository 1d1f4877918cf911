"""What a sync is: a segment of the warehouse kept in step with one provider book."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from espcore.sync.source import SourceKind, segment_sql

Mode = Literal["insert", "update", "upsert", "mirror"]
DeleteBehavior = Literal["none", "remove", "unsubscribe"]


@dataclass(frozen=True)
class SyncSpec:
    """One sync. ``fields`` maps provider field/variable -> segment column; only mapped columns are sent.

    ``source_sql`` is the segment: one read-only query over tables and views. It is checked (and normalised:
    trimmed, no trailing ``;``) when the spec is made, so every path that embeds it (plan, health check, change
    sensor) gets a checked query; :func:`espcore.sync.source.check_segment_sql` checks it again, in the warehouse's
    own dialect, when it runs. Build one from a table or view name with :meth:`from_source`."""

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

    def __post_init__(self) -> None:
        # raises SegmentSourceError (a ValueError) naming the problem
        object.__setattr__(self, "source_sql", segment_sql("sql", self.source_sql))

    @classmethod
    def from_source(cls, kind: SourceKind, text: str, **kwargs: Any) -> "SyncSpec":
        """A spec whose segment is a ``table``, a ``view`` (a name, quoted as needed) or ``sql``."""
        return cls(source_sql=segment_sql(kind, text), **kwargs)

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
    #: read every suppression the provider lists even when its suppression signature says nothing changed
    full_suppression_read: bool = False
