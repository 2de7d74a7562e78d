"""The schema of the backed-up tables, captured by SQLAlchemy reflection, replayable per dialect.

Two forms are written: a dialect-neutral JSON description (columns with native and generic
types, keys, indexes, foreign keys) for people and tools, and for each dialect an ordered list
of DDL statements (create tables without foreign keys, then indexes, then foreign keys) that a
restore replays into a database that lacks the tables. The source dialect's script is faithful
(SQLite's is the database's own ``CREATE`` text); the other two are a best effort through the
types' generic forms, without server defaults, for restoring a portable backup elsewhere.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.dialects.postgresql.named_types import CreateEnumType
from sqlalchemy.schema import AddConstraint, CreateIndex, CreateTable

from dmig.db.introspect import generic_type
from dmig.diff.normalize import category_of

DIALECTS: dict[str, sa.Dialect] = {
    "sqlite": sqlite.dialect(),
    "postgresql": postgresql.psycopg.dialect(),
    "mysql": mysql.pymysql.dialect(),
}
SCRIPT_NAMES = {d: f"schema.{d}.sql" for d in DIALECTS}
NEUTRAL_NAME = "schema.json"


@dataclass
class TableDDL:
    create: list[str] = field(default_factory=list)  # types first, then the table
    indexes: list[str] = field(default_factory=list)
    foreign_keys: list[str] = field(default_factory=list)


@dataclass
class CapturedSchema:
    source_dialect: str
    description: dict[str, Any]
    ddl: dict[str, dict[str, TableDDL]]  # dialect -> table -> statements
    warnings: list[str]

    def neutral_json(self) -> str:
        doc = dict(self.description)
        doc["ddl"] = {
            d: {t: {"create": x.create, "indexes": x.indexes, "foreign_keys": x.foreign_keys} for t, x in tabs.items()}
            for d, tabs in self.ddl.items()
        }
        return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

    def script(self, dialect: str) -> str:
        parts = [f"-- dmig backup schema for {dialect} (source: {self.source_dialect})"]
        tabs = self.ddl[dialect]
        for stage in ("create", "indexes", "foreign_keys"):
            for ddl in tabs.values():
                parts.extend(s.strip() + ";" for s in getattr(ddl, stage))
        return "\n\n".join(parts) + "\n"


def load_ddl(neutral_text: str, dialect: str) -> dict[str, TableDDL]:
    doc = json.loads(neutral_text)
    return {t: TableDDL(**x) for t, x in doc["ddl"].get(dialect, {}).items()}


def capture(conn: sa.Connection, tables: list[str], schema: str | None) -> CapturedSchema:
    source = conn.dialect.name
    flavor = "mariadb" if getattr(conn.dialect, "is_mariadb", False) else source
    md = sa.MetaData()
    md.reflect(bind=conn, schema=schema, only=tables)  # referred tables come along: FKs must compile
    key = (lambda n: f"{schema}.{n}") if schema else (lambda n: n)
    reflected = {name: md.tables[key(name)] for name in tables}
    everything = {t.fullname: t for t in md.tables.values()}
    warnings: list[str] = []
    description = {
        "source_dialect": source,
        "flavor": flavor,
        "schema": schema,
        "tables": {name: _describe(t, flavor) for name, t in reflected.items()},
    }
    ddl: dict[str, dict[str, TableDDL]] = {}
    for dialect in DIALECTS:
        unqualified = _unqualified(everything, same=dialect == source, target=dialect)
        ddl[dialect] = {}
        for name in tables:
            try:
                ddl[dialect][name] = _ddl(unqualified[key(name)], dialect)
            except Exception as exc:  # a foreign dialect's script is best effort: say so, keep the backup
                if dialect == source:
                    raise
                warnings.append(f"no {dialect} CREATE script for {name}: {type(exc).__name__}: {str(exc)[:120]}")
    if source == "sqlite":
        ddl["sqlite"] = _sqlite_native(conn, tables, schema)
    return CapturedSchema(source, description, ddl, warnings)


def _describe(t: sa.Table, flavor: str) -> dict[str, Any]:
    return {
        "columns": [
            {
                "name": c.name,
                "type": _type_text(c.type),
                "generic": generic_type(c.type, flavor),  # type: ignore[arg-type]
                "category": category_of(c.type),
                "nullable": c.nullable,
                "default": None if c.server_default is None else str(getattr(c.server_default, "arg", "")),
                "computed": None if c.computed is None else str(c.computed.sqltext),
                "autoincrement": c.autoincrement is True,
            }
            for c in t.columns
        ],
        "primary_key": [c.name for c in t.primary_key.columns],
        "unique": [sorted(c.name for c in u.columns) for u in t.constraints if isinstance(u, sa.UniqueConstraint)],
        "indexes": [{"name": i.name, "columns": [c.name for c in i.columns], "unique": i.unique} for i in t.indexes],
        "foreign_keys": [
            {
                "name": fk.name,
                "columns": list(fk.column_keys),
                "referred_table": fk.elements[0].target_fullname.rsplit(".", 1)[0] if fk.elements else None,
                "referred_columns": [e.target_fullname.rsplit(".", 1)[1] for e in fk.elements],
            }
            for fk in t.foreign_key_constraints
        ],
    }


def _type_text(t: Any) -> str:
    try:
        return str(t)
    except Exception:  # a type SQLAlchemy cannot render without its dialect
        return type(t).__name__


def _portable_type(t: Any, target: sa.Dialect) -> Any:
    """The column type as the target dialect can create it: itself, its generic form, else text."""
    for candidate in (t, _generic(t)):
        if candidate is None or not _compiles(candidate, target):
            continue
        unbounded = isinstance(candidate, sa.String) and not candidate.length
        if target.name == "mysql" and unbounded and not isinstance(candidate, sa.Text | sa.Enum):
            return sa.Text()
        return candidate
    return sa.Text()


def _compiles(t: Any, target: sa.Dialect) -> bool:
    """Whether a column of this type can be created on ``target`` (types fail in different places)."""
    try:
        probe = sa.Table("probe", sa.MetaData(), sa.Column("c", t))
        str(CreateTable(probe).compile(dialect=target))
    except Exception:  # unsupported on that dialect, in the type compiler or in its adaptation
        return False
    return True


def _generic(t: Any) -> Any:
    try:
        return t.as_generic()
    except NotImplementedError:
        return None


def _unqualified(reflected: dict[str, sa.Table], *, same: bool, target: str) -> dict[str, sa.Table]:
    """Copies of the tables (keyed as given) in the target's default schema, adapted for creating them there."""
    md = sa.MetaData()
    out = {key: t.to_metadata(md, schema=None, referred_schema_fn=lambda *_a: None) for key, t in reflected.items()}
    for t in out.values():
        for col in t.columns:
            default = col.server_default
            text = str(getattr(default, "arg", "")) if default is not None else ""
            if "nextval(" in text.lower():
                col.server_default = None  # the sequence is not restored: SERIAL / IDENTITY recreates one
            if col.identity is not None and col.identity.always:
                col.identity.always = False  # restored rows carry their own values
            if not same:
                col.type = _portable_type(col.type, DIALECTS[target])
                col.server_default = None
        if not same:
            for ck in [c for c in t.constraints if isinstance(c, sa.CheckConstraint)]:
                t.constraints.discard(ck)
    return out


