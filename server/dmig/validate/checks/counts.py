"""row_count: source and target hold the same number of rows, within a tolerance.

Renamed tables map with ``source_table``/``target_table``; the scope may differ per side
(``source_where`` / ``target_where``), e.g. when the migration deliberately drops soft-deleted
rows. The allowed difference is the larger of the absolute and the percentage tolerance.
"""

from __future__ import annotations

import sqlalchemy as sa

from dmig.validate.checks import CheckEnv
from dmig.validate.db import where_clause
from dmig.validate.result import Outcome
from dmig.validate.spec import RowCountCheck, RowCountTable


def entries(check: RowCountCheck) -> list[RowCountTable]:
    return [RowCountTable(table=t) if isinstance(t, str) else t for t in check.tables]


def _count(env: CheckEnv, side: str, table_name: str, filters: list) -> int:
    with env.session(side) as s:
        table = s.table(table_name, env.schema(side, None))
        return int(s.scalar(sa.select(sa.func.count()).select_from(table).where(*where_clause(table, filters))))


def run(check: RowCountCheck, entry: RowCountTable, env: CheckEnv) -> Outcome:
    src_filters = entry.source_where if entry.source_where is not None else entry.where
    tgt_filters = entry.target_where if entry.target_where is not None else entry.where
    source = _count(env, "source", entry.source_name, src_filters)
    target = _count(env, "target", entry.target_name, tgt_filters)
    tolerance = entry.tolerance or check.tolerance or env.defaults.tolerance
    allowed = tolerance.allowed(source)
    diff = target - source
    ok = abs(diff) <= allowed
    pct = f" ({diff / source:+.2%})" if source else ""
    verdict = "within" if ok else "exceeds"
    return Outcome(
        passed=ok,
        summary=f"{entry.label}: source {source:,}, target {target:,}, difference {diff:+,}{pct} {verdict} "
        f"the allowed {allowed:,}",
        figures={"source": source, "target": target, "difference": diff, "allowed": allowed},
    )
