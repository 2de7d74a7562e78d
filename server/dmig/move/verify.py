"""After the copy: row counts on both sides, then the checksum diff of the columns copied unchanged.

Counts must satisfy ``source rows (filtered) == target rows + rejected rows`` in create,
truncate and incremental modes (append adds to rows that were already there, so counts say
nothing). The checksum diff (``dmig.diff.diff_table``) compares every column whose values were
copied unchanged under the same name; transformed columns are not comparable by design. When
the diff finds exactly the rejected rows missing and nothing else, the table still verifies.

In create and truncate modes the copy workers hash the source rows as they stream them
(``dmig.move.streamhash``), so the checksum first compares those sums with one checksum query on
the target: the source is not read a second time. PostgreSQL pages passed through undecoded were
hashed as bytes instead, and the target is read back as binary COPY and compared byte for byte;
SQLite pages the native encoder sent as binary COPY had each row hashed as it was encoded, and the
target is read back the same way ("echo", ``dmig.move.nativepath``).
Without either, each side runs one checksum query, at the same time. Only when the sums
differ does the full diff run (it reads both sides again and names the keys). Tables are checked
side by side.
"""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.diff.hashing import as_int
from dmig.errors import DmigError
from dmig.move.expressions import ExprCompiler
from dmig.move.models import TableCheck, Verification
from dmig.move.plan import TablePlan
from dmig.move.rawconn import RawConn
from dmig.move.streamhash import HashSpec, partition_totals
from dmig.move.transforms import TargetSpec
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
    stream: list[dict[str, Any]] | None = None  # each partition's checkpoint info (streamed sums), when hashed


VERIFY_THREADS = 4


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


@dataclass
class Choice:
    """What the checksum of one table compares, or why it cannot.

    Every column copied unchanged is handed to the diff, whose rules (``dmig.diff.normalize``)
    compare JSON, CHAR, BIT and doubles by value; a column the diff finds no common form for is
    named in ``not_compared`` and the table's check is then "partial", never "match".
    """

    columns: list[str] = field(default_factory=list)
    where: list[dict[str, Any]] = field(default_factory=list)
    skip: str | None = None
    not_compared: list[str] = field(default_factory=list)

    @property
    def compared(self) -> str:
        return f"{len(self.columns) - len(self.not_compared)} columns compared" + (
            f"; NOT compared: {', '.join(self.not_compared)}" if self.not_compared else ""
        )


def checksum_choice(plan: TablePlan, spec: TargetSpec) -> Choice:
    """The columns copied unchanged; shared by the streamed and the full check."""
    copied = [c for c in spec.columns if c.origin == c.name]
    columns = [c.name for c in copied]
    if plan.key and not all(k in columns for k in plan.key):
        return Choice(skip="key columns were renamed or transformed")
    if not plan.key and len(copied) != len(spec.columns):
        return Choice(skip="no key, and not every column was copied unchanged: counts only")
    where = _diff_where(plan)
    if where is None:
        return Choice(skip="the filter uses LIKE, which the checksum diff cannot express")
    return Choice(columns=columns, where=where)


def _diff_plan(source_url: str, target_url: str, plan: TablePlan, choice: Choice) -> Any:
    """The diff's own plan for this pair of tables (both sides reflected, rules reconciled); sides left open."""
    from dmig.diff.models import WhereClause
    from dmig.diff.plan import build_plan
    from dmig.diff.sides import Side

    src = Side("source", source_url, plan.source_table, plan.source_schema, 1, 600.0)
    tgt = Side("target", target_url, plan.target_table, plan.target_schema, 1, 600.0)
    try:
        src.open()
        tgt.open()
        clauses = [WhereClause.model_validate(w) for w in choice.where]
        return build_plan(src, tgt, list(plan.key), choice.columns, clauses), src, tgt
    except BaseException:
        src.close()
        tgt.close()
        raise


def stream_spec(source_url: str, target_url: str, plan: TablePlan, spec: TargetSpec) -> HashSpec | None:
    """The row hash the copy workers compute for this table, or None when only the full diff applies."""
    if not plan.key:
        return None
    choice = checksum_choice(plan, spec)
    if choice.skip:
        return None
    try:
        dplan, src, tgt = _diff_plan(source_url, target_url, plan, choice)
    except Exception:  # the full diff will say what is wrong, after the copy
        return None
    try:
        return _spec_of(dplan, plan)
    finally:
        src.close()
        tgt.close()


