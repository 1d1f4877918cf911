"""One live run per book: the book lock (PostgreSQL advisory lock, or a ``sync_lock`` row on DuckDB) and how a
dead holder is told from a live one."""

import logging
import os
import socket
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from espcore.sync.errors import SyncError, SyncLockedError
from espcore.sync.tables import as_utc, now_utc
from espcore.warehouse import BaseWarehouse, PostgresConnection, PostgresWarehouse, WarehouseConnection, lock_key

__all__ = [
    "LOCK_GRACE_S",
    "LOCK_HEARTBEAT_S",
    "LOCK_STALE_S",
    "AdvisoryBookLock",
    "BookLock",
    "LockHolder",
    "LockRequest",
    "RowBookLock",
    "advisory_lock_key",
    "book_lock",
    "holder_is_alive",
    "process_start_token",
]

log = logging.getLogger("espcore.sync")

#: a DuckDB lock holder's heartbeat period, and the age after which a holder on another host is presumed dead
LOCK_HEARTBEAT_S = 15.0
LOCK_STALE_S = 120.0
#: how long a run retries a PostgreSQL book lock held by another session before it gives up (a killed holder's
#: session is gone within milliseconds; this only covers that teardown)
LOCK_GRACE_S = 2.0


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


@dataclass(frozen=True)
class LockRequest:
    """Which run wants which book, and the lock's timings: ``heartbeat_s`` (how often the holder refreshes its
    row), ``stale_s`` (after how long without a refresh a holder that cannot be checked directly is presumed
    dead), ``grace_s`` (how long a PostgreSQL lock held by another session is retried: a killed holder's session
    teardown)."""

    provider: str
    book: str
    sync_name: str
    run_id: str
    heartbeat_s: float = LOCK_HEARTBEAT_S
    stale_s: float = LOCK_STALE_S
    grace_s: float = LOCK_GRACE_S


class BookLock(ABC):
    """One run's hold on one book, keyed by (provider, book name)."""

    def __init__(self, wh: BaseWarehouse, request: LockRequest) -> None:
        self.wh = wh
        self.request = request
        self._heartbeat: _Heartbeat | None = None

    @property
    def provider(self) -> str:
        return self.request.provider

    @property
    def book(self) -> str:
        return self.request.book

    @property
    def sync_name(self) -> str:
        return self.request.sync_name

    @property
    def run_id(self) -> str:
        return self.request.run_id

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
            as_utc(acquired_at), as_utc(heartbeat_at),
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

    def __init__(self, wh: BaseWarehouse, request: LockRequest) -> None:
        super().__init__(wh, request)
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
                alive, why = holder_is_alive(holder, held_here=held_here, stale_s=self.request.stale_s, now=now_utc())
                if alive:
                    raise self._locked_error(holder)
            self._claim(con, holder, why)
            with _HELD_GUARD:
                _HELD.add(self._key)
        self._heartbeat = _Heartbeat(self._beat, self.request.heartbeat_s, f"sync-lock-{self.book}")

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


def advisory_lock_key(wh: BaseWarehouse, provider: str, book: str) -> int:
    """The PostgreSQL advisory lock key of a book (a signed 64-bit integer)."""
    return lock_key(f"espcore.sync_lock:{wh.own_schema}:{provider}:{book}")


class AdvisoryBookLock(BookLock):
    """PostgreSQL: a session-level advisory lock held on a connection of the run's own (outside the pool) for the
    whole run. The server releases it when that connection drops, so a killed run frees the book at once. The
    ``sync_lock`` row only names the holder for the error message."""

    def __init__(self, wh: PostgresWarehouse, request: LockRequest) -> None:
        super().__init__(wh, request)
        self.pg = wh
        self.key = advisory_lock_key(wh, self.provider, self.book)
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
            deadline = time.monotonic() + self.request.grace_s
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
        self._heartbeat = _Heartbeat(self._beat, self.request.heartbeat_s, f"sync-lock-{self.book}")

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


def book_lock(wh: BaseWarehouse, request: LockRequest) -> BookLock:
    """The lock of one book for one run: an advisory lock on PostgreSQL, a ``sync_lock`` row elsewhere."""
    if isinstance(wh, PostgresWarehouse):
        return AdvisoryBookLock(wh, request)
    return RowBookLock(wh, request)
