"""Target schema: tables before the load, indexes and foreign keys after it, counters reset last.

Secondary indexes and foreign keys are built after the data is in (bulk index builds are much
faster than maintaining them row by row, and load order then never matters); their build time
is measured and reported. SQLite cannot add a foreign key to an existing table, so there they
are declared up front, the load runs with ``foreign_keys=OFF`` and ``PRAGMA foreign_key_check``
verifies them afterwards, which is the equivalent of PostgreSQL validating a new constraint.
MySQL/MariaDB validate a new foreign key by rebuilding the whole table (``ALGORITHM=COPY``), so
there the key is added in place with ``foreign_key_checks=0`` and proven by an anti-join instead.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.move.models import IndexReport, Omission
from dmig.move.plan import TablePlan
from dmig.move.rawconn import ddl_sql, execute_plain, name_sql, table_sql
from dmig.move.transforms import TargetColumn, TargetSpec
from dmig.move.typemap import Kind, target_type
from dmig.redact import redact

MAX_NAME = {"postgresql": 63, "mysql": 64, "sqlite": 128}
_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?([eE][+-]?\d+)?$")
_STRING = re.compile(r"^'(?:[^']|'')*'$")
_NOW = {"current_timestamp", "now()", "current_timestamp()", "localtimestamp", "localtimestamp()", "getdate()"}


@dataclass
class TargetTable:
    """One target table with the objects that are created after the load."""

    plan: TablePlan
    spec: TargetSpec
    table: sa.Table
    indexes: list[sa.Index] = field(default_factory=list)
    foreign_keys: list[sa.ForeignKeyConstraint] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    omitted: list[Omission] = field(default_factory=list)  # not carried over as it was, with why
    checks: list[tuple[str, str]] = field(default_factory=list)  # (name, SQL) added after the load

    def omit(self, kind: str, name: str, reason: str) -> None:
        """Name something of the source this table does not carry over (summary, JSON and CLI text)."""
        self.omitted.append(Omission(table=self.plan.source_table, kind=kind, name=name, reason=reason))
        self.notes.append(f"{kind} {name}{' ' if reason.startswith('skipped') else ': '}{reason}")


def short_name(name: str, dialect: str) -> str:
    """Fit an object name to the dialect's limit, keeping it unique with a hash suffix."""
    limit = MAX_NAME[dialect]
    if len(name.encode()) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return name.encode()[: limit - 9].decode(errors="ignore") + "_" + digest


def translate_default(text: str | None, kind: Kind, source: str, target: str) -> tuple[str | None, str | None]:
    """A column default in the target's SQL, or (None, note) when it is not portable."""
    if text is None:
        return None, None
    raw = text.strip()
    if source == target:
        if source == "postgresql" and "nextval(" in raw:
            return None, None
        return raw, None
    on_update = re.search(r"\s+ON\s+UPDATE\s+.*$", raw, re.IGNORECASE | re.DOTALL)
    if on_update:  # MariaDB's "DEFAULT ... ON UPDATE ...": the default is translated, the clause cannot be
        value, note = translate_default(raw[: on_update.start()], kind, source, target)
        clause = on_update.group(0).strip()
        dropped = f"{clause} not carried over ({target} has no such clause; the application must set the column)"
        return value, f"{note}; {dropped}" if note else dropped
    t = re.sub(r"::[a-z][a-z0-9 _]*(\[\])?$", "", raw, flags=re.IGNORECASE)
    while t.startswith("(") and t.endswith(")"):
        t = t[1:-1].strip()
    low = t.lower()
    if kind.name in ("date", "datetime") and (low.startswith("'0000-00-00") or low == "0"):
        return None, f"zero-date default {raw} dropped"
    if _NUMBER.match(t) or (_STRING.match(t) and "\\" not in t):
        if kind.name == "bool" and t.strip("'") in ("0", "1"):
            return _bool_literal(t.strip("'") == "1", target), None
        return t, None
    if low in ("true", "false"):
        return _bool_literal(low == "true", target), None
    if low.rstrip("()0123456789") in {n.rstrip("()") for n in _NOW} and kind.name in ("datetime", "date"):
        if target == "mysql" and kind.name == "datetime":
            return "CURRENT_TIMESTAMP(6)", None
        return "CURRENT_TIMESTAMP", None
    if low == "null":
        return None, None
    return None, f"default {raw} is not portable to {target} and was dropped"


