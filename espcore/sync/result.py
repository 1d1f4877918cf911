"""What one sync run did: :class:`SyncResult`."""

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from espcore.sync.spec import SyncSpec

__all__ = ["SyncResult"]


@dataclass
class SyncResult:
    """Counts, samples and rejects of one run (see ``docs/sync-semantics.md``).

    ``planned_*``/``successful_*``/``failed_*`` count rows per operation (add, change, remove); ``pending`` is the
    number of the book's rows left ``pending`` after the run (undecided: retried by the next run), ``transient``
    the rows of this run whose result was undecided, ``rejected_unchanged`` the rows not sent because the
    provider rejected exactly these values before. :attr:`outcome` sums it up."""

    spec: SyncSpec
    run_id: str
    book_id: str
    dry_run: bool
    full_resync: bool
    counts: Counter[str] = field(default_factory=Counter)
    samples: dict[str, list[str]] = field(default_factory=dict)
    rejects: list[dict[str, Any]] = field(default_factory=list)
    elapsed_seconds: float = 0.0
    synced_rows: int = 0
    removal_guard_tripped: bool = False
    #: how the provider's suppressions were known: ``full`` (read), ``unchanged`` (its suppression signature had
    #: not moved since the last full read: not read again), ``none`` (refresh_suppressions is off)
    suppressions_read: str = "none"
    #: why the run failed (it raised), else None
    error: str | None = None

    KEYS = (
        "planned_add",
        "planned_change",
        "planned_remove",
        "successful_add",
        "successful_change",
        "successful_remove",
        "failed_add",
        "failed_change",
        "failed_remove",
        "planned_retry",
        "suppressed",
        "invalid",
        "skipped",
        "rejected_unchanged",
        "transient",
        "pending",
        "query_size",
        "batches",
        "split_calls",
        "write_calls",
    )

    def metadata(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: int(self.counts.get(k, 0)) for k in self.KEYS}
        out.update(
            {
                "outcome": self.outcome,
                "elapsed_seconds": round(self.elapsed_seconds, 3),
                "dry_run": self.dry_run,
                "full_resync": self.full_resync,
                "mode": self.spec.mode,
                "book_id": self.book_id,
                "removal_guard_tripped": self.removal_guard_tripped,
                "suppressions_read": self.suppressions_read,
                "rejected_pct": round(self.rejected_pct, 2),
            }
        )
        return out

    @property
    def failed(self) -> int:
        """Rows the provider rejected for good in this run."""
        return sum(self.counts.get(f"failed_{op}", 0) for op in ("add", "change", "remove"))

    @property
    def outcome(self) -> str:
        """``failed`` (the run raised), ``dry_run``, ``partial`` (something planned was not done: rows rejected
        in this run, or rows of the book left pending for the next run) or ``success``."""
        if self.error is not None:
            return "failed"
        if self.dry_run:
            return "dry_run"
        if self.failed or self.counts.get("pending", 0):
            return "partial"
        return "success"

    @property
    def attempted(self) -> int:
        return sum(
            self.counts.get(f"{k}_{op}", 0) for k in ("successful", "failed") for op in ("add", "change", "remove")
        )

    @property
    def rejected_pct(self) -> float:
        """Rows the provider refused, over rows sent to it (invalid source rows are the source check's job)."""
        return 100.0 * self.failed / self.attempted if self.attempted else 0.0
