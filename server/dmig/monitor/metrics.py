"""The numbers the thresholds judge: latency percentiles, error rate, throughput, connections,
replication lag, disk, and the host's CPU and memory.

Latency and errors come from the probes over a sliding window (bounded both in probe count and
in age, so a stall is forgotten once enough fresh probes have passed). The other figures come
from the server's own catalog views; each collector says when its figure is not visible (no
privilege, remote host, no such thing on SQLite) instead of inventing one, and a collector that
fails never spoils the rest of the sample.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.db import dialects
from dmig.db.dialects import Flavor
from dmig.errors import DmigError
from dmig.monitor import host
from dmig.monitor.probes import ProbeResult
from dmig.monitor.session import MonitorSession, describe_failure

M = TypeVar("M", bound=BaseModel)


# --- latency and errors ---------------------------------------------------------------------------


class Percentiles(BaseModel):
    p50_ms: float | None = Field(default=None, description="Median probe latency in the window (ms).")
    p95_ms: float | None = Field(default=None, description="95th percentile probe latency (ms).")
    p99_ms: float | None = Field(default=None, description="99th percentile probe latency (ms).")
    count: int = Field(default=0, description="Probe latencies in the window (timeouts included as time waited).")


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default), on an already sorted list."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q
    low = int(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def percentiles_of(values: list[float]) -> Percentiles:
    ordered = sorted(values)
    return Percentiles(
        p50_ms=percentile(ordered, 0.50),
        p95_ms=percentile(ordered, 0.95),
        p99_ms=percentile(ordered, 0.99),
        count=len(ordered),
    )


class ProbeWindow:
    """The newest probe results: at most ``max_probes`` of them, none older than ``max_age_s``."""

    def __init__(self, max_probes: int, max_age_s: float) -> None:
        self.max_age_s = max_age_s
        self._items: deque[tuple[float, ProbeResult]] = deque(maxlen=max_probes)

    def add(self, results: list[ProbeResult], at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        self._items.extend((now, r) for r in results)

    def _fresh(self) -> list[ProbeResult]:
        horizon = time.monotonic() - self.max_age_s
        while self._items and self._items[0][0] < horizon:
            self._items.popleft()
        return [r for _, r in self._items]

    def latency(self) -> Percentiles:
        # A timeout counts with the time waited (the caller felt at least that); a probe that could
        # not even be sent has no latency and counts only as an error.
        felt = [r.latency_ms for r in self._fresh() if r.latency_ms is not None and (r.ok or r.timed_out)]
        return percentiles_of(felt)

    def error_rate(self) -> tuple[float | None, int, int]:
        """(failed / all, failed, all) over the window; None when the window is empty."""
        items = self._fresh()
        failed = sum(1 for r in items if not r.ok)
        return (failed / len(items) if items else None), failed, len(items)


class ThroughputMeter:
    """Rows per second the migration reports, over a sliding time window. Thread-safe: the
    executor reports from its own thread while the sampler reads."""

    def __init__(self, window_s: float = 30.0) -> None:
        self.window_s = window_s
        self.total = 0
        self._points: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, rows: int, at: float | None = None) -> None:
        now = time.monotonic() if at is None else at
        with self._lock:
            self.total += int(rows)
            self._points.append((now, self.total))

    def rate(self, now: float | None = None) -> float | None:
        """Rows/s over the window, or None before two reports (no rate can be measured from one)."""
        now = time.monotonic() if now is None else now
        with self._lock:
            while len(self._points) > 2 and self._points[1][0] < now - self.window_s:
                self._points.popleft()
            if len(self._points) < 2:
                return None
            (t0, n0), (t1, n1) = self._points[0], self._points[-1]
        span = max(now, t1) - t0
        return (n1 - n0) / span if span > 0 else None


# --- server figures ----------------------------------------------------------------------------------


class Connections(BaseModel):
    visible: bool = Field(description="False on SQLite (no server) or without the privilege to see them.")
    in_use: int | None = Field(default=None, description="Client connections open on the whole server.")
    max: int | None = Field(default=None, description="The server's max_connections.")
    database_in_use: int | None = Field(default=None, description="Connections to this database (PostgreSQL).")
    database_limit: int | None = Field(default=None, description="This database's CONNECTION LIMIT, if any.")
    used_pct: float | None = Field(default=None, description="The tighter of in_use/max and database_in_use/limit.")
    note: str | None = None


class Replication(BaseModel):
    visible: bool
    role: str | None = Field(default=None, description="primary, replica, or standalone (no replicas).")
    replicas: int = Field(default=0, description="Replicas seen from here.")
    max_lag_s: float | None = Field(default=None, description="Worst replication lag visible from here (seconds).")
    detail: list[dict[str, Any]] = Field(default_factory=list, description="Per-replica (or per-channel) lag.")
    note: str | None = None


class Disk(BaseModel):
    database_bytes: int | None = Field(default=None, description="Size of the database (method in size_method).")
    size_method: str | None = None
    growth_bytes: int | None = Field(default=None, description="Growth since the monitor started.")
    filesystem_path: str | None = Field(default=None, description="The data folder whose filesystem is measured.")
    filesystem_total_bytes: int | None = None
    filesystem_free_bytes: int | None = None
    filesystem_used_pct: float | None = Field(default=None, description="Used share of that filesystem (percent).")
    note: str | None = None


class HostFigures(BaseModel):
    visible: bool = Field(description="True only when the server provably runs on this machine.")
    cpu_server_pct: float | None = Field(default=None, description="The server's processes, % of all cores.")
    cpu_host_pct: float | None = Field(default=None, description="The whole host's busy CPU %.")
    server_rss_bytes: int | None = Field(
        default=None,
        description="Resident memory summed over the server's processes (PostgreSQL counts shared "
        "buffers once per process that touched them, so this over-states).",
    )
    host_memory_used_pct: float | None = None
    host_memory_total_bytes: int | None = None
    note: str | None = None


def guarded(session: MonitorSession, fallback: Callable[[str], M], work: Callable[[sa.Connection], M]) -> M:
    """Run one collector; a failure becomes its 'not visible' answer with the reason."""
    try:
        return session.run(work)
    except (sa.exc.DBAPIError, sa.exc.InvalidRequestError) as exc:
        return fallback(describe_failure(exc))
    except DmigError as exc:
        return fallback(exc.message)
    except Exception as exc:  # a collector bug must not stop the monitoring of a live migration
        return fallback(f"{type(exc).__name__}: {describe_failure(exc)}")


def connections(conn: sa.Connection, flavor: Flavor) -> Connections:
    if flavor == "sqlite":
        return Connections(visible=False, note="n/a: SQLite has no server connections")
    if flavor == "postgresql":
        in_use, max_conn, db_in_use, db_limit = conn.execute(
            sa.text(
                "SELECT (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend'),"
                " current_setting('max_connections')::int,"
                " (SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                "   AND backend_type = 'client backend'),"
                " (SELECT datconnlimit FROM pg_database WHERE datname = current_database())"
            )
        ).one()
        limit = int(db_limit) if db_limit is not None and int(db_limit) >= 0 else None
    else:
        in_use = int(conn.exec_driver_sql("SHOW GLOBAL STATUS LIKE 'Threads_connected'").one()[1])
        max_conn = int(conn.exec_driver_sql("SELECT @@max_connections").scalar_one())
        db_in_use, limit = None, None
    ratios = [int(in_use) / int(max_conn)] if max_conn else []
    if limit:
        ratios.append(int(db_in_use) / limit)
    return Connections(
        visible=True,
        in_use=int(in_use),
        max=int(max_conn),
        database_in_use=None if db_in_use is None else int(db_in_use),
        database_limit=limit,
        used_pct=100.0 * max(ratios) if ratios else None,
    )


def replication(conn: sa.Connection, flavor: Flavor) -> Replication:
    if flavor == "sqlite":
        return Replication(visible=False, note="n/a: SQLite has no replication")
    if flavor == "postgresql":
        return _pg_replication(conn)
    return _mysql_replication(conn)


def _pg_replication(conn: sa.Connection) -> Replication:
    if conn.exec_driver_sql("SELECT pg_is_in_recovery()").scalar_one():
        lag, caught_up = conn.exec_driver_sql(
            "SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()),"
            " pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn()"
        ).one()
        # An idle primary sends nothing to replay, so now() - last replay grows without any lag:
        # when everything received has been replayed the lag is 0.
        value = 0.0 if caught_up else (None if lag is None else float(lag))
        return Replication(
            visible=True, role="replica", max_lag_s=value, note="this server is a replica; lag of its own replay"
        )
    rows = conn.exec_driver_sql(
        "SELECT application_name, state, EXTRACT(EPOCH FROM replay_lag) FROM pg_stat_replication"
    ).all()
    if not rows:
        return Replication(visible=True, role="standalone", replicas=0, note="no replicas")
    detail = [{"name": r[0], "state": r[1], "lag_s": None if r[2] is None else float(r[2])} for r in rows]
    # replay_lag is NULL once a streaming replica has caught up and nothing new is written.
    lags = [d["lag_s"] if d["lag_s"] is not None else 0.0 for d in detail if d["state"] == "streaming"]
    return Replication(
        visible=True, role="primary", replicas=len(rows), max_lag_s=max(lags) if lags else None, detail=detail
    )


def _show_first(conn: sa.Connection, *statements: str) -> list[dict[str, Any]]:
    """The first of several spellings the server accepts (REPLICA is new, SLAVE is old)."""
    last: Exception | None = None
    for stmt in statements:
        try:
            with conn.begin_nested():
                return [dict(r._mapping) for r in conn.exec_driver_sql(stmt)]
        except sa.exc.ProgrammingError as exc:  # syntax error: try the older spelling
            last = exc
    raise last  # type: ignore[misc]


def _mysql_replication(conn: sa.Connection) -> Replication:
    channels = _show_first(conn, "SHOW REPLICA STATUS", "SHOW SLAVE STATUS")
    if channels:
        detail = []
        for ch in channels:
            lag = ch.get("Seconds_Behind_Master", ch.get("Seconds_Behind_Source"))
            name = ch.get("Connection_name") or ch.get("Channel_Name") or ch.get("Master_Host") or "default"
            detail.append({"name": name, "lag_s": None if lag is None else float(lag)})
        lags = [d["lag_s"] for d in detail if d["lag_s"] is not None]
        note = None if len(lags) == len(detail) else "a replication thread is stopped (lag NULL)"
        return Replication(
            visible=True, role="replica", max_lag_s=max(lags) if lags else None, detail=detail, note=note
        )
    hosts = _show_first(conn, "SHOW REPLICA HOSTS", "SHOW SLAVE HOSTS")
    if not hosts:
        return Replication(visible=True, role="standalone", replicas=0, note="no replicas")
    return Replication(
        visible=True,
        role="primary",
        replicas=len(hosts),
        detail=[{"name": str(h.get("Host") or h.get("Server_id")), "lag_s": None} for h in hosts],
        note="MariaDB/MySQL primaries do not see their replicas' lag: point a monitor at each replica",
    )


def database_size(conn: sa.Connection) -> tuple[int | None, str | None]:
    schema = dialects.current_schema(conn) if conn.dialect.name != "sqlite" else "main"
    return dialects.database_size(conn, schema)


def disk(size: tuple[int | None, str | None], start_size: int | None, server: host.LocalServer | None) -> Disk:
    out = Disk(database_bytes=size[0], size_method=size[1])
    if size[0] is not None and start_size is not None:
        out.growth_bytes = size[0] - start_size
    if server is None or server.data_dir is None:
        out.note = "free space not visible: the server is not local, or its data folder is not readable here"
        return out
    try:
        usage = shutil.disk_usage(server.data_dir)
    except OSError as exc:
        out.note = f"free space not visible: {exc.strerror}"
        return out
    out.filesystem_path = str(server.data_dir)
    out.filesystem_total_bytes, out.filesystem_free_bytes = usage.total, usage.free
    out.filesystem_used_pct = 100.0 * usage.used / usage.total if usage.total else None
    return out


class HostSampler:
    """CPU needs two readings: each call compares with the previous one."""

    def __init__(self, server: host.LocalServer | None, flavor: Flavor) -> None:
        self.server = server
        self.flavor = flavor
        self._last: host.CpuCounters | None = None

    def read(self) -> HostFigures:
        if self.server is None:
            return HostFigures(visible=False, note="not visible: the server is not provably on this machine")
        pids = host.server_tree(self.server, self.flavor)
        now = host.read_cpu(pids)
        out = HostFigures(visible=now is not None)
        if now is None:
            out.note = "not visible: /proc is not readable"
            return out
        if self._last is not None:
            out.cpu_server_pct, out.cpu_host_pct = host.cpu_between(self._last, now)
        self._last = now
        out.server_rss_bytes, out.host_memory_used_pct, out.host_memory_total_bytes = host.read_memory(pids)
        if self.flavor == "sqlite":
            out.note = "SQLite runs inside this process: host figures only"
        return out


def not_visible(model: type[M]) -> Callable[[str], M]:
    def make(reason: str) -> M:
        fields: dict[str, Any] = {"note": f"not visible: {reason}"}
        if "visible" in model.model_fields:
            fields["visible"] = False
        return model(**fields)

    return make


class Snapshot(BaseModel):
    """Everything measured at one moment (one line of the timeline)."""

    ts: str = Field(description="UTC time of the sample (ISO 8601).")
    elapsed_s: float = Field(description="Seconds since the monitor started.")
    probes: list[ProbeResult] = Field(description="This sample's probe results.")
    latency: Percentiles = Field(description="Probe latency percentiles over the sliding window.")
    error_rate: float | None = Field(description="Failed probes / all probes over the window (0..1).")
    errors_in_window: int = 0
    probes_in_window: int = 0
    throughput_rows_per_s: float | None = Field(
        default=None, description="Rows/s the migration reported (None until it has reported twice)."
    )
    rows_done: int = Field(default=0, description="Rows the migration has reported in all.")
    connections: Connections
    replication: Replication
    disk: Disk
    host: HostFigures
