"""Structured expressions and filters, compiled with SQLAlchemy for the source database.

An agent describes a computed column or a filter as a small JSON tree; nothing in it is ever
pasted into SQL: column names must exist in the source table, literals become bound
parameters, and only the functions listed here exist. The source database evaluates the
result, so the same tree works on SQLite, PostgreSQL and MySQL.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.move.models import Condition
from dmig.move.typemap import Kind, parse_type_name

MAX_DEPTH = 32
_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add,
    "sub": operator.sub,
    "mul": operator.mul,
    "div": operator.truediv,
    "mod": operator.mod,
    "eq": operator.eq,
    "ne": operator.ne,
    "lt": operator.lt,
    "le": operator.le,
    "gt": operator.gt,
    "ge": operator.ge,
}
_SQL_FUNCS = {"abs", "round", "lower", "upper", "trim", "substr", "replace", "coalesce", "nullif"}
FUNCTIONS = sorted({*_BINARY, *_SQL_FUNCS, "neg", "length", "concat", "and", "or", "not", "is_null", "case", "cast"})


def cast_type(kind: Kind) -> sa.types.TypeEngine:
    """A portable SQL type for CAST (MySQL only casts to a few types; SQLAlchemy renders each dialect's)."""
    return {
        "bool": sa.Boolean(),
        "int": sa.BigInteger() if (kind.bits or 64) > 32 else sa.Integer(),
        "decimal": sa.Numeric(kind.precision, kind.scale) if kind.precision else sa.Numeric(),
        "float": sa.Float(),
        "date": sa.Date(),
        "time": sa.Time(),
        "datetime": sa.DateTime(timezone=kind.tz),
        "string": sa.String(kind.length),
    }.get(kind.name, sa.String())


class ExprCompiler:
    """Compile expression trees against one source table's columns."""

    def __init__(self, table: str, columns: set[str], dialect: str) -> None:
        self.table = table
        self.columns = columns
        self.dialect = dialect

    def column(self, name: Any) -> sa.ColumnClause:
        if not isinstance(name, str) or name not in self.columns:
            raise InvalidInput(f"table {self.table!r} has no column {name!r}", table=self.table, column=str(name))
        return sa.column(name)

    def compile(self, node: Any, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise InvalidInput(f"expression nested deeper than {MAX_DEPTH} levels")
        if not isinstance(node, dict):
            raise InvalidInput(f"expression node must be an object, got {type(node).__name__}")
        if set(node) == {"col"}:
            return self.column(node["col"])
        if set(node) == {"lit"}:
            value = node["lit"]
            if not (value is None or isinstance(value, str | int | float | bool)):
                raise InvalidInput("a literal must be a string, number, boolean or null")
            return sa.null() if value is None else sa.literal(value)
        if "fn" not in node or not set(node) <= {"fn", "args", "type"}:
            raise InvalidInput(f"unknown expression node {sorted(node)}: use col, lit or fn/args")
        fn, raw_args = node["fn"], node.get("args", [])
        if fn not in FUNCTIONS:
            raise InvalidInput(f"unknown function {fn!r}; allowed: {', '.join(FUNCTIONS)}", function=str(fn))
        if not isinstance(raw_args, list):
            raise InvalidInput(f"{fn}: args must be a list")
        args = [self.compile(a, depth + 1) for a in raw_args]
        return self._apply(fn, args, node.get("type"))

    def _apply(self, fn: str, args: list[Any], type_name: Any) -> Any:
        def need(n: int, most: int | None = None) -> None:
            if len(args) < n or (most is not None and len(args) > most):
                raise InvalidInput(f"{fn} takes {n}{'' if most == n else '+' if most is None else f'..{most}'} args")

        if fn in _BINARY:
            need(2, None if fn in ("add", "mul") else 2)
            return functools.reduce(_BINARY[fn], args)
        if fn == "neg":
            need(1, 1)
            return -args[0]
        if fn == "length":
            need(1, 1)
            return sa.func.length(args[0]) if self.dialect == "sqlite" else sa.func.char_length(args[0])
        if fn == "concat":
            need(1)
            return functools.reduce(lambda a, b: a.concat(b), [sa.cast(a, sa.String()) for a in args])
        if fn in ("and", "or"):
            need(2)
            return sa.and_(*args) if fn == "and" else sa.or_(*args)
        if fn == "not":
            need(1, 1)
            return sa.not_(args[0])
        if fn == "is_null":
            need(1, 1)
            return args[0].is_(None)
        if fn == "case":
            need(2)
            pairs = [(args[i], args[i + 1]) for i in range(0, len(args) - 1, 2)]
            return sa.case(*pairs, else_=args[-1] if len(args) % 2 else None)
        if fn == "cast":
            need(1, 1)
            if not isinstance(type_name, str):
                raise InvalidInput("cast needs a type, e.g. {'fn': 'cast', 'args': [...], 'type': 'integer'}")
            return sa.cast(args[0], cast_type(parse_type_name(type_name)))
        need(1)
        return getattr(sa.func, fn)(*args)

    def condition(self, cond: Condition) -> Any:
        col = self.column(cond.column)
        v = cond.value
        match cond.op:
            case "is_null":
                return col.is_(None)
            case "not_null":
                return col.is_not(None)
            case "in":
                return col.in_(untyped(v, expanding=True))
            case "not_in":
                return col.not_in(untyped(v, expanding=True))
            case "like":
                return col.like(untyped(v))
            case "between":
                return col.between(untyped(v[0]), untyped(v[1]))
            case _:
                if v is None:
                    raise InvalidInput(f"filter on {cond.column}: {cond.op} needs a value (use is_null/not_null)")
                return _BINARY[cond.op](col, untyped(v))


def untyped(value: Any, expanding: bool = False) -> sa.BindParameter[Any]:
    """A bound value without a type, so the database infers it from the column (no ``::VARCHAR`` cast).

    A filter value such as ``"2024-01-01"`` must compare as a timestamp against a timestamp column.
    """
    return sa.bindparam(None, value, type_=sa.types.NullType(), expanding=expanding)
