"""The database host seen from /proc, when (and only when) the server provably runs on this machine.

psutil is not a dependency, and most production servers are remote: CPU, memory and free disk
are reported only for a server we can prove is local. Proof is not "the URL says localhost"
(a container behind a published port has another filesystem): the server's process must exist
here with the start time the server itself reports. Anything we cannot read is "not visible",
never a guess.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig import safeload
from dmig.db.dialects import Flavor
from dmig.errors import DmigError

PROC = Path("/proc")
START_TOLERANCE_S = 3.0
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]", "ip6-localhost"}


@dataclass
class LocalServer:
    """What we know about a server process on this machine."""

    pid: int | None  # PostgreSQL postmaster / MariaDB mariadbd; None for SQLite (embedded)
    data_dir: Path | None
    note: str = ""


@dataclass
class CpuCounters:
    """Cumulative CPU ticks: the server's processes and the whole host, read at one moment."""

    at: float
    server_ticks: int | None
    host_busy: int
    host_total: int


@dataclass
class HostReading:
    cpu_server_pct: float | None = None
    cpu_host_pct: float | None = None
    server_rss_bytes: int | None = None
    host_memory_used_pct: float | None = None
    host_memory_total_bytes: int | None = None
    notes: list[str] = field(default_factory=list)


def is_loopback(url: URL) -> bool:
    host = (url.host or "").lower()
    return host == "" or host in _LOOPBACK or host.startswith("127.")


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat fields after the command name (which may contain spaces and parentheses)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    head, _, tail = text.rpartition(")")
    return [head.split("(", 1)[-1], *tail.split()]


def _boot_time() -> float | None:
    try:
        for line in (PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_start_epoch(pid: int) -> float | None:
    fields = _stat_fields(pid)
    boot = _boot_time()
    if fields is None or boot is None or len(fields) < 21:
        return None
    return boot + int(fields[20]) / os.sysconf("SC_CLK_TCK")  # field 22 of stat = index 20 after comm


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[2]) if fields and len(fields) > 2 else None


def locate(conn: sa.Connection, flavor: Flavor, url: URL) -> LocalServer | None:
    """The local server process and data folder, or None when the server is not provably local."""
    if flavor == "sqlite":
        db = url.database
        if not db or db == ":memory:" or db.startswith("file:"):
            return LocalServer(pid=None, data_dir=None, note="in-memory SQLite: no file")
        return LocalServer(pid=None, data_dir=Path(db).resolve().parent)
    if not is_loopback(url) or not PROC.is_dir():
        return None
    if flavor == "postgresql":
        return _locate_pg(conn)
    return _locate_mysql(conn)


def _matches(pid: int, started: float | None) -> bool:
    mine = process_start_epoch(pid)
    return started is not None and mine is not None and abs(mine - started) <= START_TOLERANCE_S


def _locate_pg(conn: sa.Connection) -> LocalServer | None:
    backend, started = conn.execute(
        sa.text("SELECT pg_backend_pid(), EXTRACT(EPOCH FROM pg_postmaster_start_time())")
    ).one()
    postmaster = parent_pid(int(backend))
    if postmaster is None or not _matches(postmaster, float(started)):
        return None
    return LocalServer(pid=postmaster, data_dir=_setting_dir(conn, "SHOW data_directory"))


def _locate_mysql(conn: sa.Connection) -> LocalServer | None:
    pid_file = conn.exec_driver_sql("SELECT @@pid_file").scalar_one()
    uptime = conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Uptime'").one()[1]
    try:
        # The path comes from the server: a FIFO or /dev/zero there must not hang or exhaust us.
        pid = int(safeload.read_text(str(pid_file), "pid_file").split()[0])
    except (OSError, ValueError, IndexError, DmigError):
        return None
    if not _matches(pid, time.time() - float(uptime or 0)):
        return None
    return LocalServer(pid=pid, data_dir=_setting_dir(conn, "SELECT @@datadir"))


def _setting_dir(conn: sa.Connection, query: str) -> Path | None:
    """The data folder when the server tells us (PostgreSQL needs pg_read_all_settings) and we can see it."""
    try:
        with conn.begin_nested():
            value = conn.exec_driver_sql(query).scalar_one()
    except sa.exc.DBAPIError:
        return None
    path = Path(str(value))
    return path if path.is_dir() else None


# --- CPU and memory ------------------------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit() and parent_pid(int(entry.name)) == pid:
            out.append(int(entry.name))
    return out


def server_tree(server: LocalServer, flavor: Flavor) -> list[int]:
    """PostgreSQL runs one process per connection under the postmaster; MariaDB is one process."""
    if server.pid is None:
        return []
    return [server.pid, *_children(server.pid)] if flavor == "postgresql" else [server.pid]


def _host_cpu() -> tuple[int, int]:
    parts = (PROC / "stat").read_text().splitlines()[0].split()[1:]
    ticks = [int(p) for p in parts]
    idle = ticks[3] + (ticks[4] if len(ticks) > 4 else 0)  # idle + iowait
    return sum(ticks) - idle, sum(ticks)


def read_cpu(pids: list[int]) -> CpuCounters | None:
    try:
        busy, total = _host_cpu()
    except (OSError, ValueError, IndexError):
        return None
    server: int | None = None
    if pids:
        server = 0
        for pid in pids:
            fields = _stat_fields(pid)
            if fields and len(fields) > 14:
                server += int(fields[12]) + int(fields[13])  # utime + stime
    return CpuCounters(at=time.monotonic(), server_ticks=server, host_busy=busy, host_total=total)


def cpu_between(before: CpuCounters, after: CpuCounters) -> tuple[float | None, float | None]:
    """(server processes' share of all cores, host busy %) between two readings, in percent."""
    total = after.host_total - before.host_total
    host = 100.0 * (after.host_busy - before.host_busy) / total if total > 0 else None
    server = None
    elapsed = after.at - before.at
    if before.server_ticks is not None and after.server_ticks is not None and elapsed > 0:
        cores = os.cpu_count() or 1
        seconds = (after.server_ticks - before.server_ticks) / os.sysconf("SC_CLK_TCK")
        server = max(0.0, 100.0 * seconds / (elapsed * cores))
    return server, host


def read_memory(pids: list[int]) -> tuple[int | None, float | None, int | None]:
    """(server RSS summed over its processes, host memory used %, host memory total)."""
    rss: int | None = None
    page = os.sysconf("SC_PAGE_SIZE")
    for pid in pids:
        try:
            resident = int((PROC / str(pid) / "statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
        rss = (rss or 0) + resident
    try:
        info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in (PROC / "meminfo").read_text().splitlines()}
        total, available = info["MemTotal"], info["MemAvailable"]
    except (OSError, ValueError, KeyError, IndexError):
        return rss, None, None
    return rss, 100.0 * (total - available) / total if total else None, total
