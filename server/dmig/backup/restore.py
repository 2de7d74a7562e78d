"""Putting a backup's tables back into a database: a scratch one (verification) or the real one.

One function serves both, so verification exercises exactly the code a rollback will run.
A scratch restore loads each table in its own transaction (a defect is pinned to its table and
the others still get checked). A real restore is destructive: it replaces the rows of the
chosen tables, and does so in one transaction (DELETE, then the backup's rows, children deleted
before parents and parents loaded before children), so a failure leaves the tables as they were.
Tables missing from the target are created first from the captured schema (DDL is not
transactional on MySQL, so those are created before the data transaction starts).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import URL

from dmig import safeload
from dmig.backup import native, portable, sqlite_ddl
from dmig.backup.crypto import decrypt_file
from dmig.backup.manifest import Manifest
from dmig.backup.schema import NEUTRAL_NAME, load_ddl
from dmig.backup.session import connection, db_error
from dmig.errors import Conflict, DmigError, InvalidInput

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class Target:
    url: URL
    dialect: str
    schema: str | None = None  # PostgreSQL schema (MySQL: the URL's database)
    scratch: bool = False


def effective_schema(manifest: Manifest, target: Target) -> str | None:
    """Where the restored tables live: pg_restore recreates the source's schema name."""
    if target.schema:
        return target.schema
    if manifest.format == "native" and target.dialect == "postgresql":
        return manifest.source.schema_name
    return None


@dataclass
class Outcome:
    table: str
    rows: int | None = None
    error: str | None = None
    seconds: float = 0.0


class Files:
    """Backup files as plain bytes on disk: decrypted into a private temp folder when encrypted."""

    def __init__(self, folder: Path, key: bytes | None) -> None:
        self.folder = folder
        self.key = key
        self._tmp: Path | None = None

    def path(self, rel: str, label: str) -> Path:
        if self.key is None:
            return self.folder / rel
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="dmig-restore-"))
        out = self._tmp / rel
        if not out.exists():
            out.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            decrypt_file(self.folder / rel, out, self.key, label)
        return out

    def stream_key(self) -> bytes | None:
        return self.key

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)


def fk_order(folder: Path, tables: list[str]) -> list[str]:
    """Parents before children (by the captured foreign keys); cycles keep the manifest order."""
    doc = safeload.load_json(folder / NEUTRAL_NAME, "schema_dump")
    deps = {
        t: {fk["referred_table"] for fk in doc["tables"].get(t, {}).get("foreign_keys", [])} & set(tables) - {t}
        for t in tables
    }
    out: list[str] = []
    remaining = list(tables)
    while remaining:
        ready = [t for t in remaining if deps[t] <= set(out)] or remaining[:1]
        for t in ready:
            out.append(t)
            remaining.remove(t)
    return out


def restore(
    folder: Path,
    manifest: Manifest,
    target: Target,
    tables: list[str],
    key: bytes | None,
    progress: ProgressFn | None = None,
) -> dict[str, Outcome]:
    unknown = [t for t in tables if manifest.table(t) is None]
    if unknown:
        raise InvalidInput(f"backup {manifest.backup_id} holds no table {', '.join(unknown)}", tables=unknown)
    if manifest.format == "native" and target.dialect != manifest.source.dialect:
        raise InvalidInput(
            f"a native {manifest.source.dialect} backup can only be restored into {manifest.source.dialect}; "
            "take a portable backup to move data across dialects"
        )
    ordered = fk_order(folder, tables)
    files = Files(folder, key)
    try:
        if manifest.format == "portable":
            return _portable(folder, manifest, target, ordered, files, progress)
        if target.dialect == "postgresql":
            return _native_pg(manifest, target, ordered, files, progress)
        if target.dialect == "mysql":
            return _native_mysql(manifest, target, ordered, files, progress)
        return _native_sqlite(manifest, target, ordered, files, progress)
    finally:
        files.close()


# --- shared helpers ----------------------------------------------------------------------------


def _existing(conn: sa.Connection, schema: str | None) -> set[str]:
    return set(sa.inspect(conn).get_table_names(schema=schema))


