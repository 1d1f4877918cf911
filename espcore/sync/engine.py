"""Plan and apply: a warehouse segment becomes a provider book, with state, crash safety and suppression.

The full contract is ``docs/sync-semantics.md``; in short (the tables are in :mod:`espcore.sync.tables`, the
book lock in :mod:`espcore.sync.locks`, the run's counts in :mod:`espcore.sync.result`):

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
* **Apply** goes removes → changes → adds in provider-sized batches. A page of planned rows (whole batches) is
  written ahead in one transaction, as one row naming its key range in the run's plan; each batch is then sent
  once (the HTTP layer retries transient faults only); the answers are appended to the journal
  (``sync_changelog``) a group of calls per statement, and each page is folded into ``sync_state`` once its
  answers are journaled (one write per row). A page not folded normally has its rows made ``pending`` from
  that row (by the run as it stops, or by the next run's recovery after a kill). The warehouse work
  runs on a thread of its own (:class:`espcore.sync.pipeline.Bookkeeper`) while the calls go out. A row
  leaves the plan only once acknowledged (journaled), so a crash or kill at any point is resumed by the next
  run with nothing lost, and acknowledged rows are never resent (only the calls not yet journaled at the kill,
  and rows written ahead but not sent, are sent again: upserts or removes).
* **Rejects and pending rows.** A row the provider rejects for good keeps the fingerprint it was rejected with
  and is not sent again until its mapped values change (or a ``full_resync``); it is counted as
  ``rejected_unchanged``. A row left undecided (a transient per-row result, a failed batch) stays ``pending``
  and is retried by every run. A run that leaves rows pending or had rows rejected ends ``partial``.
* A dry run stops after the plan and writes nothing to the provider or to ``sync_state``.
"""

import json
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any

import pyarrow as pa

from espcore.errors import EspError
from espcore.providers.base import (
    Accepted,
    EspProvider,
    MemberInput,
    PreparedUpsert,
    PreparedWriter,
    RowResult,
    SuppressionSignature,
    calls_in_flight,
)
from espcore.sync.errors import MassRemoveError, SyncError
from espcore.sync.locks import LOCK_GRACE_S, LOCK_HEARTBEAT_S, LOCK_STALE_S, BookLock, LockRequest, book_lock
from espcore.sync.pipeline import (
    FOLDED,
    INTENT,
    PAGE,
    REFUSED,
    Bookkeeper,
    Call,
    ack_tables,
    apply_settings,
    checkpoint,
    from_micros,
    members_of,
    micros,
    outcome,
    parse_payloads,
    pc,
    prepared_calls,
    quick_checks,
    row_problems,
)
from espcore.sync.result import SyncResult
from espcore.sync.source import check_segment_sql
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.sync.tables import ensure_tables, now_utc
from espcore.sync.validate import address_rules, mask_email
from espcore.warehouse import BaseWarehouse, WarehouseConnection, quote_ident

__all__ = ["BatchHook", "ProgressFn", "SyncEngine", "run_sync"]

log = logging.getLogger("espcore.sync")

#: rows of the plan read, checked and written ahead at a time (rounded up to whole provider batches) ...
READ_PAGE = 20_000
#: ... or more, up to this, when an operation plans more than READ_PAGES pages of READ_PAGE rows ...
MAX_READ_PAGE = 50_000
READ_PAGES = 100
#: ... but fewer for an operation's first page, so that its first call goes out sooner
FIRST_PAGE = 2_000
#: answers journaled in one statement: the calls of this many rows, or of this many seconds, whichever is first
ACK_GROUP_ROWS = 10_000
ACK_GROUP_S = 0.5
#: pieces of warehouse work (pages, journal groups, folds) that may wait for the bookkeeper before a call waits
BOOKKEEPER_BACKLOG = 4
ABORT_AFTER_ATTEMPTS = 200
APPLY_ORDER = ("remove", "unsubscribe", "change", "add")
#: ``rejected_fp`` of a row whose removal the provider rejected (never an md5 fingerprint)
REJECTED_REMOVE = "remove"
#: a dry run's plan in ``sync_plan`` is kept while that run is running, for at most this long
PLAN_KEEP_RUNNING_S = 24 * 3600


ProgressFn = Callable[[str], None]
BatchHook = Callable[[str, int], None]


