"""Plan and apply: a warehouse segment becomes a provider book, with state, crash safety and suppression.

The contract is ``design/sync-semantics.md``. In short:

* **Own schema.** The engine's tables (``sync_state``, ``sync_plan``, ``sync_changelog``, ``sync_runs``,
  ``sync_lock``, ``suppression``) live in the warehouse's own schema (``esp`` unless configured), never among
  the user's tables; every reference goes through :meth:`WarehouseConnection.own`.
* **One live run per book.** A run takes the book's lock, keyed by (provider, book *name*), before the book is
  looked up or created, so two first syncs of a new book cannot create it twice. The lock dies with its holder:
  on PostgreSQL it is a session-level advisory lock on a connection of its own (a killed process drops it at
  once); on DuckDB it is a ``sync_lock`` row naming the holder process (host, pid, process start time, boot id)
  and refreshed by a heartbeat, taken over at once when that process is gone.
* **Plan** is one set-based join, pushed down into the warehouse, of the fingerprinted segment against the
  book's ``sync_state``; it is stored in ``sync_plan`` under the run id. Rows whose key is missing, malformed or
  duplicated with conflicting values are *invalid*: rejected with a reason, never blocking the valid rows.
* **Suppression wins**: provider blacklists/unsubscribes (and the local ``suppression`` table) are merged in
  before planning; such rows are never sent, only counted.
* **Apply** goes removes → changes → adds in provider-sized batches. Each batch is written ahead (``pending``),
  sent once (the HTTP layer retries transient faults only) and acknowledged per row in one transaction. A row
  leaves the plan only once acknowledged, so a crash or kill at any point is resumed by the next run with
  nothing lost, and acknowledged rows are never resent.
* **Rejects and pending rows.** A row the provider rejects for good keeps the fingerprint it was rejected with
  and is not sent again until its mapped values change (or a ``full_resync``); it is counted as
  ``rejected_unchanged``. A row left undecided (a transient per-row result, a failed batch) stays ``pending``
  and is retried by every run. A run that leaves rows pending or had rows rejected ends ``partial``.
* A dry run stops after the plan and writes nothing to the provider or to ``sync_state``.
"""

import hashlib
import json
import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa

from espcore.errors import EspError
from espcore.providers.base import EspProvider, MemberInput, RowResult
from espcore.sync.source import check_segment_sql
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.sync.validate import address_rules, email_problem, mask_email, value_problem
from espcore.warehouse import BaseWarehouse, PostgresConnection, PostgresWarehouse, WarehouseConnection, quote_ident

log = logging.getLogger("espcore.sync")

#: the engine's tables, in the own schema
TABLES = ("sync_state", "sync_plan", "sync_changelog", "sync_runs", "sync_lock", "suppression")

# ``{t}`` is the schema-qualified table name
DDL: list[tuple[str, str]] = [
    (
        "sync_state",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL, pk VARCHAR NOT NULL,
        synced_fp VARCHAR, status VARCHAR NOT NULL, pending_op VARCHAR, pending_fp VARCHAR,
        provider_status VARCHAR, provider_id VARCHAR, attempts INTEGER NOT NULL DEFAULT 0,
        last_error VARCHAR, last_attempt_at TIMESTAMP, last_synced_at TIMESTAMP, run_id VARCHAR,
        rejected_fp VARCHAR,
        PRIMARY KEY (provider, book_id, pk))""",
    ),
    (
        "sync_plan",
        """CREATE TABLE IF NOT EXISTS {t} (
        run_id VARCHAR NOT NULL, sync_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL,
        pk VARCHAR NOT NULL, action VARCHAR NOT NULL, op VARCHAR NOT NULL, fp VARCHAR, payload VARCHAR,
        reason VARCHAR, n BIGINT)""",
    ),
    (
        "sync_changelog",
        """CREATE TABLE IF NOT EXISTS {t} (
        run_id VARCHAR NOT NULL, sync_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, book_id VARCHAR NOT NULL,
        pk VARCHAR NOT NULL, op VARCHAR NOT NULL, result VARCHAR NOT NULL, error VARCHAR,
        logged_at TIMESTAMP NOT NULL)""",
    ),
    (
        "sync_runs",
        """CREATE TABLE IF NOT EXISTS {t} (
        run_id VARCHAR NOT NULL, sync_name VARCHAR NOT NULL, provider VARCHAR NOT NULL, book_id VARCHAR,
        started_at TIMESTAMP NOT NULL, finished_at TIMESTAMP, dry_run BOOLEAN NOT NULL, status VARCHAR NOT NULL,
        counts VARCHAR, PRIMARY KEY (run_id, sync_name))""",
    ),
    (
        # one row per locked book: who holds it. On PostgreSQL the advisory lock is the lock and this row only
        # names the holder; on DuckDB the row is the lock.
        "sync_lock",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, book VARCHAR NOT NULL, book_id VARCHAR, run_id VARCHAR NOT NULL,
        sync_name VARCHAR, host VARCHAR, pid INTEGER, proc_start VARCHAR, boot_id VARCHAR, pid_ns VARCHAR,
        acquired_at TIMESTAMP NOT NULL, heartbeat_at TIMESTAMP, PRIMARY KEY (provider, book))""",
    ),
    (
        "suppression",
        """CREATE TABLE IF NOT EXISTS {t} (
        provider VARCHAR NOT NULL, email VARCHAR NOT NULL, reason VARCHAR NOT NULL, added_at TIMESTAMP)""",
    ),
]

#: columns added after a table's first release: (table, column, type), added when missing
ADDED_COLUMNS: list[tuple[str, str, str]] = [
    ("sync_plan", "n", "BIGINT"),  # the key's row count in the segment; plans are per run, so no backfill
    ("sync_state", "rejected_fp", "VARCHAR"),  # the fingerprint the provider rejected for good
]

#: the tables (and their columns) an earlier release kept unqualified, in the connection's default schema: their
#: rows are copied into the own schema when its table is created (the plan and the locks are per run: not kept)
LEGACY_COLUMNS: dict[str, tuple[str, ...]] = {
    "sync_state": (
        *("provider", "book_id", "pk", "synced_fp", "status", "pending_op", "pending_fp", "provider_status"),
        *("provider_id", "attempts", "last_error", "last_attempt_at", "last_synced_at", "run_id"),
    ),
    "sync_changelog": ("run_id", "sync_name", "provider", "book_id", "pk", "op", "result", "error", "logged_at"),
    "sync_runs": ("run_id", "sync_name", "provider", "book_id", "started_at", "finished_at", "dry_run", "status"),
    "suppression": ("provider", "email", "reason", "added_at"),
}

READ_PAGE = 5_000
ABORT_AFTER_ATTEMPTS = 200
APPLY_ORDER = ("remove", "unsubscribe", "change", "add")
#: ``rejected_fp`` of a row whose removal the provider rejected (never an md5 fingerprint)
REJECTED_REMOVE = "remove"
#: a DuckDB lock holder's heartbeat period, and the age after which a holder on another host is presumed dead
LOCK_HEARTBEAT_S = 15.0
LOCK_STALE_S = 120.0
#: how long a run retries a PostgreSQL book lock held by another session before it gives up (a killed holder's
#: session is gone within milliseconds; this only covers that teardown)
LOCK_GRACE_S = 2.0
#: a dry run's plan in ``sync_plan`` is kept while that run is running, for at most this long
PLAN_KEEP_RUNNING_S = 24 * 3600


