"""What to copy: table selection, the source tables' shape, and the per-table plan the workers run.

Plans are plain, picklable dataclasses (no engines, no SQLAlchemy Table objects) because they
travel to worker processes. Reflection happens once, here, in the coordinating process.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.db.dialects import column_catalog
from dmig.errors import InvalidInput, NotFound
from dmig.move.models import CopyRequest, TableMapping
from dmig.move.rawconn import table_sql
from dmig.move.typemap import Kind, NativeType, kind_of

INTERNAL_PREFIX = "dmig_"  # our own bookkeeping tables are never copied unless named explicitly
_GLOB = re.compile(r"[*?\[]")


@dataclass
class SourceColumn:
    name: str
    kind: Kind
    nullable: bool
    autoincrement: bool
    default: str | None
    type: sa.types.TypeEngine  # the reflected type, kept for same-dialect copies
    select_as_text: bool = False  # PostgreSQL sources: json/uuid/enum/other are read in their text form
    computed: tuple[str, bool] | None = None  # generated column: (expression in the source's SQL, stored)


@dataclass
class IndexSpec:
    name: str
    columns: list[str]
    unique: bool
    # Source-dialect index properties beyond a plain B-tree on columns (FULLTEXT, SPATIAL, prefix lengths,
    # USING gin/gist/hash, WHERE, expressions), as reflected: carried within the dialect, listed across.
    options: dict[str, Any] = field(default_factory=dict)
    expressions: list[str] = field(default_factory=list)  # per position: the column or the expression text

    @property
    def special(self) -> str | None:
        """What makes this index more than a B-tree on plain columns, or None."""
        o = self.options
        if self.expressions:
            return "expression index"
        if o.get("postgresql_where") is not None:
            return "partial index"
        if o.get("postgresql_using") not in (None, "btree"):
            return f"{o['postgresql_using']} index"
        if o.get("mysql_prefix"):
            return f"{o['mysql_prefix']} index"
        if o.get("mysql_length"):
            return "prefix-length index"
        if o.get("mysql_using") not in (None, "btree", "BTREE"):
            return f"{o['mysql_using']} index"
        return None


@dataclass
class CheckSpec:
    """A CHECK constraint of the source table, in the source's SQL."""

    name: str | None
    sqltext: str


@dataclass
class ForeignKeySpec:
    name: str | None
    columns: list[str]
    ref_table: str  # source name of the referenced table
    ref_columns: list[str]
    ondelete: str | None = None
    onupdate: str | None = None


@dataclass
class TablePlan:
    """Everything a worker needs to copy one table (source names unless stated)."""

    source_dialect: str
    target_dialect: str
    source_schema: str | None
    source_table: str
    target_schema: str | None
    target_table: str
    columns: list[SourceColumn]  # selected source columns, in select order
    key: list[str]  # keyset pagination key (primary key or unique NOT NULL); empty: copied in one transaction
    mapping: TableMapping
    indexes: list[IndexSpec] = field(default_factory=list)
    foreign_keys: list[ForeignKeySpec] = field(default_factory=list)
    sqlite_autoincrement: bool = False
    estimate: int = 0
    notes: list[str] = field(default_factory=list)
    all_columns: list[str] = field(default_factory=list)  # every source column (filters may use excluded ones)
    checks: list[CheckSpec] = field(default_factory=list)
    generated: list[tuple[int, SourceColumn]] = field(default_factory=list)  # kept generated: (position, column)
    table_charset: tuple[str, str] | None = None  # MySQL/MariaDB source: the table's default (charset, collation)

    def column(self, name: str) -> SourceColumn:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def key_kinds(self) -> list[Kind]:
        return [self.column(k).kind for k in self.key]

    @property
    def qualified_source(self) -> str:
        return f"{self.source_schema}.{self.source_table}" if self.source_schema else self.source_table


