"""One client thread: its own connection, its own rows, its own histograms; every answer is checked.

A request fails when it raises (any exception: lock timeout, statement timeout, a column that
vanished, a lost connection) or when it answers wrongly. What is right is known exactly: the
client is the only writer of its own rows (keys ``key_start + thread + n * threads``) and it
remembers what it wrote; rows of the table it snapshotted at start are assumed unchanged by
others (``verify_existing``). Old-shape reads must return the old value; new-shape reads must
return the parts the client wrote, or ``split(old value)``, or (before the backfill reached the
row, never after contract) both parts NULL.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from dmig.redact import redact
from dmig.workload.histogram import LatencyHistogram
from dmig.workload.shape import join, split

if TYPE_CHECKING:
    from dmig.workload.runner import Workload

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Zoë", "José", "Mary Ann"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Ünïcode"]


class WrongResult(Exception):
    """The database answered, but not what the client wrote (or what the snapshot holds)."""


@dataclass
class Expect:
    old: str | None
    parts: tuple[str | None, str | None] | None  # None: NULLs or split(old) (not backfilled yet)


def error_class(exc: BaseException) -> str:
    if isinstance(exc, sa.exc.DBAPIError) and exc.orig is not None:
        orig = exc.orig
        code = getattr(orig, "sqlstate", None) or (orig.args[0] if orig.args and isinstance(orig.args[0], int) else "")
        return f"{type(orig).__name__}({code})" if code else type(orig).__name__
    return type(exc).__name__


def error_text(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return redact(text.splitlines()[0] if text else type(exc).__name__)[:300]


class Client:
    def __init__(self, wl: Workload, index: int) -> None:
        self.wl, self.index = wl, index
        self.rng = random.Random(wl.seed * 1000 + index)
        self.own: dict[int, Expect] = {}
        self.own_keys: list[int] = []
        self.n = 0
        self.hist: dict[tuple[str, str], tuple[LatencyHistogram, LatencyHistogram]] = {}
        self.failed: Counter[tuple[str, str]] = Counter()
        self.errors: Counter[tuple[str, str]] = Counter()
        self.samples: dict[tuple[str, str], str] = {}
        self.late_resets = 0
        self.conn: sa.Connection | None = None

    # ------------------------------------------------------------------ connection
    def connection(self) -> sa.Connection:
        if self.conn is None or self.conn.closed or self.conn.invalidated:
            if self.conn is not None:
                self.conn.close()
            self.conn = self.wl.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            for stmt in self.wl.session_sql:
                self.conn.exec_driver_sql(stmt)
        return self.conn

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    # ------------------------------------------------------------------ values
    def full_name(self) -> str | None:
        roll = self.rng.random()
        if roll < 0.02:
            return None
        if roll < 0.04:
            return self.rng.choice(["", "Plato", " leading", "trailing ", "two  spaces", "O'Brien Jr"])
        if roll < 0.10:
            return self.rng.choice(FIRST)
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)} {self.index}-{self.n}"

    def parts(self) -> tuple[str | None, str | None]:
        roll = self.rng.random()
        if roll < 0.05:
            return self.rng.choice(FIRST), None
        return self.rng.choice(FIRST), f"{self.rng.choice(LAST)} {self.index}-{self.n}"

    def next_key(self) -> int:
        key = self.wl.key_start + self.index + self.n * self.wl.threads
        self.n += 1
        return key

    # ------------------------------------------------------------------ timing
    def timed(self, op: str, intended: float, fn: Any, *args: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args)
        finally:
            end = time.perf_counter()
            key = (self.wl.segment, op)
            lat, svc = self.hist.get(key) or self.hist.setdefault(key, (LatencyHistogram(), LatencyHistogram()))
            lat.record(end - min(intended, started))
            svc.record(end - started)

    def fail(self, op: str, exc: BaseException) -> None:
        self.failed[(self.wl.segment, op)] += 1
        key = (op, error_class(exc))
        self.errors[key] += 1
        self.samples.setdefault(key, error_text(exc))
        if isinstance(exc, sa.exc.DBAPIError) and self.conn is not None and exc.connection_invalidated:
            self.close()

    # ------------------------------------------------------------------ statements
    def execute(self, stmt: sa.Executable, params: dict[str, Any]) -> sa.CursorResult:
        return self.connection().execute(stmt, params)

    def rows(self, stmt: sa.Executable, params: dict[str, Any]) -> list[tuple]:
        return [tuple(r) for r in self.execute(stmt, params)]

    def old_rel(self, *cols: str) -> sa.TableClause:
        return self.wl.shape.old_relation(self.wl.dialect, self.wl.watcher.state.compat, *cols)

    # ------------------------------------------------------------------ checks
    def check_old(self, key: int, got: str | None, want: Expect) -> None:
        if got != want.old:
            raise WrongResult(f"old shape read {self.wl.shape.old}={got!r} for key {key}, expected {want.old!r}")

    def check_parts(self, key: int, got: tuple, want: Expect, phase: str) -> None:
        if want.parts is not None:
            ok = got == want.parts
        else:
            ok = got == split(want.old, self.wl.separator) or (phase != "contracted" and got == (None, None))
        if not ok:
            shown = want.parts if want.parts is not None else split(want.old, self.wl.separator)
            raise WrongResult(f"new shape read {got!r} for key {key}, expected {shown!r}")

    def read_back(self, key: int, want: Expect, phase: str) -> None:
        """Read-your-write through every shape the phase allows."""
        shape = self.wl.shape
        if phase != "contracted" or self.wl.watcher.state.compat or self.wl.dialect != "postgresql":
            rel = self.old_rel(shape.key, shape.old)
            got = self.timed("read_back", time.perf_counter(), self.rows, shape.point(rel, [shape.old]), {"k": key})
            if len(got) != 1:
                raise WrongResult(f"read back {len(got)} rows for key {key}")
            self.check_old(key, got[0][1], want)
        if phase in ("expanded", "contracted"):
            base = shape.base(shape.key, *shape.new)
            stmt = shape.point(base, list(shape.new))
            got = self.timed("read_back", time.perf_counter(), self.rows, stmt, {"k": key})
            if len(got) != 1:
                raise WrongResult(f"read back {len(got)} rows for key {key}")
            self.check_parts(key, got[0][1:], want, phase)

    # ------------------------------------------------------------------ operations
    def op_old_insert(self, intended: float, phase: str) -> None:
        key, value = self.next_key(), self.full_name()
        self.timed("old_insert", intended, self.execute, self.wl.shape.insert_old(), {"k": key, "v": value})
        self.own[key] = Expect(value, split(value, self.wl.separator) if phase == "expanded" else None)
        self.own_keys.append(key)
        self.read_back(key, self.own[key], phase)

    def op_new_insert(self, intended: float, phase: str) -> None:
        key, (first, rest) = self.next_key(), self.parts()
        self.timed("new_insert", intended, self.execute, self.wl.shape.insert_new(), {"k": key, "f": first, "r": rest})
        self.own[key] = Expect(join(first, rest, self.wl.separator), (first, rest))
        self.own_keys.append(key)
        self.read_back(key, self.own[key], phase)

    def op_old_update(self, intended: float, phase: str) -> None:
        if not self.own_keys:
            return self.op_old_insert(intended, phase)
        key, value = self.rng.choice(self.own_keys), self.full_name()
        res = self.timed("old_update", intended, self.execute, self.wl.shape.update_old(), {"k": key, "v": value})
        if res.rowcount != 1:
            raise WrongResult(f"update of own key {key} matched {res.rowcount} rows")
        self.own[key] = Expect(value, split(value, self.wl.separator) if phase == "expanded" else None)
        self.read_back(key, self.own[key], phase)

    def op_new_update(self, intended: float, phase: str) -> None:
        if not self.own_keys:
            return self.op_new_insert(intended, phase)
        key, (first, rest) = self.rng.choice(self.own_keys), self.parts()
        params = {"k": key, "f": first, "r": rest}
        res = self.timed("new_update", intended, self.execute, self.wl.shape.update_new(), params)
        if res.rowcount != 1:
            raise WrongResult(f"update of own key {key} matched {res.rowcount} rows")
        self.own[key] = Expect(join(first, rest, self.wl.separator), (first, rest))
        self.read_back(key, self.own[key], phase)

    def pick_key(self) -> tuple[int, Expect | None]:
        snap = self.wl.snapshot
        if self.own_keys and (not snap.keys or self.rng.random() < 0.5):
            key = self.rng.choice(self.own_keys)
            return key, self.own[key]
        if snap.keys:
            key = self.rng.choice(snap.keys)
            return key, Expect(snap.values[key], None)
        return self.rng.randint(self.wl.key_min, self.wl.key_max), None

    def op_old_point_read(self, intended: float, phase: str) -> None:
        key, want = self.pick_key()
        shape = self.wl.shape
        got = self.timed("old_point_read", intended, self.rows, shape.point(self.old_rel(shape.key, shape.old),
                         [shape.old]), {"k": key})  # fmt: skip
        if want is not None:
            if len(got) != 1:
                raise WrongResult(f"point read of key {key} returned {len(got)} rows")
            self.check_old(key, got[0][1], want)

    def op_new_point_read(self, intended: float, phase: str) -> None:
        key, want = self.pick_key()
        shape = self.wl.shape
        base = shape.base(shape.key, *shape.new)
        got = self.timed("new_point_read", intended, self.rows, shape.point(base, list(shape.new)), {"k": key})
        if want is not None:
            if len(got) != 1:
                raise WrongResult(f"point read of key {key} returned {len(got)} rows")
            self.check_parts(key, got[0][1:], want, phase)

    def _range(self, op: str, intended: float, rel: sa.TableClause, cols: list[str]) -> list[tuple]:
        snap, limit = self.wl.snapshot, self.wl.range_rows
        chunk = self.rng.choice(snap.chunks) if snap.chunks else []
        if len(chunk) > limit:
            i = self.rng.randrange(0, len(chunk) - limit)
            start, expected = chunk[i], chunk[i + 1 : i + 1 + limit]
        else:
            start, expected = self.rng.randint(self.wl.key_min, self.wl.key_max), None
        got = self.timed(op, intended, self.rows, self.wl.shape.range(rel, cols, limit), {"k": start})
        keys = [r[0] for r in got]
        if len(got) > limit or keys != sorted(keys) or (expected is not None and keys != expected):
            raise WrongResult(f"range read after key {start} returned keys {keys[:3]}... (expected {expected})")
        return got

    def op_old_range_read(self, intended: float, phase: str) -> None:
        shape = self.wl.shape
        for key, old in self._range("old_range_read", intended, self.old_rel(shape.key, shape.old), [shape.old]):
            if key in self.wl.snapshot.values:
                self.check_old(key, old, Expect(self.wl.snapshot.values[key], None))

    def op_new_range_read(self, intended: float, phase: str) -> None:
        shape = self.wl.shape
        base = shape.base(shape.key, *shape.new)
        for key, *parts in self._range("new_range_read", intended, base, list(shape.new)):
            if key in self.wl.snapshot.values:
                self.check_parts(key, tuple(parts), Expect(self.wl.snapshot.values[key], None), phase)

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        wl = self.wl
        interval = wl.threads / wl.rate if wl.rate else 0.0
        next_at = wl.t0 + self.rng.uniform(0, interval)
        try:
            while not wl.should_stop():
                if interval:
                    now = time.perf_counter()
                    if next_at > now and wl.wait(next_at - now):
                        break
                    if time.perf_counter() - next_at > wl.max_lag_s:
                        self.late_resets += 1
                        next_at = time.perf_counter()
                    intended, next_at = next_at, next_at + interval
                else:
                    intended = time.perf_counter()
                if not wl.take_ticket():
                    break
                phase = wl.watcher.phase
                op = wl.pick(self.rng, phase)
                try:
                    getattr(self, f"op_{op}")(intended, phase)
                except Exception as exc:
                    self.fail(op, exc)
        finally:
            self.close()