def _bool_literal(value: bool, target: str) -> str:
    if target == "postgresql":
        return "true" if value else "false"
    return "1" if value else "0"


def _column_type(col: TargetColumn, plan: TablePlan, indexed: set[str]) -> sa.types.TypeEngine:
    tgt = plan.target_dialect
    if col.source_type is not None and not (tgt == "mysql" and col.kind.name == "json"):
        if tgt == "sqlite" and col.autoincrement and isinstance(col.source_type, sa.Integer):
            return sa.Integer()  # only INTEGER PRIMARY KEY is a rowid alias
        return col.source_type
    if tgt == "sqlite" and col.autoincrement:
        return sa.Integer()
    return target_type(col.kind, tgt, in_key=col.name in indexed)


def _identity_ok(col: TargetColumn, ctype: sa.types.TypeEngine) -> bool:
    return col.autoincrement and isinstance(ctype, sa.Integer)


def build_table(plan: TablePlan, spec: TargetSpec, metadata: sa.MetaData) -> TargetTable:
    """The target sa.Table (PK, column checks and generated columns included; indexes, FKs and the source's
    CHECK constraints prepared, not yet attached)."""
    tgt = plan.target_dialect
    indexed = set(spec.key)
    for ix in plan.indexes:
        indexed.update(n for n in (spec.by_origin(c) for c in ix.columns) if n)
    for fk in plan.foreign_keys:
        indexed.update(n for n in (spec.by_origin(c) for c in fk.columns) if n)
    notes: list[str] = list(spec.notes)
    omitted: list[tuple[str, str, str]] = []
    columns: list[sa.Column] = []
    checks: list[sa.CheckConstraint] = []
    for col in spec.columns:
        ctype = _column_type(col, plan, indexed)
        in_pk = col.name in spec.key
        args: list[object] = []
        auto = _identity_ok(col, ctype) and in_pk and len(spec.key) == 1
        if col.autoincrement and not auto:
            omitted.append(("auto-increment", col.name, f"not kept (type {ctype!r} or composite key)"))
        if auto and tgt == "postgresql":
            args.append(sa.Identity(always=False))
        default, note = (None, None) if auto else translate_default(col.default, col.kind, plan.source_dialect, tgt)
        if note:
            omitted.append(("on update" if "ON UPDATE" in note.upper() else "default", col.name, note))
        columns.append(
            sa.Column(
                col.name,
                ctype,
                *args,
                primary_key=in_pk,
                # SQLite keys other than the rowid may hold NULLs: a nullable source key stays nullable there
                nullable=col.nullable and (not in_pk or (tgt == "sqlite" and plan.source_dialect == "sqlite")),
                autoincrement=auto if tgt != "postgresql" or auto else False,
                server_default=sa.text(default) if default is not None else None,
            )
        )
        if col.kind.name == "enum" and col.kind.values and tgt != "mysql" and col.source_type is None:
            name = short_name(f"ck_{plan.target_table}_{col.name}", tgt)
            checks.append(sa.CheckConstraint(sa.column(col.name).in_(list(col.kind.values)), name=name))
    _insert_generated(plan, spec, columns)
    kwargs: dict[str, object] = {"schema": plan.target_schema}
    if tgt == "mysql":
        kwargs.update(mysql_engine="InnoDB", mysql_charset="utf8mb4")
        if plan.source_dialect == "mysql" and plan.table_charset:  # the source table's own default
            kwargs.update(mysql_charset=plan.table_charset[0], mysql_collate=plan.table_charset[1])
    if tgt == "sqlite" and plan.sqlite_autoincrement and plan.source_dialect == "sqlite":
        kwargs["sqlite_autoincrement"] = True
    table = sa.Table(plan.target_table, metadata, *columns, *checks, **kwargs)  # type: ignore[arg-type]
    tt = TargetTable(plan=plan, spec=spec, table=table, notes=notes)
    for kind, name, reason in omitted:
        tt.omit(kind, name, reason)
    _prepare_checks(tt)
    return tt