class SyncEngine:
    """Runs one :class:`SyncSpec` against one provider and one warehouse.

    ``after_batch(op, rows)``: called in the run's thread after each provider call, once its answers are
    journaled and before the next call; with it the run goes call by call (no call is sent before the previous
    one is acknowledged, and the lock is checked before each), which tests use to stop or hold a run at a known
    point. ``lock_heartbeat_s``/``lock_stale_s``: how often a run refreshes its book lock, and after how long without a
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
        self._progress_origin: tuple[float, int] | None = None  # (time, rows done) at the first batch
        self._suppression_signature: str | None = None  # read this run, stored if the run writes nothing
        self.suppressions_read = "none"  # full | unchanged (signature) | none (refresh_suppressions off)
        self._lock: BookLock | None = None
        self._unfolded: list[pa.Table] = []  # calls journaled since the last fold into sync_state
        self._bounds: dict[str, deque[str]] = {}  # per operation: the last key of each page still to read

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
                request = LockRequest(
                    spec.provider, spec.book, spec.name, self.run_id,
                    heartbeat_s=self.lock_heartbeat_s, stale_s=self.lock_stale_s, grace_s=self.lock_grace_s,
                )  # fmt: skip
                candidate = book_lock(self.wh, request)
                candidate.acquire()
                self._lock = lock = candidate
            book = self.provider.find_book(spec.book) if opts.dry_run else self.provider.ensure_book(spec.book)
            result.book_id = book.id if book is not None else f"(new) {spec.book}"
            if lock is not None:
                lock.set_book_id(result.book_id)
            if not opts.dry_run and book is not None:
                self._recover(book.id)
            self._record_run(result, "running")
            suppressed = self._fetch_suppressions(book.id if book is not None else None)
            self._plan(result, suppressed)
            if not opts.dry_run:
                self._apply(result)
                self._store_suppression_read(result)
            result.suppressions_read = self.suppressions_read
            result.elapsed_seconds = time.monotonic() - started
            states = self._count_states(result.book_id, ("synced", "pending"))
            result.synced_rows, result.counts["pending"] = states["synced"], states["pending"]
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

    def _suppressions_unchanged(self, book_id: str) -> bool:
        """The provider's suppression signature equals the one stored when a run last read every suppression of
        the book and then wrote nothing: those suppressions are all in ``sync_state`` already. Otherwise the
        signature is kept, to be stored if this run writes nothing (:meth:`_store_suppression_read`)."""
        if not isinstance(self.provider, SuppressionSignature) or self.options.full_suppression_read:
            return False
        signature = self.provider.suppression_signature(book_id)
        with self.wh.connect() as con:
            row = con.fetchone(
                f"SELECT signature FROM {con.own('sync_suppression_read')} WHERE provider = ? AND book_id = ?",
                [self.spec.provider, book_id],
            )
        if row is not None and row[0] == signature:
            return True
        self._suppression_signature = signature
        return False

    def _store_suppression_read(self, result: SyncResult) -> None:
        """After a run that read every suppression and wrote nothing to the book: its signature stands for them.
        A run that wrote moved the book's counts, so the next run reads in full (and stores the new one)."""
        signature, self._suppression_signature = self._suppression_signature, None
        if signature is None or result.counts.get("write_calls", 0) or result.book_id is None:
            return
        with self.wh.connect() as con, con.transaction():
            table = con.own("sync_suppression_read")
            con.execute(f"DELETE FROM {table} WHERE provider = ? AND book_id = ?", [self.spec.provider, result.book_id])
            con.execute(
                f"INSERT INTO {table} (provider, book_id, signature, read_at, run_id) VALUES (?, ?, ?, ?, ?)",
                [self.spec.provider, result.book_id, signature, now_utc(), self.run_id],
            )

    def _fetch_suppressions(self, book_id: str | None) -> pa.Table:
        pairs: dict[str, str] = {}
        self.suppressions_read = "none"
        if self.spec.refresh_suppressions and book_id is not None and self._suppressions_unchanged(book_id):
            self.suppressions_read = "unchanged"  # known from sync_state: not read again
        elif self.spec.refresh_suppressions:
            self.suppressions_read = "full"
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
            planned_remove = result.counts["planned_remove"]
            synced = self._count_state(result.book_id, "synced", con) if planned_remove else 0
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
        cutoff = datetime.fromtimestamp(time.time() - PLAN_KEEP_RUNNING_S, UTC)
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
        the mode.

        Only the key, its fingerprint and an unusual status go through the full join with the state (``synced``,
        the usual one, as NULL); the rare provider status and rejected fingerprint join its result from the
        few state rows that have them. The rows that a join carries are what it spills under a memory limit:
        at 10M rows this keeps the join as fast as a naive one of keys and fingerprints."""
        spec, d = self.spec, con.dialect
        bad_key = f"(j.pk = '' OR NOT coalesce({d.email_syntax_ok('j.pk')}, false))"
        resend_rejected = "TRUE" if self.options.full_resync else "FALSE"
        con.execute(
            f"""
            INSERT INTO {con.own("sync_plan")} (run_id, sync_name, provider, book_id, pk, action, op, fp, reason, n)
            WITH src AS (
                SELECT s.esp__pk AS pk, {self._fingerprint(con, "s")} AS fp FROM {self._segment(con)} AS s{d.fence}
            ),
            st AS (
                SELECT pk, synced_fp, CASE WHEN status = 'synced' THEN NULL ELSE status END AS status
                FROM {con.own("sync_state")} WHERE provider = ? AND book_id = ?
            ),
            sx AS (
                SELECT pk, provider_status, rejected_fp FROM {con.own("sync_state")}
                WHERE provider = ? AND book_id = ? AND (provider_status IS NOT NULL OR rejected_fp IS NOT NULL)
            ),
            j AS (
                SELECT coalesce(src.pk, st.pk, '') AS pk, src.fp, st.synced_fp IS NOT NULL AS synced,
                       coalesce(sup.reason, sx.provider_status) AS reason,
                  CASE
                    WHEN sup.pk IS NOT NULL OR st.status = 'suppressed'
                         OR sx.provider_status IN ('unsubscribed', 'blacklisted')
                      THEN CASE WHEN src.fp IS NULL THEN 'noop' ELSE 'suppressed' END
                    WHEN src.fp IS NULL AND st.status = 'rejected' AND sx.rejected_fp = '{REJECTED_REMOVE}'
                         AND NOT {resend_rejected} THEN 'rejected_remove'
                    WHEN src.fp IS NULL AND (st.synced_fp IS NOT NULL OR st.status = 'pending') THEN 'remove'
                    WHEN src.fp IS NULL THEN 'forget'
                    WHEN st.pk IS NULL OR st.status = 'removed' THEN 'add'
                    WHEN st.status = 'rejected' AND sx.rejected_fp = src.fp AND NOT {resend_rejected} THEN 'rejected'
                    WHEN st.status IN ('pending', 'rejected') THEN 'retry'
                    WHEN {resend_rejected} OR st.synced_fp IS DISTINCT FROM src.fp THEN 'change'
                    ELSE 'noop'
                  END AS action
                FROM src FULL OUTER JOIN st ON src.pk = st.pk
                LEFT JOIN sx ON sx.pk = st.pk
                LEFT JOIN provider_suppressed sup ON sup.pk = coalesce(src.pk, st.pk)
            )
            SELECT ?, ?, ?, ?, j.pk,
                   CASE WHEN m.checked AND {bad_key} THEN 'invalid' ELSE j.action END,
                   CASE WHEN m.checked AND {bad_key} THEN 'invalid' ELSE m.op END,
                   j.fp, j.reason, NULL
            FROM j JOIN {self._op_table()} ON m.action = j.action AND m.synced = j.synced
            WHERE m.op <> 'noop'
            """,
            [*[spec.provider, result.book_id] * 2, self.run_id, spec.name, spec.provider, result.book_id],
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
        # the bookkeeper's: calls journaled since the last fold (and whether each answered for the keys it sent,
        # in order), pages written ahead and not folded (run id, sync name, page id), the last page id
        self._unfolded = []
        self._exact = True
        self._open_pages: list[tuple[str, str, int]] = []
        self._last_page_id = 0
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
        batch = max(1, int(self.provider.batch_size))
        # calls in flight: one at a time when a hook runs after each call (it sees every answer journaled)
        width = 1 if self._after_batch is not None else calls_in_flight(self.provider)
        split_before = int(getattr(self.provider, "split_calls", 0))
        with (
            apply_settings(self.wh),
            Bookkeeper(self.wh, name=f"sync-bookkeeper-{spec.name}", backlog=BOOKKEEPER_BACKLOG) as bk,
            ThreadPoolExecutor(width, thread_name_prefix=f"sync-call-{spec.name}")
            if width > 1
            else nullcontext() as pool,
        ):
            try:
                for op in APPLY_ORDER:
                    self._apply_op(result, bk, op, batch, pool, width)
            finally:
                result.counts["split_calls"] += int(getattr(self.provider, "split_calls", 0)) - split_before

    def _apply_op(
        self,
        result: SyncResult,
        bk: Bookkeeper,
        op: str,
        batch: int,
        pool: ThreadPoolExecutor | None = None,
        width: int = 1,
    ) -> None:
        """Send one operation's planned rows, a page at a time. The bookkeeper reads and writes ahead (as a
        row naming its key range) the next page while this one is sent, journals the answers a group of calls at
        a time, and folds each page into ``sync_state`` once its answers are journaled; this thread only makes
        the calls and counts. With a ``pool``, up to ``width`` calls of a page are in flight at once (the provider's
        :class:`~espcore.providers.base.ConcurrentWriter`); their answers are taken in the order the calls were
        made, and when the run stops, those of the calls still in flight are taken and journaled first."""
        kind = "remove" if op in ("remove", "unsubscribe") else op
        planned = result.counts[f"planned_{kind}"]
        page_rows = min(MAX_READ_PAGE, max(READ_PAGE, -(-planned // READ_PAGES)))
        first, rest = (batch * -(-rows // batch) for rows in (FIRST_PAGE, page_rows))  # whole batches, >= 1
        book_id = result.book_id
        upcoming: Future[_Page | None] | None = bk.submit(partial(self._prepare, book_id, op, kind, "", first))
        group = _AckGroup()

        def take(page: _Page, start: int, answer: tuple[Sequence[RowResult], EspError | None]) -> EspError | None:
            results, transient = answer
            result.counts["batches"] += 1
            result.counts["write_calls"] += 1
            all_ok = self._count_answers(result, kind, results)
            group.add((op, page.pks[start : start + batch], results, all_ok))
            return transient

        try:
            while upcoming is not None:
                page = upcoming.result()
                upcoming = None
                if page is None:
                    break
                self._count_invalid(result, page)
                if page.more:  # written ahead while this page is sent
                    upcoming = bk.submit(partial(self._prepare, book_id, op, kind, page.last, rest))
                starts = iter(range(0, len(page.pks), batch))
                inflight: deque[tuple[int, Future[tuple[Sequence[RowResult], EspError | None]]]] = deque()
                sent_up_to = 0  # rows of the page whose call is made or in flight
                try:
                    while True:
                        while len(inflight) < width and (start := next(starts, None)) is not None:
                            bk.raise_if_failed()  # a failed journal append or lost lock stops the calls at once
                            inflight.append((start, self._call(pool, result, op, kind, page, start, start + batch)))
                            sent_up_to = min(len(page.pks), start + batch)
                        if not inflight:
                            break
                        start, call = inflight.popleft()
                        transient = take(page, start, call.result())
                        if self._after_batch is not None:
                            self._journal(bk, book_id, group).result()  # durable before the hook runs
                            self._after_batch(op, len(page.pks[start : start + batch]))
                        elif group.rows >= ACK_GROUP_ROWS or group.age() >= ACK_GROUP_S:
                            self._journal(bk, book_id, group)
                        if transient is not None:
                            left = len(page.pks) - sent_up_to + min(batch, len(page.pks) - start)
                            beside = sum(min(batch, len(page.pks) - s) for s, _ in inflight)  # may still answer
                            left += beside + _written_ahead(upcoming)
                            upcoming = None
                            stop = SyncError(
                                f"transient failure, {'up to ' if beside else ''}{left} rows left pending for the "
                                f"next run: {transient}",
                                provider=self.spec.provider,
                            )
                            stop.retryable = True  # the step may be retried: pending rows are planned again
                            raise stop
                        self._maybe_abort(result)
                        self._maybe_progress(result)
                finally:
                    while inflight:  # the run stops: the calls already made still answer, and count as made
                        start, call = inflight.popleft()
                        try:
                            take(page, start, call.result())
                        except Exception as late:  # its rows stay pending, as written ahead
                            log.warning("a call in flight as the run stopped failed: %s", late)
                self._journal(bk, book_id, group, page=page)
        except BaseException as exc:
            # The answers received are journaled, so they are not sent again, and every row written ahead is
            # marked pending in the state; on an error (not a kill or an interrupt, where the next run's
            # recovery folds them) the answers are folded too. A page not yet being written ahead is not.
            if upcoming is not None:
                upcoming.cancel()
            if bk.error is None:
                calls = group.take()
                try:
                    bk.submit(partial(self._wind_down, book_id, calls, fold=isinstance(exc, Exception))).result()
                except BaseException as wind_down:
                    log.warning("journaling the answers of a stopped run: %s", wind_down)
            raise

    def _prepare(self, book_id: str, op: str, kind: str, after: str, size: int) -> "_Page | None":
        """(Bookkeeper.) Read the next page of ``op``'s planned rows in key order (after key ``after``), check
        them for sending, and write the sendable ones ahead (:meth:`_write_ahead`); None when nothing is left."""
        spec = self.spec
        with self.wh.connect() as con:
            table, more = self._read_page(con, op, after, size)
        if table.num_rows == 0:
            return None
        pks: list[str] = table.column("pk").to_pylist()
        keys = table.select(["pk", "fp"])
        page = _Page(pks, [], [], pks[-1], more, keys)
        # every key an add the sync never wrote (see _read_page): none has state, so the fold may be a plain insert
        page.new = bool(pc.all(pc.fill_null(pc.equal(table.column("known"), False), False)).as_py())
        if kind != "remove":
            rules = address_rules(self.provider)  # the provider's own address rules, beyond the RFC's
            texts: list[str | None] = table.column("payload").to_pylist()
            known: list[bool | None] = table.column("known").to_pylist()
            if self.suppressions_read == "none":  # "never written" is then no promise that it is not suppressed
                known = [None if k is False else k for k in known]
            quick = quick_checks(table.column("pk"), table.column("payload"), rules, max_length=spec.max_value_length)
            unsure = range(len(pks)) if spec.required_fields else pc.indices_nonzero(pc.invert(quick)).to_pylist()
            refused: set[int] = set()
            for i in unsure:
                values = parse_payloads([texts[i]])[0]
                problem = row_problems(
                    pks[i], values, rules, required=spec.required_fields, max_length=spec.max_value_length
                )
                if problem:
                    refused.add(i)
                    page.invalid.append((pks[i], problem, texts[i]))
            if refused:
                keep = [i for i in range(len(pks)) if i not in refused]
                page.pks = [pks[i] for i in keep]
                texts = [texts[i] for i in keep]
                known = [known[i] for i in keep]
                page.keys = keys.take(pa.array(keep, pa.int64()))
            if isinstance(self.provider, PreparedWriter):  # the calls' requests, built here, off the calls' thread
                batch = max(1, int(self.provider.batch_size))
                page.prepared = prepared_calls(self.provider, book_id, page.pks, texts, known, batch)
            else:
                page.members = members_of(page.pks, texts, known)
        if page.pks:
            self._write_ahead(book_id, op, page, after)
        if not page.more:
            checkpoint(self.wh)  # the operation's last page: its calls have yet to go out
        return page

    def _read_page(self, con: WarehouseConnection, op: str, after: str, size: int) -> tuple[pa.Table, bool]:
        """(Bookkeeper.) The planned rows of ``op`` after key ``after``, in key order: the first page (``after``
        is empty) the first ``size`` of them; then, once, the last key of every following page of ``size`` rows
        is found in one sorted pass, and each page is read by its key range. So the plan is sorted once per
        operation, not once per page. Also says whether more rows may follow.

        ``known`` is whether the sync has written the key to this book before (``MemberInput.exists``): never
        for an add of a key without state (``reason`` is then NULL), for sure for a change, else it cannot say."""
        plan = con.own("sync_plan")
        rows = f"""SELECT pk, fp, payload,
                          CASE WHEN action = 'add' AND reason IS NULL THEN FALSE WHEN op = 'change' THEN TRUE
                          END AS known
                   FROM {plan} WHERE run_id = ? AND sync_name = ? AND op = ? AND pk > ?"""
        params: list[Any] = [self.run_id, self.spec.name, op, after]
        if not after:
            self._bounds.pop(op, None)
            table = con.arrow(rows + " ORDER BY pk LIMIT ?", [*params, size])
            return table, table.num_rows >= size
        bounds = self._bounds.get(op)
        if bounds is None:
            ends = con.fetchall(
                f"""SELECT pk FROM (
                       SELECT pk, row_number() OVER (ORDER BY pk) AS rn
                       FROM {plan} WHERE run_id = ? AND sync_name = ? AND op = ? AND pk > ?) AS k
                   WHERE rn % ? = 0 ORDER BY pk""",
                [*params, size],
            )
            bounds = self._bounds[op] = deque(str(r[0]) for r in ends)
        if bounds:
            return con.arrow(rows + " AND pk <= ? ORDER BY pk", [*params, bounds.popleft()]), True
        return con.arrow(rows + " ORDER BY pk", params), False

    def _write_ahead(self, book_id: str, op: str, page: "_Page", after: str) -> None:
        """(Bookkeeper.) Write a page ahead in one transaction, before any of its rows is sent: one row in the
        run's plan (``op`` :data:`PAGE`) that names the page by its key range, the run's planned rows of ``op``
        after ``after`` up to the last key the page read, and a :data:`REFUSED` row for each key of that range
        the pre-send checks refused. So the write-ahead costs a row per page, not per key: the state is written
        once per row, when the page is folded (:meth:`_record_answers`). Until then, a stop settles the page (its
        sendable rows become ``pending`` in the state, as a write-ahead into ``sync_state`` made them;
        :meth:`_wind_down`), and a kill leaves that to the next run's :meth:`_recover`: either way the next run
        retries exactly the rows whose call was never acknowledged."""
        spec = self.spec
        if self._lock is not None:
            self._lock.check()  # never touch the state of a book this run no longer holds
        page_id = max(micros(now_utc()), self._last_page_id + 1)  # the page's id is its write-ahead time
        self._last_page_id = page.id = page_id
        run = [self.run_id, spec.name, spec.provider, book_id]
        with self.wh.connect() as con:
            plan = con.own("sync_plan")
            if page.invalid:
                con.load_temp("wa_refused", pa.table({"pk": pa.array([r[0] for r in page.invalid], pa.string())}))
            with con.transaction():
                con.execute(
                    f"""INSERT INTO {plan} (run_id, sync_name, provider, book_id, pk, action, op, page_after, n)
                       VALUES (?, ?, ?, ?, ?, ?, '{PAGE}', ?, ?)""",
                    [*run, page.last, op, after, page_id],
                )
                if page.invalid:
                    con.execute(
                        f"""INSERT INTO {plan} (run_id, sync_name, provider, book_id, pk, action, op, n)
                           SELECT ?, ?, ?, ?, pk, ?, '{REFUSED}', ? FROM wa_refused""",
                        [*run, op, page_id],
                    )
            if page.invalid:
                con.drop_temp("wa_refused")
        self._open_pages.append((self.run_id, spec.name, page_id))

    def _count_invalid(self, result: SyncResult, page: "_Page") -> None:
        for pk, problem, payload in page.invalid:
            result.counts["invalid"] += 1
            self._reject(result, pk, pk, problem, "validate", payload)

    def _send(
        self, result: SyncResult, op: str, kind: str, page: "_Page", start: int, end: int
    ) -> tuple[Sequence[RowResult], EspError | None]:
        """One provider call for rows written ahead, sent once; its per-row results (every row transient when
        the call failed transiently, with that error)."""
        if self._after_batch is not None and self._lock is not None:
            self._lock.check()  # (step by step: before every call; else the bookkeeper checks per journal group)
        book_id = result.book_id
        transient: EspError | None = None
        try:
            if kind == "remove":
                results = self.provider.remove_members(book_id, page.pks[start:end], unsubscribe=op == "unsubscribe")
            elif page.prepared is not None and isinstance(self.provider, PreparedWriter):
                # the page's calls are one per batch, and a call's rows are the batch from ``start`` (end - start)
                results = self.provider.send_prepared(page.prepared[start // (end - start)])
            else:
                results = self.provider.upsert_members(book_id, page.members[start:end])
        except EspError as exc:
            if not exc.retryable:
                raise  # auth, quota, permission...: a step-wide fault; rows stay pending for the next run
            transient = exc
            results = [RowResult(pk, ok=False, error=str(exc), transient=True) for pk in page.pks[start:end]]
        return results, transient

    def _call(
        self,
        pool: ThreadPoolExecutor | None,
        result: SyncResult,
        op: str,
        kind: str,
        page: "_Page",
        start: int,
        end: int,
    ) -> Future[tuple[Sequence[RowResult], EspError | None]]:
        """:meth:`_send` on the pool, or made here and now (its outcome as a finished future) without one."""
        if pool is not None:
            return pool.submit(self._send, result, op, kind, page, start, end)
        done: Future[tuple[Sequence[RowResult], EspError | None]] = Future()
        try:
            done.set_result(self._send(result, op, kind, page, start, end))
        except Exception as exc:
            done.set_exception(exc)
        return done

    def _count_answers(self, result: SyncResult, kind: str, results: Sequence[RowResult]) -> bool:
        """Count one call's answers (and note its rejects); True when every row is a plain success."""
        if isinstance(results, Accepted) or all(r.ok and not r.transient for r in results):  # the common case
            result.counts[f"successful_{kind}"] += len(results)
            return True
        counts = Counter(outcome(r) for r in results)
        result.counts[f"successful_{kind}"] += counts["ok"]
        result.counts[f"failed_{kind}"] += counts["rejected"]
        result.counts["suppressed"] += counts["suppressed"]
        result.counts["transient"] += counts["transient"]  # still pending: the next run retries them
        for r in results:
            o = outcome(r)
            if o in ("rejected", "suppressed"):
                self._reject(result, r.email, r.email.strip().lower(), r.error or o, "provider", None)
        return False

    def _journal(
        self, bk: Bookkeeper, book_id: str, group: "_AckGroup", *, page: "_Page | None" = None
    ) -> "Future[None]":
        """Hand the calls answered since the last journal append to the bookkeeper (one statement for them all);
        ``page``: that page is done, so fold it into ``sync_state`` in the same transaction."""
        calls = group.take()
        if not calls and page is None:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return bk.submit(partial(self._append_journal, book_id, calls, page=page))

    def _append_journal(self, book_id: str, calls: list[Call], *, page: "_Page | None") -> None:
        """(Bookkeeper.) Journal a group of calls' per-row results: one append to ``sync_changelog`` (no index to
        maintain), the durable acknowledgement. ``sync_state`` is brought up to date from them once per page
        (``page``: its journaled results, in the same transaction), or by the next run's :meth:`_recover` when
        this one is killed first.

        Then it checks that the run still holds its book: what was answered is recorded in any case, but a run
        that lost its lock fails here, and its thread stops before its next call."""
        self._record_answers(book_id, calls, page=page)
        if self._lock is not None:
            self._lock.check()

    def _record_answers(self, book_id: str, calls: list[Call], *, page: "_Page | None") -> None:
        """Journal ``calls``; with ``page``, fold the page. When every call of the page answered for the keys it
        sent, in order (the usual answer), the fold is one upsert that writes each row's state in one go (the
        write-ahead and the answer: :func:`_fold_page_sql`); else the page is settled (its rows pending, as
        written ahead) and its answers folded into them (:func:`_fold_sql`), a row sent but not answered staying
        pending. Either way the page is marked folded in the same transaction."""
        spec = self.spec
        acks: pa.Table | None = None
        if calls:
            acks, folded = ack_tables(calls, now_utc())
            self._unfolded.append(folded)
            self._exact = self._exact and folded is acks
        fold = page is not None and bool(page.pks)
        if acks is None and not fold:
            return
        answers: pa.Table | None = None
        whole = False
        if page is not None and fold:
            answers = pa.concat_tables(self._unfolded) if self._unfolded else None
            whole = (
                answers is not None
                and self._exact
                and answers.num_rows == len(page.pks)
                and answers.column("pk").equals(page.keys.column("pk"))
            )
            if answers is not None and whole:
                answers = answers.append_column("fp", page.keys.column("fp"))
        with self.wh.connect() as con:
            if acks is not None:
                con.load_temp("ack_group", acks)
            if answers is not None:
                con.load_temp("ack_page", answers)
            if page is not None and fold:
                con.load_temp("wa_pages", _pages_table([(self.run_id, spec.name, page.id)]))

            def record(insert: bool) -> None:
                with con.transaction():
                    if acks is not None:
                        self._insert_journal(con, book_id)
                    if page is not None and fold:
                        if whole:
                            con.execute(
                                _fold_page_sql(con.own("sync_state"), "ack_page", insert=insert),
                                [spec.provider, book_id, from_micros(page.id), self.run_id],
                            )
                        else:
                            self._settle(con, book_id)
                            if answers is not None:
                                con.execute(_fold_sql(con.own("sync_state"), "ack_page"), [spec.provider, book_id])
                        self._mark_folded(con, book_id)

            insert = page is not None and whole and page.new
            try:
                record(insert)
            except Exception as exc:
                if not insert:
                    raise
                log.debug("a page of new keys met state (%s): folded with the upsert", exc)
                record(False)  # the transaction rolled back: journal and fold again, by the upsert
            if acks is not None:
                con.drop_temp("ack_group")
            if answers is not None:
                con.drop_temp("ack_page")
            if page is not None and fold:
                con.drop_temp("wa_pages")
        if page is not None:
            self._unfolded, self._exact = [], True
            self._open_pages = [p for p in self._open_pages if p[2] != page.id]

    def _wind_down(self, book_id: str, calls: list[Call], *, fold: bool) -> None:
        """(Bookkeeper.) A run stops: journal the calls answered since the last append, settle every page
        written ahead and not folded (its rows ``pending``; they include a page written ahead but never sent),
        and with ``fold`` (a stop on an error, not an interrupt) fold the answers journaled since the last fold
        into them. One transaction."""
        spec = self.spec
        acks: pa.Table | None = None
        if calls:
            acks, folded = ack_tables(calls, now_utc())
            self._unfolded.append(folded)
        answers = pa.concat_tables(self._unfolded) if fold and self._unfolded else None
        pages = list(self._open_pages)
        if acks is None and not pages:
            return
        with self.wh.connect() as con:
            if acks is not None:
                con.load_temp("ack_group", acks)
            if answers is not None:
                con.load_temp("ack_page", answers)
            if pages:
                con.load_temp("wa_pages", _pages_table(pages))
            with con.transaction():
                if acks is not None:
                    self._insert_journal(con, book_id)
                if pages:
                    self._settle(con, book_id)
                    self._mark_folded(con, book_id)
                    if answers is not None:
                        con.execute(_fold_sql(con.own("sync_state"), "ack_page"), [spec.provider, book_id])
            if acks is not None:
                con.drop_temp("ack_group")
            if answers is not None:
                con.drop_temp("ack_page")
            if pages:
                con.drop_temp("wa_pages")
        self._unfolded, self._exact, self._open_pages = [], True, []

    def _insert_journal(self, con: WarehouseConnection, book_id: str) -> None:
        """Append the calls in ``ack_group`` to the journal."""
        spec = self.spec
        con.execute(
            f"""INSERT INTO {con.own("sync_changelog")}
                 (run_id, sync_name, provider, book_id, pk, op, result, error, provider_id, logged_at)
               SELECT ?, ?, ?, ?, pk, op, result, error, provider_id, logged_at FROM ack_group""",
            [self.run_id, spec.name, spec.provider, book_id],
        )

    def _settle(self, con: WarehouseConnection, book_id: str) -> None:
        """Make the rows of the pages in ``wa_pages`` (run_id, sync_name, n, written_at) ``pending`` in the state
        as a write-ahead into ``sync_state`` did: the operation and fingerprint sent, one more attempt, the page's
        time and run; a key without state gets its row. What was answered is then folded into them as before."""
        spec = self.spec
        con.execute(_settle_sql(con.own("sync_state"), con.own("sync_plan")), [spec.provider, book_id] * 2)

    def _mark_folded(self, con: WarehouseConnection, book_id: str) -> None:
        """Mark the pages in ``wa_pages`` folded (a row per page in their run's plan, ``op`` :data:`FOLDED`): their
        rows are in the state now, and no recovery settles them again."""
        con.execute(
            f"""INSERT INTO {con.own("sync_plan")} (run_id, sync_name, provider, book_id, pk, action, op, n)
               SELECT run_id, sync_name, ?, ?, '', '{FOLDED}', '{FOLDED}', n FROM wa_pages""",
            [self.spec.provider, book_id],
        )

    def _recover(self, book_id: str) -> None:
        """Bring into ``sync_state`` what an earlier run was answered but did not fold before it was killed.

        First its pages written ahead and not folded are settled: their rows become ``pending`` with that run's
        id, exactly as a write-ahead into ``sync_state`` left them (:meth:`_settle`). Then the latest journal
        entry of each pending row of an earlier run decides it (acknowledged rows are never resent); a row
        without an answer stays pending and is retried."""
        spec = self.spec
        with self.wh.connect() as con:
            state, log_, plan = con.own("sync_state"), con.own("sync_changelog"), con.own("sync_plan")
            book = [spec.provider, book_id, self.run_id]
            pages = con.fetchall(
                f"""SELECT run_id, sync_name, n FROM {plan}
                    WHERE provider = ? AND book_id = ? AND run_id <> ? AND op IN ('{PAGE}', '{INTENT}')
                    EXCEPT
                    SELECT run_id, sync_name, n FROM {plan}
                    WHERE provider = ? AND book_id = ? AND run_id <> ? AND op = '{FOLDED}'""",
                [*book, *book],
            )
            if pages:
                con.load_temp("wa_pages", _pages_table([(str(r), str(s), int(n)) for r, s, n in pages]))
                with con.transaction():
                    self._settle(con, book_id)
                    self._mark_folded(con, book_id)
                con.drop_temp("wa_pages")
            orphaned = con.fetchone(
                f"SELECT count(*) FROM {state} WHERE provider = ? AND book_id = ? AND status = 'pending' "
                "AND run_id <> ?",
                book,
            )
            if not orphaned or not orphaned[0]:
                return
            journal = f"""(SELECT run_id, pk, op, result, error, provider_id, logged_at FROM (
                    SELECT c.run_id, c.pk, c.op, c.result, c.error, c.provider_id, c.logged_at,
                           row_number() OVER (PARTITION BY c.run_id, c.pk ORDER BY c.logged_at DESC) AS rn
                    FROM {log_} c
                    WHERE c.provider = ? AND c.book_id = ? AND c.run_id IN (
                        SELECT DISTINCT run_id FROM {state}
                        WHERE provider = ? AND book_id = ? AND status = 'pending' AND run_id <> ?)) AS j
                WHERE rn = 1)"""
            with con.transaction():
                con.execute(
                    _recover_sql(state, journal),
                    [spec.provider, book_id, spec.provider, book_id, self.run_id, spec.provider, book_id],
                )

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
        """Every ``progress_every_s`` of the apply: rows sent of the plan, the rate so far (which the provider's
        rate limit bounds) and when the rest will be done at that rate."""
        now = time.monotonic()
        done = result.attempted
        if self._progress_origin is None:  # the first batch: the rate is measured from here
            self._progress_origin = (now, done)
            self._last_progress = now
            return
        if now - self._last_progress < self._progress_every:
            return
        self._last_progress = now
        planned = sum(result.counts.get(f"planned_{k}", 0) for k in ("add", "change", "remove"))
        self._progress(
            progress_line(self.spec.name, done, planned, result.counts["batches"], self._progress_origin, now)
        )

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
        return self._count_states(book_id, (status,), con)[status]

    def _count_states(
        self, book_id: str, statuses: Sequence[str], con: WarehouseConnection | None = None
    ) -> dict[str, int]:
        """Rows of the book in ``sync_state`` with each of these statuses, in one pass over its rows."""
        counts = ", ".join("count(*) FILTER (WHERE status = ?)" for _ in statuses)
        with nullcontext(con) if con is not None else self.wh.connect() as c:
            row = c.fetchone(
                f"SELECT {counts} FROM {c.own('sync_state')} WHERE provider = ? AND book_id = ?",
                [*statuses, self.spec.provider, book_id],
            )
        return {status: int(row[i]) if row else 0 for i, status in enumerate(statuses)}

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


