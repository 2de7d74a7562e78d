"""The backfill engine: key-ordered batches, bounded by the key range seen at start, checkpointed,
throttled, resumable after SIGKILL with no row missed or done twice.

For one ``BackfillPlan``: the largest key at start (``hi_max``) is recorded once; rows inserted
later are the sync triggers' business. Each batch runs in ONE transaction: find the batch's upper
key, UPDATE the rows in ``(lo, bound]`` that still need work, then advance the checkpoint row in
``dmig_backfill_checkpoints`` *conditionally on the version read* and append the batch to
``dmig_backfill_batches``. A killed process therefore leaves either a batch and its checkpoint or
neither; a second executor (a zombie of a killed run) finds the version moved and stops. The
plan's ``where_sql`` makes every UPDATE touch only rows still needing work, so even a range done
twice would change nothing; the batch log proves it does not happen (contiguous, disjoint ranges).

Between batches: sleep ``throttle_ms``, report rows and ETA through ``progress``, and, when a
monitor is given, wait while it says "pause" and stop when it says "rollback". A batch that hits a
row-lock timeout is rolled back and retried with backoff, like a DDL step.
(``dmig.move.checkpoints`` is the copy engine's equivalent; its ``advance`` needs the copy
engine's raw DBAPI connection and partition state, so the backfill keeps its own two tables.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from dmig.context import ProgressFn
from dmig.db.urls import dialect_of
from dmig.errors import Conflict, DatabaseError
from dmig.execute.ledger import clean_error, now
from dmig.execute.retry import RetryPolicy, applied, is_lock_timeout
from dmig.spec.steps import BackfillPlan

MONITOR_WAIT_S = 30.0
PROGRESS_EVERY_S = 0.5

_md = sa.MetaData()
CHECKPOINTS = sa.Table(
    "dmig_backfill_checkpoints",
    _md,
    sa.Column("migration_id", sa.String(100), primary_key=True),
    sa.Column("step_id", sa.String(200), primary_key=True),
    sa.Column("table_name", sa.String(255), nullable=False),
    sa.Column("hi_max", sa.Text),
    sa.Column("last_key", sa.Text),
    sa.Column("rows_done", sa.BigInteger, nullable=False),
    sa.Column("batches", sa.BigInteger, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("version", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.String(40), nullable=False),
    sa.Column("updated_at", sa.String(40), nullable=False),
    sa.Column("finished_at", sa.String(40)),
)
BATCHES = sa.Table(
    "dmig_backfill_batches",
    _md,
    sa.Column("migration_id", sa.String(100), primary_key=True),
    sa.Column("step_id", sa.String(200), primary_key=True),
    sa.Column("batch_no", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("lo_key", sa.Text),
    sa.Column("hi_key", sa.Text, nullable=False),
    sa.Column("row_count", sa.BigInteger, nullable=False),
    sa.Column("done_at", sa.String(40), nullable=False),
)


# --------------------------------------------------------------------------- key values <-> JSON text


def _encode_value(v: Any) -> Any:
    if v is None or isinstance(v, bool | int | float | str):
        return v
    if isinstance(v, Decimal):
        return {"decimal": str(v)}
    if isinstance(v, dt.datetime):
        return {"datetime": v.isoformat()}
    if isinstance(v, dt.date):
        return {"date": v.isoformat()}
    if isinstance(v, bytes | bytearray | memoryview):
        return {"hex": bytes(v).hex()}
    return str(v)  # UUID and other text-like keys


def _decode_value(v: Any) -> Any:
    if not isinstance(v, dict):
        return v
    (kind, text), *_ = v.items()
    return {
        "decimal": Decimal,
        "datetime": dt.datetime.fromisoformat,
        "date": dt.date.fromisoformat,
        "hex": bytes.fromhex,
    }[kind](text)


def encode_key(values: tuple[Any, ...] | None) -> str | None:
    return None if values is None else json.dumps([_encode_value(v) for v in values])


def decode_key(text: str | None) -> tuple[Any, ...] | None:
    return None if text is None else tuple(_decode_value(v) for v in json.loads(text))


def _binds(prefix: str, values: tuple[Any, ...]) -> dict[str, Any]:
    return {f"{prefix}_{i}": v for i, v in enumerate(values)}


_ORDERED = (int, float, Decimal, dt.date)  # Python orders these exactly as every database does


# --------------------------------------------------------------------------- results


class BackfillResult(BaseModel):
    step_id: str
    table: str
    state: str
    rows: int
    rows_total: int
    batches: int
    batches_total: int
    seconds: float
    rows_per_s: float | None
    resumed: bool
    lock_retries: int = 0
    monitor_pauses: int = 0
    throttle_seconds: float = 0.0  # time spent in throttle sleeps: not the database's work, so not its rate


@dataclass
class _State:
    hi_max: tuple[Any, ...] | None
    last_key: tuple[Any, ...] | None
    rows_done: int
    batches: int
    state: str
    version: int


def ensure_tables(engine: sa.Engine) -> None:
    with engine.begin() as conn:
        CHECKPOINTS.create(conn, checkfirst=True)
        BATCHES.create(conn, checkfirst=True)


def load_state(conn: sa.Connection, migration_id: str, step_id: str) -> _State | None:
    c = CHECKPOINTS.c
    r = conn.execute(sa.select(CHECKPOINTS).where(c.migration_id == migration_id, c.step_id == step_id)).first()
    if r is None:
        return None
    return _State(
        decode_key(r.hi_max), decode_key(r.last_key), int(r.rows_done), int(r.batches), r.state, int(r.version)
    )


def forget(conn: sa.Connection, migration_id: str) -> None:
    """Remove this migration's checkpoints and batch log (abort, or a fresh run after one)."""
    insp = sa.inspect(conn)
    for table in (CHECKPOINTS, BATCHES):
        if insp.has_table(table.name):
            conn.execute(sa.delete(table).where(table.c.migration_id == migration_id))


