"""What abort must prove it restored: each affected table's shape and the data of its original columns.

Taken before expand (stored in the ledger's run row) and again after the rollback steps. The
shape is what the inspector reports (columns with type, nullability and default; keys, indexes,
constraints; triggers); the data is the diff's own row-hash machinery (``dmig.diff.hashing``:
canonical text per value, MD5 row hashes, an exact sum) run on the original columns only, so
columns expand added never enter the comparison and a value changed anywhere changes the sum.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import sqlalchemy as sa

from dmig.diff.hashing import as_int, register_sqlite, row_hash_sql, sum_sql
from dmig.diff.normalize import FRAMED, category_of


def dialect_name(conn: sa.Connection) -> str:
    return "mysql" if conn.dialect.name in ("mysql", "mariadb") else conn.dialect.name


def prepare(conn: sa.Connection) -> int:
    """Session rules the canonical texts assume (UTC, SQLite functions); returns PostgreSQL's version number."""
    d = dialect_name(conn)
    if d == "sqlite":
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        register_sqlite(raw)
        return 0
    if d == "postgresql":
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        return int(conn.exec_driver_sql("SHOW server_version_num").scalar_one())
    conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")
    return 0


def _triggers(conn: sa.Connection, table: str, schema: str | None) -> list[str]:
    d = dialect_name(conn)
    if d == "postgresql":
        rows = conn.execute(
            sa.text(
                "SELECT t.tgname FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid "
                "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal AND c.relname = :t "
                "AND n.nspname = coalesce(:s, current_schema())"
            ),
            {"t": table, "s": schema},
        )
    elif d == "mysql":
        rows = conn.execute(
            sa.text(
                "SELECT trigger_name FROM information_schema.triggers WHERE event_object_table = :t "
                "AND event_object_schema = coalesce(:s, DATABASE())"
            ),
            {"t": table, "s": schema},
        )
    else:
        rows = conn.execute(
            sa.text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t"), {"t": table}
        )
    return sorted(r[0] for r in rows)


def shape(conn: sa.Connection, table: str, schema: str | None) -> dict[str, Any]:
    insp = sa.inspect(conn)
    if not insp.has_table(table, schema=schema):
        return {"exists": False}
    return {
        "exists": True,
        "columns": [
            [c["name"], str(c["type"]), bool(c["nullable"]), str(c.get("default"))]
            for c in insp.get_columns(table, schema=schema)
        ],
        "pk": insp.get_pk_constraint(table, schema=schema)["constrained_columns"],
        "indexes": sorted(str(sorted(i.items(), key=str)) for i in insp.get_indexes(table, schema=schema)),
        "uniques": sorted(str(sorted(u.items(), key=str)) for u in insp.get_unique_constraints(table, schema=schema)),
        "fks": sorted(str(sorted(f.items(), key=str)) for f in insp.get_foreign_keys(table, schema=schema)),
        "checks": sorted(str(sorted(c.items(), key=str)) for c in insp.get_check_constraints(table, schema=schema)),
        "triggers": _triggers(conn, table, schema),
    }


def data_checksum(conn: sa.Connection, table: str, schema: str | None, columns: list[str], pg_version: int) -> dict:
    """{rows, sum} over ``columns`` in the diff's canonical form (order-independent)."""
    cols = {c["name"]: c for c in sa.inspect(conn).get_columns(table, schema=schema)}
    missing = [c for c in columns if c not in cols]
    if missing:
        return {"rows": None, "sum": None, "missing_columns": missing}
    t = sa.table(table, *[sa.column(c) for c in columns], schema=schema)
    categories = [category_of(cols[c]["type"]) for c in columns]
    framed = [cat in FRAMED for cat in categories]
    h = row_hash_sql(dialect_name(conn), categories, framed, [t.c[c] for c in columns], pg_version)
    row = conn.execute(sa.select(sa.func.count(), sum_sql(dialect_name(conn), h)).select_from(t)).one()
    return {"rows": int(row[0]), "sum": str(as_int(row[1])), "columns": columns}


def snapshot(engine: sa.Engine, tables: list[tuple[str | None, str]]) -> dict[str, Any]:
    """{"schema.table": {"shape": ..., "data": ...}} for the tables that exist now."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        version = prepare(conn)
        for schema, table in tables:
            s = shape(conn, table, schema)
            key = f"{schema}.{table}" if schema else table
            if not s["exists"]:
                out[key] = {"shape": s, "data": None}
                continue
            columns = [c[0] for c in s["columns"]]
            out[key] = {"shape": s, "data": data_checksum(conn, table, schema, columns, version)}
        conn.rollback()
    return out


def shapes(engine: sa.Engine, tables: list[tuple[str | None, str]]) -> dict[str, Any]:
    """{"schema.table": {"shape": ...}}: the shape alone (no data pass)."""
    with engine.connect() as conn:
        out = {(f"{s}.{t}" if s else t): {"shape": shape(conn, t, s)} for s, t in tables}
        conn.rollback()
    return out


def data_only(engine: sa.Engine, tables: list[tuple[str | None, str]], columns: dict[str, list[str]]) -> dict[str, Any]:
    """Checksums of the given original columns only (the table may have extra, expanded columns)."""
    out: dict[str, Any] = {}
    with engine.connect() as conn:
        version = prepare(conn)
        for schema, table in tables:
            key = f"{schema}.{table}" if schema else table
            if key in columns:
                out[key] = data_checksum(conn, table, schema, columns[key], version)
        conn.rollback()
    return out


def sqlite_ddl(engine: sa.Engine, tables: list[tuple[str | None, str]]) -> dict[str, dict[str, list[str]]]:
    """SQLite only: each table's own CREATE text, its indexes and triggers, taken before expand.

    SQLite changes a table's constraints only by rebuilding it, and an operation's rollback cannot
    always rebuild it back (a CHECK added by a rebuild has no DROP CONSTRAINT); with the original
    text a rollback can rebuild the exact original table around the same rows.
    """
    if engine.dialect.name != "sqlite":
        return {}
    master = sa.table("sqlite_master", sa.column("type"), sa.column("tbl_name"), sa.column("sql"))
    out: dict[str, dict[str, list[str]]] = {}
    with engine.connect() as conn:
        for _schema, table in tables:
            rows = conn.execute(
                sa.select(master.c.type, master.c.sql).where(master.c.tbl_name == table, master.c.sql.is_not(None))
            ).all()
            out[table] = {kind: [r.sql for r in rows if r.type == kind] for kind in ("table", "index", "trigger")}
        conn.rollback()
    return out
