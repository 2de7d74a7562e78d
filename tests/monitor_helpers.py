"""Shared pieces for the monitor tests: a probe table, fast thresholds, and lock holders.

Locks come from a second real connection, as a migration's ALTER would take them; waits are
bounded by the probe timeout, so no test can hang on a lock.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa

from dmig.db.urls import parse_url
from dmig.monitor.monitor import Monitor

TABLE = "probe_t"


def engine(url: str, **kw: Any) -> sa.Engine:
    return sa.create_engine(parse_url(url), **kw)


def make_table(url: str, rows: int = 200, name: str = TABLE) -> None:
    md = sa.MetaData()
    t = sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True), sa.Column("v", sa.String(20)))
    eng = engine(url)
    with eng.begin() as conn:
        md.create_all(conn)
        conn.execute(t.insert(), [{"id": i, "v": f"v{i}"} for i in range(1, rows + 1)])
    eng.dispose()


def fast(**overrides: Any) -> dict[str, Any]:
    """Thresholds that react within a few samples: windows of one sample's worth of probes."""
    base: dict[str, Any] = {
        "breaches_to_trigger": 2,
        "healthy_to_resume": 2,
        "window_probes": 3,
        "window_seconds": 60,
        "sample_interval_seconds": 0.1,
        "probe_timeout_seconds": 1.0,
        "error_rate": {"min_probes": 3},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return base


@contextlib.contextmanager
def _holding(url: str, lock_sql: str, release_sql: str | None = None) -> Iterator[sa.Connection]:
    """A lock taken by another connection until the block ends (or released early by the test)."""
    eng = engine(url)
    conn = eng.connect()
    try:
        conn.exec_driver_sql(lock_sql)
        yield conn
    finally:
        with contextlib.suppress(Exception):
            if release_sql:
                conn.exec_driver_sql(release_sql)
            conn.rollback()
        conn.close()
        eng.dispose()


def pg_lock(url: str, table: str = TABLE) -> contextlib.AbstractContextManager[sa.Connection]:
    return _holding(url, f'LOCK TABLE "{table}" IN ACCESS EXCLUSIVE MODE')


def mysql_write_lock(url: str, table: str = TABLE) -> contextlib.AbstractContextManager[sa.Connection]:
    return _holding(url, f"LOCK TABLES `{table}` WRITE", "UNLOCK TABLES")


def sample_while_locked_briefly(mon: Monitor, url: str, hold_s: float = 0.3) -> None:
    """One sample during which the PK probe waits ``hold_s`` for a lock and then succeeds: slow, not failing."""
    with pg_lock(url) as conn:
        timer = threading.Timer(hold_s, conn.rollback)
        timer.start()
        try:
            mon.sample()
        finally:
            timer.join()


def sample_until(mon: Monitor, done: Any, limit: int = 20) -> int:
    """Sample until ``done(mon)``; bounded so a regression fails instead of hanging. Returns samples taken."""
    for n in range(1, limit + 1):
        mon.sample()
        if done(mon):
            return n
    raise AssertionError(f"condition not reached in {limit} samples; verdict {mon.verdict()}")