@dataclass
class _Page:
    """A page of one operation's plan, written ahead: its sendable keys (and, but for removals, their members
    in the same order), the rows the pre-send checks refused, the last key read, whether more may follow; the
    sendable keys with their fingerprints (``pk``, ``fp``, in the same order), the page's id (its write-ahead
    time in microseconds since the epoch, UTC), and whether every key is an add the sync never wrote."""

    pks: list[str]
    members: list[MemberInput]
    invalid: list[tuple[str, str, str | None]]
    last: str
    more: bool
    keys: pa.Table
    id: int = 0
    new: bool = False
    #: with a :class:`~espcore.providers.base.PreparedWriter`: the page's upsert calls, built ahead (instead of
    #: ``members``), one per provider batch
    prepared: list[PreparedUpsert] | None = None


@dataclass
class _AckGroup:
    """Calls answered but not yet handed to the journal."""

    calls: list[Call] = field(default_factory=list)
    rows: int = 0
    since: float = 0.0

    def add(self, call: Call) -> None:
        if not self.calls:
            self.since = time.monotonic()
        self.calls.append(call)
        self.rows += len(call[2])

    def age(self) -> float:
        return time.monotonic() - self.since if self.calls else 0.0

    def take(self) -> list[Call]:
        calls, self.calls, self.rows = self.calls, [], 0
        return calls