class SyncError(EspError):
    """The sync stopped; committed work stays, ``counts`` says how far it got."""

    def __init__(self, message: str, *, counts: dict[str, Any] | None = None, **kwargs: Any) -> None:
        self.counts = dict(counts or {})
        super().__init__(message, **kwargs)


class SyncLockedError(SyncError):
    """Another live run holds this book."""


class MassRemoveError(SyncError):
    """The plan removes more than ``max_remove_pct`` of the synced rows and the run did not allow it."""


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_tables(con: WarehouseConnection) -> None:
    """Create the own schema and the engine's tables where missing (idempotent)."""
    con.ensure_own_schema()
    # Serialised: concurrent CREATE TABLE IF NOT EXISTS of one table fails on PostgreSQL (and conflicts on DuckDB).
    with con.transaction(lock="espcore.sync.ddl"):
        fresh = [table for table in LEGACY_COLUMNS if not con.own_table_exists(table)]
        for table, ddl in DDL:
            con.execute(ddl.format(t=con.own(table)))
        for table, column, typ in ADDED_COLUMNS:
            # checked first: ALTER TABLE takes an exclusive table lock on PostgreSQL even when it changes nothing
            row = con.fetchone(
                "SELECT count(*) FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? AND column_name = ?",
                [con.own_schema, table, column],
            )
            if not (row and row[0]):
                con.execute(f"ALTER TABLE {con.own(table)} ADD COLUMN IF NOT EXISTS {column} {typ}")
        for table in fresh:  # state an earlier release kept outside the own schema is carried over, once
            con.adopt_legacy_table(table, LEGACY_COLUMNS[table])


@dataclass
class SyncResult:
    """Counts, samples and rejects of one run, in the vocabulary of sync-semantics.md §7.

    Beyond §7: ``pending`` is the number of the book's rows left ``pending`` after the run (undecided: retried
    by the next run), ``transient`` the rows of this run whose result was undecided, ``rejected_unchanged`` the
    rows not sent because the provider rejected exactly these values before. :attr:`outcome` sums it up."""

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


ProgressFn = Callable[[str], None]
BatchHook = Callable[[str, int], None]


# -- the book lock ------------------------------------------------------------------------------------------------


@cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip() or None
    except OSError:
        return None


@cache
def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) of a process from ``/proc/<pid>/stat``, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2 :].split()  # after "pid (comm) ": the comm may hold spaces and parens
    return (fields[0], fields[19]) if len(fields) > 19 else None


def process_start_token(pid: int) -> str | None:
    """What tells a process from a later one that got the same pid (its start time), or None off Linux."""
    stat = _proc_stat(pid)
    return stat[1] if stat else None


@dataclass(frozen=True)
class LockHolder:
    """A ``sync_lock`` row: the run holding a book and the process it runs in."""

    run_id: str
    sync_name: str | None
    host: str | None
    pid: int | None
    proc_start: str | None
    boot_id: str | None
    pid_ns: str | None
    acquired_at: datetime | None
    heartbeat_at: datetime | None

    COLUMNS = "run_id, sync_name, host, pid, proc_start, boot_id, pid_ns, acquired_at, heartbeat_at"

    def describe(self) -> str:
        where = f"pid {self.pid} on {self.host}" if self.pid is not None else "another session"
        return f"run {self.run_id} ({where}, since {self.acquired_at})"


def _me() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "host": socket.gethostname(),
        "pid": pid,
        "proc_start": process_start_token(pid),
        "boot_id": _boot_id(),
        "pid_ns": _pid_namespace(),
    }


def holder_is_alive(holder: LockHolder, *, held_here: bool, stale_s: float, now: datetime) -> tuple[bool, str]:
    """Whether the process named by a lock row still runs (and why not).

    On this machine (same host, boot and pid namespace) the process itself is checked: gone, a zombie, or a
    different process under a reused pid (another start time) is dead; this very process holds it only if one
    of its runs does (``held_here``). Elsewhere only the heartbeat tells: older than ``stale_s`` is dead."""
    me = _me()
    beat = holder.heartbeat_at or holder.acquired_at
    age = (now - beat).total_seconds() if isinstance(beat, datetime) else float("inf")
    fresh = age < stale_s
    same_machine = (
        holder.host == me["host"]
        and holder.pid is not None
        and holder.boot_id == me["boot_id"]
        and holder.pid_ns == me["pid_ns"]
    )
    if not same_machine:
        return (True, "") if fresh else (False, f"no heartbeat for {age:.0f}s")
    pid = int(holder.pid or 0)
    if pid == me["pid"] and holder.proc_start == me["proc_start"]:
        return (True, "") if held_here else (False, "this process no longer runs it")
    if me["boot_id"] is not None:  # Linux: /proc tells
        stat = _proc_stat(pid)
        if stat is None:
            return False, f"process {pid} is gone"
        if stat[0] in ("Z", "X"):
            return False, f"process {pid} has exited"
        if holder.proc_start is not None and stat[1] != holder.proc_start:
            return False, f"pid {pid} now belongs to another process"
        return True, ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, f"process {pid} is gone"
    except PermissionError:
        pass
    # without a start time a reused pid cannot be told apart: a live holder's heartbeat is fresh
    return (True, "") if fresh else (False, f"no heartbeat for {age:.0f}s")


#: (warehouse scope, provider, book, run id) of the book locks held by runs of this process
_HELD: set[tuple[str, str, str, str]] = set()
_HELD_GUARD = threading.Lock()


