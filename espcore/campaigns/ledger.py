"""The campaign ledger: one row per launch intent (``campaign_key``), kept in the warehouse next to the sync
tables, so a lost Dagster run, a retried step or a second scheduler never posts the same campaign twice.

Statuses (``docs/sync-semantics.md`` §8):

* ``planned``: the intent exists; nothing has been posted (or a quota refusal sent it back here).
* ``posting``: committed *before* the one POST; if a run dies here the outcome is unknown.
* ``sent``: the provider has the campaign (``provider_campaign_id``); a re-launch returns it.
* ``unknown``: the POST may or may not have taken effect; resolved only by looking the key up.
* ``failed``: a definite 4xx: nothing went out; an operator decides.
"""

import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from espcore.sync.tables import as_utc
from espcore.warehouse import WarehouseConnection


class WarehouseLike(Protocol):
    """Any warehouse engine (DuckDB file or PostgreSQL): short-lived connections with ``?`` parameters."""

    def connect(self) -> AbstractContextManager[WarehouseConnection]: ...


#: the ledger table, in the product's own schema (``con.own(TABLE)``)
TABLE = "campaign_ledger"

STATUSES = ("planned", "posting", "sent", "unknown", "failed")

DDL = [
    """CREATE TABLE IF NOT EXISTS {ledger} (
        campaign_key VARCHAR NOT NULL PRIMARY KEY, provider VARCHAR NOT NULL, book_id VARCHAR,
        campaign_name VARCHAR NOT NULL, occurrence VARCHAR NOT NULL, provider_name VARCHAR NOT NULL,
        status VARCHAR NOT NULL, provider_campaign_id VARCHAR, provider_status VARCHAR, recipients INTEGER,
        error_kind VARCHAR, last_error VARCHAR, attempts INTEGER NOT NULL DEFAULT 0, run_id VARCHAR,
        planned_at TIMESTAMPTZ NOT NULL, posting_at TIMESTAMPTZ, sent_at TIMESTAMPTZ, test_sent_at TIMESTAMPTZ,
        test_recipients VARCHAR, updated_at TIMESTAMPTZ NOT NULL, claim VARCHAR)""",
]

_COLUMNS = (
    "campaign_key",
    "provider",
    "book_id",
    "campaign_name",
    "occurrence",
    "provider_name",
    "status",
    "provider_campaign_id",
    "provider_status",
    "recipients",
    "error_kind",
    "last_error",
    "attempts",
    "run_id",
    "planned_at",
    "posting_at",
    "sent_at",
    "test_sent_at",
    "test_recipients",
    "updated_at",
    "claim",
)


#: the ledger's columns in the release that kept it outside the own schema
LEGACY_COLUMNS = _COLUMNS


def ensure_ledger(con: WarehouseConnection) -> None:
    """Create the ledger in the product's own schema when it is missing (idempotent)."""
    con.ensure_own_schema()
    with con.transaction(lock="espcore.ledger.ddl"):
        fresh = not con.own_table_exists(TABLE)
        for ddl in DDL:
            con.execute(ddl.format(ledger=con.own(TABLE)))
        # an earlier release's naive UTC columns, converted once
        converted = not fresh and con.convert_naive_timestamps([TABLE])
        if fresh:  # an earlier release kept the ledger unqualified: its launches still count, never sent twice
            con.adopt_legacy_table(TABLE, LEGACY_COLUMNS)
    if converted:
        con.checkpoint()


@dataclass(frozen=True)
class LedgerRow:
    campaign_key: str
    provider: str
    book_id: str | None
    campaign_name: str
    occurrence: str
    provider_name: str
    status: str
    provider_campaign_id: str | None
    provider_status: str | None
    recipients: int | None
    error_kind: str | None
    last_error: str | None
    attempts: int
    run_id: str | None
    planned_at: datetime
    posting_at: datetime | None
    sent_at: datetime | None
    test_sent_at: datetime | None
    test_recipients: str | None
    updated_at: datetime
    claim: str | None  # token of the writer that made the last guarded transition


