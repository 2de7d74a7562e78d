"""Vetting of user-supplied probe queries: a closed allow-list, not a deny list.

A probe runs every few seconds against a production database for the whole migration, inside a
tool a cautious user connects as read-only. A deny list of dangerous functions always misses one
(``ts_rewrite`` runs a query given as text; ``brin_summarize_new_values``, ``gin_clean_pending_list``,
``pg_stat_reset*`` and ``pg_drop_replication_slot`` change the server inside a READ ONLY
transaction), so the query is parsed by the database's own grammar (pglast is PostgreSQL's parser;
sqlglot for MySQL/MariaDB and SQLite) and accepted only when EVERY node of it is on a short list:
one SELECT (subqueries, CTEs, joins, UNION allowed) over plain tables, columns, literals, the
ordinary operators, casts to ordinary types and the functions in ``ALLOWED_FUNCTIONS``. Tables in
system schemas (pg_catalog, information_schema, mysql, performance_schema, sys, sqlite_*) are
refused here; ``probes`` then checks against the live catalog that every table named is a plain
table outside them (no view, no table function). This is the first of four walls: the probe also
runs in a read-only transaction with a statement timeout and a row cap, on PostgreSQL as a role
without superuser rights, and its error text is reduced to a SQLSTATE and a fixed reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from dmig.db.urls import Dialect
from dmig.errors import InvalidInput

MAX_PROBE_CHARS = 10_000
# pg_sleep(x) with a literal x up to this many seconds is tolerated (a probe that simulates work);
# anything longer, or computed, is refused: a probe that sleeps holds a snapshot and a connection.
PG_SLEEP_CAP_S = 0.01

# Plain scalar and aggregate functions that read nothing but their arguments and change nothing.
ALLOWED_FUNCTIONS = frozenset(
    {
        "count", "sum", "avg", "min", "max", "coalesce", "nullif", "greatest", "least",
        "lower", "upper", "length", "char_length", "character_length", "octet_length",
        "abs", "round", "floor", "ceil", "ceiling", "trunc", "mod", "sign",
        "now", "current_timestamp", "current_date", "current_time", "localtimestamp", "localtime",
        "date_trunc", "extract", "date_part",
        "substr", "substring", "trim", "btrim", "ltrim", "rtrim", "concat", "replace", "left", "right",
        "bool_and", "bool_or", "every", "ifnull", "if", "date", "year", "month", "day",
    }
)  # fmt: skip
# Casts run the target type's input function: only ordinary built-in types.
ALLOWED_TYPES = frozenset(
    {
        "int", "int2", "int4", "int8", "integer", "smallint", "bigint", "tinyint", "mediumint",
        "numeric", "decimal", "float", "float4", "float8", "real", "double",
        "text", "varchar", "bpchar", "char", "string", "bool", "boolean",
        "date", "time", "timetz", "timestamp", "timestamptz", "datetime", "interval", "uuid",
        "signed", "unsigned",
    }
)  # fmt: skip
# Operators by name (PostgreSQL spells LIKE as ~~); an OPERATOR(schema.op) spelling is refused.
_PG_OPERATORS = frozenset(
    {
        "=",
        "<>",
        "!=",
        "<",
        ">",
        "<=",
        ">=",
        "+",
        "-",
        "*",
        "/",
        "%",
        "||",
        "~~",
        "!~~",
        "~~*",
        "!~~*",
        "BETWEEN",
        "NOT BETWEEN",
    }
)
SYSTEM_SCHEMAS = frozenset({"pg_catalog", "information_schema", "pg_toast", "mysql", "performance_schema", "sys"})

# MySQL/MariaDB execute the text of /*! ... */ and /*M! ... */ comments: a parser that skips
# comments would vet a different statement than the server runs.
_EXECUTABLE_COMMENT = re.compile(r"/\*\s*M?!", re.IGNORECASE)


@dataclass(frozen=True)
class VettedProbe:
    """A probe query that passed the guard, in the text the database will run, and the tables it reads."""

    original: str
    sql: str
    dialect: Dialect
    tables: tuple[tuple[str | None, str], ...] = field(default=())  # (schema or None, table)


def refuse(sql: str, why: str) -> InvalidInput:
    shown = sql if len(sql) <= 200 else sql[:200] + "..."
    return InvalidInput(
        f"probe query refused: {why}; a probe must be one plain read-only SELECT over plain tables "
        "using only ordinary operators and the functions " + ", ".join(sorted(ALLOWED_FUNCTIONS)),
        reason="probe_refused",
        query=shown,
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
    if "\x00" in sql:
        raise refuse(sql.replace("\x00", "\\x00"), "the query holds a NUL character")
    if dialect == "postgresql":
        return _vet_pg(sql)
    return _vet_sqlglot(sql, dialect, row_cap)


def _system_table(schema: str | None, name: str, dialect: str) -> bool:
    if schema is not None and (schema.lower() in SYSTEM_SCHEMAS or schema.lower().startswith("pg_")):
        return True
    if dialect == "postgresql":
        return name.lower().startswith("pg_")  # unqualified pg_* resolves to pg_catalog first
    if dialect == "sqlite":
        return name.lower().startswith("sqlite_") or (schema or "main").lower() != "main"
    return False


# --- PostgreSQL (pglast = the server's own parser) ------------------------------------------------

_PG_ALLOWED_NODES = frozenset(
    {
        "SelectStmt", "ResTarget", "ColumnRef", "A_Star", "A_Const", "String", "Integer", "Float",
        "Boolean", "A_Expr", "BoolExpr", "NullTest", "BooleanTest", "CaseExpr", "CaseWhen",
        "CoalesceExpr", "MinMaxExpr", "FuncCall", "TypeCast", "TypeName", "RangeVar", "JoinExpr",
        "Alias", "SortBy", "WithClause", "CommonTableExpr", "SubLink", "RangeSubselect",
        "SQLValueFunction", "RowExpr", "WindowDef",
    }
)  # fmt: skip


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


def _names(items: Any) -> list[str]:
    return [str(getattr(i, "sval", "")).lower() for i in items or ()]


def _vet_pg(sql: str) -> VettedProbe:
    from pglast import ast
    from pglast.parser import ParseError

    from dmig.lint.pgsafe import parse_sql

    try:
        stmts = parse_sql(sql)
    except ParseError as exc:
        raise refuse(sql, f"it does not parse as PostgreSQL ({exc})") from None
    if len(stmts) != 1:
        raise refuse(sql, f"it holds {len(stmts)} statements, not exactly one")
    top = stmts[0].stmt
    if not isinstance(top, ast.SelectStmt):
        raise refuse(sql, f"it is a {type(top).__name__}, not a SELECT")
    ctes = {str(c.ctename) for c in _pg_nodes(top) if isinstance(c, ast.CommonTableExpr)}
    tables: list[tuple[str | None, str]] = []
    for node in _pg_nodes(top):
        kind = type(node).__name__
        if kind not in _PG_ALLOWED_NODES:
            raise refuse(sql, f"it uses {kind}, which is not on the probe allow-list")
        if isinstance(node, ast.SelectStmt):
            if node.intoClause is not None:
                raise refuse(sql, "SELECT ... INTO creates a table")
            if node.lockingClause:
                raise refuse(sql, "FOR UPDATE/SHARE takes row locks")
        elif isinstance(node, ast.FuncCall):
            _check_pg_function(sql, node)
        elif isinstance(node, ast.TypeName):
            names = _names(node.names)
            if (
                node.setof
                or node.arrayBounds
                or not names
                or names[-1] not in ALLOWED_TYPES
                or names[:-1] not in ([], ["pg_catalog"])
            ):
                raise refuse(sql, f"cast to type {'.'.join(names)} is not allowed")
        elif isinstance(node, ast.A_Expr):
            names = [str(getattr(n, "sval", "")) for n in node.name or ()]
            if len(names) != 1 or names[0].upper() not in _PG_OPERATORS:
                raise refuse(sql, f"operator {'.'.join(names)} is not allowed")
        elif isinstance(node, ast.RangeVar):
            schema, name = node.schemaname, str(node.relname)
            if node.catalogname:
                raise refuse(sql, "a table qualified with a database name")
            if schema is None and name in ctes:
                continue
            if _system_table(schema, name, "postgresql"):
                raise refuse(sql, f"table {'.'.join(filter(None, [schema, name]))} is a system catalog")
            tables.append((schema, name))
    return VettedProbe(sql, sql, "postgresql", tuple(dict.fromkeys(tables)))


def _check_pg_function(sql: str, node: Any) -> None:
    from pglast import ast

    names = _names(node.funcname)
    name = names[-1] if names else ""
    if names[:-1] not in ([], ["pg_catalog"]):
        raise refuse(sql, f"function {'.'.join(names)}() is not on the allow-list")
    if node.agg_filter is not None or node.agg_order or node.func_variadic:
        raise refuse(sql, f"{name}() with FILTER/ORDER BY/VARIADIC is not allowed")
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
        return
    if name not in ALLOWED_FUNCTIONS:
        raise refuse(sql, f"function {name}() is not on the allow-list")


# --- MySQL / MariaDB / SQLite (sqlglot) -------------------------------------------------------------


def _sqlglot_allowed() -> tuple[type, ...]:
    from sqlglot import exp

    return (
        exp.Select, exp.From, exp.Join, exp.Table, exp.TableAlias, exp.Identifier, exp.Column,
        exp.Star, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit, exp.Offset,
        exp.Literal, exp.Alias, exp.Paren, exp.Null, exp.Boolean, exp.EQ, exp.NEQ, exp.GT, exp.GTE,
        exp.LT, exp.LTE, exp.NullSafeEQ, exp.And, exp.Or, exp.Not, exp.Neg, exp.Add, exp.Sub,
        exp.Mul, exp.Div, exp.IntDiv, exp.Mod, exp.Like, exp.Is, exp.In, exp.Between, exp.Subquery,
        exp.Union, exp.Intersect, exp.Except, exp.With, exp.CTE, exp.Tuple, exp.Case, exp.If,
        exp.Distinct, exp.Cast, exp.DataType, exp.DPipe, exp.Func,
    )  # fmt: skip


def _vet_sqlglot(sql: str, dialect: Dialect, row_cap: int | None) -> VettedProbe:
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
    except RecursionError:  # sqlglot recurses per nesting level
        raise refuse(sql, "it nests too deeply to parse") from None
    if len(parsed) != 1:
        raise refuse(sql, f"it holds {len(parsed)} statements, not exactly one")
    top = parsed[0]
    if not isinstance(top, (exp.Select, exp.SetOperation, exp.Subquery)):
        raise refuse(sql, f"it is a {type(top).__name__}, not a SELECT")
    allowed = _sqlglot_allowed()
    plain = set(allowed) - {exp.Func}  # sqlglot models AND, IF, CAST... as Func subclasses: no name check
    ctes = {c.alias_or_name for c in top.find_all(exp.CTE)}
    tables: list[tuple[str | None, str]] = []
    for node in top.walk():
        if not isinstance(node, allowed):
            raise refuse(sql, f"it uses {type(node).__name__}, which is not on the probe allow-list")
        if isinstance(node, exp.Select) and (node.args.get("into") or node.args.get("locks")):
            raise refuse(sql, "SELECT ... INTO / FOR UPDATE / LOCK IN SHARE MODE is not a plain read")
        if isinstance(node, exp.Cast):
            to = node.args.get("to")
            type_name = (to.this.name if to is not None else "").lower()
            if type_name not in ALLOWED_TYPES:
                raise refuse(sql, f"cast to type {type_name or '?'} is not allowed")
        elif isinstance(node, exp.Func) and type(node) not in plain:
            name = (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()
            if name not in ALLOWED_FUNCTIONS:
                raise refuse(sql, f"function {name.upper()}() is not on the allow-list")
        elif isinstance(node, exp.Table):
            if not isinstance(node.this, exp.Identifier) or node.args.get("catalog"):
                raise refuse(sql, "only plain tables may be read (no table functions, no catalog prefix)")
            schema, name = (node.db or None), node.name
            if schema is None and name in ctes:
                continue
            if _system_table(schema, name, dialect):
                shown = ".".join(filter(None, [schema, name]))
                raise refuse(sql, f"table {shown} is a system table or outside the database")
            tables.append((schema, name))
    if row_cap is not None and isinstance(top, (exp.Select, exp.SetOperation)) and not top.args.get("limit"):
        top = top.limit(row_cap + 1)
    # Run what was vetted: the regenerated text, without comments, not the user's raw string.
    return VettedProbe(sql, top.sql(dialect=dialect, comments=False), dialect, tuple(dict.fromkeys(tables)))
