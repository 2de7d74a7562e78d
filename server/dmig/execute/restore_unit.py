"""The restore unit of a rollback: stop writes, reshape, reload from the backup, prove it, commit.

Writes are stopped for the whole unit, per dialect:

- PostgreSQL: one transaction; ``LOCK TABLE ... IN ACCESS EXCLUSIVE MODE`` (under the plan's
  lock_timeout, retried with backoff) first, so no session reads or writes the tables until the
  commit. Reshape (transactional DDL), reload (COPY) and the checksum check all happen inside it:
  a checksum that differs from the backup's rolls everything back and nothing has changed. Other
  tables' foreign keys to the restored tables are dropped for the reload and added back (so
  validated) before the commit: a child row pointing at a row the backup lacks fails the unit.
- MySQL/MariaDB: ``LOCK TABLES ... WRITE`` (under lock_wait_timeout). DDL commits by itself
  there, so the reshape is applied first under the lock, then the rows are replaced in one
  transaction (``autocommit = 0``; ``START TRANSACTION`` would release the table locks) whose
  checksum is checked before COMMIT, then UNLOCK TABLES. If the data part fails, the table keeps
  the backup's shape with its rows untouched; the unit is idempotent, so a second rollback call
  finishes it (its reshape then has nothing to do).
- SQLite: ``BEGIN IMMEDIATE`` (the database's write lock, waited for under busy_timeout), foreign
  keys off for the rebuild (set before the transaction: the PRAGMA is a no-op inside one), the
  whole unit in that transaction, ``foreign_key_check`` before COMMIT.

Before anything changes, each live row's hash is taken (``drift``), so the outcome can say how
many changes made after the backup the restore discarded.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from pydantic import BaseModel, Field

from dmig import safeload
from dmig.backup import crypto
from dmig.backup.manifest import Manifest
from dmig.backup.restore import replace_rows
from dmig.backup.schema import NEUTRAL_NAME, load_ddl
from dmig.db.urls import dialect_of
from dmig.errors import DatabaseError
from dmig.execute import drift, fingerprint, reshape
from dmig.execute.retry import RetryPolicy, is_lock_timeout
from dmig.plan.model import Plan

LOCKS = {
    "postgresql": "LOCK TABLE ... IN ACCESS EXCLUSIVE MODE inside the restore transaction",
    "mysql": "LOCK TABLES ... WRITE for the reshape and the reload (one data transaction inside it)",
    "sqlite": "BEGIN IMMEDIATE (the database write lock) for the whole restore transaction",
}


class TableRestore(BaseModel):
    table: str
    rows: int = Field(description="Rows loaded from the backup.")
    seconds: float = Field(description="Time spent loading this table's rows.")
    expected: str = Field(description="The backup manifest's checksum: rows:sum of row hashes.")
    actual: str = Field(description="The same checksum of the table after the reload (checked before commit).")
    checksum_ok: bool
    reshaped: list[str] = Field(default_factory=list, description="What was changed to give back the backup's shape.")
    drift: drift.Drift


class UnitOutcome(BaseModel):
    tables: list[TableRestore]
    lock: str = Field(description="How writes were stopped during the restore.")
    lock_attempts: int
    seconds: float = Field(description="Wall-clock time writes were stopped (lock taken to commit).")
    views_dropped: list[str] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class _Ctx:
    """What one attempt of the unit needs: the connection, the backup, the tables and their DDL."""

    def __init__(self, conn: sa.Connection, plan: Plan, manifest: Manifest, folder: Path, tables: list[str]) -> None:
        self.conn, self.plan, self.manifest, self.folder, self.tables = conn, plan, manifest, folder, tables
        self.dialect = dialect_of(conn.engine.url)
        schemas = {t.schema_ for t in plan.tables if t.exists and t.name in tables}
        self.schema = next(iter(schemas)) if len(schemas) == 1 else None
        ddl_text = safeload.read_text(folder / NEUTRAL_NAME, "schema_dump")
        self.ddl = load_ddl(ddl_text, self.dialect)
        enc = manifest.encryption
        self.key = crypto.load_key(enc.key_env or "") if enc.scheme != "none" else None
        self.version = fingerprint.prepare(conn)
        self.hashes: dict[str, tuple[list[str], list[str], object]] = {}
        self.reshaped: dict[str, list[str]] = {t: [] for t in tables}
        self.notes: list[str] = []
        insp = sa.inspect(conn)
        # A table the migration dropped (move_table's contract): re-created from the backup, then reloaded.
        self.missing = [t for t in tables if not insp.has_table(t, schema=self.schema)]

    def qt(self, table: str) -> str:
        prep = self.conn.dialect.identifier_preparer
        return f"{prep.quote(self.schema)}.{prep.quote(table)}" if self.schema else prep.quote(table)

    def create_missing(self) -> None:
        """Tables the migration dropped come back empty, with the backup's CREATE and indexes."""
        for t in self.missing:
            for stmt in [*self.ddl[t].create, *self.ddl[t].indexes]:
                self.conn.exec_driver_sql(stmt)
            self.reshaped[t].append(f"{t}: re-created from the backup (the migration had dropped it)")

    @property
    def present(self) -> list[str]:
        return [t for t in self.tables if t not in self.missing]

    def live_hashes(self) -> None:
        for t in self.present:
            entry = self.manifest.table(t)
            assert entry is not None
            key, cols = drift.comparable(self.conn, t, self.schema, entry.checksum.columns, entry.checksum.categories)
            self.hashes[t] = (key, cols, drift.row_hashes(self.conn, t, self.schema, key, cols, self.version))

    def drop_views(self, views: list[str]) -> None:
        for v in views:
            self.conn.exec_driver_sql(f"DROP VIEW IF EXISTS {v}")

    def reshape_in_place(self, before_alter: str | None) -> dict[str, str]:
        """Staging temp tables for types, then the ALTERs; returns {table: staging name}."""
        staged = {}
        for i, t in enumerate(self.present):
            staging = f"dmig_rb_shape_{i}"
            self.conn.exec_driver_sql(reshape.staging_sql(self.conn, self.ddl[t], t, staging))
            live = reshape.columns(self.conn, t, self.schema)
            target = reshape.columns(self.conn, staging, None)
            cplan = reshape.plan_columns(live, target)
            if before_alter and cplan.changes:
                self.conn.exec_driver_sql(before_alter.format(table=self.qt(t)))
            for stmt in reshape.alter_statements(self.conn, t, self.schema, cplan):
                self.conn.exec_driver_sql(stmt)
            self.reshaped[t] += reshape.describe_plan(t, cplan)
            staged[t] = staging
        return staged

    def recreate_missing(self, staged: dict[str, str]) -> None:
        for t, staging in staged.items():
            for stmt in reshape.missing_objects(self.conn, t, self.schema, staging, self.ddl[t]):
                self.conn.exec_driver_sql(stmt)
                self.reshaped[t].append(f"{t}: re-created {stmt.split(' (')[0][:160]}")

    def load_and_check(self) -> list[TableRestore]:
        loaded = replace_rows(self.conn, self.folder, self.manifest, self.tables, self.key, self.schema)
        out = []
        for t in self.tables:
            entry = self.manifest.table(t)
            assert entry is not None
            got = fingerprint.data_checksum(self.conn, t, self.schema, entry.checksum.columns, self.version)
            actual = f"{got['rows']}:{got['sum']}"
            if t in self.hashes:
                key, cols, live = self.hashes[t]
                restored = drift.row_hashes(self.conn, t, self.schema, key, cols, self.version)  # type: ignore[arg-type]
                changes = drift.compare(live, restored, cols)  # type: ignore[arg-type]
            else:  # re-created: nothing was written to it after the backup, nothing is discarded
                changes = drift.Drift(
                    columns=[], inserted_after_backup=0, updated_after_backup=0, deleted_after_backup=0
                )
            out.append(
                TableRestore(
                    table=t,
                    rows=loaded[t].rows or 0,
                    seconds=loaded[t].seconds,
                    expected=entry.checksum.token,
                    actual=actual,
                    checksum_ok=actual == entry.checksum.token,
                    reshaped=self.reshaped[t],
                    drift=changes,
                )
            )
        bad = [r for r in out if not r.checksum_ok]
        if bad:
            raise DatabaseError(
                "the reloaded rows do not match the backup's checksum ("
                + "; ".join(f"{r.table}: {r.actual} vs {r.expected}" for r in bad)
                + "): the restore was rolled back",
                reason="restore_checksum_mismatch",
            )
        return out