def _delete(name: str, schema: str | None) -> sa.Delete:
    return sa.delete(sa.table(name, schema=schema))


@contextlib.contextmanager
def _relaxed_fks(conn: sa.Connection) -> Iterator[None]:
    """Foreign keys are checked by the data as a whole, not row by row while it is loaded."""
    name = conn.dialect.name
    if name == "mysql":
        conn.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 0")
    elif name == "sqlite":
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if name == "mysql":
            conn.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 1")
        elif name == "sqlite":
            conn.exec_driver_sql("PRAGMA foreign_keys = ON")


def _pg_replica_role(conn: sa.Connection) -> None:
    """Skip FK triggers during the load when we may (superuser); otherwise FK order must do."""
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
    except sa.exc.DBAPIError:
        pass


def _pg_fix_sequences(conn: sa.Connection, table: str, schema: str | None) -> None:
    rel = _pg_rel(conn, table, schema)
    rows = conn.execute(
        sa.text(
            "SELECT a.attname, pg_get_serial_sequence(:rel, a.attname) FROM pg_attribute a "
            "WHERE a.attrelid = CAST(:rel AS regclass) AND a.attnum > 0 AND NOT a.attisdropped"
        ),
        {"rel": rel},
    ).all()
    for col, seq in rows:
        if seq:
            stmt = sa.select(
                sa.func.setval(
                    seq, sa.func.coalesce(sa.func.max(sa.column(col)), 1), sa.func.max(sa.column(col)).is_not(None)
                )
            ).select_from(sa.table(table, sa.column(col), schema=schema))
            conn.execute(stmt)


def _pg_always_identity(conn: sa.Connection, table: str, schema: str | None) -> list[str]:
    rel = _pg_rel(conn, table, schema)
    stmt = sa.text(
        "SELECT attname FROM pg_attribute WHERE attrelid = CAST(:rel AS regclass) AND attidentity = 'a' "
        "AND NOT attisdropped"
    )
    return [r[0] for r in conn.execute(stmt, {"rel": rel})]


def _pg_set_identity(conn: sa.Connection, table: str, schema: str | None, cols: list[str], mode: str) -> None:
    """Restored rows carry their ids: GENERATED ALWAYS is relaxed inside the restore transaction only."""
    prep = conn.dialect.identifier_preparer
    for col in cols:
        conn.exec_driver_sql(
            f"ALTER TABLE {_pg_rel(conn, table, schema)} ALTER COLUMN {prep.quote(col)} SET GENERATED {mode}"
        )


def _pg_relax_identity(conn: sa.Connection, ordered: list[str], schema: str | None) -> dict[str, list[str]]:
    """Replica role (no FK triggers) and GENERATED ALWAYS relaxed for the load; returns what to put back."""
    _pg_replica_role(conn)
    always = {}
    for t in ordered:
        always[t] = _pg_always_identity(conn, t, schema)
        _pg_set_identity(conn, t, schema, always[t], "BY DEFAULT")
    return always


def _pg_restore_identity(conn: sa.Connection, ordered: list[str], schema: str | None, always: dict) -> None:
    for t in ordered:
        _pg_set_identity(conn, t, schema, always.get(t, []), "ALWAYS")
        _pg_fix_sequences(conn, t, schema)


def _pg_rel(conn: sa.Connection, table: str, schema: str | None) -> str:
    prep = conn.dialect.identifier_preparer
    return f"{prep.quote(schema)}.{prep.quote(table)}" if schema else prep.quote(table)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, DmigError):
        return exc.message
    if isinstance(exc, sa.exc.SQLAlchemyError):
        return db_error(exc, "database error").message
    return f"{type(exc).__name__}: {exc}"