def _reasons(verdict: Any) -> str:
    return "; ".join(getattr(r, "message", str(r)) for r in getattr(verdict, "reasons", []))


class Backfill:
    """One backfill of one migration on one database. ``run()`` does (or resumes) it to the end."""

    def __init__(
        self,
        engine: sa.Engine,
        plan: BackfillPlan,
        migration_id: str,
        *,
        settings: list[str] | None = None,
        batch_size: int | None = None,
        throttle_ms: int | None = None,
        policy: RetryPolicy | None = None,
        monitor: Any = None,
        progress: ProgressFn | None = None,
        expected_rows: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.engine, self.plan, self.mid = engine, plan, migration_id
        self.dialect = dialect_of(engine.url)
        self.settings = settings or []
        self.batch = batch_size or plan.batch_size
        self.throttle_s = (plan.throttle_ms if throttle_ms is None else throttle_ms) / 1000
        self.slept_s = 0.0
        self.policy = policy or RetryPolicy()
        self.monitor = monitor
        self.progress = progress
        self.expected = expected_rows
        self.sleep = sleep
        self.lock_retries = 0
        self.pauses = 0

    # ----------------------------------------------------------------------------- setup
    def _start(self, conn: sa.Connection) -> _State:
        state = load_state(conn, self.mid, self.plan.step_id)
        if state is not None:
            return state
        row = conn.execute(sa.text(self.plan.key_range_sql)).first()
        hi = tuple(row) if row is not None else None
        stamp = now()
        conn.execute(
            sa.insert(CHECKPOINTS).values(
                migration_id=self.mid,
                step_id=self.plan.step_id,
                table_name=self.plan.table,
                hi_max=encode_key(hi),
                last_key=None,
                rows_done=0,
                batches=0,
                state="done" if hi is None else "running",
                version=0,
                started_at=stamp,
                updated_at=stamp,
                finished_at=stamp if hi is None else None,
            )
        )
        return _State(hi, None, 0, 0, "done" if hi is None else "running", 0)

    def _start_with_retry(self, conn: sa.Connection) -> _State:
        """_start under the same lock-timeout retry as a batch: its reads and its checkpoint insert can meet a
        busy database too (SQLite's busy_timeout is the short lock timeout now, not 30 s)."""
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._start(conn)
            except sa.exc.DBAPIError as exc:
                if not is_lock_timeout(exc, self.dialect) or attempt > self.policy.max_retries:
                    raise
                self.lock_retries += 1
                self.policy.sleep(self.policy.delay(attempt))

    def _key_table(self) -> tuple[sa.TableClause, list[sa.ColumnClause]]:
        t = sa.table(self.plan.table, *[sa.column(k) for k in self.plan.key_columns], schema=self.plan.schema_)
        return t, [t.c[k] for k in self.plan.key_columns]

    def _at_or_past(self, conn: sa.Connection, bound: tuple[Any, ...], hi: tuple[Any, ...]) -> bool:
        """bound >= hi in the database's own key order (collations differ from Python's for text)."""
        if all(isinstance(v, _ORDERED) for v in (*bound, *hi)):
            return bound >= hi
        t, keys = self._key_table()
        b = [sa.bindparam(f"b_{i}") for i in range(len(keys))]
        h = [sa.bindparam(f"h_{i}") for i in range(len(keys))]
        same = sa.and_(*[k == p for k, p in zip(keys, b, strict=True)])
        ge = keys[0] >= h[0] if len(keys) == 1 else sa.tuple_(*keys) >= sa.tuple_(*h)
        stmt = sa.select(sa.func.count()).select_from(t).where(same, ge)
        return bool(conn.execute(stmt, {**_binds("b", bound), **_binds("h", hi)}).scalar())

    # ----------------------------------------------------------------------------- one batch
    def _batch(self, conn: sa.Connection, st: _State) -> tuple[_State, int]:
        p = self.plan
        skip = {"skip": self.batch - 1}
        lo = st.last_key
        if lo is None:
            row = conn.execute(sa.text(p.next_bound_from_start_sql), skip).first()
        else:
            row = conn.execute(sa.text(p.next_bound_sql), {**skip, **_binds("lo", lo)}).first()
        assert st.hi_max is not None
        last = row is None or self._at_or_past(conn, tuple(row), st.hi_max)
        bound = st.hi_max if last else tuple(row)  # type: ignore[arg-type]
        params = _binds("hi", bound)
        if lo is None:
            n = conn.execute(sa.text(p.update_from_start_sql), params).rowcount
        else:
            n = conn.execute(sa.text(p.update_range_sql), {**params, **_binds("lo", lo)}).rowcount
        n = max(0, n or 0)
        c = CHECKPOINTS.c
        stamp = now()
        moved = conn.execute(
            sa.update(CHECKPOINTS)
            .where(c.migration_id == self.mid, c.step_id == p.step_id, c.version == st.version)
            .values(
                last_key=encode_key(bound),
                rows_done=st.rows_done + n,
                batches=st.batches + 1,
                version=st.version + 1,
                state="done" if last else "running",
                updated_at=stamp,
                finished_at=stamp if last else None,
            )
        ).rowcount
        if moved != 1:
            raise Conflict(
                f"backfill {p.step_id} of migration {self.mid} was advanced by another executor; this one stops",
                reason="checkpoint_moved",
            )
        conn.execute(
            sa.insert(BATCHES).values(
                migration_id=self.mid,
                step_id=p.step_id,
                batch_no=st.batches + 1,
                lo_key=encode_key(lo),
                hi_key=encode_key(bound),
                row_count=n,
                done_at=stamp,
            )
        )
        new = _State(st.hi_max, bound, st.rows_done + n, st.batches + 1, "done" if last else "running", st.version + 1)
        return new, n

    def _batch_with_retry(self, conn: sa.Connection, st: _State) -> tuple[_State, int]:
        attempt = 0
        while True:
            attempt += 1
            try:
                # inside the try: on SQLite BEGIN IMMEDIATE itself waits for the write lock (busy_timeout) and a
                # timeout there is a lock timeout like any other, retried with backoff
                conn.exec_driver_sql("BEGIN IMMEDIATE" if self.dialect == "sqlite" else "BEGIN")
                result = self._batch(conn, st)
                conn.exec_driver_sql("COMMIT")
                return result
            except BaseException as exc:
                with contextlib.suppress(sa.exc.SQLAlchemyError):
                    conn.exec_driver_sql("ROLLBACK")
                if isinstance(exc, sa.exc.DBAPIError) and is_lock_timeout(exc, self.dialect):
                    if attempt <= self.policy.max_retries:
                        self.lock_retries += 1
                        self.policy.sleep(self.policy.delay(attempt))
                        continue
                    raise DatabaseError(
                        f"backfill {self.plan.step_id}: a batch could not get its row locks in {attempt} attempts; "
                        "the run can be resumed (checkpointed up to the last committed batch)",
                        code="E_LOCK_TIMEOUT",
                        reason="lock_timeout",
                    ) from None
                if isinstance(exc, sa.exc.DBAPIError):
                    raise DatabaseError(
                        f"backfill {self.plan.step_id} failed: {(clean_error(exc) or '').splitlines()[0]}; the run can "
                        "be resumed (checkpointed up to the last committed batch)",
                        reason="backfill_failed",
                    ) from None
                raise

    # ----------------------------------------------------------------------------- the loop
    def _mark(self, kind: str, detail: str) -> None:
        """Put the executor's own moments (pause, resume, rollback) on the monitor's timeline and report."""
        record = getattr(self.monitor, "record_event", None)
        if record is not None:
            record(kind, detail, step=self.plan.step_id, table=self.plan.table)

    def _between_batches(self, rows: int) -> None:
        if self.throttle_s > 0:
            self.sleep(self.throttle_s)
            self.slept_s += self.throttle_s
        if self.monitor is None:
            return
        if hasattr(self.monitor, "record_rows"):
            self.monitor.record_rows(rows)
        paused_at: float | None = None
        # wait_until_healthy blocks through a pause and returns once healthy, so look at the verdict first:
        # that is how a pause gets counted and marked on the timeline.
        now = getattr(self.monitor, "verdict", None)
        first = now() if now is not None else None
        if getattr(first, "action", None) == "pause":
            self.pauses += 1
            paused_at = time.monotonic()
            self._mark("pause", f"backfill {self.plan.step_id} paused: {_reasons(first) or 'monitor verdict'}")
        while True:
            verdict = self.monitor.wait_until_healthy(MONITOR_WAIT_S)
            action = getattr(verdict, "action", verdict)
            reasons = _reasons(verdict)
            if action == "rollback":
                self._mark("rollback_started", f"backfill {self.plan.step_id} stops: {reasons or 'monitor verdict'}")
                raise Conflict(
                    f"backfill {self.plan.step_id} stopped: the monitor asks for a rollback "
                    f"({reasons or 'see the monitor'}); the old shape is intact: abort_migration undoes expand",
                    reason="monitor_rollback",
                    monitor_reasons=reasons,
                )
            if action != "pause":
                if paused_at is not None:
                    waited = time.monotonic() - paused_at
                    self._mark("resume", f"backfill {self.plan.step_id} resumes after {waited:.1f} s paused")
                return
            self.pauses += 1
            if paused_at is None:
                paused_at = time.monotonic()
                self._mark("pause", f"backfill {self.plan.step_id} paused: {reasons or 'monitor verdict'}")

    def _report(self, st: _State, started: float, done_now: int, total: int | None) -> None:
        if self.progress is None:
            return
        elapsed = max(time.monotonic() - started, 1e-6)
        rate = done_now / elapsed
        total = max(total or 0, st.rows_done)
        eta = (total - st.rows_done) / rate if rate > 0 and total else None
        msg = f"backfill {self.plan.table}: {st.rows_done:,}/{total:,} rows, {rate:,.0f} rows/s" + (
            f", ETA {eta:,.0f} s" if eta is not None else ""
        )
        self.progress(st.rows_done, total or None, msg)

    def run(self, max_batches: int | None = None) -> BackfillResult:
        """Do (or resume) the backfill; ``max_batches`` stops early (tests, bounded slices)."""
        ensure_tables(self.engine)
        started = time.monotonic()
        with (
            self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn,
            applied(conn, self.settings),
        ):
            st = self._start_with_retry(conn)
            resumed = st.batches > 0
            before_rows, before_batches = st.rows_done, st.batches
            last_report = 0.0
            count = 0
            while st.state != "done" and (max_batches is None or count < max_batches):
                st, n = self._batch_with_retry(conn, st)
                count += 1
                if time.monotonic() - last_report >= PROGRESS_EVERY_S or st.state == "done":
                    self._report(st, started, st.rows_done - before_rows, self.expected)
                    last_report = time.monotonic()
                if st.state != "done":
                    self._between_batches(n)
        seconds = round(time.monotonic() - started, 3)
        rows = st.rows_done - before_rows
        return BackfillResult(
            step_id=self.plan.step_id,
            table=self.plan.table,
            state=st.state,
            rows=rows,
            rows_total=st.rows_done,
            batches=st.batches - before_batches,
            batches_total=st.batches,
            seconds=seconds,
            rows_per_s=round(rows / seconds, 1) if seconds > 0 and rows else None,
            resumed=resumed,
            lock_retries=self.lock_retries,
            monitor_pauses=self.pauses,
            throttle_seconds=round(self.slept_s, 3),
        )