def _written_ahead(upcoming: "Future[_Page | None] | None") -> int:
    """Rows of the page the bookkeeper was asked to write ahead: none if it has not started (it is cancelled),
    else those it wrote (waits for it); 0 when it failed."""
    if upcoming is None or upcoming.cancel():
        return 0
    try:
        page = upcoming.result()
    except BaseException:
        return 0
    return len(page.pks) if page is not None else 0


def _pages_table(pages: Sequence[tuple[str, str, int]]) -> pa.Table:
    """Pages written ahead (run id, sync name, page id) with their write-ahead time, as ``wa_pages`` takes them."""
    return pa.table(
        {
            "run_id": pa.array([p[0] for p in pages], pa.string()),
            "sync_name": pa.array([p[1] for p in pages], pa.string()),
            "n": pa.array([p[2] for p in pages], pa.int64()),
            "written_at": pa.array([from_micros(p[2]) for p in pages], pa.timestamp("us", tz="UTC")),
        }
    )


def _settle_sql(state: str, plan: str) -> str:
    """The upsert that makes the sendable rows of the pages in ``wa_pages`` pending rows of ``sync_state`` (what
    the write-ahead into ``sync_state`` wrote before pages were written ahead as a row each). A page's rows are
    the run's planned rows of its operation in its key range, but for those it refused (:data:`PAGE`,
    :data:`REFUSED`); a page an earlier release wrote ahead has them as intents (:data:`INTENT`). A key is in
    one page of a run; should two pages name it, the latest wins. Parameters: provider and book id, twice."""
    return f"""INSERT INTO {state} (provider, book_id, pk, status, pending_op, pending_fp, attempts, last_attempt_at,
                                   run_id)
       SELECT provider, book_id, pk, 'pending', action, fp, 1, written_at, run_id FROM (
           SELECT i.*, row_number() OVER (PARTITION BY i.pk ORDER BY i.written_at DESC) AS k FROM (
               SELECT r.provider, r.book_id, r.pk, g.action, r.fp, p.written_at, r.run_id
               FROM wa_pages AS p
               JOIN {plan} AS g ON g.run_id = p.run_id AND g.sync_name = p.sync_name AND g.n = p.n
                    AND g.op = '{PAGE}'
               JOIN {plan} AS r ON r.run_id = g.run_id AND r.sync_name = g.sync_name AND r.op = g.action
                    AND r.pk > g.page_after AND r.pk <= g.pk
               LEFT JOIN {plan} AS x ON x.run_id = g.run_id AND x.sync_name = g.sync_name AND x.n = g.n
                    AND x.op = '{REFUSED}' AND x.pk = r.pk
               WHERE g.provider = ? AND g.book_id = ? AND x.pk IS NULL
               UNION ALL
               SELECT i.provider, i.book_id, i.pk, i.action, i.fp, p.written_at, i.run_id
               FROM wa_pages AS p
               JOIN {plan} AS i ON i.run_id = p.run_id AND i.sync_name = p.sync_name AND i.n = p.n
               WHERE i.provider = ? AND i.book_id = ? AND i.op = '{INTENT}'
           ) AS i
       ) AS intents
       WHERE k = 1
       ON CONFLICT (provider, book_id, pk) DO UPDATE SET
         status = 'pending', pending_op = excluded.pending_op, pending_fp = excluded.pending_fp,
         attempts = sync_state.attempts + 1, last_attempt_at = excluded.last_attempt_at, run_id = excluded.run_id"""


