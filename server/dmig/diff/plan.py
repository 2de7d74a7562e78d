"""What to compare and how: columns matched across sides, the key, each column's rule, the filter.

Everything that depends on both tables' definitions is decided here once, before any data is
read, so that a bad option (unknown key column, key types that sort differently, a filter on a
missing column) fails fast with a message naming the side, and the engine only runs queries.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import sqlalchemy as sa

from dmig.diff.hashing import row_hash_sql, sum_sql
from dmig.diff.models import WhereClause
from dmig.diff.normalize import FRAMED, NOT_COMPARABLE, Category, canon_sql, compatible, reconcile
from dmig.diff.segments import Segment, byte_order, range_predicate, sample_query
from dmig.diff.sides import Side
from dmig.errors import InvalidInput

_ORDER_CLASS = {
    "int": "number",
    "bool": "number",
    "decimal": "number",
    "float": "number",
    "timestamp": "timestamp",
    "date": "date",
    "time": "time",
    "binary": "bytes",
    "text": "text",
    "float4": "number",
    "bit": "number",
    "char": "text",
    "json": "text",
    "varbit": "text",
    "timetz": "time",
    "geometry": "bytes",
}
# Why a column has no common canonical form, for the verdict line.
_WHY_NOT = "JSON has no common canonical SQL form on PostgreSQL and MariaDB"
_SERVER_RULES = {"json": "postgresql"}


@dataclass
class SidePlan:
    """One side's compiled view: its column names, rules and the SQL it runs."""

    side: Side
    key: list[str]
    columns: list[str]
    categories: list[Category]
    framed: list[bool]
    key_categories: list[Category]
    force_byte_order: bool = False
    where: sa.ColumnElement[bool] | None = None
    table: sa.TableClause = field(init=False)
    _hash: sa.ColumnElement[int] | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.table = self.side.table(list(self.side.columns))

    @property
    def dialect(self) -> str:
        return self.side.dialect

    def col(self, name: str) -> sa.ColumnClause[Any]:
        return self.table.c[name]

    @property
    def key_cols(self) -> list[sa.ColumnClause[Any]]:
        return [self.col(k) for k in self.key]

    @property
    def key_types(self) -> list[Any]:
        return [c.type for c in self.key_cols]

    @property
    def order_exprs(self) -> list[sa.ColumnElement[Any]]:
        cols: list[sa.ColumnElement[Any]] = list(self.key_cols)
        if not self.force_byte_order:
            return cols
        pairs = zip(cols, self.key_categories, strict=True)
        return [byte_order(self.dialect, c) if cat == "text" else c for c, cat in pairs]

    def hash_expr(self) -> sa.ColumnElement[int]:
        """Built once: a wide row's expression tree costs milliseconds to build, and it never changes."""
        if self._hash is None:
            cols = [self.col(c) for c in self.columns]
            self._hash = row_hash_sql(self.dialect, self.categories, self.framed, cols, self.side.version)
        return self._hash

    def canon_keys(self) -> list[sa.ColumnElement[Any]]:
        return [
            canon_sql(self.dialect, cat, c, self.side.version).label(f"ck{i}")
            for i, (c, cat) in enumerate(zip(self.key_cols, self.key_categories, strict=True))
        ]

    def canon_columns(self) -> list[sa.ColumnElement[Any]]:
        return [
            canon_sql(self.dialect, cat, self.col(c), self.side.version).label(f"cv{i}")
            for i, (c, cat) in enumerate(zip(self.columns, self.categories, strict=True))
        ]

    def condition(self, seg: Segment | None) -> sa.ColumnElement[bool] | None:
        """The segment's key range ANDed with the user's filter (None: every row)."""
        pred = range_predicate(self.order_exprs, self.key_types, seg) if seg is not None else None
        conds = [c for c in (pred, self.where) if c is not None]
        return sa.and_(*conds) if conds else None

    def filtered(self, stmt: sa.Select[Any], seg: Segment | None) -> sa.Select[Any]:
        stmt = stmt.select_from(self.table)
        cond = self.condition(seg)
        return stmt.where(cond) if cond is not None else stmt

    def sample(self, seg: Segment, step: int) -> sa.Select[Any]:
        return sample_query(self.table, self.key_cols, self.order_exprs, self.condition(seg), step)

    def checksum(self, seg: Segment | None) -> sa.Select[Any]:
        return self.filtered(sa.select(sa.func.count(), sum_sql(self.dialect, self.hash_expr())), seg)

    def bucket_sums(self, lo: int, width: int, seg: Segment) -> sa.Select[Any]:
        """(bucket, count, sum) for the integer-key buckets ``[lo + b*width, lo + (b+1)*width)`` inside ``seg``.

        One pass over the range yields thousands of small segments at once, so the first level
        costs one scan however many segments it has, instead of one query per segment.
        """
        key = self.key_cols[0]
        offset = (key - sa.bindparam(None, lo, type_=sa.BigInteger)).self_group()
        width_bind = sa.bindparam(None, width, type_=sa.BigInteger)
        bucket = (offset.op("DIV")(width_bind) if self.dialect == "mysql" else offset.op("/")(width_bind)).label("b")
        stmt = sa.select(bucket, sa.func.count(), sum_sql(self.dialect, self.hash_expr()))
        return self.filtered(stmt, seg).group_by(bucket)

    def leaves(self, segs: list[Segment]) -> sa.Select[Any]:
        """(canonical key, raw key, row hash) of every row in several small segments: one round trip."""
        stmt = sa.select(*self.canon_keys(), *self.key_cols, self.hash_expr().label("h")).select_from(self.table)
        preds = [range_predicate(self.order_exprs, self.key_types, seg) for seg in segs]
        if all(p is not None for p in preds):
            stmt = stmt.where(sa.or_(*preds))
        return stmt.where(self.where) if self.where is not None else stmt

    def keys(self, seg: Segment, limit: int) -> sa.Select[Any]:
        stmt = sa.select(*self.canon_keys(), *self.key_cols)
        return self.filtered(stmt, seg).order_by(*self.order_exprs).limit(limit)

    def details(self, raw_keys: list[tuple[Any, ...]]) -> sa.Select[Any]:
        if len(self.key) == 1:
            cond = self.key_cols[0].in_([k[0] for k in raw_keys])
        else:
            cond = sa.tuple_(*self.key_cols).in_(raw_keys)
        return sa.select(*self.canon_keys(), *self.canon_columns()).select_from(self.table).where(cond)

    def bounds(self) -> sa.Select[Any]:
        col = self.key_cols[0]
        return self.filtered(sa.select(sa.func.min(col), sa.func.max(col)), None)

    def count(self) -> sa.Select[Any]:
        return self.filtered(sa.select(sa.func.count()), None)

    def null_keys(self) -> sa.Select[Any]:
        stmt = self.filtered(sa.select(sa.func.count()), None)
        return stmt.where(sa.or_(*[c.is_(None) for c in self.key_cols]))


