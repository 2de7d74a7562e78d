"""Give a contracted table back the exact shape its backup was taken in, before its rows are reloaded.

After contract the table has another shape (the old column dropped, a generated column or a
compatibility view in its place, a type swapped), so restoring rows alone cannot undo it. The
backup's schema capture is the authority for the shape to return to.

PostgreSQL and MySQL/MariaDB: the table is changed IN PLACE, never dropped and recreated, so what
hangs on it survives (grants, ownership, foreign keys of other tables pointing at it, triggers,
policies, comments, views that do not read the changed columns). The backup's CREATE statement is
replayed as a temporary table only to read the exact column types the server would create; then
the longest prefix of the backup's columns that the live table already has, identical and in the
same order, is kept; every other live column is dropped and the backup's remaining columns are
added in the backup's order, so the column order is exact too (the rows are reloaded anyway,
so a re-added column loses nothing). Nullability and defaults of kept columns are set to the
backup's; the primary key, unique and check constraints, indexes and foreign keys the backup has
and the live table lost are re-created from the capture.

SQLite cannot change a column in place, and its backup holds the table's own CREATE text, so
the table is rebuilt from that text (SQLite's documented procedure: foreign keys off, drop,
create, indexes, reload, the live table's other triggers re-created, foreign_key_check).

Views the plan's contract created read the new shape and did not exist before: they are dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import sqlalchemy as sa

from dmig.backup.schema import TableDDL
from dmig.errors import DatabaseError
from dmig.plan.model import Plan

_VIEW = re.compile(r"^\s*CREATE\s+(?:OR\s+REPLACE\s+)?VIEW\s+(.+?)\s+AS\s+SELECT\b", re.IGNORECASE | re.DOTALL)
_INDEX = re.compile(
    r'^\s*CREATE\s+(?:UNIQUE\s+)?INDEX\s+(?:IF\s+NOT\s+EXISTS\s+)?("(?:[^"]|"")+"|`(?:[^`]|``)+`|\S+)\s'
)


def contract_views(plan: Plan) -> list[str]:
    """The (quoted) names of the views the plan's contract creates, as the reviewed plan spells them."""
    names: list[str] = []
    for step in plan.phase_steps("contract"):
        for stmt in step.sql:
            m = _VIEW.match(stmt)
            if m and m.group(1) not in names:
                names.append(m.group(1))
    return names


@dataclass(frozen=True)
class Col:
    name: str
    type_sql: str
    nullable: bool
    default: str | None
    computed: tuple[str, bool | None] | None
    identity: str | None

    def same(self, other: Col) -> bool:
        return (self.type_sql, self.computed, self.identity) == (other.type_sql, other.computed, other.identity)

    def ddl(self, conn: sa.Connection, *, not_null: bool) -> str:
        q = conn.dialect.identifier_preparer.quote
        out = f"{q(self.name)} {self.type_sql}"
        if self.computed is not None:
            expr, persisted = self.computed
            out += f" GENERATED ALWAYS AS ({expr}) " + ("STORED" if persisted or conn.dialect.name == "postgresql"
                                                         else "VIRTUAL")  # fmt: skip
        elif self.identity is not None:
            out += f" GENERATED {self.identity} AS IDENTITY"
        elif self.default is not None:
            out += f" DEFAULT {self.default}"
        return out + (" NOT NULL" if not_null and not self.nullable else "")


def columns(conn: sa.Connection, table: str, schema: str | None) -> list[Col]:
    out = []
    for c in sa.inspect(conn).get_columns(table, schema=schema):
        comp = c.get("computed")
        ident = c.get("identity")
        out.append(
            Col(
                name=c["name"],
                type_sql=c["type"].compile(dialect=conn.dialect),
                nullable=bool(c["nullable"]),
                default=None if comp or ident else c.get("default"),
                computed=(str(comp["sqltext"]), comp.get("persisted")) if comp else None,
                identity=("ALWAYS" if ident.get("always") else "BY DEFAULT") if ident else None,
            )
        )
    return out


