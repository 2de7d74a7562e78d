"""The machine facts every benchmark section records, read one way.

RESULTS.md sections are only comparable if "memory", "load" and the server versions mean the
same thing in each; the benchmarks share this module instead of each reading /proc itself.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

import sqlalchemy as sa


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def host_facts() -> dict[str, str]:
    """Date, cores, memory and Python; the caller adds server versions and anchors, then the load."""
    mem = next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal"))
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "nproc": str(os.cpu_count()),
        "memory": f"{int(mem.split()[1]) / 1024 / 1024:.1f} GiB",
    }


def python_version() -> str:
    return platform.python_version()


def server_value(engine: sa.Engine, sql: str) -> str:
    """One scalar (e.g. the server version) from a throwaway engine, which is disposed of here."""
    try:
        with engine.connect() as conn:
            return str(conn.exec_driver_sql(sql).scalar())
    finally:
        engine.dispose()