@dataclass
class Plan:
    src: SidePlan
    tgt: SidePlan
    key: list[str]
    columns: list[str]
    only_source: list[str]
    only_target: list[str]
    int_keys: bool
    exact_order: bool
    check_null_keys: bool
    warnings: list[str]
    not_compared: list[str] = field(default_factory=list)

    @property
    def multiset(self) -> bool:
        return not self.key


def _match_columns(src: Side, tgt: Side) -> dict[str, str]:
    """Source name -> target name: exact first, then case-insensitively (PostgreSQL folds, MySQL keeps)."""
    by_lower: dict[str, str] = {}
    for name in tgt.columns:
        by_lower.setdefault(name.lower(), name)
    out: dict[str, str] = {}
    used: set[str] = set()
    for name in src.columns:
        match = name if name in tgt.columns else by_lower.get(name.lower())
        if match is not None and match not in used:
            out[name] = match
            used.add(match)
    return out


def _resolve(names: list[str], src: Side, mapping: dict[str, str], what: str) -> list[str]:
    out = []
    lower = {n.lower(): n for n in src.columns}
    for name in names:
        real = name if name in src.columns else lower.get(name.lower())
        if real is None:
            raise InvalidInput(
                f"{what} {name!r} does not exist on the source table {src.table_name}",
                side="source",
                column=name,
                available=list(src.columns),
            )
        if real not in mapping:
            raise InvalidInput(
                f"{what} {name!r} exists on the source but not on the target table",
                side="target",
                column=name,
            )
        out.append(real)
    return out