def staging_sql(conn: sa.Connection, ddl: TableDDL, table: str, staging: str) -> str:
    """The backup's CREATE TABLE for ``table``, as a temporary table named ``staging`` (types only)."""
    prep = conn.dialect.identifier_preparer
    create = ddl.create[-1].strip()
    prefix = f"CREATE TABLE {prep.quote(table)} "
    if not create.startswith(prefix):
        raise DatabaseError(
            f"the backup's CREATE statement for {table} does not start as expected; cannot read its column types",
            reason="unexpected_ddl",
        )
    tail = " ON COMMIT DROP" if conn.dialect.name == "postgresql" else ""
    return f"CREATE TEMPORARY TABLE {prep.quote(staging)} {create[len(prefix) :]}{tail}"


@dataclass
class ColumnPlan:
    keep: list[str]
    drop: list[str]
    add: list[Col]
    nullability: list[Col]  # kept columns whose nullability must become the backup's (wanted definition)
    defaults: list[Col]  # kept columns whose default must become the backup's

    @property
    def changes(self) -> bool:
        return bool(self.drop or self.add or self.nullability or self.defaults)


def plan_columns(live: list[Col], target: list[Col]) -> ColumnPlan:
    """Keep the longest identical, same-order prefix of ``target``; drop the rest, re-add it in order.

    Generated columns are dropped first: the columns they are computed from cannot go before them.
    """
    by_name = {c.name: c for c in live}
    order = [c.name for c in live]
    keep: list[str] = []
    last = -1
    for b in target:
        c = by_name.get(b.name)
        if c is None or not c.same(b) or order.index(b.name) < last:
            break
        last = order.index(b.name)
        keep.append(b.name)
    wanted = {b.name: b for b in target}
    return ColumnPlan(
        keep=keep,
        drop=[c.name for c in sorted(live, key=lambda c: c.computed is None) if c.name not in keep],
        add=[b for b in target if b.name not in keep],
        nullability=[wanted[n] for n in keep if by_name[n].nullable != wanted[n].nullable],
        defaults=[wanted[n] for n in keep if by_name[n].default != wanted[n].default],
    )


def alter_statements(conn: sa.Connection, table: str, schema: str | None, plan: ColumnPlan) -> list[str]:
    """ALTER statements for a table that is empty (PostgreSQL) or about to be reloaded (MySQL)."""
    prep = conn.dialect.identifier_preparer
    qt = f"{prep.quote(schema)}.{prep.quote(table)}" if schema else prep.quote(table)
    q = prep.quote
    pg = conn.dialect.name == "postgresql"
    out = [f"ALTER TABLE {qt} DROP COLUMN {q(c)}" for c in plan.drop]
    out += [f"ALTER TABLE {qt} ADD COLUMN {c.ddl(conn, not_null=True)}" for c in plan.add]
    for c in plan.nullability:
        if pg:
            out.append(f"ALTER TABLE {qt} ALTER COLUMN {q(c.name)} {'DROP' if c.nullable else 'SET'} NOT NULL")
        else:
            out.append(f"ALTER TABLE {qt} MODIFY COLUMN {c.ddl(conn, not_null=True)}")
    for c in plan.defaults:
        action = "DROP DEFAULT" if c.default is None else f"SET DEFAULT {c.default}"
        out.append(f"ALTER TABLE {qt} ALTER COLUMN {q(c.name)} {action}")
    return out


def _ix_name(stmt: str) -> str | None:
    m = _INDEX.match(stmt)
    if not m:
        return None
    raw = m.group(1)
    if raw[0] in '"`':
        return raw[1:-1].replace(raw[0] * 2, raw[0])
    return raw.split(".")[-1]