def _insert_generated(plan: TablePlan, spec: TargetSpec, columns: list[sa.Column]) -> None:
    """The generated columns the plan keeps (``extras.plan_generated``), each after the column that precedes
    it in the source; they are not loaded: the target computes them."""
    order = plan.all_columns
    origins = {c.name: c.origin for c in spec.columns}
    for _pos, col in plan.generated:
        sql, stored = col.computed or ("", False)
        same = plan.source_dialect == plan.target_dialect
        ctype = col.type if same else target_type(col.kind, plan.target_dialect)
        new = sa.Column(col.name, ctype, sa.Computed(sa.text(sql), persisted=stored), nullable=True)
        before = order[: order.index(col.name)] if col.name in order else []
        at = 0
        for i, c in enumerate(columns):
            if origins.get(c.name, c.name) in before:
                at = i + 1
        columns.insert(at, new)


def _prepare_checks(tt: TargetTable) -> None:
    """The source's CHECK constraints in the target's SQL: on SQLite part of CREATE TABLE (it cannot add one
    later), elsewhere added after the load (``extras.add_check``); one that does not translate is listed."""
    from dmig.move import extras

    plan = tt.plan
    renamed = {c: tt.spec.by_origin(c) for c in plan.all_columns}
    for _pos, col in plan.generated:
        renamed[col.name] = col.name
    for i, check in enumerate(plan.checks):
        label = check.name or f"{plan.target_table}_check{i + 1}"
        sql, why = extras.check_sql(plan, check, renamed)
        if sql is None:
            tt.omit("check", label, f"{check.sqltext}: {why}")
            continue
        name = short_name(check.name or f"{plan.target_table}_check{i + 1}", plan.target_dialect)
        if plan.target_dialect == "sqlite":
            tt.table.append_constraint(sa.CheckConstraint(sa.text(sql), name=name, info={"dmig_source": True}))
        else:
            tt.checks.append((name, sql))


def _later_copy(table: sa.Table, later: sa.MetaData) -> sa.Table:
    existing = later.tables.get(table.key)
    return existing if existing is not None else table.to_metadata(later)


def attach_indexes(tt: TargetTable, used_names: set[str], later: sa.MetaData) -> None:
    """Prepare the secondary indexes (mapped through renames; skipped when a column was transformed).

    They are built on a copy of the table in ``later`` so that CREATE TABLE does not include them.
    """
    tgt = tt.plan.target_dialect
    copy = _later_copy(tt.table, later)
    same = tt.plan.source_dialect == tgt
    for ix in tt.plan.indexes:
        cols = [tt.spec.by_origin(c) for c in ix.columns]
        if not all(cols):
            tt.omit("index", ix.name, "skipped: one of its columns was transformed or excluded")
            continue
        special = ix.special
        if special and not same:
            tt.omit("index", ix.name, f"{special}: there is no equivalent on {tgt}, so it was not created")
            continue
        if ix.expressions and any(c != o for c, o in zip(cols, ix.columns, strict=True)):
            tt.omit("index", ix.name, f"{special}: a column it uses is renamed")
            continue
        name = ix.name
        if tgt != "mysql" and (name in used_names or tt.plan.source_dialect == "mysql"):
            name = f"{tt.plan.target_table}_{ix.name}"
        name = short_name(name, tgt)
        used_names.add(name)
        parts: list[object] = [copy.c[c] for c in cols if c]
        if ix.expressions:  # same dialect: the source's own expressions, columns by name
            parts = [copy.c[e] if e in copy.c else sa.text(e) for e in ix.expressions]
        options = dict(ix.options) if same else {}
        if options.get("postgresql_where") is not None:
            options["postgresql_where"] = sa.text(str(options["postgresql_where"]))
        index = sa.Index(name, *parts, unique=ix.unique, **options)
        if index.table is None:  # expressions only: bound to the table explicitly
            index._set_parent(copy)
        tt.indexes.append(index)


def attach_foreign_keys(tables: dict[str, TargetTable], later: sa.MetaData) -> None:
    """Prepare FKs between copied tables (keyed by source name).

    SQLite gets them on the table itself (it cannot add one later). Elsewhere they are built on
    copies of the tables in ``later``, so that CREATE TABLE does not include them.
    """
    for tt in tables.values():
        for i, fk in enumerate(tt.plan.foreign_keys):
            ref = tables.get(fk.ref_table)
            cols = [tt.spec.by_origin(c) for c in fk.columns]
            ref_cols = [ref.spec.by_origin(c) for c in fk.ref_columns] if ref else []
            if ref is None or not all(cols) or not all(ref_cols):
                tt.omit("foreign key", str(fk.name or i), "skipped: its table or columns are not copied unchanged")
                continue
            sqlite = tt.plan.target_dialect == "sqlite"
            child = tt.table if sqlite else _later_copy(tt.table, later)
            parent = ref.table if sqlite else _later_copy(ref.table, later)
            name = short_name(fk.name or f"fk_{tt.plan.target_table}_{i}", tt.plan.target_dialect)
            constraint = sa.ForeignKeyConstraint(
                [child.c[c] for c in cols if c],
                [parent.c[c] for c in ref_cols if c],
                name=name,
                ondelete=fk.ondelete,
                onupdate=fk.onupdate,
            )
            if sqlite:
                tt.table.append_constraint(constraint)
            tt.foreign_keys.append(constraint)


