"""Probes: small queries whose latency and failures stand for what the application feels.

Built in, per dialect: a round trip (``SELECT 1``: network and connection health), a primary-key
lookup on a table the migration touches (what an OLTP read of that table costs while it is
being rewritten; it waits when the migration holds a lock on it) and a small index range scan
(10 keys in key order), all built here with SQLAlchemy Core from introspected names. Users may
add their own probe queries; those pass ``guard.vet`` (a closed allow-list) first, then
``check_user_probes`` proves against the live catalog that every table they name is a plain table
outside the system schemas, and on PostgreSQL they run as ``pg_read_all_data`` (no superuser
rights) when the connection is a superuser's. Every probe runs on the monitor's read-only,
time-bounded session and reads at most ``row_cap`` rows; a failure or timeout is a result, never an exception.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.db.dialects import is_timeout
from dmig.errors import DmigError, InvalidInput, NotFound, database_error
from dmig.monitor import guard
from dmig.monitor.session import MonitorSession, describe_failure

DEFAULT_ROW_CAP = 100
KEY_SAMPLE = 16  # keys remembered for the PK lookup, taken once from the start of the key order
RANGE_ROWS = 10
# PostgreSQL >= 14: reads every table, has no superuser-only right (no server files, no
# pg_stat_reset, no replication slots); user probes of a superuser connection run as it.
PG_PROBE_ROLE = "pg_read_all_data"


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
    tables: tuple[tuple[str | None, str], ...] = ()  # what a user probe reads (checked at setup)
    role: str | None = None  # PostgreSQL: SET LOCAL ROLE before the probe (a constant, never user input)


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
        if probe.role == PG_PROBE_ROLE:
            conn.exec_driver_sql(f"SET LOCAL ROLE {PG_PROBE_ROLE}")  # before the clock: not the probe's cost
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
    # Per statement: Connection.execution_options() would change the connection for every later probe.
    opts = {"stream_results": True} if stream else {}
    result = (
        conn.exec_driver_sql(stmt, execution_options=opts)
        if isinstance(stmt, str)
        else conn.execute(stmt, params, execution_options=opts)
    )
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
        stream = dialect == "postgresql"
        out.append(Probe(f"user_{n}", lambda _tick, text=text: (text, {}), stream=stream, tables=vetted.tables))
    return out


def check_user_probes(session: MonitorSession, user: list[Probe]) -> None:
    """The second half of the guard, against the live catalog (the parser cannot know what a name is).

    Every table a user probe names must be a plain table (no view, whose body could call any
    function; no table function) outside the system schemas; on PostgreSQL a superuser
    connection's probes drop to ``PG_PROBE_ROLE``. Refuses the whole set on the first failure.
    """
    if user:
        session.run(lambda conn: _check_user_probes(conn, session.flavor or session.dialect, user))


def _check_user_probes(conn: sa.Connection, flavor: str, user: list[Probe]) -> None:
    role = _pg_probe_role(conn) if flavor == "postgresql" else None
    for probe in user:
        probe.role = role
        for schema, name in probe.tables:
            if not _plain_table(conn, flavor, schema, name):
                shown = ".".join(filter(None, [schema, name]))
                raise InvalidInput(
                    f"probe query refused: {probe.name} reads {shown}, which is not a plain table of this database "
                    "(views, table functions and system tables are not allowed)",
                    reason="probe_refused",
                    probe=probe.name,
                    table=shown,
                )


def _pg_probe_role(conn: sa.Connection) -> str | None:
    superuser, has_role = conn.execute(
        sa.text("SELECT rolsuper, to_regrole(:r) IS NOT NULL FROM pg_roles WHERE rolname = current_user"),
        {"r": PG_PROBE_ROLE},
    ).one()
    if not superuser:
        return None
    if not has_role:
        raise InvalidInput(
            "probe query refused: user probes do not run as a superuser, and this server has no "
            f"{PG_PROBE_ROLE} role (PostgreSQL < 14); connect as an ordinary role",
            reason="probe_refused",
        )
    return PG_PROBE_ROLE


def _plain_table(conn: sa.Connection, flavor: str, schema: str | None, name: str) -> bool:
    """Is ``schema.name`` a plain table outside the system schemas? Names are bound, never spliced."""
    if flavor == "postgresql":
        row = conn.execute(
            sa.text(
                "SELECT c.relkind, n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE c.oid = to_regclass(CASE WHEN CAST(:s AS text) IS NULL THEN quote_ident(:t) "
                "ELSE quote_ident(CAST(:s AS text)) || '.' || quote_ident(:t) END)"
            ),
            {"s": schema, "t": name},
        ).first()
        return row is not None and row[0] in ("r", "p") and row[1] not in guard.SYSTEM_SCHEMAS
    if flavor in ("mysql", "mariadb"):
        row = conn.execute(
            sa.text(
                "SELECT table_schema FROM information_schema.tables WHERE table_schema = COALESCE(:s, DATABASE()) "
                "AND table_name = :t AND table_type = 'BASE TABLE'"
            ),
            {"s": schema, "t": name},
        ).first()
        return row is not None and str(row[0]).lower() not in guard.SYSTEM_SCHEMAS
    row = conn.execute(
        sa.text("SELECT type FROM main.sqlite_master WHERE name = :t AND type = 'table'"), {"t": name}
    ).first()
    return row is not None


def table_probes(session: MonitorSession, target: ProbeTarget) -> tuple[list[Probe], list[str]]:
    """PK lookup and index range probes on ``target.table`` (notes say what could not be built)."""
    if not target.table:
        return [], ["no table given: only the round-trip probe (and user probes) run"]
    try:
        return session.run(lambda conn: _table_probes(conn, target))
    except sa.exc.SQLAlchemyError as exc:  # a name the server cannot take (NUL byte, too long, bad encoding)
        raise database_error(
            exc, f"table {target.table!r} cannot be probed", quote_driver=False, table=target.table
        ) from None


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
