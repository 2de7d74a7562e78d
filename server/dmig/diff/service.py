"""``diff_table``: the one entry point other modules (copy engine, backups, the tool) call.

It opens both sides (read-only, statement timeout, one snapshot per side), decides the plan,
runs the keyed bisection or, without a key, the multiset comparison, then describes the changed
rows column by column. Row values in the result are untrusted data: they are canonical text,
truncated, and never interpreted.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

from dmig.diff.engine import Found, KeyedDiff, Options
from dmig.diff.models import ChangedRow, DiffResult, DiffStats, KeyValue, WhereClause
from dmig.diff.multiset import MultisetDiff
from dmig.diff.plan import Plan, build_plan
from dmig.diff.sides import Side
from dmig.errors import InvalidInput
from dmig.render import visible

MAX_VALUE_CHARS = 200
DETAIL_CHUNK = 500
_INTEGER = re.compile(r"-?\d+")

ProgressFn = Callable[[float, float | None, str | None], None]


def _no_progress(done: float, total: float | None = None, message: str | None = None) -> None:
    return None


def truncate(value: Any) -> str | None:
    """Bound an untrusted value for display: canonical text, at most MAX_VALUE_CHARS characters."""
    if value is None:
        return None
    text = visible(value if isinstance(value, str) else str(value))
    if len(text) <= MAX_VALUE_CHARS:
        return text
    return f"{text[:MAX_VALUE_CHARS]}…(+{len(text) - MAX_VALUE_CHARS} chars)"


def _key_json(ck: tuple[Any, ...], categories: list[str]) -> list[KeyValue]:
    out: list[KeyValue] = []
    for text, cat in zip(ck, categories, strict=True):
        if text is not None and cat in ("int", "bool") and _INTEGER.fullmatch(str(text)):
            out.append(int(text))
        else:
            out.append(truncate(text))
    return out


def _sort_key(key: list[KeyValue]) -> tuple[Any, ...]:
    return tuple((0, v, "") if isinstance(v, int) else (1, 0, v or "") for v in key)


def _validate(limit: int, bisection_factor: int, download_threshold: int, threads: int, timeout: float) -> None:
    if limit < 0:
        raise InvalidInput("limit must be 0 or more")
    if not 2 <= bisection_factor <= 256:
        raise InvalidInput("bisection_factor must be between 2 and 256")
    if download_threshold < bisection_factor:
        raise InvalidInput("download_threshold must be at least bisection_factor")
    if not 1 <= threads <= 16:
        raise InvalidInput("threads must be between 1 and 16")
    if timeout <= 0:
        raise InvalidInput("statement_timeout_s must be positive")


def diff_table(
    source_url: str,
    target_url: str,
    table: str,
    key: list[str] | None = None,
    columns: list[str] | None = None,
    target_table: str | None = None,
    limit: int = 100,
    *,
    schema: str | None = None,
    target_schema: str | None = None,
    where: list[WhereClause] | list[dict[str, Any]] | None = None,
    segments: int | None = None,
    bisection_factor: int = 8,
    download_threshold: int = 2048,
    threads: int = 1,
    statement_timeout_s: float = 600.0,
    progress: ProgressFn | None = None,
) -> DiffResult:
    """Compare ``table`` on two databases by checksums pushed down to each; see ``dmig.diff``."""
    _validate(limit, bisection_factor, download_threshold, threads, statement_timeout_s)
    if segments is not None and not 1 <= segments <= 100_000:
        raise InvalidInput("segments must be between 1 and 100000")
    clauses = [w if isinstance(w, WhereClause) else WhereClause.model_validate(w) for w in (where or [])]
    started = time.monotonic()
    src = Side("source", source_url, table, schema, threads, statement_timeout_s)
    tgt = Side("target", target_url, target_table or table, target_schema, threads, statement_timeout_s)
    try:
        src.open()
        tgt.open()
        plan = build_plan(src, tgt, key, columns, clauses)
        _null_keys_as_multiset(plan)
        opts = Options(
            segments=segments, bisection_factor=bisection_factor, download_threshold=download_threshold, limit=limit
        )
        result = _run_multiset(plan, limit) if plan.multiset else _run_keyed(plan, opts, progress or _no_progress)
    finally:
        src.close()
        tgt.close()
    if plan.not_compared:
        result["equal_on_compared"] = result["equal"]
        result["equal"] = False  # a column left out means the tables were not shown equal
    else:
        result["equal_on_compared"] = result["equal"]
    result["stats"] = DiffStats(
        **result["stats"],
        queries_source=src.stats.queries,
        queries_target=tgt.stats.queries,
        bytes_fetched=src.stats.bytes_fetched + tgt.stats.bytes_fetched,
        seconds=round(time.monotonic() - started, 3),
        threads=threads,
        bisection_factor=bisection_factor,
        download_threshold=download_threshold,
    )
    return DiffResult(
        source=src.display,
        target=tgt.display,
        table=table,
        target_table=target_table or table,
        key=plan.key,
        columns=plan.columns,
        columns_only_in_source=plan.only_source,
        columns_only_in_target=plan.only_target,
        limit=limit,
        warnings=plan.warnings,
        not_compared=plan.not_compared,
        **result,
    )


def _null_keys_as_multiset(plan: Plan) -> None:
    """A primary key holding NULL (SQLite allows it unless the type is exactly INTEGER): compare whole rows.

    Key ranges never contain a NULL key, so a keyed comparison would leave those rows out and
    could call two different tables equal. Counting them costs one indexed query per side; when
    either side has any, the table is compared as a multiset of whole rows (key included), which
    counts and compares every row.
    """
    if plan.multiset or plan.check_null_keys or "sqlite" not in (plan.src.dialect, plan.tgt.dialect):
        return
    counts = []
    for sp in (plan.src, plan.tgt):
        rows = sp.side.submit(lambda conn, sp=sp: sp.side.execute(conn, sp.null_keys())).result()
        counts.append(int(rows[0][0]))
    if any(counts):
        plan.warnings.append(
            f"the primary key ({', '.join(plan.key)}) is NULL in {counts[0]} source and {counts[1]} target row(s): "
            "the table was compared as a multiset of whole rows, key included"
        )
        plan.key = []


def _run_keyed(plan: Plan, opts: Options, progress: ProgressFn) -> dict[str, Any]:
    differ = KeyedDiff(plan, opts, progress)
    differ.run()
    found = differ.found
    key_cats = list(plan.src.key_categories)
    missing = sorted((_key_json(ck, key_cats) for ck in found.missing), key=_sort_key)[: opts.limit]
    extra = sorted((_key_json(ck, key_cats) for ck in found.extra), key=_sort_key)[: opts.limit]
    changed = _describe_changes(plan, found, opts.limit)
    c = differ.counters
    missing_count = len(found.missing) + found.unlisted_missing
    extra_count = len(found.extra) + found.unlisted_extra
    equal = differ.complete and found.total == 0
    if not differ.complete and found.total == 0:
        equal = False  # limit 0: a checksum differed, but no difference was itemised
    progress(1.0, 1.0, "diff finished")
    return {
        "equal": equal,
        "complete": differ.complete,
        "mode": "bisection",
        "missing_in_target": missing,
        "extra_in_target": extra,
        "changed": changed,
        "missing_count": missing_count,
        "extra_count": extra_count,
        "changed_count": len(found.changed),
        "stats": {
            "rows_source": c.rows_source,
            "rows_target": c.rows_target,
            "segments_initial": c.segments_initial,
            "segments_checked": c.segments_checked,
            "max_depth": c.max_depth,
            "leaf_downloads": c.leaf_downloads,
        },
    }


def _describe_changes(plan: Plan, found: Found, limit: int) -> list[ChangedRow]:
    """Fetch both sides' canonical values for up to ``limit`` changed keys and name what differs."""
    key_cats = list(plan.src.key_categories)
    chosen = sorted(found.changed.items(), key=lambda kv: _sort_key(_key_json(kv[0], key_cats)))[:limit]
    out: list[ChangedRow] = []
    n = len(plan.key)
    for start in range(0, len(chosen), DETAIL_CHUNK):
        chunk = chosen[start : start + DETAIL_CHUNK]
        fs = plan.src.side.submit(
            lambda conn, ch=chunk: plan.src.side.execute(conn, plan.src.details([r[1][0] for r in ch]))
        )
        ft = plan.tgt.side.submit(
            lambda conn, ch=chunk: plan.tgt.side.execute(conn, plan.tgt.details([r[1][1] for r in ch]))
        )
        by_src = {tuple(r[:n]): r[n:] for r in fs.result()}
        by_tgt = {tuple(r[:n]): r[n:] for r in ft.result()}
        for ck, _raw in chunk:
            a, b = by_src.get(ck), by_tgt.get(ck)
            if a is None or b is None:
                continue  # the row vanished between the hash and the detail query (other snapshot)
            cols = [name for name, va, vb in zip(plan.columns, a, b, strict=True) if va != vb]
            out.append(
                ChangedRow(
                    key=_key_json(ck, key_cats),
                    columns=cols,
                    source={name: truncate(a[plan.columns.index(name)]) for name in cols},
                    target={name: truncate(b[plan.columns.index(name)]) for name in cols},
                )
            )
    return out


def _run_multiset(plan: Plan, limit: int) -> dict[str, Any]:
    differ = MultisetDiff(plan, limit)
    differ.run()
    f = differ.found
    missing, extra = differ.samples(truncate)
    return {
        "equal": f.totals_equal,
        "complete": f.complete,
        "mode": "multiset",
        "missing_in_target": missing,
        "extra_in_target": extra,
        "changed": [],
        "missing_count": f.missing_count,
        "extra_count": f.extra_count,
        "changed_count": 0,
        "stats": {
            "rows_source": f.rows_source,
            "rows_target": f.rows_target,
            "segments_initial": 1,
            "segments_checked": 1 + f.buckets_checked,
            "max_depth": 0,
            "leaf_downloads": 0,
        },
    }
