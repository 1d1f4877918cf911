"""Right to erasure (GDPR art. 17, CCPA): a person's address deleted from every book of a provider account.

Requests come from the user's warehouse: a table, view or read-only query with one row per request (an id, the
address, when it was asked). For one account, :func:`run_erasure`:

1. reads the requests and keeps those this account has not completed (``erasure_state``, one row per account,
   request and address hash);
2. **suppresses first**: the address goes into the product's ``suppression`` table for every account (reason
   ``erased``), so from this moment no sync adds it back, whatever happens next;
3. forgets it in the product's own sync state (``sync_state``, ``sync_plan``, ``sync_changelog`` rows of the
   account keyed by the address);
4. asks the provider to delete it from every book and, where the provider has an account blacklist, to add it
   there (the adapter's :class:`~espcore.providers.base.Eraser`; a provider without one is erased book by book);
5. marks each request done, or keeps it pending with the provider's answer when the provider failed for it.

Each step is idempotent and the state is written after each batch, so a run killed at any point is finished by
the next one, and a run with nothing left to do makes no provider call at all. What was done is returned as
:class:`ErasureRow` records (the address only as its SHA-256 hash) for the ``erasures`` dataset of the lake.

The suppression row keeps the address itself (lower-cased): it is what stops the address coming back, the
processing an erasure request allows. Everything else the product keeps about the request holds the hash only.
"""

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from espcore.providers.base import Eraser, ErasureStep, EspProvider
from espcore.sync.pipeline import forget_page_bound
from espcore.sync.source import check_segment_sql, wrap_segment
from espcore.sync.tables import as_utc, ensure_tables, now_utc
from espcore.warehouse import BaseWarehouse, WarehouseConnection, quote_ident

STATE_TABLE = "erasure_state"
STATE_DDL = """CREATE TABLE IF NOT EXISTS {t} (
    account VARCHAR NOT NULL, request_id VARCHAR NOT NULL, email_hash VARCHAR NOT NULL,
    requested_at TIMESTAMPTZ, status VARCHAR NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,
    last_error VARCHAR, first_seen_at TIMESTAMPTZ NOT NULL, completed_at TIMESTAMPTZ, run_id VARCHAR,
    PRIMARY KEY (account, request_id, email_hash))"""
#: how many addresses one provider batch erases before the state is written
BATCH = 100
SUPPRESSION_REASON = "erased"


def email_hash(email: str) -> str:
    """The SHA-256 of the normalised (trimmed, lower-cased) address: how the product refers to an erased person."""
    return hashlib.sha256(normalise(email).encode()).hexdigest()


def normalise(email: str) -> str:
    return email.strip().lower()


@dataclass(frozen=True)
class ErasureSource:
    """Where the requests are: ``sql`` (one read-only query; a table or view as ``SELECT * FROM …``) and its
    columns."""

    sql: str
    email_column: str = "email"
    request_id_column: str = "request_id"
    requested_at_column: str = "requested_at"


@dataclass(frozen=True)
class ErasureRequest:
    request_id: str
    email: str
    requested_at: datetime | None  # aware, UTC

    @property
    def email_hash(self) -> str:
        return email_hash(self.email)


@dataclass(frozen=True)
class ErasureRow:
    """One action of one request, as the ``erasures`` dataset lands it."""

    request_id: str
    email_hash: str
    action: str  # suppressed | forgotten | deleted | removed | blacklisted | not_present | failed | completed
    ok: bool
    book_id: str | None
    detail: str | None
    acted_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ErasureResult:
    account: str
    read: list[ErasureRequest] = field(default_factory=list)  # every request the source holds
    already_done: int = 0
    completed: int = 0  # completed by this run
    pending: int = 0  # still to do (the provider failed for them)
    rows: list[ErasureRow] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # rows without an address or an id: reported, never guessed

    @property
    def requests(self) -> int:
        return len(self.read)

    @property
    def invalid(self) -> int:
        return len(self.problems)

    def metadata(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "already_done": self.already_done,
            "completed": self.completed,
            "pending": self.pending,
            "invalid": self.invalid,
        }