def _run_tables(
    conn: sa.Connection,
    ordered: list[str],
    scratch: bool,
    load: Callable[[str], int],
    before: Callable[[], None],
    after: Callable[[], None],
    progress: ProgressFn | None,
) -> dict[str, Outcome]:
    """Scratch: one transaction per table, failures recorded. Real: one transaction, failures raised."""
    out = {t: Outcome(t) for t in ordered}
    if scratch:
        for t in ordered:
            started = time.monotonic()
            try:
                out[t].rows = load(t)
                conn.commit()
            except (DmigError, sa.exc.SQLAlchemyError, OSError) as exc:
                conn.rollback()
                out[t].error = _error_text(exc)
            out[t].seconds = round(time.monotonic() - started, 3)
            if progress:
                progress(f"restored {t}")
        return out
    current = ordered[0] if ordered else ""
    try:
        before()
        for t in ordered:
            current = t
            started = time.monotonic()
            out[t].rows = load(t)
            out[t].seconds = round(time.monotonic() - started, 3)
            if progress:
                progress(f"restored {t}")
        current = ""
        after()
        conn.commit()
    except (DmigError, sa.exc.SQLAlchemyError, OSError) as exc:
        conn.rollback()
        where = f" (table {current})" if current else ""
        raise Conflict(
            f"restore failed{where} and was rolled back, the tables are unchanged: {_error_text(exc)}",
            table=current or None,
        ) from None
    return out


# --- portable ----------------------------------------------------------------------------------


def _portable(
    folder: Path, manifest: Manifest, target: Target, ordered: list[str], files: Files, progress: ProgressFn | None
) -> dict[str, Outcome]:
    ddl = load_ddl(safeload.read_text(folder / NEUTRAL_NAME, "schema_dump"), target.dialect)
    schema = target.schema
    with connection(target.url, must_exist=not target.scratch) as conn:
        if target.dialect == "postgresql" and schema:
            conn.exec_driver_sql(f"SET search_path TO {conn.dialect.identifier_preparer.quote(schema)}")
            conn.commit()
        missing = [t for t in ordered if t not in _existing(conn, schema)]
        try:
            for t in missing:
                for stmt in ddl[t].create:
                    conn.exec_driver_sql(stmt)
            conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            conn.rollback()
            raise db_error(exc, "creating the backed-up tables failed") from None

        def load(t: str) -> int:
            entry = manifest.table(t)
            assert entry is not None
            stream = portable.TableStream(folder / entry.file, files.stream_key(), t)
            return portable.load_table(conn, stream, t, schema)

        always: dict[str, list[str]] = {}

        def before() -> None:
            if target.dialect == "postgresql":
                always.update(_pg_relax_identity(conn, ordered, schema))
            for t in reversed(ordered):
                if t not in missing:
                    conn.execute(_delete(t, schema))

        def after() -> None:
            if target.dialect == "postgresql":
                _pg_restore_identity(conn, ordered, schema, always)

        with _relaxed_fks(conn):
            if target.scratch and target.dialect == "postgresql":
                _pg_replica_role(conn)
            out = _run_tables(conn, ordered, target.scratch, load, before, after, progress)
        try:
            for t in missing:
                for stmt in [*ddl[t].indexes, *ddl[t].foreign_keys]:
                    conn.exec_driver_sql(stmt)
            conn.commit()
        except sa.exc.SQLAlchemyError as exc:
            conn.rollback()
            raise db_error(exc, "recreating indexes and foreign keys failed (the data was restored)") from None
    return out


# --- native: PostgreSQL ------------------------------------------------------------------------


def _pg_entry(file: str) -> int:
    return int(Path(file).name.split(".", 1)[0])


