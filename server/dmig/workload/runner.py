"""The workload: N client threads through the old and the new shape of a table, rate limited and bounded.

Typical rehearsal (the zero-downtime benchmark does exactly this)::

    from dmig.workload import Workload

    with Workload(url, "users", threads=8, rate=400, duration_s=600) as wl:   # starts the clients
        baseline = ...                                # or Workload(...).run_for(30) for a baseline
        wl.mark("migration")                          # label the requests from here on
        run_plan(plan, confirm=plan.checksum)         # new-shape requests start once expand is done
        wl.retire_old_writers()                       # the new release is deployed: old code only reads
        complete(plan, confirm=plan.checksum, project_dir=root)
    report = wl.report                                # p50/p95/p99 per operation, failures by class

Why these choices: each client owns a connection (as an application server would) and runs in
autocommit with a statement timeout (``op_timeout_s``), so a request stuck behind a lock fails
and is counted instead of hanging the run; with a target rate, latency is measured from the
moment a request *should* have started, so a thread blocked by a lock does not hide the requests
it failed to send (coordinated omission); a thread over ``max_lag_s`` behind skips ahead and
counts a late reset. The run always ends by itself: ``duration_s`` and ``max_ops`` bound it.
The workload writes only rows it inserted itself (keys from ``key_start``) and deletes them at
the end unless ``cleanup=False``.
"""

from __future__ import annotations

import itertools
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dmig.db.dialects import flavor_of
from dmig.db.engine import open_engine
from dmig.db.urls import dialect_of, parse_url
from dmig.errors import InvalidInput, database_error
from dmig.workload.client import Client
from dmig.workload.histogram import LatencyHistogram
from dmig.workload.phase import PHASES, Phase, SchemaWatcher, read_state
from dmig.workload.report import ErrorClass, OwnRows, PhaseChange, SegmentStats, WorkloadReport, stats
from dmig.workload.shape import Shape

OLD_OPS = ("old_point_read", "old_range_read", "old_insert", "old_update")
NEW_OPS = ("new_point_read", "new_range_read", "new_insert", "new_update")
READS = ("old_point_read", "old_range_read", "new_point_read", "new_range_read")
DEFAULT_MIX: dict[str, float] = {
    "old_point_read": 30,
    "old_range_read": 8,
    "old_insert": 5,
    "old_update": 12,
    "new_point_read": 25,
    "new_range_read": 5,
    "new_insert": 5,
    "new_update": 10,
}
DEFAULT_KEY_GAP = 10_000_000
SNAPSHOT_CHUNK = 40


@dataclass
class Snapshot:
    """Rows read at start (key -> old value) in key-contiguous chunks, to check later reads against."""

    values: dict[int, str | None] = field(default_factory=dict)
    keys: list[int] = field(default_factory=list)
    chunks: list[list[int]] = field(default_factory=list)


def allowed_ops(phase: Phase, old_writers: bool) -> tuple[str, ...]:
    """What application code may run in a phase. New code waits for the sync triggers; after contract (or once
    the new release is out) old code only reads, through the compat relation."""
    if phase in ("old", "expanding"):
        ops = OLD_OPS
    elif phase == "expanded":
        ops = OLD_OPS + NEW_OPS
    else:
        ops = ("old_point_read", "old_range_read", *NEW_OPS)
    return tuple(o for o in ops if old_writers or o not in ("old_insert", "old_update"))


def session_sql(flavor: str, timeout_s: float) -> list[str]:
    ms = max(1, int(timeout_s * 1000))
    if flavor == "postgresql":
        return [f"SET statement_timeout = {ms}"]
    if flavor == "mariadb":
        secs = max(1, int(timeout_s + 0.999))
        return [f"SET SESSION max_statement_time = {timeout_s:g}", f"SET SESSION lock_wait_timeout = {secs}",
                f"SET SESSION innodb_lock_wait_timeout = {secs}"]  # fmt: skip
    if flavor == "mysql":
        secs = max(1, int(timeout_s + 0.999))
        return [f"SET SESSION max_execution_time = {ms}", f"SET SESSION lock_wait_timeout = {secs}",
                f"SET SESSION innodb_lock_wait_timeout = {secs}"]  # fmt: skip
    return [f"PRAGMA busy_timeout = {ms}"]