def match_existing_parents(tables: dict[str, TargetTable], insp: sa.Inspector, existing: set[str]) -> None:
    """A key column of a table this copy creates takes the integer type of the column it references in a
    parent table that already exists in the target (``existing``, by source name): the parent is the
    user's, and MySQL/MariaDB refuse a foreign key between INT and BIGINT (SQLite integers map to BIGINT)."""
    for name, tt in tables.items():
        if name in existing:
            continue
        for fk in tt.plan.foreign_keys:
            parent = tables.get(fk.ref_table)
            if parent is None or fk.ref_table not in existing:
                continue
            have = {c["name"]: c["type"] for c in insp.get_columns(parent.plan.target_table, parent.plan.target_schema)}
            for col, ref in zip(fk.columns, fk.ref_columns, strict=False):
                child_col, parent_col = tt.spec.by_origin(col), parent.spec.by_origin(ref)
                ref_type = have.get(parent_col or "")
                column = tt.table.c.get(child_col or "")
                if column is not None and isinstance(ref_type, sa.Integer) and isinstance(column.type, sa.Integer):
                    column.type = ref_type


def table_exists(engine: Engine, name: str, schema: str | None) -> bool:
    return sa.inspect(engine).has_table(name, schema=schema)


def is_empty(conn: sa.Connection, table: sa.Table) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None


def create_table(engine: Engine, tt: TargetTable) -> None:
    """CREATE TABLE; when the target refuses it, each column default is tried on its own, the ones the target
    refuses are named in the table's notes and left out, and the table is created without them.

    A default that passes the translation can still be refused by the target (SQLite keeps ``'"0"'`` on a
    BIGINT, PostgreSQL and MariaDB do not): one such default must not abort the copy of every table.
    """
    try:
        with engine.begin() as conn:
            tt.table.create(conn, checkfirst=True)
        return
    except database_errors():
        checks = [c for c in tt.table.constraints if isinstance(c, sa.CheckConstraint) and c.info.get("dmig_source")]
        refused_checks = [c for c in checks if not _check_accepted(engine, tt.table, c)]
        defaults = [c for c in tt.table.columns if isinstance(c.server_default, sa.DefaultClause)]
        refused = [c for c in defaults if not _default_accepted(engine, c)]
        if not refused and not refused_checks:
            raise
    for col in refused:
        text = str(col.server_default.arg)  # type: ignore[union-attr]
        tt.omit("default", col.name, f"default {text} refused by the target and not carried over")
        col.server_default = None
    for check in refused_checks:
        tt.omit("check", str(check.name), f"{check.sqltext}: refused by the target and not carried over")
        tt.table.constraints.discard(check)
    with engine.begin() as conn:
        tt.table.create(conn, checkfirst=True)


def _check_accepted(engine: Engine, table: sa.Table, check: sa.CheckConstraint) -> bool:
    """Whether the target accepts the check on the table's columns, in a temporary table of its own."""
    columns = [sa.Column(c.name, c.type) for c in table.columns if c.computed is None]
    probe = sa.Table(
        "dmig_probe_check", sa.MetaData(), *columns, sa.CheckConstraint(check.sqltext), prefixes=["TEMPORARY"]
    )
    return _probe_accepted(engine, probe)


def _default_accepted(engine: Engine, col: sa.Column) -> bool:
    """Whether the target accepts the column (type and default) in a temporary table of its own."""
    probe = sa.Table(
        "dmig_probe_default",
        sa.MetaData(),
        sa.Column(col.name, col.type, server_default=col.server_default.arg),  # type: ignore[union-attr]
        prefixes=["TEMPORARY"],
    )
    return _probe_accepted(engine, probe)


