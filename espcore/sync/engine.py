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
* **Apply** goes removes → changes → adds in provider-sized batches. A page of planned rows (at least one
  batch) is written ahead (``pending``) in one transaction; each batch is then sent once (the HTTP layer
  retries transient faults only) and acknowledged per row in one transaction. A row leaves the plan only once
  acknowledged, so a crash or kill at any point is resumed by the next run with nothing lost, and acknowledged
  rows are never resent (only the batch in flight at the kill is sent again: an upsert or remove).
* **Rejects and pending rows.** A row the provider rejects for good keeps the fingerprint it was rejected with
  and is not sent again until its mapped values change (or a ``full_resync``); it is counted as
  ``rejected_unchanged``. A row left undecided (a transient per-row result, a failed batch) stays ``pending``
  and is retried by every run. A run that leaves rows pending or had rows rejected ends ``partial``.
* A dry run stops after the plan and writes nothing to the provider or to ``sync_state``.
"""

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from espcore.errors import EspError
from espcore.providers.base import EspProvider, MemberInput, RowResult
from espcore.sync.errors import MassRemoveError, SyncError
from espcore.sync.locks import LOCK_GRACE_S, LOCK_HEARTBEAT_S, LOCK_STALE_S, BookLock, LockRequest, book_lock
from espcore.sync.result import SyncResult
from espcore.sync.source import check_segment_sql
from espcore.sync.spec import SyncOptions, SyncSpec
from espcore.sync.tables import ensure_tables, now_utc
from espcore.sync.validate import address_rules, email_problem, mask_email, value_problem
from espcore.warehouse import BaseWarehouse, WarehouseConnection, quote_ident

__all__ = ["BatchHook", "ProgressFn", "SyncEngine", "run_sync"]

log = logging.getLogger("espcore.sync")

READ_PAGE = 5_000
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
        self._unfolded: list[pa.Table] = []  # calls journaled since the last fold into sync_state

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
        """The planned rows of ``op`` in key order, a page at a time: at least one provider batch per page, so
        a bulk call is never split by the read."""
        size = max(READ_PAGE, int(self.provider.batch_size))
        last = ""
        while True:
            with self.wh.connect() as con:
                rows = con.fetchall(
                    f"""SELECT pk, fp, payload FROM {con.own("sync_plan")}
                       WHERE run_id = ? AND sync_name = ? AND op = ? AND pk > ? ORDER BY pk LIMIT ?""",
                    [self.run_id, self.spec.name, op, last, size],
                )
            if not rows:
                return
            yield [(str(r[0]), r[1], r[2]) for r in rows]
            last = str(rows[-1][0])
            if len(rows) < size:
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
        if not sendable:
            return
        self._write_ahead(result, op, sendable)
        size = max(1, int(self.provider.batch_size))
        try:
            for start in range(0, len(sendable), size):
                batch = sendable[start : start + size]
                self._send_batch(result, op, kind, batch, written_ahead=len(sendable) - start - len(batch))
        except Exception:
            self._fold(result)  # what was acknowledged is kept in the state before the run stops
            raise
        self._fold(result)

    def _write_ahead(self, result: SyncResult, op: str, rows: list[tuple[str, str | None, dict[str, Any]]]) -> None:
        """Mark a page of rows ``pending`` (with the operation and fingerprint about to be sent) in one
        transaction, before any of them is sent: a run killed mid-page leaves them pending, and the next run
        retries exactly those whose call was never acknowledged."""
        spec = self.spec
        keys = pa.table(
            {"pk": pa.array([r[0] for r in rows], pa.string()), "fp": pa.array([r[1] for r in rows], pa.string())}
        )
        if self._lock is not None:
            self._lock.check()  # never touch the state of a book this run no longer holds
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
                    [spec.provider, result.book_id, op, now_utc(), self.run_id],
                )
            con.drop_temp("wa_batch")

    def _send_batch(
        self,
        result: SyncResult,
        op: str,
        kind: str,
        batch: list[tuple[str, str | None, dict[str, Any]]],
        *,
        written_ahead: int = 0,
    ) -> None:
        """One provider call for rows written ahead, then its acknowledgement (one transaction);
        ``written_ahead``: rows of the page after this batch, pending too if this call stops the run."""
        spec = self.spec
        book_id = result.book_id
        if self._lock is not None:
            self._lock.check()  # never write to a book this run no longer holds
        # send once
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
        # acknowledge
        self._acknowledge(result, op, kind, results)
        if self._after_batch is not None:
            self._after_batch(op, len(batch))
        if transient_error is not None:
            stop = SyncError(
                f"transient failure, {len(batch) + written_ahead} rows left pending for the next run: "
                f"{transient_error}",
                provider=spec.provider,
            )
            stop.retryable = True  # the step may be retried: the pending rows are planned again as retries
            raise stop
        self._maybe_abort(result)
        self._maybe_progress(result)

    def _acknowledge(self, result: SyncResult, op: str, kind: str, results: Sequence[RowResult]) -> None:
        """Journal one call's per-row results: appended to ``sync_changelog`` (one insert, no index to
        maintain), the durable acknowledgement. ``sync_state`` is brought up to date from them once per page
        (:meth:`_fold`), or by the next run's :meth:`_recover` when this one is killed first."""
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
        ack = pa.table(
            {
                "pk": pa.array([r.email.strip().lower() for r in results], pa.string()),
                "op": pa.array([op] * len(results), pa.string()),
                "result": pa.array(outcome, pa.string()),
                "error": pa.array([r.error for r in results], pa.string()),
                "provider_id": pa.array([r.provider_id for r in results], pa.string()),
                "logged_at": pa.array([now] * len(results), pa.timestamp("us")),
            }
        )
        with self.wh.connect() as con:
            con.load_temp("ack_batch", ack)
            con.execute(
                f"""INSERT INTO {con.own("sync_changelog")}
                     (run_id, sync_name, provider, book_id, pk, op, result, error, provider_id, logged_at)
                   SELECT ?, ?, ?, ?, pk, op, result, error, provider_id, logged_at FROM ack_batch""",
                [self.run_id, spec.name, spec.provider, result.book_id],
            )
            con.drop_temp("ack_batch")
        self._unfolded.append(ack)
        counts = Counter(outcome)
        result.counts[f"successful_{kind}"] += counts["ok"]
        result.counts[f"failed_{kind}"] += counts["rejected"]
        result.counts["suppressed"] += counts["suppressed"]
        result.counts["transient"] += counts["transient"]  # still pending: the next run retries them
        for r, o in zip(results, outcome, strict=True):
            if o in ("rejected", "suppressed"):
                self._reject(result, r.email, r.email.strip().lower(), r.error or o, "provider", None)

    def _fold(self, result: SyncResult) -> None:
        """Bring ``sync_state`` up to date with the calls journaled since the last fold, in one statement."""
        if not self._unfolded:
            return
        acks = pa.concat_tables(self._unfolded)
        with self.wh.connect() as con:
            con.load_temp("ack_page", acks)
            with con.transaction():
                con.execute(_fold_sql(con.own("sync_state"), "ack_page"), [self.spec.provider, result.book_id])
            con.drop_temp("ack_page")
        self._unfolded = []

    def _recover(self, book_id: str) -> None:
        """Fold what an earlier run journaled but did not fold before it was killed: its rows are still
        ``pending`` with that run's id; the latest journal entry of each decides it (acknowledged rows are
        never resent)."""
        spec = self.spec
        with self.wh.connect() as con:
            state, log_ = con.own("sync_state"), con.own("sync_changelog")
            orphaned = con.fetchone(
                f"SELECT count(*) FROM {state} WHERE provider = ? AND book_id = ? AND status = 'pending' "
                "AND run_id <> ?",
                [spec.provider, book_id, self.run_id],
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
                    _fold_sql(state, journal, recovering=True),
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


def _fold_sql(state: str, source: str, *, recovering: bool = False) -> str:
    """The ``UPDATE`` that applies journaled per-row results (``source``: pk, op, result, error, provider_id,
    logged_at) to ``sync_state``. Parameters: the source's own, then provider and book id. ``recovering``: the
    source is an earlier run's journal, which decides only rows that run left pending for that operation."""
    only_pending = (
        " AND sync_state.status = 'pending' AND sync_state.run_id = a.run_id AND sync_state.pending_op = a.op"
        if recovering
        else ""
    )
    return f"""UPDATE {state} SET
         status = CASE a.result
                  WHEN 'ok' THEN CASE a.op WHEN 'unsubscribe' THEN 'suppressed' WHEN 'remove' THEN 'removed'
                                 ELSE 'synced' END
                  WHEN 'suppressed' THEN 'suppressed' WHEN 'rejected' THEN 'rejected' ELSE sync_state.status END,
         synced_fp = CASE WHEN a.result = 'ok' AND a.op NOT IN ('remove', 'unsubscribe') THEN sync_state.pending_fp
                          WHEN a.result = 'ok' THEN NULL ELSE sync_state.synced_fp END,
         provider_status = CASE a.result
                  WHEN 'ok' THEN CASE a.op WHEN 'unsubscribe' THEN 'unsubscribed' WHEN 'remove' THEN 'removed'
                                 ELSE 'active' END
                  WHEN 'suppressed' THEN 'blacklisted' ELSE sync_state.provider_status END,
         provider_id = coalesce(a.provider_id, sync_state.provider_id),
         pending_op = CASE WHEN a.result = 'transient' THEN sync_state.pending_op ELSE NULL END,
         pending_fp = CASE WHEN a.result = 'transient' THEN sync_state.pending_fp ELSE NULL END,
         last_error = CASE WHEN a.result = 'ok' THEN NULL ELSE a.error END,
         last_synced_at = CASE WHEN a.result = 'ok' THEN a.logged_at ELSE sync_state.last_synced_at END,
         rejected_fp = CASE a.result
                  WHEN 'rejected' THEN CASE WHEN a.op IN ('remove', 'unsubscribe') THEN '{REJECTED_REMOVE}'
                                       ELSE sync_state.pending_fp END
                  WHEN 'transient' THEN sync_state.rejected_fp ELSE NULL END
       FROM {source} a
       WHERE sync_state.provider = ? AND sync_state.book_id = ? AND sync_state.pk = a.pk{only_pending}"""


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
