"""Book locks die with their holder, and are taken before the book is looked up or created (issue #13).

* **SIGKILL.** A child process runs a real sync into the SendPulse sandbox (served by this process over loopback
  HTTP, so its state outlives the child) and stops after its first acknowledged batch; it is killed with SIGKILL.
  The next run, started at once, takes the book over within seconds (not after the 120 s stale period), marks
  the dead run failed, sends every remaining row and no row the dead run had acknowledged. On PostgreSQL a run
  started while the child still lives is refused, naming it.
* **DuckDB lock rows.** A ``sync_lock`` row naming a process that is gone, a zombie, a pid now used by another
  process, or another host with an old heartbeat is taken over at once; a live process, or another host with a
  fresh heartbeat, keeps the book.
* **Lost lock.** A run whose lock is taken from it (its row overwritten; its PostgreSQL lock session terminated)
  stops before its next write batch; the batches it acknowledged stay.
* **Two first syncs of a new book** create it once (a fake whose look-up-then-create races; Pakat's sandbox,
  which lets two lists share a name, through the real client over loopback).
"""

import itertools
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from espcore.http import HttpPolicy
from espcore.providers.base import EspProvider
from espcore.providers.pakat import PakatClient, PakatProvider
from espcore.providers.sendpulse import SendPulseClient, SendPulseProvider
from espcore.sandbox.pakat import DEMO_API_KEY as PAKAT_KEY
from espcore.sandbox.pakat import DEMO_SENDING_DOMAIN as PAKAT_DOMAIN
from espcore.sandbox.pakat import PakatSandbox, api_base_url
from espcore.sandbox.sendpulse import DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, SendPulseSandbox
from espcore.sandbox.server import SandboxServer
from espcore.sync.engine import SyncEngine, run_sync
from espcore.sync.errors import SyncError, SyncLockedError
from espcore.sync.locks import (
    LockHolder,
    _boot_id,
    _pid_namespace,
    advisory_lock_key,
    holder_is_alive,
    process_start_token,
)
from espcore.sync.result import SyncResult
from espcore.sync.spec import SyncSpec
from espcore.sync.tables import ensure_tables, now_utc
from espcore.warehouse import BaseWarehouse, PostgresWarehouse, Warehouse
from tests.sync.fakes import FakeProvider, HoldAfterFirstBatch, RacyBookProvider

ROOT = Path(__file__).resolve().parents[2]
PEOPLE = [(f"k{i}@example.com", f"Name{i}") for i in range(6)]
EMAILS = sorted(e for e, _ in PEOPLE)
BATCH = 2  # 6 rows: three write batches
NO_LIMITER = HttpPolicy(requests_per_second=0)
#: a dead holder is taken over well before the 120 s after which a silent holder on another host is presumed dead
TAKEOVER_S = 10.0


def no_sleep(seconds: float) -> None:
    """The clients back off through this: nothing here waits on a provider."""


def lock_spec(provider: str, book: str = "Lock book", name: str = "locks_sync") -> SyncSpec:
    return SyncSpec(
        name=name,
        provider=provider,
        book=book,
        source_sql="SELECT * FROM people",
        fields={"name": "first_name"},
    )


def fill(wh: BaseWarehouse) -> None:
    with wh.connect() as con:
        con.execute("DROP TABLE IF EXISTS people")
        con.execute("CREATE TABLE people (email VARCHAR, first_name VARCHAR)")
        for row in PEOPLE:
            con.execute("INSERT INTO people VALUES (?, ?)", list(row))


def rows(wh: BaseWarehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    with wh.connect() as con:
        return con.fetchall(sql.format(own=wh.own_schema), params)


def synced(wh: BaseWarehouse) -> list[str]:
    return [r[0] for r in rows(wh, "SELECT pk FROM {own}.sync_state WHERE status = 'synced' ORDER BY pk")]


# -- warehouses: a DuckDB file, or a fresh schema of the session's PostgreSQL --------------------------------------


@dataclass
class Wh:
    """A filled warehouse and what a child process needs to open the same one."""

    kind: str
    wh: BaseWarehouse
    config: dict[str, Any]


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_wh(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], Wh]:
    """A factory of filled warehouses of one engine."""
    n = itertools.count()
    if request.param == "postgres":
        server = request.getfixturevalue("pg_server")
        make = request.getfixturevalue("pg_warehouses")

        def pg() -> Wh:
            wh = make()
            fill(wh)
            cfg = {"kind": "postgres", "url": server.url(), "schema": wh.schema, "own_schema": wh.own_schema}
            return Wh("postgres", wh, cfg)

        return pg

    def duck() -> Wh:
        path = tmp_path / f"wh{next(n)}.duckdb"
        wh = Warehouse(path)
        fill(wh)  # the connection is closed again: a child process can open the file
        return Wh("duckdb", wh, {"kind": "duckdb", "path": str(path)})

    return duck