def _probe_accepted(engine: Engine, probe: sa.Table) -> bool:
    try:
        with engine.connect() as conn:
            probe.create(conn)
            probe.drop(conn)
            conn.commit()  # a temporary table: nothing of the user's; a rollback could undo the DROP
        return True
    except database_errors():
        return False


def _db_error(exc: Exception) -> str:
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return redact(str(orig or exc).strip().splitlines()[0])[:300]


def database_errors() -> tuple[type[Exception], ...]:
    """What a failed statement raises: SQLAlchemy's wrapper, or the driver's own error for SQL sent with
    ``execute_plain`` (psycopg, PyMySQL, sqlite3)."""
    import sqlite3

    import psycopg
    import pymysql

    return (sa.exc.DBAPIError, psycopg.Error, pymysql.err.MySQLError, sqlite3.Error)


def timed(kind: str, name: str, fn: Callable[[], str | None]) -> IndexReport:
    """Run ``fn`` and report it; it fails by raising a database error or by returning a message."""
    start = time.perf_counter()
    try:
        error = fn()
    except database_errors() as exc:
        error = _db_error(exc)
    seconds = time.perf_counter() - start
    return IndexReport(name=name, kind=kind, seconds=seconds, ok=error is None, error=error)  # type: ignore[arg-type]


IndexJob = tuple[str, str, Callable[[], str | None]]  # (kind, name, build) for ``timed``


def index_jobs(engine: Engine, tt: TargetTable) -> list[IndexJob]:
    """The prepared indexes that do not exist yet (idempotent on resume), each as a job for ``timed``."""
    existing = {i["name"] for i in sa.inspect(engine).get_indexes(tt.table.name, schema=tt.table.schema)}
    jobs: list[IndexJob] = []
    for ix in tt.indexes:
        if ix.name in existing:
            continue

        def create(ix: sa.Index = ix) -> None:
            with engine.begin() as conn:
                ix.create(conn)

        jobs.append(("unique" if ix.unique else "index", str(ix.name), create))
    return jobs


def build_indexes(engine: Engine, tt: TargetTable) -> list[IndexReport]:
    """Create the prepared indexes that do not exist yet, one after the other."""
    return [timed(*job) for job in index_jobs(engine, tt)]


def build_foreign_keys(
    engine: Engine, tt: TargetTable, skip: set[str] | frozenset[str] = frozenset()
) -> list[IndexReport]:
    """Add (PostgreSQL, MySQL) or check (SQLite) the table's foreign keys, but those named in ``skip``
    (already built, and reported, earlier in the run).

    On MySQL a key that already exists is checked again rather than skipped: this run created the
    table, so the key was added by an earlier attempt that may have stopped before proving it. On
    PostgreSQL such a key may have been added NOT VALID by a stopped run: it is validated now.
    """
    if tt.plan.target_dialect == "sqlite":
        return [_sqlite_fk_check(engine, tt)] if tt.foreign_keys else []
    existing = {f["name"] for f in sa.inspect(engine).get_foreign_keys(tt.table.name, schema=tt.table.schema)}
    mysql = tt.plan.target_dialect == "mysql"
    unproven = set() if mysql else _not_validated(engine, tt)
    planned = {str(ix.name) for ix in tt.indexes}
    reports = []
    for fk in [fk for fk in tt.foreign_keys if str(fk.name) not in skip]:
        if mysql:
            present = fk.name in existing

            def checked(fk: sa.ForeignKeyConstraint = fk, present: bool = present) -> str | None:
                return _mysql_add_foreign_key(engine, fk, present, planned)

            reports.append(timed("foreign_key", str(fk.name), checked))
            continue
        if fk.name in existing:
            if fk.name in unproven:

                def prove(fk: sa.ForeignKeyConstraint = fk) -> str | None:
                    return validate_or_drop(engine, fk)

                reports.append(timed("foreign_key", str(fk.name), prove))
            continue

        def add(fk: sa.ForeignKeyConstraint = fk) -> None:
            with engine.begin() as conn:
                conn.execute(sa.schema.AddConstraint(fk))

        reports.append(timed("foreign_key", str(fk.name), add))
    return reports


def _constraint_exists(conn: sa.Connection, fk: sa.ForeignKeyConstraint) -> bool:
    stmt = sa.text("SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(:t) AND conname = :n")
    return conn.execute(stmt, {"t": table_sql(conn.dialect, fk.parent), "n": str(fk.name)}).first() is not None


