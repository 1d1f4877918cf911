"""The errors a sync raises (all :class:`~espcore.errors.EspError`)."""

from typing import Any

from espcore.errors import EspError

__all__ = ["MassRemoveError", "SyncError", "SyncLockedError"]


class SyncError(EspError):
    """The sync stopped; committed work stays, ``counts`` says how far it got."""

    def __init__(self, message: str, *, counts: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.counts = dict(counts or {})
        super().__init__(message, **kwargs)


class SyncLockedError(SyncError):
    """Another live run holds this book."""


class MassRemoveError(SyncError):
    """The plan removes more than ``max_remove_pct`` of the synced rows and the run did not allow it."""