def _ddl(t: sa.Table, dialect: str) -> TableDDL:
    d = DIALECTS[dialect]
    out = TableDDL()
    if dialect == "postgresql":
        seen = set()
        for col in t.columns:
            if isinstance(col.type, postgresql.ENUM) and col.type.name and col.type.name not in seen:
                seen.add(col.type.name)
                out.create.append(str(CreateEnumType(col.type).compile(dialect=d)))
    inline_fks = dialect == "sqlite"  # SQLite cannot add a foreign key to an existing table
    create = CreateTable(t, include_foreign_key_constraints=None if inline_fks else [])
    out.create.append(str(create.compile(dialect=d)).strip())
    out.indexes = [str(CreateIndex(ix).compile(dialect=d)).strip() for ix in sorted(t.indexes, key=lambda i: i.name)]
    if not inline_fks:
        out.foreign_keys = [str(AddConstraint(fk).compile(dialect=d)).strip() for fk in t.foreign_key_constraints]
    return out


def _sqlite_native(conn: sa.Connection, tables: list[str], schema: str | None) -> dict[str, TableDDL]:
    """SQLite's own CREATE statements: exact declared types, defaults, constraints and collations."""
    master = sa.table(
        "sqlite_master", sa.column("type"), sa.column("name"), sa.column("tbl_name"), sa.column("sql"), schema=schema
    )
    out = {}
    for name in tables:
        rows = conn.execute(
            sa.select(master.c.type, master.c.sql).where(master.c.tbl_name == name, master.c.sql.is_not(None))
        ).all()
        ddl = TableDDL()
        ddl.create = [r.sql for r in rows if r.type == "table"]
        ddl.indexes = [r.sql for r in rows if r.type == "index"]
        out[name] = ddl
    return out