def _not_validated(engine: Engine, tt: TargetTable) -> set[str]:
    stmt = sa.text(
        "SELECT conname FROM pg_constraint WHERE conrelid = to_regclass(:t) AND contype = 'f' AND NOT convalidated"
    )
    with engine.connect() as conn:
        return set(conn.execute(stmt, {"t": table_sql(conn.dialect, tt.table)}).scalars())


HOLD_ENV = "DMIG_TEST_HOLD_FOREIGN_KEY"


def _hold_for_test() -> None:
    """Test hook: with ``DMIG_TEST_HOLD_FOREIGN_KEY`` naming a file, the process creates it and waits here,
    between adding a key NOT VALID and validating it, so a test can kill it in that window."""
    marker = os.environ.get(HOLD_ENV)
    if not marker:
        return
    Path(marker).touch()
    while True:
        time.sleep(1)


def add_foreign_key_not_valid(engine: Engine, fk: sa.ForeignKeyConstraint) -> None:
    """PostgreSQL: the key without checking the rows (instant); ``validate_or_drop`` checks them.

    A key of that name already on the table is this run's own (the run created the table): an attempt
    killed after adding it, valid or not. It is kept, and ``validate_or_drop`` validates it (a no-op
    when it already is valid); adding it again would fail on every re-run ("already exists").
    """
    with engine.begin() as conn:
        if _constraint_exists(conn, fk):
            return
        execute_plain(conn, ddl_sql(conn.dialect, sa.schema.AddConstraint(fk)) + " NOT VALID")
    _hold_for_test()


def validate_or_drop(engine: Engine, fk: sa.ForeignKeyConstraint) -> str | None:
    """PostgreSQL: validate a NOT VALID key; one the rows break is dropped again, and the reason returned."""
    table = fk.parent
    try:
        with engine.begin() as conn:
            name = name_sql(conn.dialect, str(fk.name))
            execute_plain(conn, f"ALTER TABLE {table_sql(conn.dialect, table)} VALIDATE CONSTRAINT {name}")
        return None
    except database_errors() as exc:
        error = _db_error(exc)
    with engine.begin() as conn:
        conn.execute(sa.schema.DropConstraint(fk))
    return error


ORPHAN_SAMPLE = 5


def _mysql_add_foreign_key(engine: Engine, fk: sa.ForeignKeyConstraint, present: bool, planned: set[str]) -> str | None:
    """Add ``fk`` without the table rebuild, then prove it; None when it holds, else why it was dropped.

    With ``foreign_key_checks=0`` InnoDB adds the constraint in place (no copy of the table, no
    check of the rows); the anti-join then finds any child row without a parent. A key that does
    not hold (or could not be checked) is dropped again, so the target never keeps a constraint its
    rows violate: the outcome is the one a validating ``ADD CONSTRAINT`` gives, at a fraction of the cost.
    """
    with engine.connect() as conn:
        if not present:
            with _foreign_key_checks_off(conn):
                conn.execute(sa.schema.AddConstraint(fk))
            conn.commit()
        try:
            bad = conn.execute(_orphans(fk)).fetchall()
            problem = _orphans_message(fk, bad) if bad else None
        except sa.exc.DBAPIError as exc:
            problem = f"could not be checked for orphan rows ({_db_error(exc)}), so it was not kept"
        conn.rollback()
        if problem is not None:
            try:
                _drop_unproven(conn, fk, planned)
            except sa.exc.DBAPIError as exc:  # left in place: the table stays failed and a resume checks it again
                problem = f"{problem}; dropping it failed: {_db_error(exc)}"
        return problem[:300] if problem else None


@contextlib.contextmanager
def _foreign_key_checks_off(conn: sa.Connection) -> Iterator[None]:
    """``foreign_key_checks=0`` on this session only, restored afterwards whatever happens."""
    saved = conn.execute(sa.text("SELECT @@SESSION.foreign_key_checks")).scalar()
    conn.execute(sa.text("SET SESSION foreign_key_checks = 0"))
    try:
        yield
    finally:
        try:
            conn.execute(sa.text("SET SESSION foreign_key_checks = :v"), {"v": saved})
        except sa.exc.DBAPIError:
            conn.invalidate()  # never hand a session with the checks off back to the pool
            raise


