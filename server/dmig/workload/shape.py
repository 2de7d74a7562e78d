"""The two shapes of the table the workload talks to, and the statements each shape's code runs.

The OLD shape is what application code written before the migration uses (``user_name``); the
NEW shape is what the new release uses (``first_name``/``last_name``). Old readers read through
the compatibility relation once the migration made one (PostgreSQL: the ``dmig_compat`` view;
MySQL/SQLite with ``compat: view``: ``<table>_compat``), else the table itself (MySQL/SQLite
generated column, or before expand). Every statement is built with SQLAlchemy Core, so hostile
identifiers are quoted by the dialect, never concatenated.

``split``/``join`` are the Python twins of the split_column rules (first separator; no separator:
second part NULL; NULL: both NULL; rebuild: second NULL -> first, else coalesce(first,'') || sep ||
second): the workload uses them to decide whether what it reads back is right.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from dmig.errors import InvalidInput


def split(value: str | None, sep: str) -> tuple[str | None, str | None]:
    if value is None:
        return None, None
    first, found, rest = value.partition(sep)
    return (first, rest) if found else (value, None)


def join(first: str | None, rest: str | None, sep: str) -> str | None:
    if rest is None:
        return first
    return (first or "") + sep + rest


@dataclass(frozen=True)
class Shape:
    """Names of the table, its integer key, the old column and the two new ones."""

    table: str
    schema: str | None = None
    key: str = "id"
    old: str = "user_name"
    new: tuple[str, str] = ("first_name", "last_name")
    separator: str = " "
    compat_schema: str | None = "dmig_compat"
    compat_view: str | None = None

    def __post_init__(self) -> None:
        names = [self.table, self.key, self.old, *self.new]
        if any(not n or any(ord(c) < 32 for c in n) for n in names):
            raise InvalidInput("workload: table and column names must be non-empty without control characters")
        if len({self.key, self.old, *self.new}) != 4:
            raise InvalidInput("workload: key, old column and the two new columns must be four different names")
        if not self.separator:
            raise InvalidInput("workload: separator must not be empty")

    # ------------------------------------------------------------------ relations
    def base(self, *cols: str) -> sa.TableClause:
        return sa.table(self.table, *[sa.column(c) for c in cols], schema=self.schema)

    def old_relation(self, dialect: str, compat_exists: bool, *cols: str) -> sa.TableClause:
        """Where old readers read: the compat view when there is one, else the table."""
        if compat_exists:
            if dialect == "postgresql" and self.compat_schema:
                return sa.table(self.table, *[sa.column(c) for c in cols], schema=self.compat_schema)
            if dialect != "postgresql":
                return sa.table(self.compat_name(), *[sa.column(c) for c in cols], schema=self.schema)
        return self.base(*cols)

    def compat_name(self) -> str:
        return self.compat_view or f"{self.table}_compat"

    # ------------------------------------------------------------------ statements
    def insert_old(self) -> sa.Insert:
        t = self.base(self.key, self.old)
        return sa.insert(t).values({self.key: sa.bindparam("k"), self.old: sa.bindparam("v")})

    def insert_new(self) -> sa.Insert:
        first, rest = self.new
        t = self.base(self.key, first, rest)
        return sa.insert(t).values({self.key: sa.bindparam("k"), first: sa.bindparam("f"), rest: sa.bindparam("r")})

    def update_old(self) -> sa.Update:
        t = self.base(self.key, self.old)
        return sa.update(t).where(t.c[self.key] == sa.bindparam("k")).values({self.old: sa.bindparam("v")})

    def update_new(self) -> sa.Update:
        first, rest = self.new
        t = self.base(self.key, first, rest)
        return (
            sa.update(t)
            .where(t.c[self.key] == sa.bindparam("k"))
            .values({first: sa.bindparam("f"), rest: sa.bindparam("r")})
        )

    def point(self, rel: sa.TableClause, cols: list[str]) -> sa.Select:
        return sa.select(*[rel.c[c] for c in [self.key, *cols]]).where(rel.c[self.key] == sa.bindparam("k"))

    def range(self, rel: sa.TableClause, cols: list[str], limit: int) -> sa.Select:
        return (
            sa.select(*[rel.c[c] for c in [self.key, *cols]])
            .where(rel.c[self.key] > sa.bindparam("k"))
            .order_by(rel.c[self.key])
            .limit(limit)
        )

    def key_bounds(self) -> sa.Select:
        t = self.base(self.key)
        return sa.select(sa.func.min(t.c[self.key]), sa.func.max(t.c[self.key]), sa.func.count())

    def delete_keys(self) -> sa.Delete:
        t = self.base(self.key)
        return sa.delete(t).where(t.c[self.key].in_(sa.bindparam("keys", expanding=True)))

    def count(self) -> sa.Select:
        return sa.select(sa.func.count()).select_from(self.base(self.key))