def _default_key(src: Side, tgt: Side, mapping: dict[str, str], warnings: list[str]) -> tuple[list[str], bool]:
    """The key and whether it needs a NULL check (only a primary key is known to hold no NULL)."""
    reverse = {v: k for k, v in mapping.items()}
    if src.primary_key and all(c in mapping for c in src.primary_key):
        tgt_pk = [reverse.get(c) for c in tgt.primary_key]
        if tgt.primary_key and tgt_pk != src.primary_key:
            warnings.append(
                f"primary keys differ: source ({', '.join(src.primary_key)}) vs target ({', '.join(tgt.primary_key)});"
                " the source's is used"
            )
        return list(src.primary_key), False
    if tgt.primary_key and all(c in reverse for c in tgt.primary_key):
        warnings.append("the source has no primary key; the target's is used")
        return [reverse[c] for c in tgt.primary_key], True
    for unique in src.unique_keys:
        if unique and all(c in mapping for c in unique):
            warnings.append(f"no primary key; the unique NOT NULL key ({', '.join(unique)}) is used")
            return list(unique), False
    return [], False


def _coerce(value: Any, category: str) -> Any:
    """A JSON filter value in the column's Python type (binds must not depend on implicit casts)."""
    if not isinstance(value, str):
        return value
    try:
        if category == "timestamp":
            return dt.datetime.fromisoformat(value)
        if category == "date":
            return dt.date.fromisoformat(value)
        if category == "time":
            return dt.time.fromisoformat(value)
        if category == "decimal":
            return Decimal(value)
    except (ValueError, InvalidOperation):
        raise InvalidInput(f"filter value {value!r} is not a valid {category}") from None
    return value


def _where(plan_side: SidePlan, names: dict[str, str], clauses: list[WhereClause]) -> sa.ColumnElement[bool] | None:
    if not clauses:
        return None
    conds = []
    for clause in clauses:
        name = names[clause.column]
        info = plan_side.side.columns[name]
        conds.append(_condition(plan_side.col(name), clause, info.category, info.type))
    return sa.and_(*conds)


def _condition(col: Any, clause: WhereClause, category: str, type_: Any) -> sa.ColumnElement[bool]:
    op, value = clause.op, clause.value
    if op in ("is_null", "is_not_null"):
        return col.is_(None) if op == "is_null" else col.is_not(None)
    if op in ("in", "not_in"):
        if not isinstance(value, list) or not value or any(isinstance(v, list | dict) for v in value):
            raise InvalidInput(f"filter on {clause.column}: {op} needs a non-empty list of scalar values")
        values = [sa.bindparam(None, _coerce(v, category), type_=type_) for v in value]
        return col.in_(values) if op == "in" else col.not_in(values)
    if value is None or isinstance(value, list | dict):
        raise InvalidInput(f"filter on {clause.column}: {op} needs one scalar value (use is_null for NULL)")
    bound = sa.bindparam(None, _coerce(value, category), type_=type_)
    return {
        "=": col == bound,
        "!=": col != bound,
        "<": col < bound,
        "<=": col <= bound,
        ">": col > bound,
        ">=": col >= bound,
    }[op]