def _native_pg(
    manifest: Manifest, target: Target, ordered: list[str], files: Files, progress: ProgressFn | None
) -> dict[str, Outcome]:
    dump_dir = files.path(f"{native.PG_DIR}/toc.dat", "toc").parent
    for t in ordered:
        entry = manifest.table(t)
        assert entry is not None
        files.path(entry.file, t)
    database = target.url.database or "postgres"
    schema = effective_schema(manifest, target)
    with connection(target.url) as conn:
        existing = _existing(conn, schema)
    missing = [t for t in ordered if t not in existing]
    if missing and len(missing) != len(ordered):
        raise InvalidInput(
            f"tables {', '.join(missing)} do not exist in the target while others do: a native PostgreSQL backup "
            "restores either into existing tables or into an empty database"
        )
    if missing:
        with connection(target.url) as conn:
            if schema:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {conn.dialect.identifier_preparer.quote(schema)}")
            conn.commit()
        native.pg_restore_section(target.url, dump_dir, "pre-data", database)
    with connection(target.url) as conn:

        def load(t: str) -> int:
            entry = manifest.table(t)
            assert entry is not None
            return native.pg_copy_table(conn, dump_dir, _pg_entry(entry.file), t)

        def before() -> None:
            _pg_replica_role(conn)
            for t in reversed(ordered):
                if t not in missing:
                    conn.execute(_delete(t, schema))

        def after() -> None:
            for t in ordered:
                _pg_fix_sequences(conn, t, schema)

        if target.scratch:
            _pg_replica_role(conn)
        out = _run_tables(conn, ordered, target.scratch, load, before, after, progress)
    if missing:
        native.pg_restore_section(target.url, dump_dir, "post-data", database)
    return out


# --- native: MariaDB / MySQL -------------------------------------------------------------------


def _mysql_sql(stmt: Any) -> bytes:
    return (str(stmt.compile(dialect=mysql.pymysql.dialect())) + ";\n").encode("utf-8")


def _native_mysql(
    manifest: Manifest, target: Target, ordered: list[str], files: Files, progress: ProgressFn | None
) -> dict[str, Outcome]:
    database = target.url.database or manifest.source.schema_name or ""
    prologue = _gunzip(files.path(native.MY_PROLOGUE, "prologue"))
    epilogue = _gunzip(files.path(native.MY_EPILOGUE, "epilogue"))
    parts: dict[str, tuple[bytes, bytes]] = {}
    out = {t: Outcome(t) for t in ordered}
    for t in ordered:
        entry = manifest.table(t)
        assert entry is not None
        try:
            parts[t] = native.mariadb_parts(files.path(entry.file, t))
        except (DmigError, OSError, EOFError) as exc:
            if not target.scratch:
                raise Conflict(f"restore refused, nothing was changed: table {t}: {_error_text(exc)}") from None
            out[t].error = f"backup data of table {t} is corrupt: {_error_text(exc)}"
    if target.scratch:
        for t, (structure, data) in parts.items():
            started = time.monotonic()
            try:
                native.mariadb_run(target.url, database, [prologue, structure, data, epilogue], f"table {t}", t)
                out[t].rows = None
            except DmigError as exc:
                out[t].error = exc.message
            out[t].seconds = round(time.monotonic() - started, 3)
            if progress:
                progress(f"restored {t}")
        return out
    with connection(target.url) as conn:
        existing = _existing(conn, None)
    chunks = [prologue]
    chunks += [parts[t][0] for t in ordered if t not in existing]
    chunks.append(b"START TRANSACTION;\n")
    chunks += [_mysql_sql(_delete(t, None)) for t in reversed(ordered) if t in existing]
    chunks += [parts[t][1] for t in ordered]
    chunks += [b"COMMIT;\n", epilogue]
    started = time.monotonic()
    try:
        native.mariadb_run(target.url, database, chunks, "restore")
    except DmigError as exc:
        raise Conflict(
            f"restore failed and was rolled back (the data transaction never committed): {exc.message}"
        ) from None
    for t in ordered:
        out[t].seconds = round(time.monotonic() - started, 3)
    return out


def _gunzip(path: Path) -> bytes:
    import gzip

    return gzip.decompress(path.read_bytes())


# --- native: SQLite ----------------------------------------------------------------------------


