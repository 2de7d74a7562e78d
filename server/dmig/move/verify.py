"""After the copy: row counts on both sides, then the checksum diff of the columns copied unchanged.

Counts must satisfy ``source rows (filtered) == target rows + rejected rows`` in create,
truncate and incremental modes (append adds to rows that were already there, so counts say
nothing). The checksum diff (``dmig.diff.diff_table``) compares every column whose values were
copied unchanged under the same name; transformed columns are not comparable by design. When
the diff finds exactly the rejected rows missing and nothing else, the table still verifies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.errors import DmigError
from dmig.move.expressions import ExprCompiler
from dmig.move.models import TableCheck, Verification
from dmig.move.plan import TablePlan
from dmig.move.transforms import TargetSpec
from dmig.move.typemap import Kind, sqlite_decimal_as_text
from dmig.redact import redact

_DIFF_OPS = {
    "eq": "=",
    "ne": "!=",
    "lt": "<",
    "le": "<=",
    "gt": ">",
    "ge": ">=",
    "in": "in",
    "not_in": "not_in",
    "is_null": "is_null",
    "not_null": "is_not_null",
}


@dataclass
class VerifyItem:
    plan: TablePlan
    spec: TargetSpec
    all_columns: list[str]
    rejects: int
    warnings: int


def _count(engine: Engine, table: sa.TableClause, where: list[Any]) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0)


def _diff_where(plan: TablePlan) -> list[dict[str, Any]] | None:
    """The table's filter in the diff's terms; None when it cannot be expressed there."""
    out: list[dict[str, Any]] = []
    for c in plan.mapping.filter:
        if c.op == "between":
            out += [{"column": c.column, "op": ">=", "value": c.value[0]}]
            out += [{"column": c.column, "op": "<=", "value": c.value[1]}]
        elif c.op in _DIFF_OPS:
            out.append({"column": c.column, "op": _DIFF_OPS[c.op], **({} if "null" in c.op else {"value": c.value})})
        else:
            return None
    return out


def _comparable(kind: Kind, plan: TablePlan) -> bool:
    """Whether the checksum diff can compare a column copied unchanged (see the type mapping)."""
    if plan.source_dialect == plan.target_dialect:
        return True
    if kind.name in ("json", "other"):
        return False  # each server prints JSON (and its other types) its own way
    if plan.target_dialect == "sqlite":
        return not (sqlite_decimal_as_text(kind) or (kind.name == "int" and kind.unsigned and kind.bits == 64))
    return True


def _checksum(item: VerifyItem, source_url: str, target_url: str) -> tuple[str, str | None]:
    plan, spec = item.plan, item.spec
    copied = [c for c in spec.columns if c.origin == c.name]
    columns = [c.name for c in copied if _comparable(c.kind, plan)]
    uncomparable = [c.name for c in copied if c.name not in columns]
    if plan.key and not all(k in columns for k in plan.key):
        return "skipped", "key columns were renamed or transformed"
    if not plan.key and (uncomparable or len(copied) != len(spec.columns)):
        return "skipped", "no key, and not every column is comparable: counts only"
    where = _diff_where(plan)
    if where is None:
        return "skipped", "the filter uses LIKE, which the checksum diff cannot express"
    try:
        from dmig.diff.service import diff_table
    except ImportError:  # pragma: no cover - the diff ships with dmig; keep the copy usable without it
        return "unavailable", "dmig.diff is not installed"
    try:
        result = diff_table(
            source_url,
            target_url,
            plan.source_table,
            key=list(plan.key) or None,  # no key: the diff compares the rows as a multiset
            columns=columns,
            target_table=plan.target_table,
            limit=20,
            schema=plan.source_schema,
            target_schema=plan.target_schema,
            where=where,
        )
    except DmigError as exc:
        return "unavailable", redact(exc.message)[:300]
    except Exception as exc:  # the copy is done; a failing check must be reported, not crash the summary
        return "unavailable", redact(f"{type(exc).__name__}: {exc}")[:300]
    compared = f"{len(columns)} columns compared" + (
        f" ({', '.join(uncomparable)}: stored in a different form by design, counted only)" if uncomparable else ""
    )
    if result.equal:
        return "match", compared
    if result.extra_count == 0 and result.missing_count == item.rejects and result.changed_count == 0:
        return "match", f"{compared}; the {item.rejects} missing rows are the rejected ones"
    explained = result.changed_count <= item.warnings and result.missing_count == item.rejects
    detail = (
        f"missing {result.missing_count}, extra {result.extra_count}, changed {result.changed_count} "
        f"(first changed columns: {sorted({c for r in result.changed[:5] for c in r.columns})})"
    )
    if explained and result.extra_count == 0:
        return "explained", detail + f"; within the {item.warnings} documented value conversions (e.g. zero dates)"
    return "differ", detail


def verify(
    source: Engine, target: Engine, source_url: str, target_url: str, mode: str, items: list[VerifyItem]
) -> Verification:
    checks: list[TableCheck] = []
    for item in items:
        plan = item.plan
        compiler = ExprCompiler(plan.source_table, set(item.all_columns), plan.source_dialect)
        where = [compiler.condition(c) for c in plan.mapping.filter]
        check = TableCheck(table=plan.source_table, rejects=item.rejects, checksum="skipped")
        try:
            check.source_rows = _count(source, sa.table(plan.source_table, schema=plan.source_schema), where)
            check.target_rows = _count(target, sa.table(plan.target_table, schema=plan.target_schema), [])
        except sa.exc.DBAPIError as exc:
            check.detail = redact(str(exc.orig or exc).splitlines()[0])[:300]
            checks.append(check)
            continue
        if mode == "append":
            check.detail = "append mode: the target may hold other rows, counts are not compared"
        else:
            check.counts_match = check.source_rows == check.target_rows + item.rejects
        if mode != "append":
            check.checksum, check.detail = _checksum(item, source_url, target_url)
        checks.append(check)
    compared = [c for c in checks if c.counts_match is not None or c.checksum in ("match", "differ", "explained")]
    ok = None
    if compared:
        ok = all(c.counts_match is not False and c.checksum != "differ" for c in checks)
    return Verification(ran=True, ok=ok, tables=checks)