def _spec_of(dplan: Any, plan: TablePlan) -> HashSpec | None:
    names = [c.name for c in plan.columns]
    if any(c not in names for c in dplan.src.columns):
        return None
    return HashSpec(
        positions=tuple(names.index(c) for c in dplan.src.columns),
        categories=tuple(dplan.src.categories),
        framed=tuple(dplan.src.framed),
        columns=tuple(dplan.src.columns),
    )


def _sums(item: VerifyItem, source_url: str, target_url: str, choice: Choice) -> tuple[str, str, str] | None:
    """One (count, hash sum) per side instead of the segmented diff; None when the full diff must decide.

    The source side is the workers' streamed sums when every partition has them ("streamed"),
    else one checksum query on the source, run at the same time as the target's ("checksum").
    """
    try:
        dplan, src, tgt = _diff_plan(source_url, target_url, item.plan, choice)
    except Exception:
        return None
    choice.not_compared = list(dplan.not_compared)
    try:
        spec = _spec_of(dplan, item.plan)
        totals = partition_totals(item.stream, spec.fingerprint) if item.stream and spec is not None else None
        if totals is None and item.rejects:
            return None  # the source still holds the rejected rows: the diff shows they are the only difference
        target = tgt.submit(lambda conn: tgt.execute(conn, dplan.tgt.checksum(None)))
        method = "streamed"
        if totals is None:
            method = "checksum"
            s_count, s_sum = src.submit(lambda conn: src.execute(conn, dplan.src.checksum(None))).result()[0]
            totals = (int(s_count), as_int(s_sum))
        count, total = target.result()[0]
    except Exception:
        return None
    finally:
        src.close()
        tgt.close()
    if (int(count), as_int(total)) != totals:
        return None  # the full diff names the keys
    how = {
        "streamed": "source rows hashed as they were copied, target checksummed in SQL",
        "checksum": "one checksum query per side",
    }[method]
    detail = f"{choice.compared}; {how}"
    if item.rejects:
        detail += f"; the {item.rejects} rejected rows are the only ones not copied"
    return ("partial" if choice.not_compared else "match"), detail, method


def _readback(item: VerifyItem, target: Engine) -> tuple[str, str, str, int] | None:
    """Partitions a fast path copied carry sums of the rows as they were sent; read the target back, compare.

    PostgreSQL pass-through: each row's binary COPY bytes as they passed ("binary"). SQLite ->
    PostgreSQL native pages: each row's binary COPY bytes as the encoder wrote them ("echo").
    """
    if item.plan.target_dialect != "postgresql" or not item.stream:
        return None
    from dmig.move import nativepath, passthrough

    columns = [c.name for c in item.plan.columns]
    kinds = (
        (
            "binary",
            passthrough.INFO_KEY,
            passthrough.fingerprint(columns),
            passthrough.binary_sum,
            "each row's binary COPY bytes hashed as they passed, the target read back as binary COPY",
        ),
        (
            "echo",
            nativepath.INFO_KEY,
            nativepath.fingerprint(columns),
            passthrough.binary_sum,
            "each row encoded from the source as binary COPY and hashed as it was sent, the target read back "
            "as binary COPY",
        ),
    )
    for method, key, spec, read, how in kinds:
        expected = partition_totals(item.stream, spec, key=key)
        if expected is None:
            continue
        try:
            raw = RawConn(target)
            try:
                got = read(raw, item.plan.target_table, item.plan.target_schema, columns)
            finally:
                raw.close()
        except Exception:  # the checksum or the diff will say what is wrong
            return None
        if got != expected:
            return None
        return "match", f"{len(columns)} columns compared byte for byte: {how}", method, got[0]
    return None