def _native_sqlite(
    manifest: Manifest, target: Target, ordered: list[str], files: Files, progress: ProgressFn | None
) -> dict[str, Outcome]:
    packed = files.path(native.SQLITE_FILE, ", ".join(ordered))
    with tempfile.TemporaryDirectory(prefix="dmig-sqlite-restore-") as tmp:
        copy = Path(tmp) / "backup.db"
        native.sqlite_extract(packed, copy, ordered)
        with connection(target.url, must_exist=not target.scratch) as conn, _relaxed_fks(conn):
            conn.exec_driver_sql("ATTACH DATABASE ? AS dmig_bk", (str(copy),))
            conn.commit()
            try:
                missing = [t for t in ordered if t not in _existing(conn, "main")]
                # The schema text comes from the backup file: checked first, then run under SQLite's
                # authorizer (sqlite_ddl), all of it before any of it runs.
                ddl = {t: sqlite_ddl.statements_for(conn, "dmig_bk", t) for t in missing}
                for t in missing:
                    sqlite_ddl.run_checked(conn, t, ddl[t])
                conn.commit()

                def load(t: str) -> int:
                    cols = [c.name for c in portable.columns_of(conn, t, "dmig_bk")[0]]
                    src = sa.table(t, *[sa.column(c) for c in cols], schema="dmig_bk")
                    dst = sa.table(t, *[sa.column(c) for c in cols], schema="main")
                    conn.execute(sa.insert(dst).from_select(cols, sa.select(*src.c)))
                    return int(conn.execute(sa.select(sa.func.count()).select_from(dst)).scalar_one())

                def before() -> None:
                    for t in reversed(ordered):
                        if t not in missing:
                            conn.execute(_delete(t, "main"))

                out = _run_tables(conn, ordered, target.scratch, load, before, lambda: None, progress)
            finally:
                conn.rollback()
                conn.exec_driver_sql("DETACH DATABASE dmig_bk")
                conn.commit()
    return out


# --- replacing rows inside the caller's transaction (rollback) -----------------------------------


def replace_rows(
    conn: sa.Connection,
    folder: Path,
    manifest: Manifest,
    tables: list[str],
    key: bytes | None = None,
    schema: str | None = None,
) -> dict[str, Outcome]:
    """Replace the rows of existing ``tables`` with the backup's, inside the transaction the caller holds.

    A rollback stops writes (an exclusive table lock), reshapes the table and reloads it in one
    unit, and checks the checksum before it commits; so this never begins, commits or rolls back.
    Portable backups load on any dialect; a native PostgreSQL backup loads through COPY on
    ``conn``. Native MariaDB and SQLite backups restore through a client process or ATTACH, which
    cannot join the caller's transaction: those are refused (restore them with restore_backup).
    SQLite callers turn foreign keys off before their transaction begins (PRAGMA is a no-op inside).
    """
    unknown = [t for t in tables if manifest.table(t) is None]
    if unknown:
        raise InvalidInput(f"backup {manifest.backup_id} holds no table {', '.join(unknown)}", tables=unknown)
    dialect = conn.dialect.name
    native_pg = manifest.format == "native" and dialect == "postgresql" == manifest.source.dialect
    if manifest.format != "portable" and not native_pg:
        raise InvalidInput(
            f"backup {manifest.backup_id} is a native {manifest.source.dialect} backup: it cannot be loaded inside a "
            "locked transaction. Use a portable backup (the executor's before-contract backups are), or restore_backup",
            reason="native_backup",
        )
    ordered = fk_order(folder, tables)
    files = Files(folder, key)
    out = {t: Outcome(t) for t in ordered}
    try:
        if native_pg:
            dump_dir = files.path(f"{native.PG_DIR}/toc.dat", "toc").parent

        def load(t: str) -> int:
            entry = manifest.table(t)
            assert entry is not None
            if native_pg:
                return native.pg_copy_table(conn, dump_dir, _pg_entry(files.path(entry.file, t).name), t)
            stream = portable.TableStream(folder / entry.file, files.stream_key(), t)
            return portable.load_table(conn, stream, t, schema)

        always = _pg_relax_identity(conn, ordered, schema) if dialect == "postgresql" else {}
        if dialect == "mysql":
            conn.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 0")
        try:
            for t in reversed(ordered):
                conn.execute(_delete(t, schema))
            for t in ordered:
                started = time.monotonic()
                out[t].rows = load(t)
                out[t].seconds = round(time.monotonic() - started, 3)
        finally:
            if dialect == "mysql":
                conn.exec_driver_sql("SET SESSION FOREIGN_KEY_CHECKS = 1")
        if dialect == "postgresql":
            _pg_restore_identity(conn, ordered, schema, always)
    finally:
        files.close()
    return out