_REFERENCING = sa.text(
    "SELECT c.conname, c.conrelid::regclass::text, pg_get_constraintdef(c.oid) FROM pg_constraint c "
    "WHERE c.contype = 'f' AND c.confrelid = to_regclass(:parent) AND c.conrelid <> c.confrelid ORDER BY 1"
)


def _set_aside_referencing_keys(cx: _Ctx) -> list[tuple[str, str, str]]:
    """Foreign keys of OTHER tables pointing at the restored ones, dropped inside the restore transaction.

    Reloading deletes every parent row first; with immediate (non-deferrable) keys PostgreSQL refuses
    that while any child row points at it. DDL is transactional here: the keys come back, validated
    against the restored rows, before COMMIT, and anything failing rolls all of it back.
    """
    prep = cx.conn.dialect.identifier_preparer
    keys = []
    for t in cx.tables:
        for name, child, definition in cx.conn.execute(_REFERENCING, {"parent": cx.qt(t)}).all():
            keys.append((str(child), str(name), str(definition)))
    for child, name, _definition in keys:
        cx.conn.exec_driver_sql(f"ALTER TABLE {child} DROP CONSTRAINT {prep.quote(name)}")
    return keys


def _restore_referencing_keys(cx: _Ctx, keys: list[tuple[str, str, str]]) -> None:
    prep = cx.conn.dialect.identifier_preparer
    for child, name, definition in keys:
        try:
            cx.conn.exec_driver_sql(f"ALTER TABLE {child} ADD CONSTRAINT {prep.quote(name)} {definition}")
        except sa.exc.DBAPIError as exc:
            raise DatabaseError(
                f"{child} holds rows that reference rows the backup does not have (written after the backup), "
                f"so foreign key {name} would break: the restore was rolled back, nothing changed "
                f"({str(exc.orig or exc).strip().splitlines()[0][:200]})",
                reason="restore_breaks_foreign_key",
                table=child,
                constraint=name,
            ) from None
        cx.notes.append(f"{child}: foreign key {name} set aside during the reload and validated again before commit")