def _fold_page_sql(state: str, source: str, *, insert: bool = False) -> str:
    """The upsert that writes a page's rows into ``sync_state`` in one go: what the write-ahead into
    ``sync_state`` wrote (pending, one more attempt, the page's time and run) followed by the fold of the
    answer (:func:`_fold_assignments`), for a page whose every row was answered (``source``: pk, op, result,
    error, provider_id, logged_at, fp; one row per key). Parameters: provider, book id, the page's time, run id.

    A new key takes the insert; a key with state takes the conflict branch, through the key's index. There the
    values to insert (``excluded``) are those of a row without state, and what depends on the row as it was
    reads it: ``excluded.last_synced_at`` is set exactly when the answer is ``ok``, ``excluded.status`` is
    ``pending`` exactly when it is ``transient``, ``excluded.provider_status`` is NULL exactly when neither
    ``ok`` nor ``suppressed`` set it.

    ``insert``: the keys are all expected to be without state (adds the sync never wrote), so a plain insert,
    which skips the upsert's search for conflicts; a key with state after all fails it (the caller then folds
    with the upsert)."""
    values = f"""INSERT INTO {state} (provider, book_id, pk, status, synced_fp, provider_status, provider_id,
                                   pending_op, pending_fp, last_error, last_synced_at, rejected_fp, attempts,
                                   last_attempt_at, run_id)
       SELECT ?, ?, pk,
              CASE result
                  WHEN 'ok' THEN CASE op WHEN 'unsubscribe' THEN 'suppressed' WHEN 'remove' THEN 'removed'
                                 ELSE 'synced' END
                  WHEN 'suppressed' THEN 'suppressed' WHEN 'rejected' THEN 'rejected' ELSE 'pending' END,
              CASE WHEN result = 'ok' AND op NOT IN ('remove', 'unsubscribe') THEN fp END,
              CASE result
                  WHEN 'ok' THEN CASE op WHEN 'unsubscribe' THEN 'unsubscribed' WHEN 'remove' THEN 'removed'
                                 ELSE 'active' END
                  WHEN 'suppressed' THEN 'blacklisted' END,
              provider_id,
              CASE WHEN result = 'transient' THEN op END,
              CASE WHEN result = 'transient' THEN fp END,
              CASE WHEN result = 'ok' THEN NULL ELSE error END,
              CASE WHEN result = 'ok' THEN logged_at END,
              CASE WHEN result = 'rejected' THEN
                  CASE WHEN op IN ('remove', 'unsubscribe') THEN '{REJECTED_REMOVE}' ELSE fp END END,
              1, ?, ?
       FROM {source}"""
    if insert:
        return values
    return f"""{values}
       ON CONFLICT (provider, book_id, pk) DO UPDATE SET
         status = excluded.status,
         synced_fp = CASE WHEN excluded.last_synced_at IS NULL THEN sync_state.synced_fp ELSE excluded.synced_fp END,
         provider_status = coalesce(excluded.provider_status, sync_state.provider_status),
         provider_id = coalesce(excluded.provider_id, sync_state.provider_id),
         pending_op = excluded.pending_op, pending_fp = excluded.pending_fp, last_error = excluded.last_error,
         last_synced_at = coalesce(excluded.last_synced_at, sync_state.last_synced_at),
         rejected_fp = CASE WHEN excluded.status = 'pending' THEN sync_state.rejected_fp ELSE excluded.rejected_fp END,
         attempts = sync_state.attempts + 1, last_attempt_at = excluded.last_attempt_at, run_id = excluded.run_id"""