def open_wh(config: dict[str, Any]) -> BaseWarehouse:
    if config["kind"] == "postgres":
        return PostgresWarehouse(config["url"], schema=config["schema"], own_schema=config["own_schema"])
    return Warehouse(config["path"])


# -- a SendPulse sandbox served by this process, seeing every add-members body -------------------------------------

ADD_EMAILS = re.compile(r"/addressbooks/\d+/emails$")


class RecordingApp:
    """ASGI wrapper around a sandbox app: keeps the body of every add-members call (whoever made it)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.bodies: list[str] = []
        self._guard = threading.Lock()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "POST" or not ADD_EMAILS.search(scope["path"]):
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []

        async def recording_receive() -> dict[str, Any]:
            message = await receive()
            if message.get("type") == "http.request":
                chunks.append(message.get("body", b""))
            return message

        await self.app(scope, recording_receive, send)
        with self._guard:
            self.bodies.append(unquote(b"".join(chunks).decode()))

    def sent(self) -> Counter[str]:
        """How often each address was sent in an add-members call."""
        with self._guard:
            return Counter(e for body in self.bodies for e in re.findall(r"[a-z0-9]+@example\.com", body))


@pytest.fixture
def sendpulse() -> Iterator[tuple[RecordingApp, str]]:
    sandbox = SendPulseSandbox(seed=7, rate_limit=False)
    sandbox.reset(demo=True)
    app = RecordingApp(sandbox.app)
    with SandboxServer(app) as server:
        yield app, server.url


def sendpulse_provider(url: str) -> SendPulseProvider:
    provider = SendPulseProvider(
        SendPulseClient(DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, url, policy=NO_LIMITER, sleep=no_sleep)
    )
    provider.batch_size = BATCH
    return provider


# -- the child process --------------------------------------------------------------------------------------------


def child_main(config_json: str) -> None:
    """Run in a child process: sync into the sandbox at ``sandbox_url``; after the first acknowledged batch, say
    so in the ``marker`` file and hold the book until killed."""
    cfg = json.loads(config_json)
    wh = open_wh(cfg["warehouse"])
    marker = Path(cfg["marker"])

    def hold(op: str, size: int) -> None:
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(str(os.getpid()))
        tmp.replace(marker)
        time.sleep(600)

    run_sync(lock_spec("sendpulse"), sendpulse_provider(cfg["sandbox_url"]), wh, run_id=cfg["run_id"], after_batch=hold)
    raise SystemExit("the child run finished: it should have been killed while holding the book")


CHILD = "import sys; from tests.sync.test_locks import child_main; child_main(sys.argv[1])"


@dataclass
class Child:
    proc: subprocess.Popen[bytes]
    log: Path
    pid: int = field(init=False)

    def __post_init__(self) -> None:
        self.pid = self.proc.pid

    def why(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def kill(self) -> None:
        """SIGKILL: no handler, no finally, no lock release runs; wait until the process is dead."""
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Callable[[dict[str, Any], str, str], Child]]:
    children: list[Child] = []

    def start(warehouse: dict[str, Any], sandbox_url: str, run_id: str) -> Child:
        marker = tmp_path / f"{run_id}.acked"
        log = tmp_path / f"{run_id}.log"
        cfg = {"warehouse": warehouse, "sandbox_url": sandbox_url, "run_id": run_id, "marker": str(marker)}
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(cfg)],
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        child = Child(proc, log)
        children.append(child)
        deadline = time.monotonic() + 90
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"the child run ended ({proc.returncode}) before its first batch:\n{child.why()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the child run never acknowledged a batch:\n{child.why()}")
            time.sleep(0.05)
        assert int(marker.read_text()) == child.pid
        return child

    yield start
    for child in children:
        if child.proc.poll() is None:
            child.kill()


class CountingProvider(SendPulseProvider):
    """A SendPulse adapter that remembers the addresses this process sent."""

    def __init__(self, url: str) -> None:
        base = sendpulse_provider(url)
        super().__init__(base.client)
        self.batch_size = BATCH
        self.sent: list[str] = []

    def upsert_members(self, book_id, rows):  # type: ignore[override]
        self.sent.extend(r.email for r in rows)
        return super().upsert_members(book_id, rows)

    def send_prepared(self, prepared):  # type: ignore[override]  # how a sync sends the adds
        self.sent.extend(prepared.batch.emails)
        return super().send_prepared(prepared)


@pytest.mark.slow
@pytest.mark.network
def test_a_killed_run_frees_its_book_at_once_and_nothing_it_acknowledged_is_resent(new_wh, sendpulse, spawn):
    w: Wh = new_wh()
    recording, url = sendpulse
    child = spawn(w.config, url, "killed")
    first = recording.sent()
    assert sorted(first.values()) == [1] * BATCH  # the child's first batch reached the provider once

    me = CountingProvider(url)
    if w.kind == "postgres":
        # the holder lives (in another process): a second run is refused at once, naming it, and sends nothing
        started = time.monotonic()
        with pytest.raises(
            SyncLockedError, match=rf"run killed \(pid {child.pid} on {re.escape(socket.gethostname())}"
        ):
            run_sync(lock_spec("sendpulse"), me, w.wh, run_id="refused")
        assert time.monotonic() - started < TAKEOVER_S
        assert me.sent == []
        assert recording.sent() == first
    # (DuckDB: another process cannot open the file while the child runs, so there is nothing to refuse)

    child.kill()
    started = time.monotonic()
    result = run_sync(lock_spec("sendpulse"), me, w.wh, run_id="after")  # raises SyncLockedError if not taken over
    assert time.monotonic() - started < TAKEOVER_S

    assert result.outcome == "success"
    assert result.synced_rows == len(PEOPLE)
    assert sorted(me.sent) == sorted(set(EMAILS) - set(first))  # only what the dead run had not done
    assert recording.sent() == Counter(EMAILS)  # every row sent exactly once, over both runs
    members = [m.email for m in me.list_members(result.book_id)]
    assert sorted(members) == EMAILS
    assert synced(w.wh) == EMAILS
    runs = dict(rows(w.wh, "SELECT run_id, status FROM {own}.sync_runs"))
    assert runs["killed"] == "failed"  # it will never finish: the run that took over says so
    assert runs["after"] == "success"
    if w.kind == "postgres":
        assert runs["refused"] == "failed"
    assert rows(w.wh, "SELECT run_id FROM {own}.sync_lock") == []
    me.close()


# -- DuckDB lock rows: who is alive --------------------------------------------------------------------------------


def _me() -> dict[str, Any]:
    """What a lock row of a process on this machine holds besides its pid (the engine's own view)."""
    return {"host": socket.gethostname(), "boot_id": _boot_id(), "pid_ns": _pid_namespace()}


def holder(pid: int | None, *, proc_start: str | None = None, age_s: float = 0.0, **kw: Any) -> LockHolder:
    here = _me()
    beat = now_utc() - timedelta(seconds=age_s)
    values: dict[str, Any] = {
        "run_id": "other",
        "sync_name": "locks_sync",
        "host": here["host"],
        "pid": pid,
        "proc_start": proc_start if proc_start is not None else (process_start_token(pid) if pid else None),
        "boot_id": here["boot_id"],
        "pid_ns": here["pid_ns"],
        "acquired_at": beat,
        "heartbeat_at": beat,
    }
    values.update(kw)
    return LockHolder(**values)


def alive(h: LockHolder, *, held_here: bool = False, stale_s: float = 120.0) -> tuple[bool, str]:
    return holder_is_alive(h, held_here=held_here, stale_s=stale_s, now=now_utc())


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A live process that is not this one."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


def gone_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(30)
    return proc.pid


linux_only = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="process start times come from /proc")


