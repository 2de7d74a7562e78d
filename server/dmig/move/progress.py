"""Progress of a copy: rows done against the estimate, rows/s, ETA, per-table state.

Worker processes send row deltas; this tracker turns them into ``rc.progress`` calls at most a
few times a second (MCP progress notifications and the CLI bar both want a steady trickle, not
one message per batch of every worker).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dmig.context import ProgressFn

MIN_INTERVAL_S = 0.5


@dataclass
class TableProgress:
    total: int
    done: int = 0
    rejects: int = 0
    state: str = "pending"  # pending, loading, indexing, done, failed
    started: float | None = None


@dataclass
class Tracker:
    progress: ProgressFn
    tables: dict[str, TableProgress] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0
    _current: str = ""

    def add_table(self, name: str, total: int, done: int = 0) -> None:
        self.tables[name] = TableProgress(total=max(total, done), done=done)

    def rows(self, table: str, rows: int, rejects: int) -> None:
        t = self.tables[table]
        if t.started is None:
            t.started = time.monotonic()
        t.done += rows
        t.rejects += rejects
        t.total = max(t.total, t.done)
        t.state = "loading"
        self._current = table
        self.report()

    def set_state(self, table: str, state: str) -> None:
        self.tables[table].state = state
        self._current = table
        self.report(force=True)

    @property
    def done(self) -> int:
        return sum(t.done for t in self.tables.values())

    @property
    def total(self) -> int:
        return sum(t.total for t in self.tables.values())

    def message(self) -> str:
        elapsed = max(time.monotonic() - self.started, 1e-6)
        done, total = self.done, self.total
        moved = done - self._initial
        rate = moved / elapsed
        eta = (total - done) / rate if rate > 0 and total > done else 0.0
        active = [n for n, t in self.tables.items() if t.state in ("loading", "indexing")]
        table = self._current if self._current in active or not active else active[0]
        t = self.tables.get(table)
        head = f"{table}: {t.state} {t.done:,}/{t.total:,} rows" if t else "copy"
        finished = sum(1 for x in self.tables.values() if x.state in ("done", "failed"))
        tables = f"tables {finished}/{len(self.tables)}"
        return f"{head}; all: {done:,}/{total:,} rows, {rate:,.0f} rows/s, ETA {eta:,.0f}s; {tables}"

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < MIN_INTERVAL_S:
            return
        self._last = now
        self.progress(float(self.done), float(self.total or 1), self.message())

    def start(self) -> None:
        self.started = time.monotonic()
        self._initial = self.done

    _initial: int = 0
