"""Bulk writers, one per target dialect; each writes one batch inside the caller's open transaction.

* PostgreSQL: ``COPY ... FROM STDIN`` through psycopg 3 (``write_row``, in C, does the text-format
  escaping per type: faster than building the lines in Python, measured), with
  ``synchronous_commit`` off for the session. Incremental mode COPYs into a session temp table and merges with
  ``INSERT ... ON CONFLICT (key) DO UPDATE``.
* MySQL/MariaDB: ``LOAD DATA LOCAL INFILE`` from a per-batch temp file when the server allows
  ``local_infile`` and the target engine was opened for bulk loads; the driver then sends that one
  file and nothing else, whatever the server asks for (``dmig.db.localinfile``). LOCAL turns
  data errors into warnings (rows silently truncated or skipped), so the load runs under a
  SAVEPOINT and any warning or short count rolls back to it and the batch is redone as multi-row
  INSERTs (PyMySQL splits them under ``max_allowed_packet``), which fail properly in strict mode
  and so can be bisected into rejects.
* SQLite: one prepared INSERT ``executemany`` per batch transaction, with load pragmas
  (``journal_mode=WAL``, ``synchronous=OFF``, a large ``cache_size``, ``foreign_keys=OFF``)
  restored afterwards. ``journal_mode=OFF`` is deliberately not used: without a journal a
  process killed mid-batch corrupts the database, and surviving ``kill -9`` is a requirement.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.engine import Engine

from dmig.db import localinfile
from dmig.move.rawconn import RawConn
from dmig.move.typemap import Kind
from dmig.move.values import format_timedelta

MYSQL_DATA_ERRORS = {1048, 1062, 1264, 1265, 1292, 1300, 1366, 1367, 1406, 1411, 1452, 1690, 3140, 3819, 4025, 4078}
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+$")
_NEEDS_ESCAPE = re.compile(r"[\\\t\n\r\x00]")


class LoadFallback(Exception):
    """LOAD DATA reported warnings or a short count: redo the batch with INSERTs."""


def is_data_error(exc: BaseException, dialect: str) -> bool:
    """Errors caused by the rows themselves (bisect and reject), as opposed to the connection or the schema."""
    if dialect == "postgresql":
        import psycopg

        return isinstance(exc, psycopg.DataError | psycopg.IntegrityError)
    if dialect == "mysql":
        import pymysql

        if isinstance(exc, pymysql.err.DataError | pymysql.err.IntegrityError):
            return True
        return isinstance(exc, pymysql.err.MySQLError) and bool(exc.args) and exc.args[0] in MYSQL_DATA_ERRORS
    import sqlite3

    return isinstance(exc, sqlite3.IntegrityError | sqlite3.DataError | OverflowError)


class Writer:
    """Writes batches of target rows (tuples in ``columns`` order) into one target table."""

    def __init__(
        self,
        engine: Engine,
        table: str,
        schema: str | None,
        columns: list[str],
        kinds: list[Kind],
        key: list[str],
        upsert: bool,
        source_dialect: str | None = None,
    ) -> None:
        self.raw = RawConn(engine)
        self.source_dialect = source_dialect
        self.table_name, self.schema = table, schema
        self.columns, self.kinds, self.key = columns, kinds, key
        self.upsert = upsert and bool(key)
        self.qtable = self.raw.quote_table(table, schema)
        self.qcols = [self.raw.quote(c) for c in columns]
        self.bytes_written = 0
        self._tmpdir: str | None = None
        self._sqlite_saved: dict[str, Any] = {}
        self._prepare()

    # --- setup per dialect ---

    def _prepare(self) -> None:
        name = self.raw.name
        if name == "postgresql":
            self._prepare_pg()
        elif name == "mysql":
            self._prepare_mysql()
        else:
            self._prepare_sqlite()

    def _prepare_pg(self) -> None:
        # A commit need not wait for its WAL flush: after a server crash a lost batch is lost together
        # with its checkpoint (same transaction), so the resume redoes it. pgcopydb loads the same way.
        with self.raw.dbapi.cursor() as cur:
            cur.execute("SET synchronous_commit TO off")
        self.raw.commit()
        cols = ", ".join(self.qcols)
        if not self.upsert:
            self._copy_sql = f"COPY {self.qtable} ({cols}) FROM STDIN"
            return
        stage = self.raw.quote(f"dmig_stage_{os.getpid()}")
        with self.raw.dbapi.cursor() as cur:
            cur.execute(
                f"CREATE TEMP TABLE IF NOT EXISTS {stage} (LIKE {self.qtable} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
            )
        self.raw.commit()
        self._copy_sql = f"COPY {stage} ({cols}) FROM STDIN"
        target = sa.table(self.table_name, *[sa.column(c) for c in self.columns], schema=self.schema)
        source = sa.table(f"dmig_stage_{os.getpid()}", *[sa.column(c) for c in self.columns])
        ins = postgresql.insert(target).from_select(self.columns, sa.select(*source.c))
        rest = [c for c in self.columns if c not in self.key]
        if rest:
            ins = ins.on_conflict_do_update(index_elements=self.key, set_={c: ins.excluded[c] for c in rest})
        else:
            ins = ins.on_conflict_do_nothing(index_elements=self.key)
        self._merge_sql, _ = self.raw.compile(ins)

    def _prepare_mysql(self) -> None:
        cur = self.raw.dbapi.cursor()
        cur.execute("SELECT @@local_infile, @@max_allowed_packet, @@SESSION.sql_mode")
        local_infile, packet, mode = cur.fetchone()
        cur.execute("SET SESSION sql_mode = %s", (load_sql_mode(mode, same_dialect=self.source_dialect == "mysql"),))
        cur.close()
        self.raw.commit()
        cols = ", ".join(c.replace("%", "%%") for c in self.qcols)
        marks = ", ".join(["%s"] * len(self.columns))
        self._insert_sql = f"INSERT INTO {self.qtable.replace('%', '%%')} ({cols}) VALUES ({marks})"
        if self.upsert:
            rest = [self.raw.quote(c).replace("%", "%%") for c in self.columns if c not in self.key] or [
                self.raw.quote(self.key[0]).replace("%", "%%")
            ]
            self._insert_sql += " ON DUPLICATE KEY UPDATE " + ", ".join(f"{c} = VALUES({c})" for c in rest)
        self._max_stmt = max(64 * 1024, min(int(packet) - 64 * 1024, 8 * 1024 * 1024))
        # LOCAL only on a connection opened for it (the copy's target engine) and only for our own file.
        self.load_data = bool(int(local_infile)) and not self.upsert and localinfile.capable(self.raw.dbapi)
        if self.load_data:
            self._tmpdir = tempfile.mkdtemp(prefix="dmig-load-")
            self._load_path = os.path.join(self._tmpdir, "batch.tsv")
            if not _SAFE_PATH.match(self._load_path):
                self.load_data = False
            targets, sets = [], []
            for i, (q, k) in enumerate(zip(self.qcols, self.kinds, strict=True)):
                if k.name == "bytes" or k.spatial:  # geometry: MySQL's own binary form, as read
                    targets.append(f"@v{i}")
                    sets.append(f"{q} = UNHEX(@v{i})")
                elif k.name == "bits":  # a BIT column would take the digits' characters as its bits
                    targets.append(f"@v{i}")
                    sets.append(f"{q} = CAST(@v{i} AS UNSIGNED)")
                else:
                    targets.append(q)
            self._line = _line_encoder(len(self.columns))
            self._load_sql = (
                f"LOAD DATA LOCAL INFILE '{self._load_path}' INTO TABLE {self.qtable} CHARACTER SET utf8mb4 "
                "FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' "
                f"({', '.join(targets)})" + (f" SET {', '.join(sets)}" if sets else "")
            )

    def _prepare_sqlite(self) -> None:
        db = self.raw.dbapi
        for pragma in ("journal_mode", "synchronous", "cache_size", "foreign_keys"):
            self._sqlite_saved[pragma] = db.execute(f"PRAGMA {pragma}").fetchone()[0]
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-131072")
        db.execute("PRAGMA foreign_keys=OFF")
        cols = ", ".join(self.qcols)
        sql = f"INSERT INTO {self.qtable} ({cols}) VALUES ({', '.join(['?'] * len(self.columns))})"
        if self.upsert:
            target = sa.table(self.table_name, *[sa.column(c) for c in self.columns], schema=self.schema)
            ins = sqlite_dialect.insert(target).values({c: sa.bindparam(f"p{i}") for i, c in enumerate(self.columns)})
            rest = [c for c in self.columns if c not in self.key]
            ins = (
                ins.on_conflict_do_update(index_elements=self.key, set_={c: ins.excluded[c] for c in rest})
                if rest
                else ins.on_conflict_do_nothing(index_elements=self.key)
            )
            sql, _ = self.raw.compile(ins)
        self._insert_sql = sql

    # --- transactions (the caller brackets each batch) ---

    def begin(self) -> None:
        self.raw.begin()

    def commit(self) -> None:
        self.raw.commit()

    def rollback(self) -> None:
        self.raw.rollback()

    # --- the batch ---

    def write(self, rows: list[tuple[Any, ...]]) -> None:
        if not rows:
            return
        name = self.raw.name
        if name == "postgresql":
            self._write_pg(rows)
        elif name == "mysql":
            self._write_mysql(rows)
        else:
            self.raw.dbapi.executemany(self._insert_sql, rows)

    def _write_pg(self, rows: list[tuple[Any, ...]]) -> None:
        with self.raw.dbapi.cursor() as cur:
            with cur.copy(self._copy_sql) as cp:
                write_row = cp.write_row
                for row in rows:
                    write_row(row)
            if self.upsert:
                cur.execute(self._merge_sql, {})  # params given, so psycopg undoes the %% escaping

    def _write_mysql(self, rows: list[tuple[Any, ...]]) -> None:
        cur = self.raw.dbapi.cursor()
        cur.max_stmt_length = self._max_stmt
        try:
            if self.load_data:
                cur.execute("SAVEPOINT dmig_load")
                try:
                    self._load(cur, rows)
                    cur.execute("RELEASE SAVEPOINT dmig_load")
                    return
                except LoadFallback:
                    cur.execute("ROLLBACK TO SAVEPOINT dmig_load")
            cur.executemany(self._insert_sql, rows)
        finally:
            cur.close()

    def _load(self, cur: Any, rows: list[tuple[Any, ...]]) -> None:
        line = self._line
        with open(self._load_path, "w", encoding="utf-8", newline="\n") as fh:
            fh.write("".join([line(row) for row in rows]))
        try:
            with localinfile.allow_file(self.raw.dbapi, self._load_path):
                cur.execute(self._load_sql)
        except Exception as exc:
            if is_data_error(exc, "mysql"):
                raise LoadFallback() from exc
            raise
        if cur.rowcount != len(rows) or cur.warning_count:
            raise LoadFallback()

    def close(self) -> None:
        if self.raw.name == "sqlite" and self._sqlite_saved:
            db = self.raw.dbapi
            try:
                db.execute(f"PRAGMA synchronous={int(self._sqlite_saved['synchronous'])}")
                db.execute(f"PRAGMA cache_size={int(self._sqlite_saved['cache_size'])}")
                db.execute(f"PRAGMA foreign_keys={int(self._sqlite_saved['foreign_keys'])}")
                mode = str(self._sqlite_saved["journal_mode"]).lower()
                if mode != "wal" and mode.isalpha():
                    db.execute(f"PRAGMA journal_mode={mode}")
            except Exception:  # another connection may hold the database; WAL is a safe state to leave it in
                pass
        if self._tmpdir:
            shutil.rmtree(self._tmpdir, ignore_errors=True)
        self.raw.close()


_DATE_CHECKS = {"NO_ZERO_DATE", "NO_ZERO_IN_DATE"}


def load_sql_mode(current: str, *, same_dialect: bool) -> str:
    """The load session's sql_mode: strict (a bad value fails, so it can be rejected, instead of being
    truncated with a warning), and ``NO_AUTO_VALUE_ON_ZERO`` so that a key 0 is stored as 0 rather than
    replaced by the next AUTO_INCREMENT value. From a MySQL/MariaDB source the values are ones that server
    already held: zero dates (``0000-00-00``), partial dates (``2020-00-00``) and the invalid dates
    ``ALLOW_INVALID_DATES`` lets in are written back as they are, so the date checks are lifted.
    """
    modes = [m for m in (current or "").split(",") if m]
    if same_dialect:
        modes = [m for m in modes if m not in _DATE_CHECKS] + ["ALLOW_INVALID_DATES"]
    modes += ["STRICT_ALL_TABLES", "NO_AUTO_VALUE_ON_ZERO"]
    return ",".join(dict.fromkeys(modes))


def _enc_str(v: str) -> str:
    # Chained replace() is ~10x faster than str.translate with multi-character replacements.
    if not _NEEDS_ESCAPE.search(v):
        return v
    return v.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r").replace("\x00", "\\0")


def _enc_datetime(v: dt.datetime) -> str:
    if v.tzinfo is not None:
        v = v.astimezone(dt.UTC).replace(tzinfo=None)
    return v.isoformat(sep=" ")


_ENCODERS: dict[type, Callable[[Any], str]] = {
    str: _enc_str,
    int: str,
    bool: lambda v: "1" if v else "0",
    float: repr,
    Decimal: lambda v: format(v, "f"),
    bytes: bytes.hex,
    dt.datetime: _enc_datetime,
    dt.date: dt.date.isoformat,
    dt.time: dt.time.isoformat,
    dt.timedelta: format_timedelta,
}


def _encode_value(v: Any) -> str:
    if v is None:
        return "\\N"
    fn = _ENCODERS.get(type(v))
    return fn(v) if fn else _enc_str(str(v))


def _line_encoder(n: int) -> Callable[[tuple[Any, ...]], str]:
    """One LOAD DATA line per row, as straight-line code (strings, the common case, skip the dispatch).

    The generated source holds only integer positions; values are never part of it.
    """
    parts = [f"(s(r[{i}]) if type(r[{i}]) is str else e(r[{i}]))" for i in range(n)]
    source = f"def line(r):\n    return '\\t'.join(({', '.join(parts)},)) + '\\n'\n"
    env: dict[str, Any] = {"s": _enc_str, "e": _encode_value}
    exec(compile(source, "<dmig load line>", "exec"), env)
    return env["line"]