def _fold_assignments(result: str, op: str, error: str, provider_id: str, logged_at: str) -> str:
    """The ``SET`` list that applies one journaled per-row result (given as SQL expressions) to its
    ``sync_state`` row (``sync_state.<column>``: the row as it is)."""
    return f"""status = CASE {result}
                  WHEN 'ok' THEN CASE {op} WHEN 'unsubscribe' THEN 'suppressed' WHEN 'remove' THEN 'removed'
                                 ELSE 'synced' END
                  WHEN 'suppressed' THEN 'suppressed' WHEN 'rejected' THEN 'rejected' ELSE sync_state.status END,
         synced_fp = CASE WHEN {result} = 'ok' AND {op} NOT IN ('remove', 'unsubscribe') THEN sync_state.pending_fp
                          WHEN {result} = 'ok' THEN NULL ELSE sync_state.synced_fp END,
         provider_status = CASE {result}
                  WHEN 'ok' THEN CASE {op} WHEN 'unsubscribe' THEN 'unsubscribed' WHEN 'remove' THEN 'removed'
                                 ELSE 'active' END
                  WHEN 'suppressed' THEN 'blacklisted' ELSE sync_state.provider_status END,
         provider_id = coalesce({provider_id}, sync_state.provider_id),
         pending_op = CASE WHEN {result} = 'transient' THEN sync_state.pending_op ELSE NULL END,
         pending_fp = CASE WHEN {result} = 'transient' THEN sync_state.pending_fp ELSE NULL END,
         last_error = CASE WHEN {result} = 'ok' THEN NULL ELSE {error} END,
         last_synced_at = CASE WHEN {result} = 'ok' THEN {logged_at} ELSE sync_state.last_synced_at END,
         rejected_fp = CASE {result}
                  WHEN 'rejected' THEN CASE WHEN {op} IN ('remove', 'unsubscribe') THEN '{REJECTED_REMOVE}'
                                       ELSE sync_state.pending_fp END
                  WHEN 'transient' THEN sync_state.rejected_fp ELSE NULL END"""