def ensure_erasure_tables(con: WarehouseConnection) -> None:
    ensure_tables(con)  # the suppression and sync tables it writes to
    with con.transaction(lock="espcore.sync.ddl"):
        con.execute(STATE_DDL.format(t=con.own(STATE_TABLE)))
        converted = con.convert_naive_timestamps([STATE_TABLE])
    if converted:
        con.checkpoint()


def read_requests(wh: BaseWarehouse, source: ErasureSource) -> tuple[list[ErasureRequest], list[str]]:
    """The requests (one per id and address), and a line per row that cannot be one (no id, no address). The
    query passes the segments' run-time guard first: the product only ever reads it."""
    cols = (source.request_id_column, source.email_column, source.requested_at_column)
    with wh.connect() as con:
        check_segment_sql(con, source.sql)
        picked = ", ".join(f"seg.{quote_ident(c)}" for c in cols)
        table = con.arrow(f"SELECT {picked} FROM ({wrap_segment(source.sql)}) AS seg")
    requests: dict[tuple[str, str], ErasureRequest] = {}
    problems: list[str] = []
    for i, (rid, email, at) in enumerate(zip(*(table.column(j).to_pylist() for j in range(3)), strict=True)):
        if rid is None or str(rid).strip() == "" or email is None or "@" not in str(email):
            problems.append(f"row {i + 1}: request {rid!r} has no usable id or address; skipped")
            continue
        req_at = _request_time(at)
        req = ErasureRequest(str(rid), normalise(str(email)), req_at)
        requests.setdefault((req.request_id, req.email_hash), req)
    return list(requests.values()), problems


def _request_time(value: object) -> datetime | None:
    """A request's time as an aware UTC datetime: a time without a zone is taken as UTC, a date as its midnight
    in UTC; anything else (no time, a text) counts as undated."""
    if isinstance(value, datetime):
        return as_utc(value)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    return None


def _done(con: WarehouseConnection, account: str) -> set[tuple[str, str]]:
    rows = con.fetchall(
        f"SELECT request_id, email_hash FROM {con.own(STATE_TABLE)} WHERE account = ? AND status = 'done'", [account]
    )
    return {(str(r), str(h)) for r, h in rows}


def _record_seen(con: WarehouseConnection, account: str, todo: Sequence[ErasureRequest], run_id: str) -> None:
    known = {
        (str(r), str(h))
        for r, h in con.fetchall(
            f"SELECT request_id, email_hash FROM {con.own(STATE_TABLE)} WHERE account = ?", [account]
        )
    }
    now = now_utc()
    for req in todo:
        if (req.request_id, req.email_hash) not in known:
            con.execute(
                f"INSERT INTO {con.own(STATE_TABLE)} (account, request_id, email_hash, requested_at, status, "
                "attempts, first_seen_at, run_id) VALUES (?, ?, ?, ?, 'pending', 0, ?, ?)",
                [account, req.request_id, req.email_hash, req.requested_at, now, run_id],
            )


def _suppress_and_forget(con: WarehouseConnection, account: str, emails: Sequence[str]) -> None:
    """Write-ahead: the address is suppressed for every account before the provider is asked, and the account's
    own sync state forgets it."""
    present = {
        str(e)
        for (e,) in con.fetchall(
            f"SELECT lower(trim(email)) FROM {con.own('suppression')} WHERE provider = '*' AND reason = ?",
            [SUPPRESSION_REASON],
        )
    }
    now = now_utc()
    for email in emails:
        if email not in present:
            con.execute(
                f"INSERT INTO {con.own('suppression')} (provider, email, reason, added_at) VALUES ('*', ?, ?, ?)",
                [email, SUPPRESSION_REASON, now],
            )
        forget_page_bound(con, account, email)  # a page written ahead may name it as a bound of its range
        for table in ("sync_state", "sync_plan", "sync_changelog"):
            con.execute(f"DELETE FROM {con.own(table)} WHERE provider = ? AND pk = ?", [account, email])


def _erase_at_provider(provider: EspProvider, emails: Sequence[str]) -> list[ErasureStep]:
    if isinstance(provider, Eraser):
        return provider.erase(emails)
    steps: list[ErasureStep] = []  # book by book, with the interface every provider has
    for book in provider.list_books():
        for r in provider.remove_members(book.id, emails, unsubscribe=False):
            steps.append(ErasureStep(r.email, "removed" if r.ok else "failed", r.ok, book.id, r.error))
    touched = {normalise(s.email) for s in steps}
    return steps + [ErasureStep(e, "not_present", True) for e in emails if e not in touched]