class Ledger:
    """Reads and writes ``campaign_ledger``; every write is its own committed transaction."""

    def __init__(self, warehouse: WarehouseLike, *, now: Callable[[], datetime] | None = None) -> None:
        self.wh = warehouse
        self._now = now or (lambda: datetime.now(UTC))
        with self.wh.connect() as con:
            ensure_ledger(con)

    def now(self) -> datetime:
        """The ledger's clock, as an aware UTC datetime."""
        return as_utc(self._now())

    def get(self, key: str) -> LedgerRow | None:
        with self.wh.connect() as con:
            row = con.fetchone(f"SELECT {', '.join(_COLUMNS)} FROM {con.own(TABLE)} WHERE campaign_key = ?", [key])
        return _ledger_row(row) if row else None

    def plan(
        self,
        key: str,
        *,
        provider: str,
        book_id: str | None,
        campaign_name: str,
        occurrence: str,
        provider_name: str,
        run_id: str | None = None,
    ) -> LedgerRow:
        """Insert the ``planned`` row unless the key is already known; return the row as it stands."""
        now = self.now()
        with self.wh.connect() as con, con.transaction():
            con.execute(
                f"""INSERT INTO {con.own(TABLE)} (campaign_key, provider, book_id, campaign_name, occurrence,
                       provider_name, status, attempts, run_id, planned_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, 'planned', 0, ?, ?, ?)
                   ON CONFLICT (campaign_key) DO NOTHING""",
                [key, provider, book_id, campaign_name, occurrence, provider_name, run_id, now, now],
            )
        row = self.get(key)
        assert row is not None
        return row

    def transition(
        self,
        key: str,
        status: str,
        *,
        expect: tuple[str, ...] | None = None,
        provider_campaign_id: str | None = None,
        provider_status: str | None = None,
        recipients: int | None = None,
        error_kind: str | None = None,
        last_error: str | None = None,
        run_id: str | None = None,
        book_id: str | None = None,
    ) -> LedgerRow:
        """Move ``key`` to ``status`` in one transaction; with ``expect``, only from one of those statuses
        (another writer that moved it first wins, and :class:`LedgerConflict` is raised)."""
        if status not in STATUSES:
            raise ValueError(f"unknown ledger status {status!r}")
        now = self.now()
        token = uuid.uuid4().hex
        allowed = list(expect) if expect is not None else list(STATUSES)
        with self.wh.connect() as con, con.transaction():
            row = con.fetchone(f"SELECT status FROM {con.own(TABLE)} WHERE campaign_key = ?", [key])
            if row is None:
                raise KeyError(f"campaign key {key} is not in the ledger")
            if row[0] not in allowed:
                raise LedgerConflict(f"campaign {key} is {row[0]!r}, expected one of {', '.join(allowed)}")
            # compare-and-set: the status condition is re-checked by the UPDATE itself, so of two writers racing
            # from the same status (PostgreSQL, READ COMMITTED) only one matches; the claim says which.
            con.execute(
                f"""UPDATE {con.own(TABLE)} SET status = ?, claim = ?,
                     provider_campaign_id = coalesce(?, provider_campaign_id),
                     provider_status = coalesce(?, provider_status),
                     recipients = coalesce(?, recipients),
                     book_id = coalesce(?, book_id),
                     error_kind = ?, last_error = ?,
                     attempts = attempts + CASE WHEN ? = 'posting' THEN 1 ELSE 0 END,
                     posting_at = CASE WHEN ? = 'posting' THEN ? ELSE posting_at END,
                     sent_at = CASE WHEN ? = 'sent' AND sent_at IS NULL THEN ? ELSE sent_at END,
                     run_id = coalesce(?, run_id), updated_at = ?
                   WHERE campaign_key = ? AND status IN ({", ".join("?" for _ in allowed)})""",
                [
                    status,
                    token,
                    provider_campaign_id,
                    provider_status,
                    recipients,
                    book_id,
                    error_kind,
                    last_error,
                    status,
                    status,
                    now,
                    status,
                    now,
                    run_id,
                    now,
                    key,
                    *allowed,
                ],
            )
            won = con.fetchone(f"SELECT claim FROM {con.own(TABLE)} WHERE campaign_key = ?", [key])
            if won is None or won[0] != token:
                raise LedgerConflict(f"campaign {key} was moved by another writer first")
        out = self.get(key)
        assert out is not None
        return out

    def resolve(self, key: str, status: str, *, note: str) -> LedgerRow:
        """Operator decision on an ``unknown`` or ``failed`` launch: ``planned`` (post again) or ``failed``
        (give up). Refuses to touch a ``sent`` row."""
        if status not in ("planned", "failed"):
            raise ValueError("an operator resolves a launch to 'planned' or 'failed'")
        return self.transition(
            key, status, expect=("unknown", "failed", "posting"), error_kind="operator", last_error=note
        )

    def record_test_send(self, key: str, recipients: list[str]) -> None:
        now = self.now()
        with self.wh.connect() as con, con.transaction():
            con.execute(
                f"UPDATE {con.own(TABLE)} SET test_sent_at = ?, test_recipients = ?, updated_at = ? "
                "WHERE campaign_key = ?",
                [now, ", ".join(recipients), now, key],
            )

    def posts_since(self, provider: str, since: datetime) -> tuple[int, datetime | None]:
        """Campaign POSTs this project made to ``provider`` after ``since`` (rows now posting, sent or unknown),
        and the oldest of them (when the rolling window frees a slot)."""
        with self.wh.connect() as con:
            row = con.fetchone(
                f"SELECT count(*), min(posting_at) FROM {con.own(TABLE)} WHERE provider = ? AND posting_at > ? "
                "AND status IN ('posting', 'sent', 'unknown')",
                [provider, as_utc(since)],
            )
        return (int(row[0]), as_utc(row[1])) if row else (0, None)

    def rows(self, provider: str | None = None) -> list[LedgerRow]:
        params: list[str] = []
        with self.wh.connect() as con:
            sql = f"SELECT {', '.join(_COLUMNS)} FROM {con.own(TABLE)}"
            if provider:
                sql += " WHERE provider = ?"
                params.append(provider)
            return [_ledger_row(r) for r in con.fetchall(sql + " ORDER BY planned_at", params)]


class LedgerConflict(RuntimeError):
    """Another writer moved the ledger row first."""


HOUR = timedelta(hours=1)


def _ledger_row(values: tuple[object, ...]) -> LedgerRow:
    """A ledger row as read, its timestamps in UTC (the warehouse returns them in its session's time zone)."""
    return LedgerRow(*(as_utc(v) if isinstance(v, datetime) else v for v in values))  # type: ignore[arg-type]
