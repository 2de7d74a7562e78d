"""orphaned_fk: child rows whose non-NULL key has no parent (LEFT JOIN ... WHERE parent IS NULL).

A migration that loads tables without enforcing constraints (or on SQLite without
``PRAGMA foreign_keys``) can leave such rows behind; adding the constraint later would fail.
``all_declared: true`` expands into one check per foreign key the schema declares, found with
SQLAlchemy's inspector, so a planner need not list them.
"""

from __future__ import annotations

import sqlalchemy as sa

from dmig.validate.checks import CheckEnv, where_text
from dmig.validate.db import column, where_clause
from dmig.validate.result import Outcome
from dmig.validate.spec import OrphanedFkCheck


def discover(check: OrphanedFkCheck, env: CheckEnv) -> list[OrphanedFkCheck]:
    """One explicit check per declared foreign key of the schema (sorted, reproducible)."""
    found: list[OrphanedFkCheck] = []
    schema = env.schema(check.on, check.schema_)
    with env.session(check.on) as s:
        insp = sa.inspect(s.conn)
        for table in sorted(insp.get_table_names(schema=schema)):
            for fk in insp.get_foreign_keys(table, schema=schema):
                if not fk.get("constrained_columns") or not fk.get("referred_table"):
                    continue
                child, parent = fk["constrained_columns"], fk["referred_columns"]
                found.append(
                    OrphanedFkCheck(
                        type="orphaned_fk",
                        name=None,
                        severity=check.severity,
                        on=check.on,
                        schema=schema,
                        table=table,
                        columns=child,
                        parent_table=fk["referred_table"],
                        parent_columns=parent,
                        parent_schema=fk.get("referred_schema") or schema,
                    )
                )
    for c in found:
        c.name = f"{check.name or 'orphaned_fk'} {c.label}"
    return found


def run(check: OrphanedFkCheck, env: CheckEnv) -> Outcome:
    schema = env.schema(check.on, check.schema_)
    with env.session(check.on) as s:
        child = s.table(check.table or "", schema)
        parent_table = s.table(check.parent_table or "", check.parent_schema or schema)
        parent = parent_table.alias("parent")  # the alias lets a table reference itself
        ccols = [column(child, c) for c in check.columns or []]
        pcols = [parent.c[column(parent_table, c).name] for c in check.parent_columns or []]
        join = child.outerjoin(parent, sa.and_(*[c == p for c, p in zip(ccols, pcols, strict=True)]))
        keyed = [*where_clause(child, check.where), *[c.is_not(None) for c in ccols]]
        orphan = sa.and_(*keyed, pcols[0].is_(None))
        checked = int(s.scalar(sa.select(sa.func.count()).select_from(child).where(*keyed)))
        n = int(s.scalar(sa.select(sa.func.count()).select_from(join).where(orphan)))
        sample = env.sample(s, child, [orphan], ccols, source=join) if n else []
    rel = check.label
    return Outcome(
        passed=n == 0,
        summary=f"{n} orphaned row(s) of {checked} with a key in {rel}{where_text(check)}",
        figures={"offending": n, "rows_with_key": checked},
        sample=sample,
        sample_truncated=n > len(sample),
    )
