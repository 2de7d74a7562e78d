"""unique / duplicates: key groups that occur more than once (GROUP BY ... HAVING count(*) > 1).

Equality is the database's own (its collation), which is what a unique index built on the same
columns would enforce. Rows with a NULL key part are skipped unless ``nulls_distinct: false``.
"""

from __future__ import annotations

import sqlalchemy as sa

from dmig.validate.checks import CheckEnv, where_text
from dmig.validate.db import column, raw, where_clause
from dmig.validate.result import Outcome
from dmig.validate.spec import UniqueCheck


def run(check: UniqueCheck, env: CheckEnv) -> Outcome:
    with env.session(check.on) as s:
        table = s.table(check.table, env.schema(check.on, check.schema_))
        cols = [column(table, c) for c in check.columns]
        conds = where_clause(table, check.where)
        if check.nulls_distinct:
            conds.extend(c.is_not(None) for c in cols)
        groups = (
            sa.select(*[raw(c, f"k{i}") for i, c in enumerate(cols)], sa.func.count().label("n"))
            .where(*conds)
            .group_by(*cols)
            .having(sa.func.count() > 1)
        ).subquery("dup_groups")
        row = s.execute(
            sa.select(sa.func.count().label("groups"), sa.func.coalesce(sa.func.sum(groups.c.n), 0).label("rows"))
        ).one()
        n_groups, n_rows = int(row.groups), int(row.rows)
        sample = []
        if n_groups and env.defaults.sample_size:
            keys = [groups.c[f"k{i}"] for i in range(len(cols))]
            stmt = sa.select(*keys, groups.c.n).order_by(groups.c.n.desc(), *keys).limit(env.defaults.sample_size)
            found = s.rows(stmt)
            sample = env.shown([{**{c.name: r[f"k{i}"] for i, c in enumerate(cols)}, "(rows)": r["n"]} for r in found])
    key = f"{check.table}({', '.join(check.columns)})"
    return Outcome(
        passed=n_groups == 0,
        summary=f"{n_groups} duplicate key group(s) in {key} covering {n_rows} row(s){where_text(check)}",
        figures={"offending": n_groups, "duplicate_groups": n_groups, "rows_in_duplicate_groups": n_rows},
        sample=sample,
        sample_truncated=n_groups > len(sample),
    )