def run_erasure(
    wh: BaseWarehouse,
    provider: EspProvider,
    source: ErasureSource,
    *,
    run_id: str,
    now: Callable[[], datetime] = lambda: datetime.now(UTC),
    log: Callable[[str], None] = lambda _msg: None,
) -> ErasureResult:
    """Erase every request the account has not completed (see the module docstring)."""
    account = provider.account
    result = ErasureResult(account)
    with wh.connect() as con:
        ensure_erasure_tables(con)
    requests, result.problems = read_requests(wh, source)
    result.read = requests
    with wh.connect() as con:
        done = _done(con, account)
    todo = [r for r in requests if (r.request_id, r.email_hash) not in done]
    result.already_done = len(requests) - len(todo)
    if not todo:
        return result  # nothing to do: no provider call at all
    with wh.connect() as con, con.transaction():
        _record_seen(con, account, todo, run_id)
    for start in range(0, len(todo), BATCH):
        batch = todo[start : start + BATCH]
        emails = sorted({r.email for r in batch})
        with wh.connect() as con, con.transaction():
            _suppress_and_forget(con, account, emails)
        at = now()
        result.rows += [ErasureRow(r.request_id, r.email_hash, "suppressed", True, None, None, at) for r in batch]
        steps = _erase_at_provider(provider, emails)
        by_email: dict[str, list[ErasureStep]] = {}
        for step in steps:
            by_email.setdefault(normalise(step.email), []).append(step)
        at = now()
        with wh.connect() as con, con.transaction():
            for req in batch:
                mine = by_email.get(req.email, [])
                failures = [s.detail or s.action for s in mine if not s.ok]
                result.rows += [
                    ErasureRow(req.request_id, req.email_hash, s.action, s.ok, s.book_id, _safe(s.detail, req), at)
                    for s in mine
                ]
                if failures or not mine:
                    error = _safe("; ".join(failures) or "the provider reported nothing for the address", req)
                    con.execute(
                        f"UPDATE {con.own(STATE_TABLE)} SET attempts = attempts + 1, last_error = ?, run_id = ? "
                        "WHERE account = ? AND request_id = ? AND email_hash = ?",
                        [error, run_id, account, req.request_id, req.email_hash],
                    )
                    result.pending += 1
                    continue
                con.execute(
                    f"UPDATE {con.own(STATE_TABLE)} SET status = 'done', attempts = attempts + 1, last_error = NULL, "
                    "completed_at = ?, run_id = ? WHERE account = ? AND request_id = ? AND email_hash = ?",
                    [now_utc(), run_id, account, req.request_id, req.email_hash],
                )
                result.rows.append(ErasureRow(req.request_id, req.email_hash, "completed", True, None, None, at))
                result.completed += 1
        log(f"{account}: erased {result.completed} of {len(todo)} open requests so far")
    return result


def _safe(detail: str | None, req: ErasureRequest) -> str | None:
    """A provider's answer without the address it may quote (the audit trail keeps the hash only)."""
    if detail is None:
        return None
    return detail.replace(req.email, f"<sha256:{req.email_hash[:12]}>")


def overdue(
    wh: BaseWarehouse, account: str, requests: Sequence[ErasureRequest], max_age: timedelta
) -> list[ErasureRequest]:
    """Those of ``requests`` (as :func:`read_requests` or a run's :attr:`ErasureResult.read` has them) older than
    ``max_age`` that this account has not completed; a request with no date counts from when the product first
    saw it."""
    with wh.connect() as con:
        ensure_erasure_tables(con)
        done = _done(con, account)
        seen = {
            (str(r), str(h)): as_utc(at)
            for r, h, at in con.fetchall(
                f"SELECT request_id, email_hash, first_seen_at FROM {con.own(STATE_TABLE)} WHERE account = ?",
                [account],
            )
        }
    limit = now_utc() - max_age
    late: list[ErasureRequest] = []
    for req in requests:
        key = (req.request_id, req.email_hash)
        if key in done:
            continue
        since = req.requested_at or seen.get(key)
        if since is not None and since < limit:
            late.append(req)
    return late