@linux_only
def test_holder_is_alive_checks_the_process_on_this_machine(sleeper):
    assert process_start_token(sleeper.pid) is not None
    assert alive(holder(sleeper.pid)) == (True, "")
    # a process that is gone, even with a fresh heartbeat
    pid = gone_pid()
    ok, why = alive(holder(pid, proc_start="1"))
    assert not ok
    assert why in (f"process {pid} is gone", f"pid {pid} now belongs to another process")  # (reused meanwhile)
    # the pid now belongs to another process (another start time)
    ok, why = alive(holder(sleeper.pid, proc_start="1"))
    assert (ok, why) == (False, f"pid {sleeper.pid} now belongs to another process")
    # this very process: alive only while one of its runs holds the book (a run of it that died let go)
    mine = holder(os.getpid())
    assert alive(mine, held_here=True) == (True, "")
    assert alive(mine, held_here=False) == (False, "this process no longer runs it")


@linux_only
def test_a_zombie_holder_is_dead():
    """Killed but not yet reaped by its parent: the process table still has it, as a zombie."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        token = process_start_token(proc.pid)
        os.kill(proc.pid, signal.SIGKILL)
        os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)  # dead, left unreaped
        assert alive(holder(proc.pid, proc_start=token)) == (False, f"process {proc.pid} has exited")
    finally:
        proc.wait(10)


def test_a_holder_elsewhere_is_judged_by_its_heartbeat():
    other_host: dict[str, Any] = {"host": "some-other-host", "boot_id": "b", "pid_ns": "pid:[1]"}
    assert alive(holder(4242, age_s=5, **other_host)) == (True, "")
    ok, why = alive(holder(4242, age_s=600, **other_host))
    assert not ok
    assert why.startswith("no heartbeat for 60")
    # same host name after a reboot (another boot id): the pid means nothing, only the heartbeat counts
    rebooted = holder(os.getpid(), age_s=600, boot_id="another-boot")
    assert alive(rebooted)[0] is False
    assert alive(holder(os.getpid(), age_s=1, boot_id="another-boot"))[0] is True
    # a row with no heartbeat at all
    assert alive(holder(4242, acquired_at=None, heartbeat_at=None, **other_host))[0] is False


def put_lock_row(wh: BaseWarehouse, h: LockHolder, *, provider: str = "fake", book: str = "Lock book") -> None:
    """Leave a lock row (and a ``running`` run) as a run of that holder would have."""
    with wh.connect() as con:
        ensure_tables(con)
        con.execute(
            f"""INSERT INTO {con.own("sync_lock")} (provider, book, book_id, run_id, sync_name, host, pid, proc_start,
                                                   boot_id, pid_ns, acquired_at, heartbeat_at)
                VALUES (?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
            [provider, book, h.run_id, h.sync_name, h.host, h.pid, h.proc_start, h.boot_id, h.pid_ns,
             h.acquired_at, h.heartbeat_at],
        )  # fmt: skip
        con.execute(
            f"""INSERT INTO {con.own("sync_runs")} (run_id, sync_name, provider, book_id, started_at, dry_run, status)
                VALUES (?, ?, ?, NULL, ?, FALSE, 'running')""",
            [h.run_id, h.sync_name, provider, h.acquired_at],
        )