def build_plan(
    src: Side, tgt: Side, key: list[str] | None, columns: list[str] | None, where: list[WhereClause]
) -> Plan:
    warnings: list[str] = []
    mapping = _match_columns(src, tgt)
    only_source = [c for c in src.columns if c not in mapping]
    only_target = [c for c in tgt.columns if c not in mapping.values()]
    if not mapping:
        raise InvalidInput("the source and target tables have no column in common", side="target")
    if key:
        key_names = _resolve(list(dict.fromkeys(key)), src, mapping, "key column")
        check_nulls = key_names != src.primary_key
    else:
        key_names, check_nulls = _default_key(src, tgt, mapping, warnings)
    chosen = _resolve(list(dict.fromkeys(columns)), src, mapping, "column") if columns else list(mapping)
    compared = list(dict.fromkeys([*key_names, *chosen]))
    if len(compared) > 1000:
        raise InvalidInput("more than 1000 columns to compare: pass a subset with `columns`")

    cats_src: list[Category] = []
    cats_tgt: list[Category] = []
    not_compared: list[str] = []
    for name in list(compared):
        a, b = src.columns[name].category, tgt.columns[mapping[name]].category
        ra, rb = reconcile(a, b, src.dialect == "sqlite", tgt.dialect == "sqlite")
        if not _applicable(ra, src.dialect) or not _applicable(rb, tgt.dialect):
            ra = rb = NOT_COMPARABLE  # type: ignore[assignment]
        if ra == NOT_COMPARABLE:
            if name in key_names:
                raise InvalidInput(f"key column {name} cannot be compared across these two servers ({_WHY_NOT})")
            not_compared.append(f"{name} ({_WHY_NOT})")
            compared.remove(name)
            continue
        if not compatible(ra, rb):
            warnings.append(
                f"column {name}: {ra} on the source vs {rb} on the target; compared as each side's canonical text,"
                " so equal-looking values may still be reported as changed"
            )
        cats_src.append(ra)
        cats_tgt.append(rb)
    framed = [a in FRAMED or b in FRAMED for a, b in zip(cats_src, cats_tgt, strict=True)]

    key_src = [cats_src[compared.index(k)] for k in key_names]
    key_tgt = [cats_tgt[compared.index(k)] for k in key_names]
    for name, a, b in zip(key_names, key_src, key_tgt, strict=True):
        if _ORDER_CLASS[a] != _ORDER_CLASS[b]:
            raise InvalidInput(
                f"key column {name} sorts differently on the two sides ({a} vs {b}); choose another key with `key`",
                column=name,
            )

    force_src = force_tgt = False
    exact = True
    text_keys = [k for k, c in zip(key_names, key_src, strict=True) if c == "text"]
    for name in text_keys:
        s_ordered, s_exact = _ordering(src, name)
        t_ordered, t_exact = _ordering(tgt, mapping[name])
        force_src |= not s_ordered
        force_tgt |= not t_ordered
        exact &= (s_exact or not s_ordered) and (t_exact or not t_ordered)
    for label, forced in (("source", force_src), ("target", force_tgt)):
        if forced:
            warnings.append(
                f"the {label}'s key collation does not sort by code point: its key ranges are compared in byte order,"
                " which cannot use its index (slower on large tables)"
            )

    src_plan = SidePlan(src, key_names, compared, cats_src, framed, key_src, force_src)
    tgt_plan = SidePlan(
        tgt, [mapping[k] for k in key_names], [mapping[c] for c in compared], cats_tgt, framed, key_tgt, force_tgt
    )
    if where:
        names_src = {c.column: _resolve([c.column], src, mapping, "filter column")[0] for c in where}
        src_plan.where = _where(src_plan, names_src, where)
        tgt_plan.where = _where(tgt_plan, {k: mapping[v] for k, v in names_src.items()}, where)
    int_keys = len(key_names) == 1 and key_src[0] == "int" and key_tgt[0] == "int"
    return Plan(
        src=src_plan,
        tgt=tgt_plan,
        key=key_names,
        columns=compared,
        only_source=only_source,
        only_target=only_target,
        int_keys=int_keys,
        exact_order=exact,
        check_null_keys=check_nulls,
        warnings=warnings,
        not_compared=not_compared,
    )


def _applicable(category: str, dialect: str) -> bool:
    """A server-side JSON rule runs only on its own server (SQLite renders either in Python)."""
    server = _SERVER_RULES.get(category)
    return server is None or dialect in (server, "sqlite")


def _ordering(side: Side, column: str) -> tuple[bool, bool]:
    return side.key_ordering(column)