def missing_objects(conn: sa.Connection, table: str, schema: str | None, staging: str, ddl: TableDDL) -> list[str]:
    """Statements re-creating the keys, constraints, indexes and foreign keys the backup has and the table lacks."""
    insp = sa.inspect(conn)
    prep = conn.dialect.identifier_preparer
    qt = f"{prep.quote(schema)}.{prep.quote(table)}" if schema else prep.quote(table)
    cols = lambda names: ", ".join(prep.quote(n) for n in names)  # noqa: E731
    out: list[str] = []
    live_pk = insp.get_pk_constraint(table, schema=schema)
    want_pk = insp.get_pk_constraint(staging)
    if want_pk.get("constrained_columns") and not live_pk.get("constrained_columns"):
        name = want_pk.get("name")
        named = f"CONSTRAINT {prep.quote(name)} " if name and conn.dialect.name == "postgresql" else ""
        out.append(f"ALTER TABLE {qt} ADD {named}PRIMARY KEY ({cols(want_pk['constrained_columns'])})")
    live_ix = {i["name"] for i in insp.get_indexes(table, schema=schema)}
    live_uq = {u["name"] for u in insp.get_unique_constraints(table, schema=schema)}
    for u in insp.get_unique_constraints(staging):
        if u["name"] not in live_uq and u["name"] not in live_ix:
            out.append(f"ALTER TABLE {qt} ADD CONSTRAINT {prep.quote(u['name'])} UNIQUE ({cols(u['column_names'])})")
    live_ck = {c["name"] for c in insp.get_check_constraints(table, schema=schema)}
    for c in insp.get_check_constraints(staging):
        if c["name"] and c["name"] not in live_ck:
            out.append(f"ALTER TABLE {qt} ADD CONSTRAINT {prep.quote(c['name'])} CHECK ({c['sqltext']})")
    out += [s for s in ddl.indexes if (_ix_name(s) or "") not in live_ix | live_uq]
    live_fk = {f["name"] for f in insp.get_foreign_keys(table, schema=schema)}
    out += [s for s in ddl.foreign_keys if not any(n and prep.quote(n) in s for n in live_fk)]
    return out


def sqlite_triggers(conn: sa.Connection, table: str) -> list[tuple[str, str]]:
    master = sa.table("sqlite_master", sa.column("type"), sa.column("name"), sa.column("tbl_name"), sa.column("sql"))
    stmt = sa.select(master.c.name, master.c.sql).where(master.c.type == "trigger", master.c.tbl_name == table)
    return [(r[0], r[1]) for r in conn.execute(stmt) if r[1]]


def sqlite_rebuild(conn: sa.Connection, table: str, ddl: TableDDL) -> list[str]:
    """Drop and re-create ``table`` from the backup's own CREATE text (inside the caller's transaction).

    Returns the live table's triggers to re-create once the rows are back (they fire on its writes).
    """
    triggers = sqlite_triggers(conn, table)
    conn.exec_driver_sql(f"DROP TABLE {conn.dialect.identifier_preparer.quote(table)}")
    for stmt in [*ddl.create, *ddl.indexes]:
        conn.exec_driver_sql(stmt)
    return [sql for _, sql in triggers]


def describe_plan(table: str, plan: ColumnPlan) -> list[str]:
    out = []
    if plan.drop:
        out.append(f"{table}: dropped column(s) {', '.join(plan.drop)}")
    if plan.add:
        out.append(f"{table}: added column(s) {', '.join(c.name for c in plan.add)} as the backup has them")
    out += [f"{table}: {c.name} made {'nullable' if c.nullable else 'NOT NULL'} again" for c in plan.nullability]
    out += [f"{table}: default of {c.name} set back" for c in plan.defaults]
    return out


def sqlite_rebuild_in_place(conn: sa.Connection, table: str, ddl: dict[str, list[str]], keep: list[str]) -> None:
    """Rebuild ``table`` from its original CREATE text around its current rows (caller: BEGIN IMMEDIATE, FKs off).

    The old table is renamed aside with legacy_alter_table on, so views and triggers elsewhere that
    name the table keep naming it; it is dropped (with its indexes) before the original indexes
    are created; the original triggers come back last.
    """
    q = conn.dialect.identifier_preparer.quote
    aside = "dmig_rb_aside"
    cols = ", ".join(q(c) for c in keep)
    conn.exec_driver_sql("PRAGMA legacy_alter_table = ON")
    try:
        conn.exec_driver_sql(f"ALTER TABLE {q(table)} RENAME TO {q(aside)}")
        for stmt in ddl.get("table", []):
            conn.exec_driver_sql(stmt)
        conn.exec_driver_sql(f"INSERT INTO {q(table)} ({cols}) SELECT {cols} FROM {q(aside)}")
        conn.exec_driver_sql(f"DROP TABLE {q(aside)}")
        for stmt in [*ddl.get("index", []), *ddl.get("trigger", [])]:
            conn.exec_driver_sql(stmt)
    finally:
        conn.exec_driver_sql("PRAGMA legacy_alter_table = OFF")
