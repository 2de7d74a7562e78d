"""Lock waits on the server while a migration runs, sampled from the server's own views.

Zero failed requests is not the whole story: a DDL that queues for its lock blocks every request
behind it, and a backfill batch holding row locks delays writers. Neither shows as an error, so
this sampler polls, on its own connection, who is waiting for a lock right now:

* PostgreSQL: ``pg_stat_activity`` rows of this database with ``wait_event_type = 'Lock'``
  (relation, tuple, transactionid...). Sampling (not ``log_lock_waits``) needs no superuser and no
  server restart, and sees waits shorter than ``deadlock_timeout``.
* MariaDB/MySQL: ``information_schema.processlist`` states ``Waiting for ... lock`` (metadata
  locks: DDL) and ``information_schema.innodb_trx`` in ``LOCK WAIT`` (row locks), plus the exact
  ``Innodb_row_lock_waits``/``Innodb_row_lock_time`` counters (server-wide) before and after.

``waiter_seconds`` adds up, over the samples, the number of sessions waiting times the interval:
an estimate of the total time sessions spent blocked (waits shorter than the interval may be
missed; the MariaDB row-lock counters are exact).
"""

from __future__ import annotations

import threading
import time
from collections import Counter

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.db.dialects import flavor_of
from dmig.db.engine import open_engine
from dmig.db.urls import parse_url

_PG_WAITS = sa.text(
    "SELECT wait_event, left(query, 200) FROM pg_stat_activity WHERE datname = current_database() "
    "AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()"
)
_MY_MDL = sa.text(
    "SELECT state, left(info, 200) FROM information_schema.processlist WHERE id <> CONNECTION_ID() "
    "AND db = DATABASE() AND state LIKE 'Waiting for%lock%'"
)
_MY_ROW = sa.text(
    "SELECT 'row lock', left(trx_query, 200) FROM information_schema.innodb_trx WHERE trx_state = 'LOCK WAIT'"
)
_MY_COUNTERS = sa.text("SHOW GLOBAL STATUS WHERE Variable_name IN ('Innodb_row_lock_waits', 'Innodb_row_lock_time')")
DDL_WORDS = ("ALTER", "CREATE", "DROP", "LOCK", "RENAME", "TRUNCATE", "COMMENT")


class WaitKind(BaseModel):
    event: str = Field(description="What is waited for: PostgreSQL wait_event (relation, tuple, transactionid) or "
                       "MariaDB 'Waiting for table metadata lock' / 'row lock'.")  # fmt: skip
    waiter: str = Field(description="Who waits: ddl (a migration step) or dml (application requests, backfill).")
    samples: int
    waiter_seconds: float


class LockWaits(BaseModel):
    dialect: str
    seconds: float
    interval_ms: float
    samples: int
    samples_with_waits: int
    max_waiters: int = Field(description="Most sessions seen waiting for a lock at one instant.")
    waiter_seconds: float = Field(description="Estimated total time sessions spent waiting for locks.")
    by_kind: list[WaitKind] = Field(default_factory=list)
    row_lock_waits: int | None = Field(default=None, description="MariaDB/MySQL: Innodb_row_lock_waits during the run.")
    row_lock_time_ms: int | None = Field(default=None, description="MariaDB/MySQL: Innodb_row_lock_time (ms).")
    errors: int = 0


def waiter_kind(statement: str | None) -> str:
    words = (statement or "").lstrip("( \n\t").split(None, 1)
    return "ddl" if words and words[0].upper() in DDL_WORDS else "dml"


class LockWaitSampler:
    """``start()`` a background sampler on one connection; ``stop()`` returns what it saw."""

    def __init__(self, url: str, interval_s: float = 0.05) -> None:
        self.url = parse_url(url)
        self.interval_s = interval_s
        self.flavor = ""
        self.counts: Counter[tuple[str, str]] = Counter()
        self.samples = self.with_waits = self.max_waiters = self.errors = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._counters_before: dict[str, int] = {}
        self._engine: sa.Engine | None = None
        self._t0 = 0.0

    def start(self) -> LockWaitSampler:
        self._engine = open_engine(self.url, pool_size=1)
        with self._engine.connect() as conn:
            self.flavor = flavor_of(conn)
            self._counters_before = self._counters(conn)
        self._t0 = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="dmig-lock-sampler", daemon=True)
        self._thread.start()
        return self

    def _counters(self, conn: sa.Connection) -> dict[str, int]:
        if self.flavor not in ("mysql", "mariadb"):
            return {}
        return {str(k): int(v) for k, v in conn.execute(_MY_COUNTERS)}

    def _waits(self, conn: sa.Connection) -> list[tuple[str, str]]:
        if self.flavor == "postgresql":
            rows = conn.execute(_PG_WAITS).all()
        elif self.flavor in ("mysql", "mariadb"):
            rows = conn.execute(_MY_MDL).all() + conn.execute(_MY_ROW).all()
        else:
            return []
        return [(str(event), waiter_kind(stmt)) for event, stmt in rows]

    def _loop(self) -> None:
        assert self._engine is not None
        conn: sa.Connection | None = None
        while not self._stop.wait(self.interval_s):
            try:
                if conn is None:
                    conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                waits = self._waits(conn)
            except sa.exc.SQLAlchemyError:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
                continue
            self.samples += 1
            self.with_waits += bool(waits)
            self.max_waiters = max(self.max_waiters, len(waits))
            self.counts.update(waits)
        if conn is not None:
            conn.close()

    def stop(self) -> LockWaits:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        seconds = time.perf_counter() - self._t0
        after: dict[str, int] = {}
        if self._engine is not None:
            try:
                with self._engine.connect() as conn:
                    after = self._counters(conn)
            finally:
                self._engine.dispose()
        step = self.interval_s if not self.samples else seconds / self.samples
        waits = None if not after else after["Innodb_row_lock_waits"] - self._counters_before["Innodb_row_lock_waits"]
        wait_ms = None if not after else after["Innodb_row_lock_time"] - self._counters_before["Innodb_row_lock_time"]
        return LockWaits(
            dialect=self.flavor,
            seconds=round(seconds, 3),
            interval_ms=round(step * 1000, 1),
            samples=self.samples,
            samples_with_waits=self.with_waits,
            max_waiters=self.max_waiters,
            waiter_seconds=round(sum(self.counts.values()) * step, 3),
            by_kind=[
                WaitKind(event=e, waiter=w, samples=n, waiter_seconds=round(n * step, 3))
                for (e, w), n in self.counts.most_common()
            ],
            row_lock_waits=waits,
            row_lock_time_ms=wait_ms,
            errors=self.errors,
        )

    def __enter__(self) -> LockWaitSampler:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        if not self._stop.is_set():
            self.stop()
