"""Declarative column transforms: the target's columns, and the per-row function that produces them.

Transforms run in Python on canonical values, in the order given (so ``rename`` then ``split``
composes as expected), except ``expr`` whose value the source database computes in the same
SELECT. Planning validates everything up front (unknown columns, clashing names, a default
that does not fit its column) so a bad mapping fails before a single row moves.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.move import values as V
from dmig.move.models import Cast, Concat, Constant, Default, Drop, Expr, Rename, Split
from dmig.move.plan import TablePlan
from dmig.move.typemap import TEXT, Kind, parse_type_name

RowFn = Callable[[tuple[Any, ...]], tuple[Any, ...]]
Op = Callable[[dict[str, Any], tuple[Any, ...]], None]


@dataclass
class TargetColumn:
    name: str
    kind: Kind
    nullable: bool
    origin: str | None = None  # the source column whose values arrive unchanged (renames allowed)
    autoincrement: bool = False
    default: str | None = None
    source_type: sa.types.TypeEngine | None = None  # same-dialect copies keep the exact reflected type


@dataclass
class TargetSpec:
    columns: list[TargetColumn]
    key: list[str]  # target primary key (empty when a key column was transformed away)
    exprs: list[tuple[str, dict[str, Any], Kind]] = field(default_factory=list)
    has_ops: bool = False
    notes: list[str] = field(default_factory=list)

    def by_origin(self, source_name: str) -> str | None:
        for c in self.columns:
            if c.origin == source_name:
                return c.name
        return None


def _infer_kind(value: Any) -> Kind:
    if isinstance(value, bool):
        return Kind("bool")
    if isinstance(value, int):
        return Kind("int", bits=64)
    if isinstance(value, float):
        return Kind("float", bits=64)
    return TEXT


def _convert_constant(value: Any, kind: Kind, what: str) -> Any:
    if value is None:
        return None
    try:
        return V.to_kind(kind)(value)
    except V.ValueRejected as exc:
        raise InvalidInput(f"{what}: {exc}") from None


class _Builder:
    """Applies transform effects to an ordered set of columns, collecting the row operations."""

    def __init__(self, plan: TablePlan) -> None:
        self.plan = plan
        same = plan.source_dialect == plan.target_dialect
        excluded = set(plan.mapping.exclude_columns)
        self.cols: dict[str, TargetColumn] = {
            c.name: TargetColumn(
                name=c.name,
                kind=c.kind,
                nullable=c.nullable,
                origin=c.name,
                autoincrement=c.autoincrement,
                default=c.default,
                source_type=c.type if same else None,
            )
            for c in plan.columns
            if c.name not in excluded
        }
        self.ops: list[Op] = []
        self.exprs: list[tuple[str, dict[str, Any], Kind]] = []

    def _need(self, name: str, op: str) -> TargetColumn:
        if name not in self.cols:
            raise InvalidInput(
                f"{self.plan.source_table}: {op} refers to column {name!r}, which does not exist at that point",
                table=self.plan.source_table,
                column=name,
                columns=list(self.cols),
            )
        return self.cols[name]

    def _free(self, name: str, op: str, replacing: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        if not name or not isinstance(name, str):
            raise InvalidInput(f"{op}: a column name is required")
        if name in self.cols and name not in replacing:
            raise InvalidInput(f"{self.plan.source_table}: {op} would create column {name!r}, which already exists")

    def apply(self, t: Any, index: int) -> None:
        getattr(self, f"_{t.op}")(t, index)

    def _rename(self, t: Rename, _i: int) -> None:
        col = self._need(t.column, "rename")
        self._free(t.to, "rename")
        self.cols = {(t.to if k == t.column else k): v for k, v in self.cols.items()}
        col.name = t.to
        src, dst = t.column, t.to
        self.ops.append(lambda d, _r: d.__setitem__(dst, d.pop(src)))

    def _cast(self, t: Cast, _i: int) -> None:
        col = self._need(t.column, "cast")
        kind = parse_type_name(t.to)
        col.kind, col.origin, col.source_type, col.autoincrement, col.default = kind, None, None, False, None
        conv, name = V.to_kind(kind), t.column

        def op(d: dict[str, Any], _r: tuple[Any, ...]) -> None:
            v = d[name]
            if v is not None:
                d[name] = conv(v)

        self.ops.append(op)

    def _split(self, t: Split, _i: int) -> None:
        src = self._need(t.column, "split")
        replacing = set() if t.keep_source else {t.column}
        for name in t.into:
            self._free(name, "split", replacing)
        if len(set(t.into)) != len(t.into):
            raise InvalidInput("split: the new column names must differ")
        kind = Kind("string", length=src.kind.length) if src.kind.name == "string" else TEXT
        if not t.keep_source:
            del self.cols[t.column]
        for name in t.into:
            self.cols[name] = TargetColumn(name=name, kind=kind, nullable=True)
        column, into, sep, keep, n = t.column, list(t.into), t.separator, t.keep_source, len(t.into)

        def op(d: dict[str, Any], _r: tuple[Any, ...]) -> None:
            v = d[column] if keep else d.pop(column)
            parts = [] if v is None else V.to_kind(TEXT)(v).split(sep, n - 1)
            for j, name in enumerate(into):
                d[name] = parts[j] if j < len(parts) else None

        self.ops.append(op)

    def _concat(self, t: Concat, _i: int) -> None:
        for name in t.columns:
            self._need(name, "concat")
        replacing = set() if t.keep_sources else set(t.columns)
        self._free(t.into, "concat", replacing)
        if not t.keep_sources:
            for name in t.columns:
                del self.cols[name]
        self.cols[t.into] = TargetColumn(name=t.into, kind=TEXT, nullable=True)
        columns, into, sep, keep = list(t.columns), t.into, t.separator, t.keep_sources
        text = V.to_kind(TEXT)

        def op(d: dict[str, Any], _r: tuple[Any, ...]) -> None:
            parts = [d[c] if keep else d.pop(c) for c in columns]
            present = [text(p) for p in parts if p is not None]
            d[into] = sep.join(present) if present else None

        self.ops.append(op)

    def _default(self, t: Default, _i: int) -> None:
        col = self._need(t.column, "default")
        value = _convert_constant(t.value, col.kind, f"default for {t.column}")
        if value is not None:
            col.nullable = False
        name = t.column

        def op(d: dict[str, Any], _r: tuple[Any, ...]) -> None:
            if d[name] is None:
                d[name] = value

        self.ops.append(op)

    def _constant(self, t: Constant, _i: int) -> None:
        kind = parse_type_name(t.type) if t.type else _infer_kind(t.value)
        value = _convert_constant(t.value, kind, f"constant {t.column}")
        self.cols.pop(t.column, None)
        self.cols[t.column] = TargetColumn(name=t.column, kind=kind, nullable=value is None)
        name = t.column
        self.ops.append(lambda d, _r: d.__setitem__(name, value))

    def _drop(self, t: Drop, _i: int) -> None:
        self._need(t.column, "drop")
        del self.cols[t.column]
        name = t.column
        self.ops.append(lambda d, _r: d.pop(name))

    def _expr(self, t: Expr, _i: int) -> None:
        self._free(t.into, "expr")
        kind = parse_type_name(t.type)
        self.cols[t.into] = TargetColumn(name=t.into, kind=kind, nullable=True)
        position = len(self.plan.columns) + len(self.exprs)
        self.exprs.append((t.into, t.expr, kind))
        conv, into = V.to_kind(kind), t.into

        def op(d: dict[str, Any], r: tuple[Any, ...]) -> None:
            v = r[position]
            d[into] = None if v is None else conv(v)

        self.ops.append(op)


def plan_target(plan: TablePlan) -> tuple[TargetSpec, list[Op]]:
    """The target's columns and key after the mapping, plus the row operations that produce them."""
    b = _Builder(plan)
    for i, t in enumerate(plan.mapping.transforms):
        b.apply(t, i)
    columns = list(b.cols.values())
    if not columns:
        raise InvalidInput(f"{plan.source_table}: the mapping leaves no column to copy")
    spec = TargetSpec(columns=columns, key=[], exprs=b.exprs, has_ops=bool(b.ops))
    key = [spec.by_origin(k) for k in plan.key]
    if plan.key and all(key):
        spec.key = [k for k in key if k]
    elif plan.key:
        spec.notes.append("the source key was transformed or excluded: the target table has no primary key")
    return spec, b.ops


