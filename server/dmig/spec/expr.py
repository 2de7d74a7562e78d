"""Spec expressions (backfill values, CHECK conditions, type-change conversions), compiled safely.

An expression arrives as SQL-looking text ("lower(trim(email))", "price * 100"). We parse it with
sqlglot, walk the tree and rebuild it from SQLAlchemy Core constructs using a whitelist of node
kinds; column references resolve through a callback so the same expression can render against
the table (``"users"."email"``), the trigger row (``NEW."email"``) or a view. Anything outside the
whitelist (subqueries, statements, unknown functions) is refused: a spec can never carry SQL the
dialect compiler did not produce. Arbitrary SQL belongs in a ``raw_sql`` operation, which the
linter always flags.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import reduce

import sqlalchemy as sa
import sqlglot
from sqlglot import exp

from dmig.errors import InvalidInput
from dmig.spec.sqltypes import parse_type

logging.getLogger("sqlglot").setLevel(logging.ERROR)

ColumnResolver = Callable[[str], sa.ColumnElement]

_BINARY = {
    exp.Add: lambda a, b: a + b,
    exp.Sub: lambda a, b: a - b,
    exp.Mul: lambda a, b: a * b,
    exp.Div: lambda a, b: a / b,
    exp.Mod: lambda a, b: a % b,
    exp.EQ: lambda a, b: a == b,
    exp.NEQ: lambda a, b: a != b,
    exp.GT: lambda a, b: a > b,
    exp.GTE: lambda a, b: a >= b,
    exp.LT: lambda a, b: a < b,
    exp.LTE: lambda a, b: a <= b,
    exp.And: sa.and_,
    exp.Or: sa.or_,
}
_UNARY_FUNCS = {exp.Lower: "lower", exp.Upper: "upper", exp.Abs: "abs"}
# Functions that are the same everywhere and deterministic.
_ANON_FUNCS = {"ltrim", "rtrim", "greatest", "least", "floor", "ceil", "sign"}
VOLATILE_FUNCS = {
    "random",
    "rand",
    "uuid",
    "gen_random_uuid",
    "uuid_generate_v4",
    "clock_timestamp",
    "nextval",
    "timeofday",
    "random_bytes",
    "randomblob",
    "sys_guid",
}


def parse(text: str) -> exp.Expression:
    if not isinstance(text, str) or not text.strip():
        raise InvalidInput("an expression must be non-empty text")
    try:
        tree = sqlglot.parse_one(text)
    except sqlglot.errors.SqlglotError as exc:
        raise InvalidInput(f"cannot parse expression {text!r}: {str(exc).splitlines()[0]}", expression=text) from None
    except RecursionError:  # sqlglot's parser recurses per nesting level: a structured answer, not E_INTERNAL
        raise _too_deep(text) from None
    if tree is None or isinstance(tree, exp.Block | exp.Query | exp.Command | exp.DDL | exp.DML):
        raise InvalidInput(f"{text!r} is not a single expression", expression=text)
    return tree


def _too_deep(text: str) -> InvalidInput:
    return InvalidInput(
        f"expression {text[:80]!r}... nests too deeply to parse; simplify it or use a raw_sql operation",
        expression=text[:200],
        reason="too_deep",
    )


def columns_of(text: str) -> list[str]:
    """Column names an expression reads (for dependency checks and lint)."""
    return sorted({c.name for c in parse(text).find_all(exp.Column)})


def is_volatile(text: str) -> bool:
    tree = parse(text)
    for node in tree.walk():
        name = _func_name(node)
        if name and name in VOLATILE_FUNCS:
            return True
    return False


def _func_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    if isinstance(node, exp.Func):
        return node.sql_name().lower()
    return None


class _Builder:
    def __init__(self, text: str, resolve: ColumnResolver, dialect: str) -> None:
        self.text = text
        self.resolve = resolve
        self.dialect = dialect

    def refuse(self, node: exp.Expression, why: str = "is not supported in spec expressions") -> InvalidInput:
        return InvalidInput(
            f"{node.sql()[:80]!r} {why} (in {self.text!r}); use a raw_sql operation for anything else",
            expression=self.text,
        )

    def build(self, node: exp.Expression) -> sa.ColumnElement:
        if isinstance(node, exp.Paren):
            return self.build(node.this).self_group()
        if isinstance(node, exp.Column):
            if node.table:
                raise self.refuse(node, "is qualified: name columns of the operation's table only")
            return self.resolve(node.name)
        if isinstance(node, exp.Literal):
            if node.is_string:
                return sa.literal(node.this, sa.String())
            text = node.this
            return sa.literal(float(text) if any(ch in text for ch in ".eE") else int(text))
        if isinstance(node, exp.Null):
            return sa.null()
        if isinstance(node, exp.Boolean):
            return sa.true() if node.this else sa.false()
        if isinstance(node, exp.Neg):
            return -self.build(node.this)
        if isinstance(node, exp.Not):
            inner = node.this
            if isinstance(inner, exp.Is):
                return self._is(inner, negate=True)
            return sa.not_(self.build(inner))
        if isinstance(node, exp.Is):
            return self._is(node)
        for kind, fn in _BINARY.items():
            if type(node) is kind:
                return fn(self.build(node.this), self.build(node.expression))
        if isinstance(node, exp.DPipe):
            return concat([self.build(node.this), self.build(node.expression)])
        if isinstance(node, exp.Concat):
            return concat([self.build(e) for e in node.expressions])
        if isinstance(node, exp.In) and not node.args.get("query"):
            return self.build(node.this).in_([self.build(e) for e in node.expressions])
        if isinstance(node, exp.Between):
            return self.build(node.this).between(self.build(node.args["low"]), self.build(node.args["high"]))
        if isinstance(node, exp.Like):
            return self.build(node.this).like(self.build(node.expression))
        if isinstance(node, exp.Case):
            return self._case(node)
        if isinstance(node, exp.If):
            return sa.case((self.build(node.this), self.build(node.args["true"])), else_=self._opt(node, "false"))
        if isinstance(node, exp.Cast):
            return sa.cast(self.build(node.this), parse_type(node.args["to"].sql()))
        return self._function(node)

    def _opt(self, node: exp.Expression, key: str) -> sa.ColumnElement | None:
        value = node.args.get(key)
        return self.build(value) if value is not None else None

    def _is(self, node: exp.Is, negate: bool = False) -> sa.ColumnElement:
        left, right = self.build(node.this), node.expression
        if isinstance(right, exp.Null):
            return left.is_not(None) if negate else left.is_(None)
        raise self.refuse(node, "compares with IS to something other than NULL")

    def _case(self, node: exp.Case) -> sa.ColumnElement:
        subject = self._opt(node, "this")
        whens = []
        for branch in node.args.get("ifs") or []:
            cond = self.build(branch.this)
            whens.append((subject == cond if subject is not None else cond, self.build(branch.args["true"])))
        return sa.case(*whens, else_=self._opt(node, "default"))

    def _function(self, node: exp.Expression) -> sa.ColumnElement:
        if type(node) in _UNARY_FUNCS:
            return getattr(sa.func, _UNARY_FUNCS[type(node)])(self.build(node.this))
        if isinstance(node, exp.Trim) and not node.args.get("expression") and not node.args.get("position"):
            return sa.func.trim(self.build(node.this))
        if isinstance(node, exp.Length):
            return char_length(self.build(node.this), self.dialect)
        if isinstance(node, exp.Coalesce):
            return sa.func.coalesce(self.build(node.this), *(self.build(e) for e in node.expressions))
        if isinstance(node, exp.Nullif):
            return sa.func.nullif(self.build(node.this), self.build(node.expression))
        if isinstance(node, exp.Substring):
            args = [self.build(node.this), self.build(node.args["start"])]
            if node.args.get("length") is not None:
                args.append(self.build(node.args["length"]))
            return sa.func.substr(*args)
        if isinstance(node, exp.Replace):
            return sa.func.replace(
                self.build(node.this), self.build(node.expression), self.build(node.args["replacement"])
            )
        if isinstance(node, exp.Round):
            args = [self.build(node.this)]
            if node.args.get("decimals") is not None:
                args.append(self.build(node.args["decimals"]))
            return sa.func.round(*args)
        if isinstance(node, exp.Anonymous) and str(node.name).lower() in _ANON_FUNCS:
            return getattr(sa.func, str(node.name).lower())(*(self.build(e) for e in node.expressions))
        raise self.refuse(node)


def compile_expression(text: str, resolve: ColumnResolver, dialect: str) -> sa.ColumnElement:
    """Rebuild a spec expression as a Core expression (columns via ``resolve``)."""
    tree = parse(text)
    try:
        return _Builder(text, resolve, dialect).build(tree)
    except RecursionError:
        raise _too_deep(text) from None


def concat(parts: list[sa.ColumnElement]) -> sa.ColumnElement:
    """String concatenation, NULL if any part is NULL (|| on PostgreSQL/SQLite, concat() on MySQL)."""
    typed = [sa.type_coerce(p, sa.String()) for p in parts]
    return reduce(lambda a, b: a + b, typed)


def char_length(value: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """Length in characters (MySQL's length() counts bytes)."""
    return sa.func.length(value) if dialect == "sqlite" else sa.func.char_length(value)


def position(needle: sa.ColumnElement, haystack: sa.ColumnElement, dialect: str) -> sa.ColumnElement:
    """1-based position of needle in haystack, 0 when absent."""
    if dialect == "postgresql":
        return sa.func.strpos(haystack, needle)
    if dialect == "mysql":
        return sa.func.locate(needle, haystack)
    return sa.func.instr(haystack, needle)