def select_tables(available: list[str], wanted: list[str] | None, excluded: list[str]) -> list[str]:
    """Resolve names and glob patterns; an unknown name or a pattern matching nothing is an error."""
    chosen: list[str] = []
    if not wanted:
        chosen = [t for t in available if not t.startswith(INTERNAL_PREFIX)]
    else:
        for item in wanted:
            if _GLOB.search(item):
                hits = [t for t in available if fnmatch.fnmatchcase(t, item) and not t.startswith(INTERNAL_PREFIX)]
                if not hits:
                    raise NotFound(f"no source table matches the pattern {item!r}", pattern=item)
            elif item in available:
                hits = [item]
            else:
                raise NotFound(f"source table {item!r} does not exist", table=item, available=available[:50])
            chosen.extend(h for h in hits if h not in chosen)
    chosen = [t for t in chosen if not any(fnmatch.fnmatchcase(t, x) for x in excluded)]
    if not chosen:
        raise NotFound("no source table to copy (the selection is empty)")
    return chosen


def _mysql_json_columns(conn: sa.Connection) -> set[tuple[str, str]]:
    """MariaDB reflects JSON as LONGTEXT; its json_valid() column check tells us it is JSON."""
    try:
        rows = conn.execute(
            sa.text(
                "SELECT TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
                "WHERE CONSTRAINT_SCHEMA = DATABASE()"
            )
        ).all()
    except sa.exc.DBAPIError:
        return set()
    out = set()
    for table, clause in rows:
        m = re.fullmatch(r"\s*json_valid\(`((?:[^`]|``)+)`\)\s*", clause or "")
        if m:
            out.add((table, m.group(1).replace("``", "`")))
    return out


def _sqlite_autoincrement(conn: sa.Connection, table: str) -> bool:
    sql = conn.execute(
        sa.select(sa.column("sql")).select_from(sa.table("sqlite_master")).where(sa.column("name") == table)
    ).scalar()
    return bool(sql and re.search(r"\bAUTOINCREMENT\b", sql, re.IGNORECASE))


def _sqlite_fk_actions(conn: sa.Connection, table: str, fks: list[ForeignKeySpec]) -> None:
    """SQLAlchemy misses ON DELETE/UPDATE written inline (``col REFERENCES t(id) ON DELETE CASCADE``)."""
    quoted = conn.dialect.identifier_preparer.quote(table)
    groups: dict[int, dict[str, Any]] = {}
    for row in conn.exec_driver_sql(f"PRAGMA foreign_key_list({quoted})").mappings():
        g = groups.setdefault(
            row["id"], {"table": row["table"], "cols": [], "del": row["on_delete"], "upd": row["on_update"]}
        )
        g["cols"].append(row["from"])
    for g in groups.values():
        for fk in fks:
            if fk.ref_table == g["table"] and fk.columns == g["cols"]:
                fk.ondelete = fk.ondelete or (None if g["del"] in (None, "NO ACTION") else g["del"])
                fk.onupdate = fk.onupdate or (None if g["upd"] in (None, "NO ACTION") else g["upd"])


def _key_of(insp: sa.Inspector, table: str, schema: str | None, columns: dict[str, dict[str, Any]]) -> list[str]:
    pk = insp.get_pk_constraint(table, schema=schema).get("constrained_columns") or []
    if pk:
        return list(pk)
    candidates = [u["column_names"] for u in insp.get_unique_constraints(table, schema=schema)]
    candidates += [i["column_names"] for i in insp.get_indexes(table, schema=schema) if i.get("unique")]
    for cols in candidates:
        if cols and all(c in columns and not columns[c]["nullable"] for c in cols):
            return list(cols)
    return []


def _select_as_text(dialect: str, kind: Kind, t: sa.types.TypeEngine, same: bool) -> bool:
    if dialect != "postgresql":
        return False
    if kind.name in ("json", "enum", "other", "bits"):
        return True
    return kind.name == "uuid" and not same


def _complete_types(conn: sa.Connection, dialect: str, table: str, schema: str | None, raw_cols: list[Any]) -> None:
    """What SQLAlchemy's reflection leaves out, taken from the catalog.

    A type it does not know (``NullType``: geometry, INET6, PostgreSQL's point or circle) becomes a
    ``NativeType`` holding the catalog's text, so a same-dialect copy recreates it. On MySQL every text
    column gets its character set and collation stated: reflection names them only where they differ
    from the table's default, and the target table's default is not the source's.
    """
    unknown = [c for c in raw_cols if isinstance(c["type"], sa.types.NullType)]
    if not unknown and dialect != "mysql":
        return
    catalog = column_catalog(conn, schema, table)
    for c in raw_cols:
        text, charset, collation = catalog.get(c["name"], (None, None, None))
        if isinstance(c["type"], sa.types.NullType) and text is not None:
            c["type"] = NativeType(text)  # "" on SQLite: a column declared without a type (no affinity)
        elif collation and hasattr(c["type"], "collation"):
            c["type"].collation, c["type"].charset = collation, charset


