"""A table's checksum exactly as ``dmig.diff`` computes it, runnable on a connection we hold.

The diff decides which columns a row hash covers, in which order and under which normalisation
rule (``build_plan``); comparing a table with an identical copy of itself yields the plan whose
``checksum`` statement we run. Building the plan through the diff (rather than re-deriving the
rules here) is what makes a manifest checksum equal to what ``diff`` would compute, and the
statement is run on the caller's connection so that it can see a chosen snapshot (the one
``pg_dump --snapshot`` reads). The diff only exposes this through ``Side``, which opens its own
short-lived connection for reflection; see the report for the narrower API we would prefer.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from dmig.backup.manifest import Checksum
from dmig.diff.hashing import as_int, register_sqlite
from dmig.diff.plan import build_plan
from dmig.diff.sides import Side

PLAN_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class ChecksumQuery:
    table: str
    statement: sa.Select[Any]
    columns: list[str]
    categories: list[str]


def checksum_query(raw_url: str, table: str, schema: str | None = None) -> ChecksumQuery:
    """The diff's whole-table (count, hash sum) statement for ``table`` (reflected on its own connection)."""
    side = Side("source", raw_url, table, schema, 1, PLAN_TIMEOUT_S)
    try:
        side.open()
        plan = build_plan(side, side, None, None, [])
        stmt = plan.src.checksum(None)
        return ChecksumQuery(table, stmt, list(plan.src.columns), list(plan.src.categories))
    finally:
        side.close()


def prepare_connection(conn: sa.Connection) -> None:
    """The session rules the diff's canonical texts assume: UTC, and our SQLite functions."""
    name = conn.dialect.name
    if name == "sqlite":
        raw = conn.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        register_sqlite(raw)
    elif name == "postgresql":
        conn.exec_driver_sql("SET TIME ZONE 'UTC'")
        conn.exec_driver_sql("SET extra_float_digits = 1")  # the float rule: shortest round-trip digits
    elif name == "mysql":
        conn.exec_driver_sql("SET SESSION time_zone = '+00:00'")


def run_checksum(conn: sa.Connection, query: ChecksumQuery) -> Checksum:
    row = conn.execute(query.statement).one()
    return Checksum(rows=int(row[0]), sum=str(as_int(row[1])), columns=query.columns, categories=query.categories)


def table_checksum(conn: sa.Connection, raw_url: str, table: str, schema: str | None = None) -> Checksum:
    """One table's checksum, planned by the diff, computed on ``conn`` (prepared by ``prepare_connection``)."""
    return run_checksum(conn, checksum_query(raw_url, table, schema))