class _Heartbeat:
    """Calls ``beat`` every ``interval_s`` in a daemon thread until stopped; ``beat`` returning False (or the
    lock found lost) marks the lock as lost."""

    def __init__(self, beat: Callable[[], bool], interval_s: float, name: str) -> None:
        self._beat = beat
        self._interval = interval_s
        self._stop = threading.Event()
        self.lost: str | None = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                if not self._beat():
                    self.lost = "the lock row names another run"
                    return
            except _LockLost as exc:
                self.lost = str(exc)
                return
            except Exception as exc:  # a busy warehouse: try again at the next beat
                log.debug("sync lock heartbeat failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


class _LockLost(Exception):
    pass


class BookLock(ABC):
    """One run's hold on one book, keyed by (provider, book name)."""

    def __init__(self, engine: "SyncEngine") -> None:
        self.wh = engine.wh
        self.provider = engine.spec.provider
        self.book = engine.spec.book
        self.sync_name = engine.spec.name
        self.run_id = engine.run_id
        self.heartbeat_s = engine.lock_heartbeat_s
        self.stale_s = engine.lock_stale_s
        self._heartbeat: _Heartbeat | None = None

    @abstractmethod
    def acquire(self) -> None:
        """Take the book, or raise :class:`SyncLockedError` naming the live holder."""

    @abstractmethod
    def release(self) -> None: ...

    def check(self) -> None:
        """Raise :class:`SyncError` if the lock was lost (the run must stop: another run may now hold the book).

        Asked before every write batch, so it looks for itself (one cheap query) instead of trusting the last
        heartbeat: a lock taken over since then must not let one more batch through."""
        lost = self._heartbeat.lost if self._heartbeat is not None else None
        if not lost:
            lost = self._verify()
        if lost:
            raise SyncError(
                f"lost the lock of book {self.book!r} of {self.provider} ({lost}); stopped, committed work stays",
                provider=self.provider,
            )

    @abstractmethod
    def _verify(self) -> str | None:
        """Why this run no longer holds the book, or None while it does."""

    def set_book_id(self, book_id: str) -> None:
        with self.wh.connect() as con:
            con.execute(
                f"UPDATE {con.own('sync_lock')} SET book_id = ? WHERE provider = ? AND book = ? AND run_id = ?",
                [book_id, self.provider, self.book, self.run_id],
            )

    def _read_holder(self, con: WarehouseConnection) -> LockHolder | None:
        row = con.fetchone(
            f"SELECT {LockHolder.COLUMNS} FROM {con.own('sync_lock')} WHERE provider = ? AND book = ?",
            [self.provider, self.book],
        )
        if row is None:
            return None
        run_id, sync_name, host, pid, proc_start, boot_id, pid_ns, acquired_at, heartbeat_at = row
        return LockHolder(
            str(run_id), sync_name, host, None if pid is None else int(pid), proc_start, boot_id, pid_ns,
            acquired_at, heartbeat_at,
        )  # fmt: skip

    def _claim(self, con: WarehouseConnection, dead: LockHolder | None, why: str) -> None:
        """Write this run into the lock row; a dead holder's run is marked failed (it will never finish)."""
        now = now_utc()
        if dead is not None and dead.run_id != self.run_id:
            log.warning("taking over the lock of book %r from dead %s: %s", self.book, dead.describe(), why)
            if dead.sync_name is not None:
                con.execute(
                    f"UPDATE {con.own('sync_runs')} SET status = 'failed', finished_at = ? "
                    "WHERE run_id = ? AND sync_name = ? AND status = 'running'",
                    [now, dead.run_id, dead.sync_name],
                )
        me = _me()
        con.execute(
            f"""INSERT INTO {con.own("sync_lock")} (provider, book, book_id, run_id, sync_name, host, pid, proc_start,
                                                   boot_id, pid_ns, acquired_at, heartbeat_at)
                VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (provider, book) DO UPDATE SET book_id = NULL, run_id = excluded.run_id,
                  sync_name = excluded.sync_name, host = excluded.host, pid = excluded.pid,
                  proc_start = excluded.proc_start, boot_id = excluded.boot_id, pid_ns = excluded.pid_ns,
                  acquired_at = excluded.acquired_at, heartbeat_at = excluded.heartbeat_at""",
            [
                self.provider, self.book, self.run_id, self.sync_name, me["host"], me["pid"], me["proc_start"],
                me["boot_id"], me["pid_ns"], now, now,
            ],
        )  # fmt: skip

    def _locked_error(self, holder: LockHolder | None) -> SyncLockedError:
        who = holder.describe() if holder is not None else "another run"
        return SyncLockedError(
            f"book {self.book!r} of {self.provider} is being synced by {who}; runs on one book never interleave",
            provider=self.provider,
        )

    def _beat_sql(self, con: WarehouseConnection) -> bool:
        row = con.fetchone(
            f"UPDATE {con.own('sync_lock')} SET heartbeat_at = ? WHERE provider = ? AND book = ? AND run_id = ? "
            "RETURNING run_id",
            [now_utc(), self.provider, self.book, self.run_id],
        )
        return row is not None


class RowBookLock(BookLock):
    """DuckDB (and any warehouse without session locks): the ``sync_lock`` row is the lock. It names the holder
    process; a run takes it over at once when that process is gone and refuses while it lives.

    DuckDB lets one process open the file at a time and a run keeps it open throughout, so a run of another
    process only ever reads a lock row once its holder has let go of the file: finished (the row is gone) or
    dead. The heartbeat matters for holders on another host (a shared file), whose process cannot be checked."""

    def __init__(self, engine: "SyncEngine") -> None:
        super().__init__(engine)
        self._scope = self._file_scope(self.wh)
        self._key = (self._scope, self.provider, self.book, self.run_id)

    @staticmethod
    def _file_scope(wh: BaseWarehouse) -> str:
        """The warehouse as this process's runs see it: one DuckDB file is one scope however its path is spelled
        (relative, through ``..`` or a symlink), else a run holding it through one spelling would be taken for
        dead by a run coming through another."""
        path = getattr(wh, "path", None)
        where = f"duckdb:{Path(path).resolve()}" if isinstance(path, Path) else wh.location
        return f"{where}#{wh.own_schema}"

    def acquire(self) -> None:
        # The named lock makes check-then-claim atomic within the process; the file lock across processes.
        with self.wh.connect() as con, con.transaction(lock=f"espcore.sync_lock:{self.provider}:{self.book}"):
            holder = self._read_holder(con)
            why = ""
            if holder is not None:
                with _HELD_GUARD:
                    held_here = (self._scope, self.provider, self.book, holder.run_id) in _HELD
                alive, why = holder_is_alive(holder, held_here=held_here, stale_s=self.stale_s, now=now_utc())
                if alive:
                    raise self._locked_error(holder)
            self._claim(con, holder, why)
            with _HELD_GUARD:
                _HELD.add(self._key)
        self._heartbeat = _Heartbeat(self._beat, self.heartbeat_s, f"sync-lock-{self.book}")

    def _beat(self) -> bool:
        with self.wh.connect() as con:
            return self._beat_sql(con)

    def _verify(self) -> str | None:
        with self.wh.connect() as con:
            holder = self._read_holder(con)
        if holder is None:
            return "the lock row is gone"
        if holder.run_id != self.run_id:
            return f"the lock row names {holder.describe()}"
        return None

    def release(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        try:
            with self.wh.connect() as con, con.transaction():
                con.execute(
                    f"DELETE FROM {con.own('sync_lock')} WHERE provider = ? AND book = ? AND run_id = ?",
                    [self.provider, self.book, self.run_id],
                )
        finally:
            with _HELD_GUARD:
                _HELD.discard(self._key)


class AdvisoryBookLock(BookLock):
    """PostgreSQL: a session-level advisory lock held on a connection of the run's own (outside the pool) for the
    whole run. The server releases it when that connection drops, so a killed run frees the book at once. The
    ``sync_lock`` row only names the holder for the error message."""

    def __init__(self, engine: "SyncEngine", wh: PostgresWarehouse) -> None:
        super().__init__(engine)
        self.pg = wh
        name = f"espcore.sync_lock:{wh.own_schema}:{self.provider}:{self.book}"
        self.key = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True)
        self.grace_s = engine.lock_grace_s
        self._stack = ExitStack()
        self._con: PostgresConnection | None = None

    def acquire(self) -> None:
        con = self._stack.enter_context(self.pg.dedicated())
        try:
            # the session must outlive idle timeouts, and a vanished client host must be noticed
            for setting in (
                "SET idle_session_timeout = 0",
                "SET tcp_keepalives_idle = 30",
                "SET tcp_keepalives_interval = 10",
                "SET tcp_keepalives_count = 3",
            ):
                try:
                    con.execute(setting)
                except Exception as exc:  # an older server without the setting
                    log.debug("%s: %s", setting, exc)
            deadline = time.monotonic() + self.grace_s
            while True:
                row = con.fetchone("SELECT pg_try_advisory_lock(?)", [self.key])
                if row and row[0]:
                    break
                if time.monotonic() >= deadline:
                    raise self._locked_error(self._read_holder(con))
                time.sleep(0.05)
            holder = self._read_holder(con)  # a row left by a run that no longer holds the lock: dead
            self._claim(con, holder, "its session is gone")
        except BaseException:
            self._stack.close()
            raise
        self._con = con
        self._heartbeat = _Heartbeat(self._beat, self.heartbeat_s, f"sync-lock-{self.book}")

    def _beat(self) -> bool:
        con = self._con
        if con is None:
            return True
        try:
            self._beat_sql(con)  # the row is informational: a missing one does not matter
        except Exception as exc:
            if con.raw.closed or con.raw.broken:
                raise _LockLost(f"the lock's connection dropped: {exc}") from exc
            raise
        return True

    def _verify(self) -> str | None:
        con = self._con
        if con is None:
            return "the lock's connection is closed"
        try:
            row = con.fetchone(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid() "
                "AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1",
                [(self.key >> 32) & 0xFFFFFFFF, self.key & 0xFFFFFFFF],
            )
        except Exception as exc:
            if con.raw.closed or con.raw.broken:
                return f"the lock's connection dropped: {exc}"
            raise
        return None if row and row[0] else "its session no longer holds the advisory lock"

    def release(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.stop()
        con = self._con
        try:
            if con is not None and not con.raw.closed:
                con.execute(
                    f"DELETE FROM {con.own('sync_lock')} WHERE provider = ? AND book = ? AND run_id = ?",
                    [self.provider, self.book, self.run_id],
                )
                con.execute("SELECT pg_advisory_unlock(?)", [self.key])
        finally:
            self._con = None
            self._stack.close()  # closing the connection releases the lock in any case


def book_lock(engine: "SyncEngine") -> BookLock:
    if isinstance(engine.wh, PostgresWarehouse):
        return AdvisoryBookLock(engine, engine.wh)
    return RowBookLock(engine)


class SyncEngine:
    """Runs one :class:`SyncSpec` against one provider and one warehouse.

    ``lock_heartbeat_s``/``lock_stale_s``: how often a run refreshes its book lock, and after how long without a
    refresh a holder that cannot be checked directly (on another host) is presumed dead. ``lock_grace_s``: how
    long a run retries a PostgreSQL book lock before it refuses (covers a killed holder's session teardown)."""

    def __init__(
        self,
        spec: SyncSpec,
        provider: EspProvider,
        warehouse: BaseWarehouse,
        *,
        run_id: str,
        options: SyncOptions | None = None,
        progress: ProgressFn | None = None,
        progress_every_s: float = 10.0,
        after_batch: BatchHook | None = None,
        lock_heartbeat_s: float = LOCK_HEARTBEAT_S,
        lock_stale_s: float = LOCK_STALE_S,
        lock_grace_s: float = LOCK_GRACE_S,
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.wh = warehouse
        self.run_id = run_id
        self.options = options or SyncOptions()
        self._progress = progress or (lambda msg: log.info(msg))
        self._progress_every = progress_every_s
        self._after_batch = after_batch
        self.lock_heartbeat_s = lock_heartbeat_s
        self.lock_stale_s = lock_stale_s
        self.lock_grace_s = lock_grace_s
        self._last_progress = 0.0
        self._lock: BookLock | None = None

    # -- public ------------------------------------------------------------------------------------------

    def run(self) -> SyncResult:
        with self.wh.session():
            return self._run()

    def _run(self) -> SyncResult:
        started = time.monotonic()
        spec, opts = self.spec, self.options
        with self.wh.connect() as con:
            ensure_tables(con)
        result = SyncResult(spec, self.run_id, "", opts.dry_run, opts.full_resync)
        self._record_run(result, "running", started_at=now_utc())
        lock: BookLock | None = None
        try:
            # the segment's run-time guard, before anything reads it or touches the provider (dry runs too): a
            # refused segment is a SegmentSourceError (a ValueError, never retried as transient)
            with self.wh.connect() as con:
                check_segment_sql(con, spec.source_sql)
            if not opts.dry_run:
                # before the book is looked up or created: two first runs must not both create it
                candidate = book_lock(self)
                candidate.acquire()
                self._lock = lock = candidate
            book = self.provider.find_book(spec.book) if opts.dry_run else self.provider.ensure_book(spec.book)
            result.book_id = book.id if book is not None else f"(new) {spec.book}"
            if lock is not None:
                lock.set_book_id(result.book_id)
            self._record_run(result, "running")
            suppressed = self._fetch_suppressions(book.id if book is not None else None)
            self._plan(result, suppressed)
            if not opts.dry_run:
                self._apply(result)
            result.elapsed_seconds = time.monotonic() - started
            result.synced_rows = self._count_state(result.book_id, "synced")
            result.counts["pending"] = self._count_state(result.book_id, "pending")
            self._record_run(result, result.outcome)
            return result
        except BaseException as exc:
            result.elapsed_seconds = time.monotonic() - started
            result.error = str(exc) or type(exc).__name__
            if result.book_id:
                try:
                    result.counts["pending"] = self._count_state(result.book_id, "pending")
                except Exception as count_exc:  # the warehouse may be what failed
                    log.debug("counting pending rows after a failure: %s", count_exc)
            if isinstance(exc, SyncError):
                exc.counts = result.metadata()
            self._record_run(result, result.outcome)
            raise
        finally:
            self._lock = None
            if lock is not None:
                try:
                    lock.release()
                except Exception as exc:
                    log.warning("releasing the lock of book %r: %s", spec.book, exc)

    # -- suppression -------------------------------------------------------------------------------------

    def _fetch_suppressions(self, book_id: str | None) -> pa.Table:
        pairs: dict[str, str] = {}
        if self.spec.refresh_suppressions:
            for s in self.provider.suppressions(book_id) if book_id is not None else []:
                if s.book_id in (None, book_id):
                    pairs.setdefault(s.email.strip().lower(), s.reason)
            if book_id is None:  # the book does not exist yet: account-wide suppressions still apply
                for s in self.provider.suppressions(None):
                    if s.book_id is None:
                        pairs.setdefault(s.email.strip().lower(), s.reason)
        with self.wh.connect() as con:
            for email, reason in con.fetchall(
                f"SELECT lower(trim(email)), reason FROM {con.own('suppression')} WHERE provider IN (?, '*')",
                [self.spec.provider],
            ):
                pairs.setdefault(email, reason)
        return pa.table(
            {"pk": pa.array(list(pairs), pa.string()), "reason": pa.array(list(pairs.values()), pa.string())}
        )

    # -- plan --------------------------------------------------------------------------------------------

    # The expensive pass joins every segment row (key + fingerprint; no GROUP BY over millions of keys) with the
    # book's state and writes only rows with something to do to ``sync_plan``. The syntax check runs on those
    # rows only: an unchanged, synced key passed it when it was sent. A second, narrow pass reads the segment
    # rows of the planned keys alone: their mapped values (JSON), their row count and whether copies disagree.
    # A duplicated key whose copies are all unchanged is a no-op either way; one whose copies differ has at
    # least one copy in the plan, so every duplicate that matters is found there.

    def _segment(self, con: WarehouseConnection) -> str:
        """The segment with its key and raw address under names that cannot clash with its columns."""
        spec, d = self.spec, con.dialect
        email = d.text("seg." + quote_ident(spec.primary_key))
        return f"(SELECT lower(trim({email})) AS esp__pk, {email} AS esp__raw, seg.* FROM ({spec.source_sql}) AS seg)"

    def _payload(self, con: WarehouseConnection, alias: str) -> str:
        mapped = sorted(self.spec.fields.items())
        return con.dialect.json_object([(name, f"{alias}.{quote_ident(col)}") for name, col in mapped])

    def _fingerprint(self, con: WarehouseConnection, alias: str) -> str:
        d = con.dialect
        mapped = sorted(self.spec.fields.items())
        parts = [f"coalesce({d.text(alias + '.' + quote_ident(col))}, '\\N')" for _, col in mapped]
        return d.md5(" || chr(31) || ".join(parts) if parts else "''")

    def _plan(self, result: SyncResult, suppressed: pa.Table) -> None:
        spec, opts = self.spec, self.options
        with self.wh.connect() as con:
            con.load_temp("provider_suppressed", suppressed)
            with con.transaction():
                self._drop_old_plans(con)
                self._insert_plan(con, result)
                self._read_planned_rows(con)
            con.drop_temp("provider_suppressed")
            self._collect_rejects(con, result)
            self._count_plan(con, result)
            synced = self._count_state(result.book_id, "synced", con)
        planned_remove = result.counts["planned_remove"]
        if synced and planned_remove > synced * spec.max_remove_pct / 100.0:
            result.removal_guard_tripped = True
            if not opts.dry_run and not opts.allow_mass_remove:
                raise MassRemoveError(
                    f"plan removes {planned_remove} of {synced} synced rows (> {spec.max_remove_pct}%); "
                    "check the segment, or run with allow_mass_remove",
                    provider=spec.provider,
                )

    def _drop_old_plans(self, con: WarehouseConnection) -> None:
        """Delete this sync's earlier plans. A real run (it holds the book) deletes every plan but those of dry runs
        still running; a dry run only earlier dry runs' finished plans, never the plan of a real run applying it."""
        plan, runs = con.own("sync_plan"), con.own("sync_runs")
        name = self.spec.name
        if self.options.dry_run:
            con.execute(
                f"""DELETE FROM {plan} WHERE sync_name = ? AND (run_id = ? OR run_id IN (
                       SELECT run_id FROM {runs} WHERE sync_name = ? AND dry_run AND status <> 'running'))""",
                [name, self.run_id, name],
            )
            return
        cutoff = datetime.fromtimestamp(time.time() - PLAN_KEEP_RUNNING_S, UTC).replace(tzinfo=None)
        con.execute(
            f"""DELETE FROM {plan} WHERE sync_name = ? AND run_id NOT IN (
                   SELECT run_id FROM {runs} WHERE sync_name = ? AND dry_run AND status = 'running'
                   AND started_at > ? AND run_id <> ?)""",
            [name, name, cutoff, self.run_id],
        )

    def _op_table(self) -> str:
        """What apply does with each action, given the mode: rows of (action, synced, op, checked) where
        ``synced`` says whether the provider already has the key's values and ``checked`` whether the key must
        pass the syntax check (it is about to be sent, or reported as suppressed). A join with this table keeps
        the action computed once per row (nested CASEs over it would be inlined and evaluated many times)."""
        spec = self.spec
        add = "skipped" if spec.mode == "update" else "add"
        change = "skipped" if spec.mode == "insert" else "change"
        rows: list[tuple[str, bool, str, bool]] = []
        for synced in (False, True):
            if spec.removes:
                remove = "unsubscribe" if spec.removal == "unsubscribe" else "remove"
            else:
                remove = "noop" if synced else "forget"
            rows += [
                ("add", synced, add, True),
                ("retry", synced, change if synced else add, True),
                ("change", synced, change, True),
                ("suppressed", synced, "suppressed", True),
                ("rejected", synced, "rejected", False),
                ("rejected_remove", synced, "rejected" if spec.removes else remove, False),
                ("remove", synced, remove, False),
                ("forget", synced, "forget", False),
                ("noop", synced, "noop", False),
            ]
        values = ", ".join(f"('{a}', {str(s).upper()}, '{o}', {str(c).upper()})" for a, s, o, c in rows)
        return f"(VALUES {values}) AS m(action, synced, op, checked)"

    def _insert_plan(self, con: WarehouseConnection, result: SyncResult) -> None:
        """Write every segment row or state key with something to do into ``sync_plan`` (a duplicated key may
        get several rows here; :meth:`_read_planned_rows` merges them).

        Actions: add / change / retry / remove / forget / suppressed, ``rejected`` / ``rejected_remove`` (the
        provider rejected exactly this for good: not resent until the values change, or a full resync), and
        ``invalid`` (a missing or malformed key about to be sent). ``op`` is what apply does with the row, given
        the mode."""
        spec, d = self.spec, con.dialect
        bad_key = f"(j.pk = '' OR NOT coalesce({d.email_syntax_ok('j.pk')}, false))"
        resend_rejected = "TRUE" if self.options.full_resync else "FALSE"
        con.execute(
            f"""
            INSERT INTO {con.own("sync_plan")} (run_id, sync_name, provider, book_id, pk, action, op, fp, reason, n)
            WITH src AS (
                SELECT s.esp__pk AS pk, {self._fingerprint(con, "s")} AS fp FROM {self._segment(con)} AS s
            ),
            st AS (
                SELECT pk, synced_fp, status, provider_status, rejected_fp FROM {con.own("sync_state")}
                WHERE provider = ? AND book_id = ?
            ),
            j AS (
                SELECT coalesce(src.pk, st.pk, '') AS pk, src.fp, st.synced_fp IS NOT NULL AS synced,
                       coalesce(sup.reason, st.provider_status) AS reason,
                  CASE
                    WHEN sup.pk IS NOT NULL OR st.status = 'suppressed'
                         OR st.provider_status IN ('unsubscribed', 'blacklisted')
                      THEN CASE WHEN src.fp IS NULL THEN 'noop' ELSE 'suppressed' END
                    WHEN src.fp IS NULL AND st.status = 'rejected' AND st.rejected_fp = '{REJECTED_REMOVE}'
                         AND NOT {resend_rejected} THEN 'rejected_remove'
                    WHEN src.fp IS NULL AND (st.synced_fp IS NOT NULL OR st.status = 'pending') THEN 'remove'
                    WHEN src.fp IS NULL THEN 'forget'
                    WHEN st.pk IS NULL OR st.status = 'removed' THEN 'add'
                    WHEN st.status = 'rejected' AND st.rejected_fp = src.fp AND NOT {resend_rejected} THEN 'rejected'
                    WHEN st.status IN ('pending', 'rejected') THEN 'retry'
                    WHEN {resend_rejected} OR st.synced_fp IS DISTINCT FROM src.fp THEN 'change'
                    ELSE 'noop'
                  END AS action
                FROM src FULL OUTER JOIN st ON src.pk = st.pk
                LEFT JOIN provider_suppressed sup ON sup.pk = coalesce(src.pk, st.pk)
            )
            SELECT ?, ?, ?, ?, j.pk,
                   CASE WHEN m.checked AND {bad_key} THEN 'invalid' ELSE j.action END,
                   CASE WHEN m.checked AND {bad_key} THEN 'invalid' ELSE m.op END,
                   j.fp, j.reason, NULL
            FROM j JOIN {self._op_table()} ON m.action = j.action AND m.synced = j.synced
            WHERE m.op <> 'noop'
            """,
            [
                spec.provider,
                result.book_id,
                self.run_id,
                spec.name,
                spec.provider,
                result.book_id,
            ],
        )

    def _read_planned_rows(self, con: WarehouseConnection) -> None:
        """The second, narrow pass: the segment rows of the planned keys give each plan row its mapped values
        (JSON) and its row count ``n``; a key planned more than once (a duplicated key) is merged into one row,
        rejected as ``conflict`` when its copies disagree on a mapped value."""
        this = "run_id = ? AND sync_name = ?"
        params = [self.run_id, self.spec.name]
        seg = self._segment(con)
        plan = con.own("sync_plan")
        # the work tables, always schema-qualified: a user table of the same name is never read or dropped
        rows_t, dups_t = con.dialect.temp("esp_sync_rows"), con.dialect.temp("esp_sync_dups")
        con.execute(f"DROP TABLE IF EXISTS {rows_t}")
        con.execute(
            f"""CREATE TEMP TABLE {rows_t} AS
                SELECT r.pk, count(*) AS n, min(r.fp) <> max(r.fp) AS conflict, min(r.payload) AS payload
                FROM (SELECT s.esp__pk AS pk, {self._fingerprint(con, "s")} AS fp, {self._payload(con, "s")} AS payload
                      FROM {seg} AS s
                      WHERE s.esp__pk IN (SELECT pk FROM {plan} WHERE {this} AND pk <> ''
                                          AND action IN ('add', 'change', 'retry', 'suppressed', 'invalid'))
                ) AS r
                GROUP BY r.pk""",
            params,
        )
        row = con.fetchone(f"SELECT count(*) FROM {rows_t} WHERE n > 1")
        if row and row[0]:
            # one row per duplicated key: identical copies planned the same action; conflicting ones are rejected
            cols = "run_id, sync_name, provider, book_id, pk, action, op, fp, reason"
            dup = f"{this} AND pk IN (SELECT pk FROM {rows_t} WHERE n > 1)"
            con.execute(f"DROP TABLE IF EXISTS {dups_t}")
            con.execute(
                f"""CREATE TEMP TABLE {dups_t} AS
                    SELECT {cols} FROM (
                        SELECT p.run_id, p.sync_name, p.provider, p.book_id, p.pk,
                               CASE WHEN r.conflict AND p.op <> 'invalid' THEN 'conflict' ELSE p.action END AS action,
                               CASE WHEN r.conflict THEN 'invalid' ELSE p.op END AS op,
                               CASE WHEN r.conflict THEN NULL ELSE p.fp END AS fp, p.reason,
                               row_number() OVER (PARTITION BY p.pk ORDER BY p.action, p.op) AS k
                        FROM {plan} AS p JOIN {rows_t} AS r ON r.pk = p.pk
                        WHERE p.run_id = ? AND p.sync_name = ? AND r.n > 1) AS ranked
                    WHERE k = 1""",
                params,
            )
            con.execute(f"DELETE FROM {plan} WHERE {dup}", params)
            con.execute(f"INSERT INTO {plan} ({cols}) SELECT {cols} FROM {dups_t}")
            con.execute(f"DROP TABLE {dups_t}")
        con.execute(
            f"""UPDATE {plan} SET n = r.n, payload = r.payload FROM {rows_t} AS r
                WHERE sync_plan.pk = r.pk AND sync_plan.run_id = ? AND sync_plan.sync_name = ?""",
            params,
        )
        con.execute(f"DROP TABLE {rows_t}")

    def _collect_rejects(self, con: WarehouseConnection, result: SyncResult) -> None:
        """Count the segment's rows and its invalid ones; read the rejected rows back with their reason."""
        this = "run_id = ? AND sync_name = ?"
        params = [self.run_id, self.spec.name]
        plan = con.own("sync_plan")
        size = con.fetchone(f"SELECT count(*) FROM ({self.spec.source_sql}) AS seg")
        row = con.fetchone(
            f"SELECT coalesce(sum(coalesce(n, 1)), 0) FROM {plan} WHERE {this} AND op = 'invalid'", params
        )
        invalid = int(row[0]) if row else 0
        result.counts["query_size"] = int(size[0]) if size else 0
        result.counts["invalid"] += invalid
        if not invalid:
            return
        rejects = con.fetchall(
            f"""SELECT r.esp__raw, r.esp__pk, {self._payload(con, "r")},
                   CASE WHEN r.esp__pk IS NULL OR r.esp__pk = '' THEN 'missing email'
                        WHEN k.action = 'conflict' THEN 'duplicate key with conflicting values'
                        ELSE 'invalid email syntax' END AS reason
            FROM {self._segment(con)} AS r
            LEFT JOIN (SELECT DISTINCT pk, action FROM {plan} WHERE {this} AND op = 'invalid' AND pk <> '') AS k
              ON k.pk = r.esp__pk
            WHERE r.esp__pk IS NULL OR r.esp__pk = '' OR k.pk IS NOT NULL
            LIMIT 100000""",
            params,
        )
        for raw_email, pk, payload, reason in rejects:
            self._reject(result, raw_email, pk, reason, "validate", payload)

    def _count_plan(self, con: WarehouseConnection, result: SyncResult) -> None:
        rows = con.fetchall(
            f"SELECT action, op, count(*) FROM {con.own('sync_plan')} WHERE run_id = ? AND sync_name = ? "
            "GROUP BY action, op",
            [self.run_id, self.spec.name],
        )
        for action, op, n in rows:
            n = int(n)
            if op in ("add", "change"):
                result.counts[f"planned_{op}"] += n
                if action == "retry":
                    result.counts["planned_retry"] += n
            elif op in ("remove", "unsubscribe"):
                result.counts["planned_remove"] += n
            elif op in ("suppressed", "skipped"):
                result.counts[op] += n
            elif op == "rejected":
                result.counts["rejected_unchanged"] += n
        samples = con.fetchall(
            f"""SELECT op, pk FROM (
                   SELECT op, pk, row_number() OVER (PARTITION BY op ORDER BY pk) AS rn
                   FROM {con.own("sync_plan")} WHERE run_id = ? AND sync_name = ?) AS ranked
               WHERE rn <= ? ORDER BY op, pk""",
            [self.run_id, self.spec.name, self.options.sample_size],
        )
        for op, pk in samples:
            if op not in ("forget", "invalid"):
                result.samples.setdefault(str(op), []).append(mask_email(pk))

    # -- apply -------------------------------------------------------------------------------------------

    def _apply(self, result: SyncResult) -> None:
        spec = self.spec
        with self.wh.connect() as con, con.transaction():
            state, plan = con.own("sync_state"), con.own("sync_plan")
            con.execute(
                f"""DELETE FROM {state} WHERE provider = ? AND book_id = ? AND pk IN
                   (SELECT pk FROM {plan} WHERE run_id = ? AND sync_name = ? AND op = 'forget')""",
                [spec.provider, result.book_id, self.run_id, spec.name],
            )
            con.execute(
                f"""INSERT INTO {state} (provider, book_id, pk, status, provider_status, attempts, run_id)
                   SELECT ?, ?, pk, 'suppressed', coalesce(reason, 'suppressed'), 0, ?
                   FROM {plan} WHERE run_id = ? AND sync_name = ? AND op = 'suppressed'
                   ON CONFLICT (provider, book_id, pk) DO UPDATE SET
                     status = 'suppressed', provider_status = excluded.provider_status,
                     pending_op = NULL, pending_fp = NULL, rejected_fp = NULL""",
                [spec.provider, result.book_id, self.run_id, self.run_id, spec.name],
            )
        for op in APPLY_ORDER:
            for page in self._plan_pages(op):
                self._apply_page(result, op, page)

    def _plan_pages(self, op: str) -> Iterator[list[tuple[str, str | None, str | None]]]:
        last = ""
        while True:
            with self.wh.connect() as con:
                rows = con.fetchall(
                    f"""SELECT pk, fp, payload FROM {con.own("sync_plan")}
                       WHERE run_id = ? AND sync_name = ? AND op = ? AND pk > ? ORDER BY pk LIMIT ?""",
                    [self.run_id, self.spec.name, op, last, READ_PAGE],
                )
            if not rows:
                return
            yield [(str(r[0]), r[1], r[2]) for r in rows]
            last = str(rows[-1][0])
            if len(rows) < READ_PAGE:
                return

    def _apply_page(self, result: SyncResult, op: str, page: list[tuple[str, str | None, str | None]]) -> None:
        spec = self.spec
        kind = "remove" if op in ("remove", "unsubscribe") else op
        sendable: list[tuple[str, str | None, dict[str, Any]]] = []
        rules = address_rules(self.provider)  # the provider's own address rules, beyond the RFC's
        for pk, fp, payload in page:
            values: dict[str, Any] = json.loads(payload) if payload else {}
            if kind != "remove":
                problem = email_problem(pk, rules) or value_problem(
                    values, required=spec.required_fields, max_length=spec.max_value_length
                )
                if problem:
                    result.counts["invalid"] += 1
                    self._reject(result, pk, pk, problem, "validate", payload)
                    continue
            sendable.append((pk, fp, values))
        size = max(1, int(self.provider.batch_size))
        for start in range(0, len(sendable), size):
            self._apply_batch(result, op, kind, sendable[start : start + size])

    def _apply_batch(
        self, result: SyncResult, op: str, kind: str, batch: list[tuple[str, str | None, dict[str, Any]]]
    ) -> None:
        spec = self.spec
        book_id = result.book_id
        now = now_utc()
        keys = pa.table(
            {"pk": pa.array([b[0] for b in batch], pa.string()), "fp": pa.array([b[1] for b in batch], pa.string())}
        )
        if self._lock is not None:
            self._lock.check()  # never write to a book this run no longer holds
        # 1. write-ahead
        with self.wh.connect() as con:
            con.load_temp("wa_batch", keys)
            with con.transaction():
                con.execute(
                    f"""INSERT INTO {con.own("sync_state")} (provider, book_id, pk, status, pending_op, pending_fp,
                                               attempts, last_attempt_at, run_id)
                       SELECT ?, ?, pk, 'pending', ?, fp, 1, ?, ? FROM wa_batch
                       ON CONFLICT (provider, book_id, pk) DO UPDATE SET
                         status = 'pending', pending_op = excluded.pending_op, pending_fp = excluded.pending_fp,
                         attempts = sync_state.attempts + 1, last_attempt_at = excluded.last_attempt_at,
                         run_id = excluded.run_id""",
                    [spec.provider, book_id, op, now, self.run_id],
                )
            con.drop_temp("wa_batch")
        # 2. send once
        split_before = int(getattr(self.provider, "split_calls", 0))
        transient_error: EspError | None = None
        try:
            if kind == "remove":
                results = self.provider.remove_members(book_id, [b[0] for b in batch], unsubscribe=op == "unsubscribe")
            else:
                results = self.provider.upsert_members(book_id, [MemberInput(b[0], b[2]) for b in batch])
        except EspError as exc:
            if not exc.retryable:
                raise  # auth, quota, permission...: a step-wide fault; rows stay pending for the next run
            transient_error = exc
            results = [RowResult(b[0], ok=False, error=str(exc), transient=True) for b in batch]
        result.counts["batches"] += 1
        result.counts["write_calls"] += 1
        result.counts["split_calls"] += int(getattr(self.provider, "split_calls", 0)) - split_before
        # 3. acknowledge
        self._acknowledge(result, op, kind, results)
        if self._after_batch is not None:
            self._after_batch(op, len(batch))
        if transient_error is not None:
            stop = SyncError(
                f"transient failure, {len(batch)} rows left pending for the next run: {transient_error}",
                provider=spec.provider,
            )
            stop.retryable = True  # the step may be retried: the pending rows are planned again as retries
            raise stop
        self._maybe_abort(result)
        self._maybe_progress(result)

    def _acknowledge(self, result: SyncResult, op: str, kind: str, results: Sequence[RowResult]) -> None:
        spec = self.spec
        now = now_utc()
        outcome = []
        for r in results:
            if r.transient:
                outcome.append("transient")
            elif r.ok:
                outcome.append("ok")
            elif r.suppressed:
                outcome.append("suppressed")
            else:
                outcome.append("rejected")
        if op == "unsubscribe":
            ok_status, ok_provider_status = "suppressed", "unsubscribed"
        elif kind == "remove":
            ok_status, ok_provider_status = "removed", "removed"
        else:
            ok_status, ok_provider_status = "synced", "active"
        ack = pa.table(
            {
                "pk": pa.array([r.email.strip().lower() for r in results], pa.string()),
                "result": pa.array(outcome, pa.string()),
                "error": pa.array([r.error for r in results], pa.string()),
                "provider_id": pa.array([r.provider_id for r in results], pa.string()),
            }
        )
        with self.wh.connect() as con:
            con.load_temp("ack_batch", ack)
            with con.transaction():
                con.execute(
                    f"""UPDATE {con.own("sync_state")} SET
                         status = CASE a.result WHEN 'ok' THEN ? WHEN 'suppressed' THEN 'suppressed'
                                  WHEN 'rejected' THEN 'rejected' ELSE sync_state.status END,
                         synced_fp = CASE WHEN a.result = 'ok' AND ? THEN sync_state.pending_fp
                                          WHEN a.result = 'ok' THEN NULL ELSE sync_state.synced_fp END,
                         provider_status = CASE a.result WHEN 'ok' THEN ? WHEN 'suppressed' THEN 'blacklisted'
                                           ELSE sync_state.provider_status END,
                         provider_id = coalesce(a.provider_id, sync_state.provider_id),
                         pending_op = CASE WHEN a.result = 'transient' THEN sync_state.pending_op ELSE NULL END,
                         pending_fp = CASE WHEN a.result = 'transient' THEN sync_state.pending_fp ELSE NULL END,
                         last_error = CASE WHEN a.result = 'ok' THEN NULL ELSE a.error END,
                         last_synced_at = CASE WHEN a.result = 'ok' THEN ? ELSE sync_state.last_synced_at END,
                         rejected_fp = CASE a.result WHEN 'rejected' THEN coalesce(?, sync_state.pending_fp)
                                       WHEN 'transient' THEN sync_state.rejected_fp ELSE NULL END
                       FROM ack_batch a
                       WHERE sync_state.provider = ? AND sync_state.book_id = ? AND sync_state.pk = a.pk""",
                    [
                        ok_status,
                        kind != "remove",
                        ok_provider_status,
                        now,
                        REJECTED_REMOVE if kind == "remove" else None,
                        spec.provider,
                        result.book_id,
                    ],
                )
                con.execute(
                    f"""INSERT INTO {con.own("sync_changelog")}
                         (run_id, sync_name, provider, book_id, pk, op, result, error, logged_at)
                       SELECT ?, ?, ?, ?, pk, ?, result, error, ? FROM ack_batch""",
                    [self.run_id, spec.name, spec.provider, result.book_id, op, now],
                )
            con.drop_temp("ack_batch")
        counts = Counter(outcome)
        result.counts[f"successful_{kind}"] += counts["ok"]
        result.counts[f"failed_{kind}"] += counts["rejected"]
        result.counts["suppressed"] += counts["suppressed"]
        result.counts["transient"] += counts["transient"]  # still pending: the next run retries them
        for r, o in zip(results, outcome, strict=True):
            if o in ("rejected", "suppressed"):
                self._reject(result, r.email, r.email.strip().lower(), r.error or o, "provider", None)

    def _maybe_abort(self, result: SyncResult) -> None:
        attempted = result.attempted
        if attempted < ABORT_AFTER_ATTEMPTS:
            return
        failed = sum(result.counts.get(f"failed_{op}", 0) for op in ("add", "change", "remove"))
        if 100.0 * failed / attempted > self.spec.abort_rejected_pct:
            raise SyncError(
                f"stopped early: {failed} of {attempted} rows rejected (> {self.spec.abort_rejected_pct}%); "
                "committed work stays, the rest waits for the next run",
                provider=self.spec.provider,
            )

    def _maybe_progress(self, result: SyncResult) -> None:
        now = time.monotonic()
        if now - self._last_progress < self._progress_every:
            return
        self._last_progress = now
        done = result.attempted
        planned = sum(result.counts.get(f"planned_{k}", 0) for k in ("add", "change", "remove"))
        self._progress(f"{self.spec.name}: {done}/{planned} rows applied in {result.counts['batches']} batches")

    # -- helpers ---------------------------------------------------------------------------------------------

    def _reject(
        self, result: SyncResult, raw: str | None, pk: str | None, reason: str, stage: str, payload: str | None
    ) -> None:
        result.rejects.append(
            {
                "raw_email": raw,
                "pk": pk,
                "reason": reason,
                "stage": stage,
                "values": payload,
                "sync_name": self.spec.name,
            }
        )

    def _count_state(self, book_id: str, status: str, con: WarehouseConnection | None = None) -> int:
        """Rows of the book in ``sync_state`` with this status."""
        with nullcontext(con) if con is not None else self.wh.connect() as c:
            row = c.fetchone(
                f"SELECT count(*) FROM {c.own('sync_state')} WHERE provider = ? AND book_id = ? AND status = ?",
                [self.spec.provider, book_id, status],
            )
        return int(row[0]) if row else 0

    def _record_run(self, result: SyncResult, status: str, started_at: datetime | None = None) -> None:
        """``status``: ``running``, then the outcome (``success``, ``partial``, ``failed`` or ``dry_run``)."""
        with self.wh.connect() as con, con.transaction():
            con.execute(
                f"""INSERT INTO {con.own("sync_runs")} (run_id, sync_name, provider, book_id, started_at,
                                          finished_at, dry_run, status, counts)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                   ON CONFLICT (run_id, sync_name) DO UPDATE SET finished_at = excluded.finished_at,
                     status = excluded.status, counts = excluded.counts, book_id = excluded.book_id""",
                [
                    self.run_id,
                    self.spec.name,
                    self.spec.provider,
                    result.book_id or None,
                    started_at or now_utc(),
                    None if status == "running" else now_utc(),
                    result.dry_run,
                    status,
                    json.dumps(result.metadata(), default=str),
                ],
            )


def run_sync(
    spec: SyncSpec,
    provider: EspProvider,
    warehouse: BaseWarehouse,
    *,
    run_id: str,
    options: SyncOptions | None = None,
    progress: ProgressFn | None = None,
    after_batch: BatchHook | None = None,
) -> SyncResult:
    """Plan (and unless dry run, apply) one sync; see :class:`SyncEngine`."""
    return SyncEngine(
        spec, provider, warehouse, run_id=run_id, options=options, progress=progress, after_batch=after_batch
    ).run()


@dataclass(frozen=True)
class SegmentHealth:
    """What the blocking source check looks at."""

    rows: int
    invalid: int
    duplicate_keys: int
    missing_columns: tuple[str, ...]
    synced_rows: int

    @property
    def invalid_pct(self) -> float:
        return 100.0 * self.invalid / self.rows if self.rows else 0.0


def segment_health(spec: SyncSpec, warehouse: BaseWarehouse, book_id: str | None = None) -> SegmentHealth:
    """Row count, invalid keys, duplicated keys and missing mapped columns of a segment, computed in SQL, after
    the segment passed its run-time guard and in a read-only transaction."""
    with warehouse.connect() as con:
        ensure_tables(con)
        check_segment_sql(con, spec.source_sql)  # a refused segment: SegmentSourceError, nothing read
        with con.read_only():
            columns = set(con.arrow(f"SELECT * FROM ({spec.source_sql}) AS seg LIMIT 0").column_names)
            needed = [spec.primary_key, *spec.fields.values()]
            missing = tuple(c for c in dict.fromkeys(needed) if c not in columns)
            if book_id is None:
                last = con.fetchone(
                    f"SELECT book_id FROM {con.own('sync_runs')} WHERE sync_name = ? "
                    "AND status IN ('success', 'partial') AND book_id IS NOT NULL ORDER BY finished_at DESC LIMIT 1",
                    [spec.name],
                )
                book_id = str(last[0]) if last else None
            row = con.fetchone(
                f"SELECT count(*) FROM {con.own('sync_state')} "
                "WHERE provider = ? AND book_id = ? AND status = 'synced'",
                [spec.provider, book_id or ""],
            )
            synced = int(row[0]) if row else 0
            if missing:
                return SegmentHealth(0, 0, 0, missing, synced)
            d = con.dialect
            pk = f"lower(trim({d.text('seg.' + quote_ident(spec.primary_key))}))"
            row = con.fetchone(
                f"""WITH raw AS (SELECT {pk} AS pk FROM ({spec.source_sql}) AS seg)
                SELECT (SELECT count(*) FROM raw),
                       (SELECT count(*) FROM raw WHERE pk IS NULL OR pk = '' OR NOT {d.email_syntax_ok("pk")}),
                       (SELECT count(*) FROM (SELECT pk FROM raw WHERE pk IS NOT NULL AND pk <> ''
                                              GROUP BY pk HAVING count(*) > 1) AS dup)"""
            )
    rows, invalid, dups = (int(x or 0) for x in (row or (0, 0, 0)))
    return SegmentHealth(rows, invalid, dups, (), synced)