def duck(tmp_path: Path) -> Warehouse:
    wh = Warehouse(tmp_path / "wh.duckdb")
    fill(wh)
    return wh


DEAD_HOLDERS: dict[str, Callable[[int], LockHolder]] = {
    "gone": lambda live_pid: holder(gone_pid(), proc_start="1"),
    "reused_pid": lambda live_pid: holder(live_pid, proc_start="1"),
    "other_host_silent": lambda live_pid: holder(4242, age_s=3600, host="some-other-host", boot_id="b"),
}


@linux_only
@pytest.mark.parametrize("case", sorted(DEAD_HOLDERS))
def test_a_dead_holders_row_is_taken_over_at_once(tmp_path, sleeper, case):
    wh = duck(tmp_path)
    put_lock_row(wh, DEAD_HOLDERS[case](sleeper.pid))
    p = FakeProvider(batch_size=BATCH)
    started = time.monotonic()
    r = run_sync(lock_spec("fake"), p, wh, run_id="next")
    assert time.monotonic() - started < TAKEOVER_S
    assert (r.outcome, r.synced_rows) == ("success", len(PEOPLE))
    assert dict(rows(wh, "SELECT run_id, status FROM {own}.sync_runs")) == {"other": "failed", "next": "success"}
    assert rows(wh, "SELECT * FROM {own}.sync_lock") == []


LIVE_HOLDERS: dict[str, Callable[[int], LockHolder]] = {
    "live_process": lambda live_pid: holder(live_pid),
    "other_host_fresh": lambda live_pid: holder(4242, age_s=5, host="some-other-host", boot_id="b"),
}