_TABLE_CHARSET = sa.text(
    "SELECT c.CHARACTER_SET_NAME, t.TABLE_COLLATION FROM information_schema.TABLES t"
    " JOIN information_schema.COLLATIONS c ON c.COLLATION_NAME = t.TABLE_COLLATION"
    " WHERE t.TABLE_SCHEMA = COALESCE(:s, DATABASE()) AND t.TABLE_NAME = :t"
)


def _mysql_table_charset(conn: sa.Connection, schema: str | None, table: str) -> tuple[str, str] | None:
    """The table's default character set and collation: a MySQL-to-MySQL copy creates the target table with
    them, so columns added to it later get the source's default, and a column whose collation is the table's
    default on the source is the table's default on the target too (not only the same collation)."""
    row = conn.execute(_TABLE_CHARSET, {"s": schema, "t": table}).first()
    return (str(row[0]), str(row[1])) if row and row[0] and row[1] else None


def _autoincrement(dialect: str, col: dict[str, Any], pk: list[str], declared: str | None = None) -> bool:
    """Whether the column is the table's own counter. On SQLite only a single-column key declared exactly
    ``INTEGER`` is one (an alias of the rowid); ``BIGINT PRIMARY KEY`` or ``INT PRIMARY KEY`` is an ordinary
    column that may even hold NULLs, and recreating it as a rowid alias would renumber them 1, 2, 3."""
    if dialect == "sqlite":
        return pk == [col["name"]] and (declared or "").strip().upper() == "INTEGER"
    return col.get("autoincrement") is True and col["name"] in pk


def _indexes(insp: sa.Inspector, table: str, schema: str | None, key: list[str], notes: list[str]) -> list[IndexSpec]:
    out: list[IndexSpec] = []
    seen: set[tuple[tuple[str, ...], bool]] = set()
    for u in insp.get_unique_constraints(table, schema=schema):
        cols = tuple(u["column_names"])
        if list(cols) != key and (cols, True) not in seen:
            seen.add((cols, True))
            out.append(IndexSpec(u.get("name") or f"uq_{table}_{'_'.join(cols)}", list(cols), True))
    for ix in insp.get_indexes(table, schema=schema):
        cols = ix.get("column_names") or []
        options = {k: v for k, v in (ix.get("dialect_options") or {}).items() if v not in (None, [], {})}
        exprs = list(ix.get("expressions") or [])
        if not cols or exprs:
            if not exprs or len(exprs) != len(cols):
                notes.append(f"index {ix.get('name')} uses expressions that could not be read and was not copied")
                continue
            exprs = [e if c is None else c for c, e in zip(cols, exprs, strict=True)]
        spec = IndexSpec(
            ix["name"] or f"ix_{table}_{len(out)}", [c for c in cols if c], bool(ix.get("unique")), options, exprs
        )
        sig = (tuple(cols), bool(ix.get("unique")))
        if not spec.special and (list(cols) == key or sig in seen or (tuple(cols), True) in seen):
            continue
        seen.add(sig)
        out.append(spec)
    return out


def _estimate(conn: sa.Connection, dialect: str, table: sa.TableClause) -> int:
    """Row estimate for progress and partitioning (exact below a few million rows)."""
    est = -1
    if dialect == "postgresql":
        name = table_sql(conn.dialect, table)
        est = conn.execute(
            sa.text("SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(:n)"), {"n": name}
        ).scalar()
    elif dialect == "mysql":
        est = conn.execute(
            sa.text(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                "COALESCE(:s, DATABASE()) AND TABLE_NAME = :t"
            ),
            {"s": table.schema, "t": table.name},
        ).scalar()
    if est is None or est < 5_000_000:
        return int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar() or 0)
    return int(est)


