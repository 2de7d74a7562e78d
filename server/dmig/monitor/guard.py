"""Vetting of user-supplied probe queries: one plain SELECT, nothing that writes, waits or escapes.

A probe runs every few seconds against a production database for the whole migration, so a
probe that writes, locks rows, reads server files or sleeps would do harm in a loop. The query
is parsed by the database's own grammar (pglast is PostgreSQL's parser; sqlglot for MySQL and
SQLite) and refused unless it is exactly one SELECT with no write anywhere inside (data-changing
CTEs included), no row locks, no INTO, and no function from the deny list. This is the first of
three walls: the probe also runs in a read-only transaction with a statement timeout and a row cap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from dmig.db.urls import Dialect
from dmig.errors import InvalidInput

MAX_PROBE_CHARS = 10_000
# pg_sleep(x) with a literal x up to this many seconds is tolerated (a probe that simulates work);
# anything longer, or computed, is refused: a probe that sleeps holds a snapshot and a connection.
PG_SLEEP_CAP_S = 0.01

_PG_DENY_EXACT = {
    "pg_read_file",
    "pg_read_binary_file",
    "pg_ls_dir",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_promote",
    "pg_notify",
    "pg_logical_emit_message",
    "set_config",
    "nextval",
    "setval",
    "query_to_xml",
    "query_to_xmlschema",
    "query_to_xml_and_xmlschema",
    "cursor_to_xml",
    "cursor_to_xmlschema",
    "ts_stat",
    "txid_current",
    "pg_current_xact_id",
    "pg_import_system_collations",
}
# Whole families: large objects (lo_import/lo_export read and write server files), dblink (a
# second connection that is not read-only), advisory locks, directory listings, replication slots.
_PG_DENY_PREFIX = ("lo_", "dblink", "pg_advisory", "pg_try_advisory", "pg_ls_", "pg_replication_", "pg_create_")

_MYSQL_DENY = {
    "LOAD_FILE",
    "SLEEP",
    "BENCHMARK",
    "GET_LOCK",
    "RELEASE_LOCK",
    "RELEASE_ALL_LOCKS",
    "IS_USED_LOCK",
    "IS_FREE_LOCK",
    "MASTER_POS_WAIT",
    "MASTER_GTID_WAIT",
    "SOURCE_POS_WAIT",
    "WAIT_FOR_EXECUTED_GTID_SET",
    "WAIT_UNTIL_SQL_THREAD_AFTER_GTIDS",
    "NEXTVAL",
    "SETVAL",
    "LASTVAL",
    "SYS_EXEC",
    "SYS_EVAL",
}
_SQLITE_DENY = {"LOAD_EXTENSION", "READFILE", "WRITEFILE", "EDIT", "FTS3_TOKENIZER", "SQLITE_COMPILEOPTION_GET"}
# MySQL/MariaDB execute the text of /*! ... */ and /*M! ... */ comments: a parser that skips
# comments would vet a different statement than the server runs.
_EXECUTABLE_COMMENT = re.compile(r"/\*\s*M?!", re.IGNORECASE)


@dataclass(frozen=True)
class VettedProbe:
    """A probe query that passed the guard, in the text the database will run."""

    original: str
    sql: str
    dialect: Dialect


def refuse(sql: str, why: str) -> InvalidInput:
    shown = sql if len(sql) <= 200 else sql[:200] + "..."
    return InvalidInput(
        f"probe query refused: {why}; a probe must be one plain read-only SELECT", reason="probe_refused", query=shown
    )


def vet(sql: str, dialect: Dialect, row_cap: int | None = None) -> VettedProbe:
    """Return the probe ready to run, or raise InvalidInput saying why it is refused.

    With ``row_cap``, a MySQL/SQLite query without a LIMIT gets ``LIMIT row_cap + 1`` so the server
    stops early (PostgreSQL probes are read through a server-side cursor instead).
    """
    if not isinstance(sql, str) or not sql.strip():
        raise refuse(str(sql), "the query is empty")
    if len(sql) > MAX_PROBE_CHARS:
        raise refuse(sql, f"the query is longer than {MAX_PROBE_CHARS} characters")
    if dialect == "postgresql":
        return VettedProbe(sql, _vet_pg(sql), dialect)
    return VettedProbe(sql, _vet_sqlglot(sql, dialect, row_cap), dialect)


# --- PostgreSQL (pglast = the server's own parser) ------------------------------------------------


def _pg_nodes(node: Any) -> Iterator[Any]:
    """Every AST node below ``node`` (pglast nodes declare their fields in __slots__)."""
    from pglast import ast

    stack = [node]
    while stack:
        cur = stack.pop()
        if isinstance(cur, (list, tuple)):
            stack.extend(cur)
            continue
        if not isinstance(cur, ast.Node):
            continue
        yield cur
        for name in type(cur).__slots__:
            value = getattr(cur, name, None)
            if isinstance(value, (ast.Node, list, tuple)):
                stack.append(value)


def _vet_pg(sql: str) -> str:
    from pglast import ast, parse_sql
    from pglast.parser import ParseError

    try:
        stmts = parse_sql(sql)
    except ParseError as exc:
        raise refuse(sql, f"it does not parse as PostgreSQL ({exc})") from None
    if len(stmts) != 1:
        raise refuse(sql, f"it holds {len(stmts)} statements, not exactly one")
    top = stmts[0].stmt
    if not isinstance(top, ast.SelectStmt):
        raise refuse(sql, f"it is a {type(top).__name__}, not a SELECT")
    writes = (ast.InsertStmt, ast.UpdateStmt, ast.DeleteStmt, ast.MergeStmt)
    for node in _pg_nodes(top):
        if isinstance(node, writes):
            raise refuse(sql, f"it contains a data-changing {type(node).__name__} (e.g. in a WITH clause)")
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise refuse(sql, "SELECT ... INTO creates a table")
            if node.lockingClause:
                raise refuse(sql, "FOR UPDATE/SHARE takes row locks")
        if isinstance(node, ast.FuncCall):
            _check_pg_function(sql, node)
    return sql


def _check_pg_function(sql: str, node: Any) -> None:
    from pglast import ast

    name = str(getattr(node.funcname[-1], "sval", "")).lower()
    if name in _PG_DENY_EXACT or name.startswith(_PG_DENY_PREFIX):
        raise refuse(sql, f"function {name}() is on the deny list")
    if name == "pg_sleep":
        args = node.args or ()
        value = None
        if len(args) == 1 and isinstance(args[0], ast.A_Const) and not args[0].isnull:
            raw = args[0].val
            value = getattr(raw, "fval", None) or getattr(raw, "ival", None)
        try:
            seconds = float(value) if value is not None else None
        except (TypeError, ValueError):
            seconds = None
        if seconds is None or seconds > PG_SLEEP_CAP_S:
            raise refuse(sql, f"pg_sleep() is allowed only with a literal of at most {PG_SLEEP_CAP_S} s")


# --- MySQL / MariaDB / SQLite (sqlglot) -------------------------------------------------------------


def _vet_sqlglot(sql: str, dialect: Dialect, row_cap: int | None) -> str:
    import sqlglot
    from sqlglot import exp
    from sqlglot.errors import SqlglotError

    if dialect == "mysql" and _EXECUTABLE_COMMENT.search(sql):
        raise refuse(sql, "MySQL executable comments (/*! ... */) run hidden SQL")
    try:
        parsed = [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    except SqlglotError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise refuse(sql, f"it does not parse as a {dialect} SELECT ({first})") from None
    if len(parsed) != 1:
        raise refuse(sql, f"it holds {len(parsed)} statements, not exactly one")
    top = parsed[0]
    if not isinstance(top, (exp.Select, exp.SetOperation, exp.Subquery)):
        raise refuse(sql, f"it is a {type(top).__name__}, not a SELECT")
    forbidden = (exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter, exp.Command)
    deny = _MYSQL_DENY if dialect == "mysql" else _SQLITE_DENY
    for node in top.walk():
        if isinstance(node, forbidden):
            raise refuse(sql, f"it contains a {type(node).__name__} statement")
        if isinstance(node, exp.Select) and (node.args.get("into") or node.args.get("locks")):
            raise refuse(sql, "SELECT ... INTO / FOR UPDATE / LOCK IN SHARE MODE is not a plain read")
        if isinstance(node, (exp.Into, exp.Lock)):
            raise refuse(sql, "SELECT ... INTO / FOR UPDATE / LOCK IN SHARE MODE is not a plain read")
        if isinstance(node, exp.Func):
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).upper()
            if name in deny:
                raise refuse(sql, f"function {name}() is on the deny list")
    if row_cap is not None and isinstance(top, (exp.Select, exp.SetOperation)) and not top.args.get("limit"):
        top = top.limit(row_cap + 1)
    # Run what was vetted: the regenerated text, without comments, not the user's raw string.
    return top.sql(dialect=dialect, comments=False)
