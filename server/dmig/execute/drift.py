"""How much a restore throws away: the rows that differ between the live table and the backup.

A restore puts the table back as the backup holds it, so every change the application made after
the backup is lost by design. Before the restore (under the same lock that stops writes) each
live row's hash is taken, keyed by the primary key, over the columns both sides share with the
same comparison rule; after the load the same hashes are taken of the restored rows. Keys only
live were written after the backup (discarded), keys only in the backup were deleted after it
(brought back), keys in both with different hashes were updated after it (reverted). Hashes are
the diff's row hashes (``dmig.diff.hashing``), so "differs" means what ``diff`` would report.
Memory: one (key, 60-bit hash) pair per row, held in Python for the comparison.
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig.diff.hashing import row_hash_sql
from dmig.diff.normalize import FRAMED, category_of
from dmig.execute.fingerprint import dialect_name


class Drift(BaseModel):
    columns: list[str] = Field(description="Columns compared (those both shapes share with the same rule).")
    inserted_after_backup: int = Field(description="Rows only in the live table: written after the backup, lost.")
    updated_after_backup: int = Field(description="Rows changed after the backup: their later values are lost.")
    deleted_after_backup: int = Field(description="Rows deleted after the backup: the restore brings them back.")

    @property
    def total(self) -> int:
        return self.inserted_after_backup + self.updated_after_backup + self.deleted_after_backup


def comparable(conn: sa.Connection, table: str, schema: str | None, backup_cols: list[str], backup_cats: list[str]):
    """(key columns, compared columns) both the live table and the backup have, with the same rule."""
    insp = sa.inspect(conn)
    live = {c["name"]: category_of(c["type"]) for c in insp.get_columns(table, schema=schema)}
    key = insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    cats = dict(zip(backup_cols, backup_cats, strict=True))
    cols = [c for c in backup_cols if c in live and live[c] == cats[c]]
    key = [k for k in key if k in cols]
    return key, cols


def row_hashes(
    conn: sa.Connection, table: str, schema: str | None, key: list[str], cols: list[str], version: int
) -> dict[tuple, int] | Counter:
    """{key: hash} (or a multiset of hashes for a key-less table) over ``cols``."""
    t = sa.table(table, *[sa.column(c) for c in cols], schema=schema)
    types = {c["name"]: c["type"] for c in sa.inspect(conn).get_columns(table, schema=schema)}
    cats = [category_of(types[c]) for c in cols]
    h = row_hash_sql(dialect_name(conn), cats, [c in FRAMED for c in cats], [t.c[c] for c in cols], version)
    if not key:
        return Counter(int(r[0]) for r in conn.execute(sa.select(h).select_from(t)))
    rows = conn.execute(sa.select(*[t.c[k] for k in key], h).select_from(t))
    return {tuple(r[:-1]): int(r[-1]) for r in rows}


def compare(live: dict[tuple, int] | Counter, restored: dict[tuple, int] | Counter, cols: list[str]) -> Drift:
    if isinstance(live, Counter) or isinstance(restored, Counter):
        a, b = _multiset(live), _multiset(restored)
        return Drift(
            columns=cols,
            inserted_after_backup=sum((a - b).values()),
            updated_after_backup=0,
            deleted_after_backup=sum((b - a).values()),
        )
    only_live = live.keys() - restored.keys()
    only_backup = restored.keys() - live.keys()
    changed = sum(1 for k in live.keys() & restored.keys() if live[k] != restored[k])
    return Drift(
        columns=cols,
        inserted_after_backup=len(only_live),
        updated_after_backup=changed,
        deleted_after_backup=len(only_backup),
    )


def _multiset(hashes: dict[tuple, int] | Counter) -> Counter:
    return hashes if isinstance(hashes, Counter) else Counter(hashes.values())


def describe(table: str, d: Drift) -> str:
    if d.total == 0:
        return (
            f"{table}: no change since the backup was lost (the live rows equalled the backup on {len(d.columns)} "
            "shared column(s))"
        )
    return (
        f"{table}: {d.total} row(s) changed after the backup and were discarded by design: "
        f"{d.inserted_after_backup} inserted (gone), {d.updated_after_backup} updated (old values back), "
        f"{d.deleted_after_backup} deleted (back again)"
    )