def _orphans(fk: sa.ForeignKeyConstraint) -> sa.Select:
    """Child rows whose (fully non-NULL) key has no parent row: MATCH SIMPLE, as InnoDB enforces it."""
    child = fk.table
    parent = fk.referred_table.alias("dmig_parent")
    pairs = [(el.parent, parent.c[el.column.name]) for el in fk.elements]
    keys = list(child.primary_key.columns)
    shown = keys + [c for c, _ in pairs if c.name not in {k.name for k in keys}]
    on = sa.and_(*[c == p for c, p in pairs])
    return (
        sa.select(*shown)
        .select_from(child.outerjoin(parent, on))
        .where(pairs[0][1].is_(None), *[c.is_not(None) for c, _ in pairs])
        .limit(ORPHAN_SAMPLE)
    )


def _orphans_message(fk: sa.ForeignKeyConstraint, rows: list[sa.Row]) -> str:
    cols = ", ".join(el.parent.name for el in fk.elements)
    refs = ", ".join(el.column.name for el in fk.elements)
    count = f"{len(rows)}+ rows" if len(rows) >= ORPHAN_SAMPLE else f"{len(rows)} row{'s' * (len(rows) > 1)}"
    first = "; ".join(
        " ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in r._mapping.items()) for r in rows
    )
    return (
        f"{count} of {fk.table.name} without a parent ({cols} not in {fk.referred_table.name}({refs})): "
        f"the constraint was not kept (first rows: {first})"
    )


def _drop_unproven(conn: sa.Connection, fk: sa.ForeignKeyConstraint, planned: set[str]) -> None:
    """Drop the constraint, and the index InnoDB created for it if the copy did not plan that index."""
    conn.execute(sa.schema.DropConstraint(fk))
    conn.commit()
    indexes = {i["name"] for i in sa.inspect(conn).get_indexes(fk.table.name, schema=fk.table.schema)}
    conn.rollback()
    if fk.name in indexes and fk.name not in planned:
        quoted = conn.dialect.identifier_preparer.quote(str(fk.name))
        with contextlib.suppress(sa.exc.DBAPIError):  # still needed by another key: harmless to keep
            execute_plain(conn, f"ALTER TABLE {table_sql(conn.dialect, fk.table)} DROP INDEX {quoted}")
        conn.rollback()


def _sqlite_fk_check(engine: Engine, tt: TargetTable) -> IndexReport:
    start = time.perf_counter()
    with engine.connect() as conn:
        quoted = conn.dialect.identifier_preparer.quote(tt.table.name)
        bad = conn.exec_driver_sql(f"PRAGMA foreign_key_check({quoted})").fetchmany(5)
    seconds = time.perf_counter() - start
    if bad:
        error = f"{len(bad)}+ rows violate a foreign key (first rowids: {[r[1] for r in bad]})"
        return IndexReport(name="foreign_key_check", kind="foreign_key", seconds=seconds, ok=False, error=error)
    return IndexReport(name="foreign_key_check", kind="foreign_key", seconds=seconds, ok=True)


def reset_counters(engine: Engine, tt: TargetTable) -> None:
    """Auto-increment / identity / sequence to max(id)+1 so the application's next insert does not collide."""
    autos = [c for c in tt.table.columns if c.primary_key and (c.autoincrement is True or c.identity is not None)]
    if not autos:
        return
    col = autos[0]
    dialect = tt.plan.target_dialect
    with engine.begin() as conn:
        top = conn.execute(sa.select(sa.func.max(col))).scalar()
        next_value = int(top or 0) + 1
        if dialect == "postgresql":
            name = table_sql(conn.dialect, tt.table)
            seq = conn.execute(sa.select(sa.func.pg_get_serial_sequence(name, col.name))).scalar()
            if seq:  # "max was used" rather than "max+1 is next": a key at the type's maximum stays in range
                args = (seq, int(top), True) if top is not None else (seq, 1, False)
                conn.execute(sa.select(sa.func.setval(*args)))
        elif dialect == "mysql":
            name = table_sql(conn.dialect, tt.table)
            execute_plain(conn, f"ALTER TABLE {name} AUTO_INCREMENT = {next_value:d}")
        elif tt.table.dialect_options["sqlite"].get("autoincrement"):
            seq = sa.table("sqlite_sequence", sa.column("name"), sa.column("seq"))
            updated = conn.execute(
                sa.update(seq).where(seq.c.name == tt.table.name).values(seq=next_value - 1)
            ).rowcount
            if not updated:
                conn.execute(sa.insert(seq).values(name=tt.table.name, seq=next_value - 1))