@contextlib.contextmanager
def _rollback_on_error(conn: sa.Connection) -> Iterator[None]:
    """The unit's own transaction (BEGIN/COMMIT issued by hand) is rolled back on any failure, then re-raised."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            conn.exec_driver_sql("ROLLBACK")
        raise


def _pg(cx: _Ctx, views: list[str], do_reshape: bool, lock_ms: int) -> list[TableRestore]:
    conn = cx.conn
    conn.exec_driver_sql("BEGIN")
    with _rollback_on_error(conn):
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(lock_ms)}ms'")
        cx.create_missing()  # inside the transaction: it disappears again if anything below fails
        conn.exec_driver_sql(f"LOCK TABLE {', '.join(cx.qt(t) for t in cx.tables)} IN ACCESS EXCLUSIVE MODE")
        cx.live_hashes()
        keys = _set_aside_referencing_keys(cx)
        staged: dict[str, str] = {}
        if do_reshape:
            cx.drop_views(views)
            staged = cx.reshape_in_place("DELETE FROM {table}")  # an empty table takes NOT NULL columns
        out = cx.load_and_check()
        cx.recreate_missing(staged)
        _restore_referencing_keys(cx, keys)
        conn.exec_driver_sql("COMMIT")
        return out


def _mysql(cx: _Ctx, views: list[str], do_reshape: bool, lock_ms: int) -> list[TableRestore]:
    conn = cx.conn
    conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {max(1, math.ceil(lock_ms / 1000))}")
    if do_reshape:
        cx.drop_views(views)  # DROP VIEW is refused under LOCK TABLES; the views are contract's own
    cx.create_missing()  # DDL commits by itself here; an empty re-created table is what a second call expects
    conn.exec_driver_sql(f"LOCK TABLES {', '.join(cx.qt(t) + ' WRITE' for t in cx.tables)}")
    try:
        cx.live_hashes()
        staged = cx.reshape_in_place(None) if do_reshape else {}
        conn.exec_driver_sql("SET autocommit = 0")
        try:
            with _rollback_on_error(conn):
                out = cx.load_and_check()
                conn.exec_driver_sql("COMMIT")
        finally:
            conn.exec_driver_sql("SET autocommit = 1")
        cx.recreate_missing(staged)
        for staging in staged.values():
            conn.exec_driver_sql(f"DROP TEMPORARY TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(staging)}")
        return out
    finally:
        with contextlib.suppress(sa.exc.SQLAlchemyError):
            conn.exec_driver_sql("UNLOCK TABLES")


def _sqlite(cx: _Ctx, views: list[str], do_reshape: bool, lock_ms: int) -> list[TableRestore]:
    conn = cx.conn
    conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(lock_ms)}")
    conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    try:
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        with _rollback_on_error(conn):
            cx.live_hashes()
            cx.create_missing()
            triggers: list[str] = []
            if do_reshape:
                cx.drop_views(views)
                for t in cx.present:
                    triggers += reshape.sqlite_rebuild(conn, t, cx.ddl[t])
                    cx.reshaped[t].append(f"{t}: rebuilt from the backup's CREATE statement and indexes")
            out = cx.load_and_check()
            for sql in triggers:
                conn.exec_driver_sql(sql)
            for t in cx.tables:
                broken = conn.exec_driver_sql(f"PRAGMA foreign_key_check({cx.qt(t)})").all()
                if broken:
                    cx.notes.append(f"{t}: {len(broken)} restored row(s) reference parent rows that no longer exist")
            conn.exec_driver_sql("COMMIT")
            return out
    finally:
        conn.exec_driver_sql("PRAGMA foreign_keys = ON")


_UNITS = {"postgresql": _pg, "mysql": _mysql, "sqlite": _sqlite}


def restore_unit(
    engine: sa.Engine,
    plan: Plan,
    manifest: Manifest,
    folder: Path,
    tables: list[str],
    *,
    reshape_tables: bool,
    policy: RetryPolicy,
) -> UnitOutcome:
    """Run the unit, retrying (with backoff) only when the lock that stops writes was not granted in time."""
    dialect = dialect_of(engine.url)
    lock_ms = plan.spec.options.effective_lock_timeout_ms
    views = reshape.contract_views(plan) if reshape_tables else []
    attempt = 0
    while True:
        attempt += 1
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            cx = _Ctx(conn, plan, manifest, folder, tables)
            started = time.monotonic()
            try:
                out = _UNITS[dialect](cx, views, reshape_tables, lock_ms)
            except sa.exc.DBAPIError as exc:
                if is_lock_timeout(exc, dialect) and attempt <= policy.max_retries:
                    policy.sleep(policy.delay(attempt))
                    continue
                text = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:400]
                raise DatabaseError(
                    f"restoring {', '.join(tables)} from backup {manifest.backup_id} failed and was rolled back"
                    + (" (the reshape before it had committed: MySQL DDL is not transactional; call rollback again)"
                       if dialect == "mysql" and reshape_tables else "")
                    + f": {text}",
                    reason="lock_timeout" if is_lock_timeout(exc, dialect) else "restore_failed",
                    attempts=attempt,
                ) from None  # fmt: skip
            seconds = round(time.monotonic() - started, 3)
        return UnitOutcome(
            tables=out, lock=LOCKS[dialect], lock_attempts=attempt, seconds=seconds, views_dropped=views, notes=cx.notes
        )
