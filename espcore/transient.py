"""Which failures are worth retrying: one rule for every layer that retries whole steps (Dagster's step retries).

Transient: the provider's transient errors (timeouts, connection errors, 5xx, 429 — ``EspError.retryable``),
a lost or refused warehouse connection, and a DuckDB file held by another process. Everything else — a missing
view or column, SQL the warehouse rejects, bad credentials, a configuration mistake, a validation refusal —
fails at once: running it again gives the same answer, only later.
"""

from collections.abc import Iterator

import duckdb
import psycopg

from espcore.errors import EspError
from espcore.sync.source import SegmentSourceError

#: PostgreSQL SQLSTATE classes that say "try again": connection exception, insufficient resources, operator
#: intervention (e.g. the server is shutting down), serialization failure / deadlock
_PG_TRANSIENT_CLASSES = ("08", "53", "57", "40")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        # an explicit cause, else the error being handled when this one was raised, unless ``from None`` hid it
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or the error it was raised from) is a transient fault; the first typed error found
    along the chain decides."""
    for e in _chain(exc):
        if isinstance(e, SegmentSourceError):
            return False  # the segment is refused: the same answer every time (a ConfigurationError is an EspError)
        if isinstance(e, EspError):
            return bool(e.retryable)
        if isinstance(e, psycopg.Error):
            state = e.sqlstate or ""
            if isinstance(e, psycopg.OperationalError) and not state:
                return True  # the connection could not be made or was lost
            return state[:2] in _PG_TRANSIENT_CLASSES
        if isinstance(e, duckdb.IOException):
            return "lock" in str(e).lower()  # another process holds the file
        if isinstance(e, duckdb.Error):
            return False
        if isinstance(e, TimeoutError | ConnectionError):
            return True
    return False
