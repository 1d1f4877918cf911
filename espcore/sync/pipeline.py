"""The machinery that lets apply run at wire speed (``docs/sync-semantics.md`` §5.2).

* :class:`Bookkeeper`: one background thread, with a warehouse connection of its own, that runs the apply's
  warehouse work in the order it is submitted (read and write ahead the next page of the plan, append a group
  of acknowledgements to the journal, fold a page into ``sync_state``) while the run's thread makes the
  provider calls. Its backlog is bounded, so the calls never run more than a few journal groups ahead of their
  acknowledgement.
* :func:`quick_checks`: the pre-send row checks of a whole page at once (Arrow compute), for the common shape of
  address and value; only what they cannot decide goes through :mod:`espcore.sync.validate` row by row.
* :func:`ack_tables`: the journal rows of a group of calls, as one Arrow table.
* :func:`apply_settings`: DuckDB settings for the time a run applies (one thread, fewer checkpoints).
"""

import json
import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import pyarrow as pa
import pyarrow.compute as _compute
from email_validator import SPECIAL_USE_DOMAIN_NAMES

from espcore.providers.base import (
    Accepted,
    AddressRules,
    MemberBatch,
    MemberInput,
    PreparedUpsert,
    PreparedWriter,
    RowResult,
)
from espcore.sync.validate import email_problem, value_problem
from espcore.warehouse import BaseWarehouse, Warehouse, WarehouseConnection

__all__ = [
    "FOLDED",
    "INTENT",
    "PAGE",
    "REFUSED",
    "Bookkeeper",
    "Call",
    "ack_tables",
    "apply_settings",
    "checkpoint",
    "forget_page_bound",
    "from_micros",
    "members_of",
    "micros",
    "outcome",
    "parse_payloads",
    "prepared_calls",
    "quick_checks",
    "row_problems",
]

log = logging.getLogger("espcore.sync")

T = TypeVar("T")
#: Arrow's compute functions are generated at import time: the type checker does not know their names
pc: Any = _compute


class Bookkeeper:
    """Runs submitted functions one at a time, in submission order, on a thread of its own that holds a
    warehouse session (``wh.session()``) for its whole life.

    :meth:`submit` returns a :class:`Future`; at most ``backlog`` functions wait or run at once (a further
    :meth:`submit` blocks until one is done). Once a function raises, the ones after it are not run (their
    futures get the same error) and :meth:`raise_if_failed` raises it in the caller's thread. :meth:`close`
    waits for everything submitted; use the object as a context manager."""

    def __init__(self, wh: BaseWarehouse, *, name: str = "sync-bookkeeper", backlog: int = 4) -> None:
        self._wh = wh
        self._queue: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._slots = threading.BoundedSemaphore(max(1, backlog))
        self._error: BaseException | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def error(self) -> BaseException | None:
        """The first error a submitted function raised, or None."""
        return self._error

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, fn: Callable[[], T]) -> "Future[T]":
        if self._closed:
            raise RuntimeError("the bookkeeper is closed")
        self.raise_if_failed()
        self._slots.acquire()
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future

    def _loop(self) -> None:
        try:
            with self._wh.session():
                while True:
                    item = self._queue.get()
                    if item is None:
                        return
                    fn, future = item
                    try:
                        if not future.set_running_or_notify_cancel():
                            continue  # cancelled while it waited
                        if self._error is not None:
                            future.set_exception(self._error)
                            continue
                        try:
                            future.set_result(fn())
                        except BaseException as exc:
                            self._error = exc
                            future.set_exception(exc)
                    finally:
                        self._slots.release()
        except BaseException as exc:  # the session itself failed: fail whatever is waiting
            if self._error is None:
                self._error = exc
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    return
                if item is None:
                    return
                if item[1].set_running_or_notify_cancel():
                    item[1].set_exception(exc)
                self._slots.release()

    def close(self) -> None:
        """Wait until everything submitted has run (or been skipped after an error), then end the thread."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(None)
        self._thread.join()

    def __enter__(self) -> "Bookkeeper":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# -- pre-send checks of a page ----------------------------------------------------------------------------------

# The pattern of espcore.sync.validate.plainly_valid, for Arrow's (RE2) full-string match: a lower-case dot-atom
# of ordinary characters and a domain of LDH labels under an alphabetic top-level domain.
_PLAIN_RE2 = r"^[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
#: special-use names a top-level label can equal (validate compares the last label with the whole list)
_SPECIAL_TLDS = tuple(sorted(n for n in SPECIAL_USE_DOMAIN_NAMES if "." not in n))
#: what betrays a control character (or a possible one) in JSON text: its escapes and the raw DEL; and a number
#: that is not finite (DuckDB writes NaN and infinities as bare ``NaN``/``Infinity``)
_FULL_CHECK_HINTS = ("\\u00", "\\b", "\\f", "\x7f", "NaN", "Infinity")


def quick_checks(
    pks: pa.Array | pa.ChunkedArray,
    payloads: pa.Array | pa.ChunkedArray,
    rules: AddressRules,
    *,
    max_length: int,
) -> pa.Array:
    """A boolean per row: True where the row certainly passes the pre-send checks (its address has the common
    shape :func:`espcore.sync.validate.plainly_valid` accepts and fits the provider's length; its payload text
    has no control character and is not longer than ``max_length``, so none of its values is); False where
    :func:`row_problems` must decide. Never True for a row the full checks refuse."""
    length = pc.utf8_length(pks)
    ok = pc.and_kleene(pc.match_substring_regex(pks, _PLAIN_RE2), pc.less_equal(length, 254))
    ok = pc.and_kleene(ok, pc.less_equal(pc.find_substring(pks, "@"), 64))
    if rules.max_length is not None:
        ok = pc.and_kleene(ok, pc.less_equal(length, rules.max_length))
    for tld in _SPECIAL_TLDS:
        ok = pc.and_kleene(ok, pc.invert(pc.ends_with(pks, "." + tld)))
    text = pc.fill_null(payloads, "{}")
    ok = pc.and_kleene(ok, pc.less_equal(pc.utf8_length(text), max_length))
    for hint in _FULL_CHECK_HINTS:
        ok = pc.and_kleene(ok, pc.invert(pc.match_substring(text, hint)))
    return pc.fill_null(ok, False).combine_chunks() if isinstance(ok, pa.ChunkedArray) else pc.fill_null(ok, False)


def parse_payloads(texts: Sequence[str | None]) -> list[dict[str, Any]]:
    """The mapped values of a page's rows from their JSON text, in one parse."""
    return json.loads("[" + ",".join(t or "{}" for t in texts) + "]")