def _compiled_picks(picks: list[tuple[int, V.Converter | None]]) -> RowFn:
    """One straight-line function per table: ``lambda r: (r[0], f1(r[1]), ...)``.

    The generated source holds only integer positions and local names (never a column name or a
    value), and saves the per-column loop overhead that dominates a copy's CPU time.
    """
    env: dict[str, Any] = {}
    parts = []
    for n, (i, f) in enumerate(picks):
        if f is None:
            parts.append(f"r[{int(i)}]")
        else:
            env[f"f{n}"] = f
            parts.append(f"f{n}(r[{int(i)}])")
    args = "".join(f", f{n}=f{n}" for n in range(len(picks)) if f"f{n}" in env)
    source = f"def row_fn(r{args}):\n    return ({', '.join(parts)},)\n"
    exec(compile(source, "<dmig row_fn>", "exec"), env)
    return env["row_fn"]


def build_row_fn(plan: TablePlan, spec: TargetSpec, ops: list[Op], warn: V.WarnFn) -> RowFn:
    """A function from one source row (select order) to one target row; raises ValueRejected per row."""
    src, tgt = plan.source_dialect, plan.target_dialect
    convs = [V.source_converter(c.kind, src, tgt, c.name, warn, c.nullable) for c in plan.columns]
    nullable = {c.name for c in plan.columns if c.nullable}
    adapters = [
        V.compose(V.target_adapter(c.kind, tgt), V.key_not_null(c.name, tgt) if c.origin in nullable else None)
        if c.name in spec.key
        else V.target_adapter(c.kind, tgt)
        for c in spec.columns
    ]
    if not ops and src == tgt == "sqlite":
        convs = [None] * len(convs)  # SQLite to SQLite, same declared types: values are already in their form
        adapters = [None] * len(adapters)
    if not ops:
        index = {c.name: i for i, c in enumerate(plan.columns)}
        picks = [
            (index[c.name], V.compose(convs[index[c.name]], a)) for c, a in zip(spec.columns, adapters, strict=True)
        ]
        if all(f is None for _, f in picks):
            positions = [i for i, _ in picks]
            if positions == list(range(len(plan.columns))):
                return lambda r: r
            getter = operator.itemgetter(*positions)
            return (lambda r: (getter(r),)) if len(positions) == 1 else getter
        return _compiled_picks(picks)
    names = [c.name for c in plan.columns]
    named = list(zip(names, convs, strict=True))
    outs = [(c.name, a) for c, a in zip(spec.columns, adapters, strict=True)]

    def row_fn(r: tuple[Any, ...]) -> tuple[Any, ...]:
        d = {n: (v if f is None else f(v)) for (n, f), v in zip(named, r, strict=False)}
        for op in ops:
            op(d, r)
        return tuple([d[n] if a is None else a(d[n]) for n, a in outs])

    return row_fn
