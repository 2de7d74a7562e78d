"""not_null: columns that must hold a value in every row (per-column NULL counts in one scan)."""

from __future__ import annotations

import sqlalchemy as sa

from dmig.validate.checks import CheckEnv, where_text
from dmig.validate.db import column, where_clause
from dmig.validate.result import Outcome
from dmig.validate.spec import NotNullCheck


def run(check: NotNullCheck, env: CheckEnv) -> Outcome:
    with env.session(check.on) as s:
        table = s.table(check.table, env.schema(check.on, check.schema_))
        cols = [column(table, c) for c in check.columns]
        scope = where_clause(table, check.where)
        counts = [sa.func.coalesce(sa.func.sum(sa.case((c.is_(None), 1), else_=0)), 0) for c in cols]
        labels = [f"c{i}" for i in range(len(cols))]
        stmt = sa.select(sa.func.count().label("n"), *[e.label(lab) for e, lab in zip(counts, labels, strict=True)])
        row = s.execute(stmt.select_from(table).where(*scope)).one()
        nulls = {c.name: int(row._mapping[lab]) for c, lab in zip(cols, labels, strict=True)}
        any_null = sa.or_(*[c.is_(None) for c in cols])
        offending_rows = 0
        sample: list[dict] = []
        if any(nulls.values()):
            offending_rows = int(s.scalar(sa.select(sa.func.count()).select_from(table).where(*scope, any_null)))
            sample = env.sample(s, table, [*scope, any_null], cols)
    bad = {k: v for k, v in nulls.items() if v}
    summary = (
        f"no NULLs in {check.table}.{', '.join(check.columns)} over {row.n} row(s){where_text(check)}"
        if not bad
        else f"NULLs in {check.table}: " + ", ".join(f"{k}={v}" for k, v in bad.items())
    )
    return Outcome(
        passed=not bad,
        summary=summary,
        figures={"offending": offending_rows, "rows_in_scope": int(row.n), "nulls": nulls},
        sample=sample,
        sample_truncated=offending_rows > len(sample),
    )