#: rows turned into Python objects between two chances for the run's thread to take the interpreter lock
GIL_CHUNK = 1_000


def members_of(pks: Sequence[str], texts: Sequence[str | None], known: Sequence[bool | None]) -> list[MemberInput]:
    """The members of a page (key, mapped values parsed from their JSON text, whether the sync wrote the key
    before), built a chunk at a time: between chunks the bookkeeper lets the run's thread, which waits on the
    provider and then wants the interpreter back at once, take it (a long stretch of Python here would delay
    every answer by up to the interpreter's switch interval)."""
    out: list[MemberInput] = []
    for start in range(0, len(pks), GIL_CHUNK):
        end = start + GIL_CHUNK
        out += map(MemberInput, pks[start:end], parse_payloads(texts[start:end]), known[start:end])
        time.sleep(0)
    return out


def prepared_calls(
    writer: PreparedWriter,
    book_id: str,
    pks: Sequence[str],
    texts: Sequence[str | None],
    known: Sequence[bool | None],
    batch: int,
) -> list[PreparedUpsert]:
    """The upsert calls of a page, ``batch`` rows each, built ahead by the provider
    (:class:`~espcore.providers.base.PreparedWriter`) from the keys, the mapped values parsed from their JSON
    text, and what the sync knows of each key; a chunk at a time, as :func:`members_of`."""
    out: list[PreparedUpsert] = []
    step = batch * max(1, GIL_CHUNK // batch)
    for start in range(0, len(pks), step):
        end = start + step
        fields = parse_payloads(texts[start:end])
        for i in range(0, len(fields), batch):
            j = start + i
            rows = MemberBatch(pks[j : j + batch], fields[i : i + batch], known[j : j + batch])
            out.append(writer.prepare_upsert(book_id, rows))
        time.sleep(0)
    return out


def row_problems(
    pk: str,
    values: dict[str, Any],
    rules: AddressRules,
    *,
    required: tuple[str, ...],
    max_length: int,
) -> str | None:
    """The full pre-send check of one row (what :func:`quick_checks` could not vouch for)."""
    return email_problem(pk, rules) or value_problem(values, required=required, max_length=max_length)


# -- intents and acknowledgements ------------------------------------------------------------------------------

#: ``op`` of the rows a run appends to its own plan in ``sync_plan`` as it applies:
#:
#: * :data:`PAGE`: a page written ahead of its calls, one row per page: the operation in ``action``, the last key
#:   the page read in ``pk``, the key it read after in ``page_after`` (empty for an operation's first page), the
#:   page's id in ``n``. The page's keys are the run's planned rows of that operation in that key range (the
#:   plan rows of a run do not change while it applies), but for its :data:`REFUSED` ones;
#: * :data:`REFUSED`: a key of a page that the pre-send checks refused (never sent), under the page's id;
#: * :data:`FOLDED`: the mark of a page folded into ``sync_state`` (``pk`` empty, the page's id in ``n``);
#: * :data:`INTENT`: an earlier release's write-ahead, one row per key of a page (the operation in ``action``,
#:   the fingerprint in ``fp``, the page's id in ``n``); a run of that release killed before its fold is still
#:   recovered from them.
PAGE = "page"
REFUSED = "refused"
INTENT = "sending"
FOLDED = "folded"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def forget_page_bound(con: WarehouseConnection, provider: str, key: str) -> None:
    """Make the pages of ``provider``'s plans that name ``key`` as a bound of their key range (:data:`PAGE`) name
    the key before it instead, among the same run's planned rows of the page's operation (empty when there is
    none): each range then holds the same rows but ``key``. For an erasure, before it deletes the key's rows
    from the plans, so that no page keeps the address and a killed run's pages are still recovered whole."""
    plan = con.own("sync_plan")
    for column in ("pk", "page_after"):
        con.execute(
            f"""UPDATE {plan} SET {column} = coalesce((
                   SELECT max(r.pk) FROM {plan} AS r
                   WHERE r.run_id = sync_plan.run_id AND r.sync_name = sync_plan.sync_name
                     AND r.op = sync_plan.action AND r.pk < ?), '')
               WHERE provider = ? AND op = '{PAGE}' AND {column} = ?""",
            [key, provider, key],
        )


def micros(at: datetime) -> int:
    """A time as microseconds since the epoch (a time without a time zone is taken to be UTC)."""
    return ((at if at.tzinfo is not None else at.replace(tzinfo=UTC)) - _EPOCH) // timedelta(microseconds=1)


def from_micros(value: int) -> datetime:
    """The time ``value`` microseconds after the epoch, as an aware UTC datetime (as the tables are written)."""
    return _EPOCH + timedelta(microseconds=value)


def outcome(r: RowResult) -> str:
    """How the journal records one row's answer: ``ok``, ``rejected``, ``suppressed`` or ``transient``."""
    if r.transient:
        return "transient"
    if r.ok:
        return "ok"
    if r.suppressed:
        return "suppressed"
    return "rejected"


ACK_SCHEMA = pa.schema(
    [
        ("pk", pa.string()),
        ("op", pa.string()),
        ("result", pa.string()),
        ("error", pa.string()),
        ("provider_id", pa.string()),
        ("logged_at", pa.timestamp("us", tz="UTC")),
    ]
)


#: one provider call as the journal takes it: its operation, the keys sent (in order), the provider's per-row
#: results, and whether every one of them is a plain success
Call = tuple[str, Sequence[str], Sequence[RowResult], bool]


def ack_tables(calls: Sequence[Call], logged_at: datetime) -> tuple[pa.Table, pa.Table]:
    """The journal rows of a group of calls, and the rows to fold into ``sync_state``.

    The journal keeps every result, keyed by the key sent when the results name the keys sent, in order (the
    usual answer), else by the address the result names, normalised. The fold rows are the same table when
    every call answered so; else they keep, for such a call, one row per key it sent (the last result naming
    it): the fold finds each row written ahead by its key and must not meet a key twice."""
    journal: list[list[Any]] = [[], [], [], [], []]
    fold: list[list[Any]] = [[], [], [], [], []]
    inexact = False
    since_yield = 0
    for op, sent, rows, all_ok in calls:
        n = len(rows)
        since_yield += n
        if since_yield >= GIL_CHUNK:  # see members_of
            time.sleep(0)
            since_yield = 0
        accepted = isinstance(rows, Accepted)
        emails = list(rows.emails) if isinstance(rows, Accepted) else [r.email for r in rows]
        exact = emails == list(sent)
        columns = [
            list(sent) if exact else [e.strip().lower() for e in emails],
            [op] * n,
            ["ok"] * n if all_ok else [outcome(r) for r in rows],
            [None] * n if all_ok else [r.error for r in rows],
            [None] * n if accepted else [r.provider_id for r in rows],
        ]
        picked = columns
        if not exact:
            inexact = True
            keys = set(sent)
            last = {pk: i for i, pk in enumerate(columns[0]) if pk in keys}
            picked = [[c[i] for i in last.values()] for c in columns]
        for whole, part in zip(journal, columns, strict=True):
            whole += part
        for whole, part in zip(fold, picked, strict=True):
            whole += part
    table = _ack_table(journal, logged_at)
    return table, _ack_table(fold, logged_at) if inexact else table


def _ack_table(columns: list[list[Any]], logged_at: datetime) -> pa.Table:
    pks, ops, results, errors, ids = columns
    return pa.table(
        [
            pa.array(pks, pa.string()),
            pa.array(ops, pa.string()),
            pa.array(results, pa.string()),
            pa.array(errors, pa.string()),
            pa.array(ids, pa.string()),
            # one value repeated: converting a list of aware datetimes costs about 0.5 µs per row
            pa.repeat(pa.scalar(logged_at, ACK_SCHEMA.field("logged_at").type), len(pks)),
        ],
        schema=ACK_SCHEMA,
    )


# -- DuckDB while a run applies -----------------------------------------------------------------------------------

#: What a DuckDB database is set to while a run applies, then set back (each a DuckDB setting and its value):
#:
#: * ``threads``: one. The apply's statements (a page of the plan, a journal group, a fold: at most tens of
#:   thousands of rows) run on the bookkeeper thread, off the calls' path; DuckDB's worker threads make them no
#:   faster where it matters, cost CPU to hand work around, and take the cores the calls (and a local provider)
#:   need. Measured on 100,000 adds: their worker threads took 0.7 s of CPU, single-threaded the same statements
#:   took 0.25 s more on the bookkeeper thread.
#: * ``checkpoint_threshold``: 64 MB instead of the 8 MB a :class:`Warehouse` opens with. Every page of a big
#:   apply writes to the log; at 8 MB a checkpoint follows every few pages and rewrites what changed (the state
#:   table and its key index) each time; at 64 MB a run of 100,000 rows takes none, and the first commit after
#:   the threshold is set back (the run's own record) checkpoints once. The cost: a process killed in the middle
#:   of an apply leaves up to 64 MB of log for the next opening to replay (a second or so) instead of 8.
#:
#: Both are settings of the database instance, not of a connection; one process holds a DuckDB file at a time,
#: so they reach only this process's work on the file, and only while a run applies.
APPLY_DUCKDB_SETTINGS = {"threads": "1", "checkpoint_threshold": "64MB"}

_APPLYING: dict[str, tuple[int, list[tuple[str, str]]]] = {}  # per database file: runs applying, settings before
_APPLYING_GUARD = threading.Lock()


def _as_shown(value: str) -> str:
    """A setting's value to set so that DuckDB shows it as ``value`` again. DuckDB shows a size cut to a tenth of
    its unit (8 MB, as ``Warehouse`` opens with, is "7.6 MiB": 7.63), and that text set back would be 7.60 and
    show as "7.5 MiB"; the middle of the tenth it shows (7.65) shows as it was, run after run."""
    m = re.fullmatch(r"(\d+\.\d) ?([KMGT]iB)", value.strip())
    return f"{m.group(1)}5{m.group(2)}" if m else value


@contextmanager
def apply_settings(wh: BaseWarehouse) -> Iterator[None]:
    """:data:`APPLY_DUCKDB_SETTINGS` while the block runs, on a DuckDB warehouse (nothing on PostgreSQL). Runs
    of one process applying on the same file at once share them: the first sets them, the last sets back what
    it found (as DuckDB shows it: :func:`_as_shown`)."""
    if not isinstance(wh, Warehouse):
        yield
        return
    key = str(Path(wh.path).resolve())
    with _APPLYING_GUARD:
        count, saved = _APPLYING.get(key, (0, []))
        if count == 0:
            saved = []
            with wh.connect() as con:
                for name in APPLY_DUCKDB_SETTINGS:
                    row = con.fetchone("SELECT current_setting(?)", [name])
                    if row is not None:
                        saved.append((name, str(row[0])))
                for name, value in APPLY_DUCKDB_SETTINGS.items():
                    con.execute(f"SET {name} = '{value}'")
        _APPLYING[key] = (count + 1, saved)
    try:
        yield
    finally:
        with _APPLYING_GUARD:
            count, saved = _APPLYING.pop(key)
            if count > 1:
                _APPLYING[key] = (count - 1, saved)
            else:
                try:
                    with wh.connect() as con:
                        for name, value in saved:
                            con.execute(f"SET {name} = '{_as_shown(value)}'")
                except Exception as exc:  # the warehouse may be what failed; a fresh instance starts with defaults
                    log.warning("setting DuckDB's %s back after an apply: %s", ", ".join(n for n, _ in saved), exc)


def checkpoint(wh: BaseWarehouse) -> None:
    """Checkpoint a DuckDB warehouse now (nothing on PostgreSQL): the bookkeeper does it when an operation's last
    page is written ahead, while that page's calls go out, so that the log an apply leaves (under the higher
    threshold of :data:`APPLY_DUCKDB_SETTINGS`) is not checkpointed after the calls, on the run's path. Best
    effort: a checkpoint DuckDB refuses is left to the threshold."""
    if not isinstance(wh, Warehouse):
        return
    try:
        with wh.connect() as con:
            con.execute("CHECKPOINT")
    except Exception as exc:
        log.debug("checkpoint during the apply: %s", exc)