@linux_only
@pytest.mark.parametrize("case", sorted(LIVE_HOLDERS))
def test_a_live_holders_row_keeps_the_book(tmp_path, sleeper, case):
    wh = duck(tmp_path)
    h = LIVE_HOLDERS[case](sleeper.pid)
    put_lock_row(wh, h)
    p = FakeProvider(batch_size=BATCH)
    started = time.monotonic()
    with pytest.raises(SyncLockedError, match=rf"run other \(pid {h.pid} on {re.escape(str(h.host))}"):
        run_sync(lock_spec("fake"), p, wh, run_id="next")
    assert time.monotonic() - started < TAKEOVER_S
    assert (p.write_calls, p.books) == ([], {})  # refused before the book was even looked up
    assert rows(wh, "SELECT run_id FROM {own}.sync_lock") == [("other",)]
    assert dict(rows(wh, "SELECT run_id, status FROM {own}.sync_runs")) == {"other": "running", "next": "failed"}


def test_one_duckdb_file_under_two_spellings_is_one_lock(tmp_path):
    """A run of this process holds the book through ``wh.duckdb``; a run reaching the same file as
    ``sub/../wh.duckdb`` must see a live holder (this process), not a dead one to take over."""
    (tmp_path / "sub").mkdir()
    first_wh, second_wh = duck(tmp_path), Warehouse(tmp_path / "sub" / ".." / "wh.duckdb")
    assert first_wh.location != second_wh.location
    p = FakeProvider(batch_size=BATCH)
    p.ensure_book("Lock book")
    hold = HoldAfterFirstBatch()

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(run_sync, lock_spec("fake"), p, first_wh, run_id="r1", after_batch=hold)
        try:
            assert hold.holding.wait(30)
            with pytest.raises(SyncLockedError, match=rf"run r1 \(pid {os.getpid()} "):
                run_sync(lock_spec("fake"), p, second_wh, run_id="r2")
            assert len(p.write_calls) == 1  # the second run sent nothing
        finally:
            hold.release()
        assert first.result(timeout=60).synced_rows == len(PEOPLE)
    assert dict(rows(first_wh, "SELECT run_id, status FROM {own}.sync_runs")) == {"r1": "success", "r2": "failed"}


# -- a run that lost its lock stops before its next write ----------------------------------------------------------


def steal_row(wh: BaseWarehouse, engine: SyncEngine) -> None:
    """Another run overwrites the lock row (as a run that judged this one dead would)."""
    with wh.connect() as con:
        con.execute(
            f"UPDATE {con.own('sync_lock')} SET run_id = 'intruder', pid = NULL, heartbeat_at = ? "
            "WHERE provider = ? AND book = ?",
            [now_utc(), engine.spec.provider, engine.spec.book],
        )


def kill_lock_session(wh: BaseWarehouse, engine: SyncEngine) -> None:
    """An administrator (or a network cut) ends the session that holds the PostgreSQL advisory lock."""
    assert isinstance(wh, PostgresWarehouse)
    key = advisory_lock_key(wh, engine.spec.provider, engine.spec.book) & 0xFFFFFFFFFFFFFFFF
    with wh.connect() as con:
        held = con.fetchall(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid::bigint = ? "
            "AND objid::bigint = ? AND objsubid = 1",
            [key >> 32, key & 0xFFFFFFFF],
        )
        assert len(held) == 1, held
        assert con.fetchone("SELECT pg_terminate_backend(?)", [held[0][0]]) == (True,)


def test_a_run_that_lost_its_lock_stops_before_its_next_write(new_wh):
    """Right after its first batch the run's lock is taken from it; it must not write a second batch, even
    though its heartbeat (every 15 s) has not beaten since."""
    w: Wh = new_wh()
    p = FakeProvider(batch_size=BATCH)
    p.ensure_book("Lock book")
    steal = kill_lock_session if w.kind == "postgres" else steal_row
    engine: SyncEngine | None = None

    def after_first_batch(op: str, size: int) -> None:
        assert engine is not None
        if len(p.write_calls) == 1:
            steal(w.wh, engine)

    engine = SyncEngine(lock_spec("fake"), p, w.wh, run_id="r1", after_batch=after_first_batch)
    with pytest.raises(SyncError, match="lost the lock") as err:
        engine.run()
    assert not isinstance(err.value, SyncLockedError)
    assert [len(emails) for _, emails in p.write_calls] == [BATCH]  # nothing written after the lock was lost
    assert synced(w.wh) == EMAILS[:BATCH]  # the acknowledged batch stays
    assert rows(w.wh, "SELECT run_id, status FROM {own}.sync_runs") == [("r1", "failed")]
    if w.kind == "duckdb":
        assert rows(w.wh, "SELECT run_id FROM {own}.sync_lock") == [("intruder",)]  # not ours to delete
    else:
        # the session (and the lock with it) is gone: the next run goes ahead and finishes the book
        r = run_sync(lock_spec("fake"), p, w.wh, run_id="r2")
        assert (r.outcome, r.synced_rows) == ("success", len(PEOPLE))
        assert sorted(e for _, es in p.write_calls for e in es) == EMAILS