def reflect_plans(engine: Engine, req: CopyRequest, target_dialect: str) -> list[TablePlan]:
    """Reflect the selected source tables into plans (transforms are applied later, in transforms.py)."""
    source_dialect = engine.dialect.name if engine.dialect.name != "mariadb" else "mysql"
    schema = req.source_schema or None
    insp = sa.inspect(engine)
    try:
        available = insp.get_table_names(schema=schema)
    except sa.exc.NoSuchTableError:
        raise NotFound(f"source schema {schema!r} does not exist") from None
    names = select_tables(available, req.tables, req.exclude_tables)
    bad = sorted(set(req.mapping) - set(names))
    if bad:
        raise InvalidInput(f"mapping names tables that are not being copied: {', '.join(bad)}", tables=bad)
    same = source_dialect == target_dialect
    plans: list[TablePlan] = []
    with engine.connect() as conn:
        json_cols = _mysql_json_columns(conn) if source_dialect == "mysql" else set()
        for name in names:
            plans.append(_reflect_one(conn, insp, source_dialect, target_dialect, schema, name, req, json_cols, same))
    return plans


def _reflect_one(
    conn: sa.Connection,
    insp: sa.Inspector,
    source_dialect: str,
    target_dialect: str,
    schema: str | None,
    name: str,
    req: CopyRequest,
    json_cols: set[tuple[str, str]],
    same: bool,
) -> TablePlan:
    mapping = req.mapping.get(name) or TableMapping()
    raw_cols = insp.get_columns(name, schema=schema)
    _complete_types(conn, source_dialect, name, schema, raw_cols)
    by_name = {c["name"]: c for c in raw_cols}
    key = _key_of(insp, name, schema, by_name)
    for col in mapping.exclude_columns:
        if col not in by_name:
            raise InvalidInput(f"exclude_columns: table {name!r} has no column {col!r}", table=name, column=col)
    from dmig.move import extras  # extras builds on this module's dataclasses

    computed = extras.computed_of(conn, source_dialect, name, raw_cols)
    declared = (
        {n: t for n, (t, _cs, _co) in column_catalog(conn, schema, name).items()} if source_dialect == "sqlite" else {}
    )
    columns = []
    for c in raw_cols:
        if c["name"] in mapping.exclude_columns and c["name"] not in key:
            continue
        kind = kind_of(c["type"], source_dialect, json_column=(name, c["name"]) in json_cols)
        columns.append(
            SourceColumn(
                name=c["name"],
                kind=kind,
                nullable=bool(c["nullable"]),
                autoincrement=_autoincrement(source_dialect, c, key, declared.get(c["name"])),
                default=str(c["default"]) if c.get("default") is not None else None,
                type=c["type"],
                select_as_text=_select_as_text(source_dialect, kind, c["type"], same),
                computed=computed.get(c["name"]),
            )
        )
    notes: list[str] = []
    fks = [
        ForeignKeySpec(
            name=fk.get("name"),
            columns=fk["constrained_columns"],
            ref_table=fk["referred_table"],
            ref_columns=fk["referred_columns"],
            ondelete=(fk.get("options") or {}).get("ondelete"),
            onupdate=(fk.get("options") or {}).get("onupdate"),
        )
        for fk in insp.get_foreign_keys(name, schema=schema)
        if (fk.get("referred_schema") or None) in (None, schema)
    ]
    if source_dialect == "sqlite":
        _sqlite_fk_actions(conn, name, fks)
    table = sa.table(name, schema=schema)
    plan = TablePlan(
        source_dialect=source_dialect,
        target_dialect=target_dialect,
        source_schema=schema,
        source_table=name,
        target_schema=req.target_schema or None,
        target_table=mapping.target_table or name,
        columns=columns,
        key=key,
        mapping=mapping,
        indexes=_indexes(insp, name, schema, key, notes),
        foreign_keys=fks,
        sqlite_autoincrement=source_dialect == "sqlite" and _sqlite_autoincrement(conn, name),
        estimate=_estimate(conn, source_dialect, table),
        notes=notes,
        all_columns=list(by_name),
        checks=extras.reflect_checks(conn, insp, source_dialect, schema, name),
        table_charset=_mysql_table_charset(conn, schema, name) if source_dialect == "mysql" else None,
    )
    if not key:
        plan.notes.append("no primary key or unique NOT NULL key: copied in one transaction, no resume point")
    return plan
