"""Probes: small queries whose latency and failures stand for what the application feels.

Built in, per dialect: a round trip (``SELECT 1``: network and connection health), a primary-key
lookup on a table the migration touches (what an OLTP read of that table costs while it is
being rewritten; it waits when the migration holds a lock on it) and a small index range scan
(10 keys in key order). Users may add their own probe queries; those pass ``guard.vet`` first.
Every probe runs on the monitor's read-only, time-bounded session and reads at most ``row_cap``
rows; a failure or timeout is a result, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.db.dialects import is_timeout
from dmig.errors import DmigError, InvalidInput, NotFound
from dmig.monitor import guard
from dmig.monitor.session import MonitorSession, describe_failure

DEFAULT_ROW_CAP = 100
KEY_SAMPLE = 16  # keys remembered for the PK lookup, taken once from the start of the key order
RANGE_ROWS = 10


class ProbeResult(BaseModel):
    probe: str = Field(description="Probe name: round_trip, pk_lookup, index_range or user_<n>.")
    ok: bool = Field(description="The probe answered without error within its timeout.")
    latency_ms: float | None = Field(
        description="Time spent in the query. For a timeout: the time waited (a lower bound). "
        "None when the probe could not even be sent (connection failure)."
    )
    timed_out: bool = Field(default=False, description="Stopped by the statement or lock timeout.")
    rows: int = Field(default=0, description="Rows read (at most row_cap).")
    truncated: bool = Field(default=False, description="The query had more rows than row_cap; the rest were not read.")
    error: str | None = Field(default=None, description="First line of the error (credentials masked).")


@dataclass
class Probe:
    """One named query; ``statement`` gives the statement for the n-th run (keys rotate)."""

    name: str
    statement: Callable[[int], tuple[sa.Executable | str, dict[str, object]]]
    stream: bool = False  # read through a server-side cursor (PostgreSQL user probes)


class ProbeTarget(BaseModel):
    """Which table the built-in probes read, if any."""

    table: str | None = Field(default=None, description="Table for the PK lookup and range probes.")
    schema_name: str | None = Field(default=None, description="Its schema (PostgreSQL) or database (MySQL).")
    range_column: str | None = Field(
        default=None, description="Leading column of an index to range-scan; default: the first primary-key column."
    )


def run_probe(session: MonitorSession, probe: Probe, tick: int, row_cap: int) -> ProbeResult:
    elapsed: list[float | None] = [None]

    def work(conn: sa.Connection) -> tuple[int, bool]:
        stmt, params = probe.statement(tick)
        start = time.perf_counter()
        try:
            return _read(conn, stmt, params, row_cap, probe.stream)
        finally:
            elapsed[0] = (time.perf_counter() - start) * 1000.0

    try:
        rows, truncated = session.run(work)
    except (sa.exc.DBAPIError, sa.exc.InvalidRequestError, DmigError) as exc:
        timed_out = is_timeout(exc)
        return ProbeResult(
            probe=probe.name, ok=False, latency_ms=elapsed[0], timed_out=timed_out, error=describe_failure(exc)
        )
    return ProbeResult(probe=probe.name, ok=True, latency_ms=elapsed[0], rows=rows, truncated=truncated)


def _read(
    conn: sa.Connection, stmt: sa.Executable | str, params: dict[str, object], row_cap: int, stream: bool
) -> tuple[int, bool]:
    target = conn.execution_options(stream_results=True) if stream else conn
    result = target.exec_driver_sql(stmt) if isinstance(stmt, str) else target.execute(stmt, params)
    try:
        rows = result.fetchmany(row_cap + 1) if result.returns_rows else []
    finally:
        result.close()
    return min(len(rows), row_cap), len(rows) > row_cap


# --- building the probe set ---------------------------------------------------------------------


def round_trip() -> Probe:
    return Probe("round_trip", lambda _tick: (sa.select(sa.literal(1)), {}))


def user_probes(queries: list[str], dialect: str, row_cap: int) -> list[Probe]:
    """Vet every query up front: one refused query refuses the whole set (fail closed, say which)."""
    out = []
    for n, sql in enumerate(queries, start=1):
        vetted = guard.vet(sql, dialect, row_cap)  # type: ignore[arg-type]
        text = vetted.sql
        out.append(Probe(f"user_{n}", lambda _tick, text=text: (text, {}), stream=dialect == "postgresql"))
    return out


def table_probes(session: MonitorSession, target: ProbeTarget) -> tuple[list[Probe], list[str]]:
    """PK lookup and index range probes on ``target.table`` (notes say what could not be built)."""
    if not target.table:
        return [], ["no table given: only the round-trip probe (and user probes) run"]
    return session.run(lambda conn: _table_probes(conn, target))


def _table_probes(conn: sa.Connection, target: ProbeTarget) -> tuple[list[Probe], list[str]]:
    name, schema = target.table or "", target.schema_name
    insp = sa.inspect(conn)
    if not insp.has_table(name, schema=schema):
        raise NotFound(f"table {name!r} not found for the probes", table=name, schema=schema)
    key = _key_columns(insp, name, schema)
    notes: list[str] = []
    if not key:
        return [], [f"table {name} has no primary key or unique index: no PK lookup or range probe"]
    table = sa.table(name, *(sa.column(c) for c in key), schema=schema)
    order = [table.c[c] for c in key]
    keys = [tuple(r) for r in conn.execute(sa.select(*order).order_by(*order).limit(KEY_SAMPLE))]
    probes: list[Probe] = []
    if keys:
        probes.append(_pk_lookup(table, key, keys))
    else:
        notes.append(f"table {name} is empty: no PK lookup probe")
    range_col = target.range_column or key[0]
    _require_index_lead(insp, name, schema, range_col, key)
    low = keys[0][key.index(range_col)] if range_col in key and keys else None
    probes.append(_range_scan(name, schema, range_col, low))
    return probes, notes


def _key_columns(insp: sa.Inspector, name: str, schema: str | None) -> list[str]:
    pk = insp.get_pk_constraint(name, schema=schema).get("constrained_columns") or []
    if pk:
        return list(pk)
    for ix in insp.get_indexes(name, schema=schema):
        if ix.get("unique") and all(c is not None for c in ix.get("column_names", [])):
            return list(ix["column_names"])
    return []


def _require_index_lead(insp: sa.Inspector, name: str, schema: str | None, column: str, key: list[str]) -> None:
    """A range probe on an unindexed column would be a full scan, not 'a small index range scan'."""
    if column == key[0]:
        return
    leads = {(ix.get("column_names") or [None])[0] for ix in insp.get_indexes(name, schema=schema)}
    if column not in leads:
        raise InvalidInput(
            f"range_column {column!r} is not the leading column of any index on {name}; "
            "a range probe must use an index",
            column=column,
        )


def _pk_lookup(table: sa.TableClause, key: list[str], keys: list[tuple[object, ...]]) -> Probe:
    params = [sa.bindparam(f"k{i}") for i in range(len(key))]
    stmt = (
        sa.select(sa.literal_column("*"))
        .select_from(table)
        .where(sa.and_(*(table.c[c] == p for c, p in zip(key, params, strict=True))))
        .limit(1)
    )

    def statement(tick: int) -> tuple[sa.Executable, dict[str, object]]:
        values = keys[tick % len(keys)]
        return stmt, {f"k{i}": v for i, v in enumerate(values)}

    return Probe("pk_lookup", statement)


def _range_scan(name: str, schema: str | None, column: str, low: object | None) -> Probe:
    table = sa.table(name, sa.column(column), schema=schema)
    col = table.c[column]
    stmt = sa.select(col).select_from(table).order_by(col).limit(RANGE_ROWS)
    if low is not None:
        stmt = stmt.where(col >= sa.bindparam("low"))
    params: dict[str, object] = {"low": low} if low is not None else {}
    return Probe("index_range", lambda _tick: (stmt, params))