def _fold_sql(state: str, source: str) -> str:
    """The statement that applies a run's own per-row results (``source``: pk, op, result, error, provider_id,
    logged_at; one row per key, every key written ahead) to ``sync_state``. Parameters: provider and book id.

    An upsert on the table's key, whose conflict branch is always taken (the rows were written ahead): it finds
    each row through the key's index, where an ``UPDATE ... FROM`` would scan every row of the table on DuckDB
    (every book's), once per page. The result's columns ride in ``excluded`` under the state's column names."""
    return f"""INSERT INTO {state} (provider, book_id, pk, status, pending_op, last_error, provider_id,
                                   last_synced_at, attempts)
       SELECT ?, ?, pk, result, op, error, provider_id, logged_at, 0 FROM {source}
       ON CONFLICT (provider, book_id, pk) DO UPDATE SET {
        _fold_assignments(
            "excluded.status",
            "excluded.pending_op",
            "excluded.last_error",
            "excluded.provider_id",
            "excluded.last_synced_at",
        )
    }"""


def _recover_sql(state: str, journal: str) -> str:
    """The ``UPDATE`` that applies an earlier run's journal (``journal``: run_id, pk, op, result, error,
    provider_id, logged_at; its latest entry per key) to the rows that run left pending for that operation.
    Parameters: the journal's own, then provider and book id."""
    return f"""UPDATE {state} SET {_fold_assignments("a.result", "a.op", "a.error", "a.provider_id", "a.logged_at")}
       FROM {journal} a
       WHERE sync_state.provider = ? AND sync_state.book_id = ? AND sync_state.pk = a.pk
         AND sync_state.status = 'pending' AND sync_state.run_id = a.run_id AND sync_state.pending_op = a.op"""


def progress_line(name: str, done: int, planned: int, batches: int, origin: tuple[float, int], now: float) -> str:
    """``<sync>: 12,000/100,000 rows sent (12%) in 120 calls, 800 rows/s, about 1m50s left``."""
    elapsed = now - origin[0]
    rate = (done - origin[1]) / elapsed if elapsed > 0 else 0.0
    share = f" ({done / planned:.0%})" if planned else ""
    line = f"{name}: {done:,}/{planned:,} rows sent{share} in {batches:,} call{'' if batches == 1 else 's'}"
    if rate <= 0:
        return line
    left = max(planned - done, 0) / rate
    return f"{line}, {rate:,.0f} rows/s, about {_duration(left)} left"


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


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