def _checksum(item: VerifyItem, source_url: str, target_url: str) -> tuple[str, str | None, str | None]:
    plan = item.plan
    choice = checksum_choice(plan, item.spec)
    if choice.skip:
        return "skipped", choice.skip, None
    quick = _sums(item, source_url, target_url, choice)
    if quick is not None:
        return quick
    try:
        from dmig.diff.service import diff_table
    except ImportError:  # pragma: no cover - the diff ships with dmig; keep the copy usable without it
        return "unavailable", "dmig.diff is not installed", None
    try:
        result = diff_table(
            source_url,
            target_url,
            plan.source_table,
            key=list(plan.key) or None,  # no key: the diff compares the rows as a multiset
            columns=choice.columns,
            target_table=plan.target_table,
            limit=20,
            schema=plan.source_schema,
            target_schema=plan.target_schema,
            where=choice.where,
        )
    except DmigError as exc:
        return "unavailable", redact(exc.message)[:300], "diff"
    except Exception as exc:  # the copy is done; a failing check must be reported, not crash the summary
        return "unavailable", redact(f"{type(exc).__name__}: {exc}")[:300], "diff"
    choice.not_compared = list(result.not_compared)
    compared = choice.compared
    agreed = "partial" if choice.not_compared else "match"
    if result.equal_on_compared:
        return agreed, compared, "diff"
    if result.extra_count == 0 and result.missing_count == item.rejects and result.changed_count == 0:
        return agreed, f"{compared}; the {item.rejects} missing rows are the rejected ones", "diff"
    explained = result.changed_count <= item.warnings and result.missing_count == item.rejects
    detail = (
        f"missing {result.missing_count}, extra {result.extra_count}, changed {result.changed_count} "
        f"(first changed columns: {sorted({c for r in result.changed[:5] for c in r.columns})})"
    )
    if explained and result.extra_count == 0:
        return (
            agreed if choice.not_compared else "explained",
            detail
            + f"; within the {item.warnings} documented value conversions (e.g. zero dates)"
            + (f"; NOT compared: {', '.join(choice.not_compared)}" if choice.not_compared else ""),
            "diff",
        )
    return "differ", detail, "diff"


def check(item: VerifyItem, source: Engine, target: Engine, source_url: str, target_url: str, mode: str) -> TableCheck:
    """One table's counts and checksum (``verify`` runs them side by side; the copy may start one early)."""
    started = time.monotonic()
    plan = item.plan
    compiler = ExprCompiler(plan.source_table, set(item.all_columns), plan.source_dialect)
    where = [compiler.condition(c) for c in plan.mapping.filter]
    check = TableCheck(table=plan.source_table, rejects=item.rejects, checksum="skipped")
    try:
        check.source_rows = _count(source, sa.table(plan.source_table, schema=plan.source_schema), where)
        fast = None if mode == "append" else _readback(item, target)  # reads every target row: counts them too
        check.target_rows = (
            fast[3] if fast else _count(target, sa.table(plan.target_table, schema=plan.target_schema), [])
        )
    except sa.exc.DBAPIError as exc:
        check.detail = redact(str(exc.orig or exc).splitlines()[0])[:300]
        return check
    if mode == "append":
        check.detail = "append mode: the target may hold other rows, counts are not compared"
        return check
    check.counts_match = check.source_rows == check.target_rows + item.rejects
    check.checksum, check.detail, check.method = fast[:3] if fast else _checksum(item, source_url, target_url)
    check.seconds = round(time.monotonic() - started, 3)
    return check


def verify(
    source: Engine, target: Engine, source_url: str, target_url: str, mode: str, items: list[VerifyItem]
) -> Verification:
    """Every table's counts and checksum; tables run side by side, since each side's database does the work."""
    threads = max(1, min(VERIFY_THREADS, len(items)))
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="dmig-verify") as pool:
        checks = list(pool.map(lambda it: check(it, source, target, source_url, target_url, mode), items))
    return summarize(checks)


def summarize(checks: list[TableCheck]) -> Verification:
    """``ok`` says whether anything compared differs; ``not_compared`` lists what no check covered.

    A table whose check is "partial" matched on every compared column but left some column out:
    ``ok`` stays true (nothing was found wrong), and the verdict line names the column instead of
    saying "passed" (see ``move.service._message``).
    """
    compared = [
        c for c in checks if c.counts_match is not None or c.checksum in ("match", "differ", "explained", "partial")
    ]
    ok = None
    if compared:
        ok = all(c.counts_match is not False and c.checksum != "differ" for c in checks)
    partial = [f"{c.table}.{part}" for c in checks if c.checksum == "partial" for part in _named(c.detail)]
    return Verification(ran=True, ok=ok, tables=checks, not_compared=partial)


def _named(detail: str | None) -> list[str]:
    """The "NOT compared: a (why), b (why)" part of a partial check's detail, one entry per column."""
    text = (detail or "").split("NOT compared: ", 1)[-1].split(";", 1)[0]
    return [p.strip() for p in re.split(r",\s*(?![^()]*\))", text) if p.strip()]