class Workload:
    def __init__(
        self,
        url: str,
        table: str,
        *,
        schema: str | None = None,
        key: str = "id",
        old_column: str = "user_name",
        new_columns: tuple[str, str] = ("first_name", "last_name"),
        separator: str = " ",
        compat_schema: str | None = "dmig_compat",
        compat_view: str | None = None,
        threads: int = 8,
        rate: float | None = None,
        mix: dict[str, float] | None = None,
        duration_s: float = 60.0,
        max_ops: int | None = None,
        phase: str = "auto",
        range_rows: int = 10,
        op_timeout_s: float = 10.0,
        max_lag_s: float = 1.0,
        key_start: int | None = None,
        verify_existing: bool = True,
        snapshot_rows: int = 2000,
        cleanup: bool = True,
        seed: int = 1,
        watch_interval_s: float = 0.2,
        old_writers: bool = True,
    ) -> None:
        if threads < 1 or threads > 256:
            raise InvalidInput("workload: threads must be between 1 and 256")
        if rate is not None and rate <= 0:
            raise InvalidInput("workload: rate must be positive (or None for as fast as possible)")
        if duration_s <= 0 and max_ops is None:
            raise InvalidInput("workload: give a positive duration_s or max_ops: the run must end by itself")
        if phase != "auto" and phase not in PHASES:
            raise InvalidInput(f"workload: phase must be auto or one of {', '.join(PHASES)}")
        self.mix = dict(DEFAULT_MIX if mix is None else mix)
        unknown = set(self.mix) - set(OLD_OPS + NEW_OPS)
        if unknown or any(w < 0 for w in self.mix.values()) or not any(self.mix.values()):
            raise InvalidInput(
                f"workload: mix weights must be >= 0, not all 0, for {', '.join(OLD_OPS + NEW_OPS)}"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else "")
            )
        self.url = parse_url(url)
        self.dialect = dialect_of(self.url)
        self.shape = Shape(table, schema, key, old_column, tuple(new_columns), separator, compat_schema, compat_view)
        self.separator = separator
        self.threads, self.rate, self.duration_s, self.max_ops = threads, rate, duration_s, max_ops
        self.range_rows, self.op_timeout_s, self.max_lag_s = range_rows, op_timeout_s, max_lag_s
        self.key_start_arg, self.verify_existing, self.snapshot_rows = key_start, verify_existing, snapshot_rows
        self.cleanup, self.seed, self.watch_interval_s = cleanup, seed, watch_interval_s
        self.initial_phase = phase
        self.segment = "run"
        self.report: WorkloadReport | None = None
        self.snapshot = Snapshot()
        self.key_start = self.key_min = self.key_max = 0
        self.old_writers = old_writers
        self._stop = threading.Event()
        self._tickets = itertools.count()
        self._clients: list[Client] = []
        self._threads: list[threading.Thread] = []
        self._segments: list[tuple[str, float]] = []
        self._pick_cache: dict[tuple[str, bool], tuple[tuple[str, ...], list[float]]] = {}
        self.engine: sa.Engine | None = None
        self.watcher: SchemaWatcher | None = None  # type: ignore[assignment]
        self.session_sql: list[str] = []
        self.t0 = self.t_end = 0.0

    # ------------------------------------------------------------------ control
    def start(self) -> Workload:
        if self._threads:
            raise InvalidInput("workload: already started")
        self.engine = open_engine(self.url, pool_size=self.threads + 2)
        try:
            with self.engine.connect() as conn:
                self.session_sql = session_sql(flavor_of(conn), self.op_timeout_s)
                self._prepare(conn)
        except sa.exc.SQLAlchemyError as exc:
            # A missing table or column, a name the server cannot take, a file that is not a database:
            # the user's input, answered as such (never with the statement we built from it).
            self.engine.dispose()
            raise database_error(exc, f"workload: cannot read {self.shape.table}", table=self.shape.table) from None
        self.watcher = SchemaWatcher(self.engine, self.shape, self.watch_interval_s)
        if self.initial_phase != "auto":
            self.watcher.tell(self.initial_phase)  # type: ignore[arg-type]
        self._clients = [Client(self, i) for i in range(self.threads)]
        try:
            for c in self._clients:  # connect before the clock starts: a connect is not a request
                c.connection()
        except sa.exc.SQLAlchemyError as exc:
            for c in self._clients:
                c.close()
            self.engine.dispose()
            raise database_error(exc, f"workload: cannot open a session on {self.shape.table}") from None
        self.t0 = time.perf_counter()
        self._deadline = self.t0 + self.duration_s if self.duration_s > 0 else float("inf")
        self.watcher.start(self.t0)
        self._segments.append((self.segment, self.t0))
        self._threads = [
            threading.Thread(target=c.run, name=f"dmig-workload-{i}", daemon=True) for i, c in enumerate(self._clients)
        ]
        for t in self._threads:
            t.start()
        return self

    def _prepare(self, conn: sa.Connection) -> None:
        lo, hi, n = conn.execute(self.shape.key_bounds()).one()
        for v in (lo, hi):
            if v is not None and not isinstance(v, int):
                raise InvalidInput(f"workload: key column {self.shape.key} must be an integer column")
        self.key_min, self.key_max = (lo or 0), (hi or 0)
        self.key_start = self.key_start_arg if self.key_start_arg is not None else self.key_max + DEFAULT_KEY_GAP
        if self.verify_existing and n:
            self.snapshot = self._snapshot(conn)

    def _snapshot(self, conn: sa.Connection) -> Snapshot:
        state = read_state(conn, self.shape)
        rel = self.shape.old_relation(self.dialect, state.compat, self.shape.key, self.shape.old)
        stmt = self.shape.range(rel, [self.shape.old], SNAPSHOT_CHUNK)
        rng = random.Random(self.seed)
        snap = Snapshot()
        for _ in range(max(1, self.snapshot_rows // SNAPSHOT_CHUNK)):
            rows = conn.execute(stmt, {"k": rng.randint(self.key_min, self.key_max) - 1}).all()
            chunk = [r[0] for r in rows if r[0] not in snap.values]
            snap.values.update({r[0]: r[1] for r in rows})
            if len(chunk) == len(rows) and chunk:
                snap.chunks.append(chunk)
        snap.keys = sorted(snap.values)
        return snap

    def mark(self, segment: str) -> None:
        """Label the requests issued from now on (their percentiles are reported per label)."""
        self.segment = segment
        self._segments.append((segment, time.perf_counter()))

    def set_phase(self, phase: str) -> None:
        """Tell the workload the schema phase instead of letting it read the catalog."""
        if phase not in PHASES:
            raise InvalidInput(f"workload: phase must be one of {', '.join(PHASES)}")
        assert self.watcher is not None, "start() first"
        self.watcher.tell(phase)  # type: ignore[arg-type]

    def retire_old_writers(self) -> None:
        """The new release is out: old code stops writing (it may still read through the compat relation)."""
        self.old_writers = False

    def should_stop(self) -> bool:
        return self._stop.is_set() or time.perf_counter() >= self._deadline

    def wait(self, seconds: float) -> bool:
        """Sleep until the next scheduled request; True when the run was stopped meanwhile."""
        return self._stop.wait(max(0.0, min(seconds, self._deadline - time.perf_counter()))) or self.should_stop()

    def take_ticket(self) -> bool:
        return self.max_ops is None or next(self._tickets) < self.max_ops

    def pick(self, rng: random.Random, phase: Phase) -> str:
        cache_key = (phase, self.old_writers)
        if cache_key not in self._pick_cache:
            ops = tuple(o for o in allowed_ops(phase, self.old_writers) if self.mix.get(o, 0) > 0)
            if not ops:  # nothing of the mix is allowed now: fall back to the phase's reads
                ops = tuple(o for o in allowed_ops(phase, self.old_writers) if o in READS)
            self._pick_cache[cache_key] = (ops, [self.mix.get(o, 0) or 1 for o in ops])
        ops, weights = self._pick_cache[cache_key]
        return rng.choices(ops, weights)[0]

    def stop(self) -> WorkloadReport:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=self.op_timeout_s + 30)
        self.t_end = time.perf_counter()
        assert self.watcher is not None and self.engine is not None
        self.watcher.stop()
        deleted = self._cleanup() if self.cleanup else 0
        self.report = self._report(deleted)
        self.engine.dispose()
        return self.report

    def alive(self) -> bool:
        """Some client is still running (all end early once max_ops is reached)."""
        return any(t.is_alive() for t in self._threads)

    def run_for(self, seconds: float) -> WorkloadReport:
        self.duration_s = seconds
        self.start()
        while not self.should_stop() and self.alive():
            time.sleep(min(0.2, max(0.0, self._deadline - time.perf_counter())))
        return self.stop()

    def __enter__(self) -> Workload:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def own_keys(self) -> list[int]:
        return [k for c in self._clients for k in c.own_keys]

    def _cleanup(self) -> int:
        keys, done = self.own_keys(), 0
        assert self.engine is not None
        with self.engine.connect() as conn:
            for i in range(0, len(keys), 500):
                with conn.begin():
                    done += conn.execute(self.shape.delete_keys(), {"keys": keys[i : i + 500]}).rowcount
        return done

    # ------------------------------------------------------------------ report
    def _report(self, deleted: int) -> WorkloadReport:
        seconds = max(self.t_end - self.t0, 1e-9)
        by_op: dict[str, list[LatencyHistogram]] = {}
        by_seg: dict[str, dict[str, list[LatencyHistogram]]] = {}
        failed_op: Counter[str] = Counter()
        failed_seg: Counter[tuple[str, str]] = Counter()
        for c in self._clients:
            for (seg, op), (lat, svc) in c.hist.items():
                _merge(by_op.setdefault(op, [LatencyHistogram(), LatencyHistogram()]), lat, svc)
                _merge(by_seg.setdefault(seg, {}).setdefault(op, [LatencyHistogram(), LatencyHistogram()]), lat, svc)
            for (seg, op), n in c.failed.items():
                failed_op[op] += n
                failed_seg[(seg, op)] += n
        ops = [stats(op, lat, svc, failed_op[op]) for op, (lat, svc) in sorted(by_op.items())]
        for op in sorted(set(failed_op) - set(by_op)):
            ops.append(stats(op, LatencyHistogram(), LatencyHistogram(), failed_op[op]))
        overall = _overall(by_op, sum(failed_op.values()))
        errors: Counter[tuple[str, str]] = Counter()
        samples: dict[tuple[str, str], str] = {}
        for c in self._clients:
            errors.update(c.errors)
            for k, v in c.samples.items():
                samples.setdefault(k, v)
        requests = sum(s.count for s in ops if s.op != "read_back")
        assert self.watcher is not None
        return WorkloadReport(
            dialect=self.dialect,
            table=self.shape.table,
            threads=self.threads,
            target_ops_per_s=self.rate,
            seconds=round(seconds, 3),
            ops=requests,
            ops_per_s=round(requests / seconds, 1),
            failed=overall.failed,
            ok=overall.failed == 0,
            overall=overall,
            by_op=ops,
            segments=self._segment_stats(by_seg, failed_seg),
            errors=[
                ErrorClass(op=op, error=err, count=n, sample=samples[(op, err)])
                for (op, err), n in errors.most_common()
            ],
            phases=[PhaseChange(at_s=p.at_s, phase=p.phase, source=p.source) for p in self.watcher.changes],
            own_rows=OwnRows(key_start=self.key_start, inserted=len(self.own_keys()), deleted=deleted),
            late_resets=sum(c.late_resets for c in self._clients),
            verified_rows=len(self.snapshot.values),
            watcher_errors=self.watcher.errors,
        )

    def _segment_stats(self, by_seg: dict[str, Any], failed_seg: Counter[tuple[str, str]]) -> list[SegmentStats]:
        spans: dict[str, float] = {}
        marks = [*self._segments, ("", self.t_end)]
        for (seg, at), (_, nxt) in itertools.pairwise(marks):
            spans[seg] = spans.get(seg, 0.0) + max(0.0, nxt - at)
        out = []
        for seg, hists in by_seg.items():
            fails = {op: n for (s, op), n in failed_seg.items() if s == seg}
            by_op = [stats(op, lat, svc, fails.get(op, 0)) for op, (lat, svc) in sorted(hists.items())]
            overall = _overall(hists, sum(fails.values()))
            out.append(SegmentStats(segment=seg, seconds=round(spans.get(seg, 0.0), 3), overall=overall, by_op=by_op))
        order = {seg: i for i, (seg, _) in enumerate(self._segments)}
        return sorted(out, key=lambda s: order.get(s.segment, len(order)))


def _merge(into: list[LatencyHistogram], lat: LatencyHistogram, svc: LatencyHistogram) -> None:
    into[0].merge(lat)
    into[1].merge(svc)


def _overall(hists: dict[str, list[LatencyHistogram]], failed: int) -> Any:
    """All request classes together; read-backs are part of the write they verify, not requests of their own."""
    lat, svc = LatencyHistogram(), LatencyHistogram()
    for op, (lat_h, svc_h) in hists.items():
        if op != "read_back":
            lat.merge(lat_h)
            svc.merge(svc_h)
    return stats("all", lat, svc, failed)