# -- item 4: two first syncs of a new book create it once ---------------------------------------------------------


def together(*jobs: Callable[[], SyncResult]) -> list[SyncResult | BaseException]:
    """Start the jobs in threads at the same moment; each one's result or exception."""
    start = threading.Barrier(len(jobs), timeout=20)

    def go(job: Callable[[], SyncResult]) -> SyncResult:
        start.wait()
        return job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        futures = [pool.submit(go, job) for job in jobs]
        out: list[SyncResult | BaseException] = []
        for f in futures:
            exc = f.exception(timeout=60)
            out.append(exc if exc is not None else f.result())
    return out


def check_one_winner(outcomes: list[SyncResult | BaseException], writes: Callable[[SyncResult], int]) -> None:
    """One run synced the book; the other was refused, or waited and found nothing left to do."""
    for o in outcomes:
        if isinstance(o, BaseException) and not isinstance(o, SyncLockedError):
            raise o
    results = [o for o in outcomes if isinstance(o, SyncResult)]
    assert results, outcomes
    assert sorted(writes(r) for r in results)[-1] > 0
    assert sum(1 for r in results if writes(r) > 0) == 1, "both runs wrote to the book"
    assert all(r.outcome == "success" for r in results)


def test_two_first_syncs_of_a_new_book_create_it_once(new_wh):
    w: Wh = new_wh()
    p = RacyBookProvider(batch_size=BATCH, lookup_delay_s=0.3)
    assert p.find_book("Lock book") is None

    def job(run: str) -> Callable[[], SyncResult]:
        return lambda: run_sync(lock_spec("fake"), p, w.wh, run_id=run)

    outcomes = together(job("r1"), job("r2"))
    assert p.created == ["Lock book"]  # without the lock both runs find no book and both create one
    check_one_winner(outcomes, lambda r: r.counts["write_calls"])
    assert Counter(e for _, es in p.write_calls for e in es) == Counter(EMAILS)  # each row sent once
    assert sorted(p.members[p.books["Lock book"]]) == EMAILS


@pytest.mark.network
def test_two_first_syncs_create_one_pakat_list(tmp_path):
    """Pakat (MailWizz) lets two lists share a name: only the book lock keeps a second one from being made."""
    sandbox = PakatSandbox(seed=7)
    sandbox.reset(demo=True)
    # a slow list look-up, as on a busy account: both runs look before either creates
    sandbox.faults.add("latency", method="GET", path=r"/lists$", seconds=0.5)
    wh = duck(tmp_path)
    book = "Lock list"
    with SandboxServer(sandbox.app) as server:

        def adapter() -> PakatProvider:
            client = PakatClient(PAKAT_KEY, api_base_url(server.url), policy=NO_LIMITER, sleep=no_sleep)
            return PakatProvider(client, from_email=f"news@{PAKAT_DOMAIN}")

        adapters = [adapter(), adapter()]  # two runs, two clients: as two processes would have

        def job(run: str, provider: EspProvider) -> Callable[[], SyncResult]:
            return lambda: run_sync(lock_spec("pakat", book=book), provider, wh, run_id=run)

        outcomes = together(job("r1", adapters[0]), job("r2", adapters[1]))
        lists = [lst for lst in adapters[0].client.lists() if lst.name == book]
        assert len(lists) == 1, f"{len(lists)} lists named {book!r}"
        check_one_winner(outcomes, lambda r: r.counts["write_calls"])
        members = [m.email for m in adapters[0].list_members(lists[0].list_uid)]
        assert sorted(members) == EMAILS
        bulk = [path for method, path, _ in sandbox.request_log if method == "POST" and path.endswith("/bulk")]
        assert len(bulk) == 1  # the six rows, sent once
        for a in adapters:
            a.close()
