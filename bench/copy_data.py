"""Source databases for the copy benchmark, built from ``bench.datagen``'s deterministic rows.

``bench.datagen`` loads SQLite through SQLAlchemy and cannot give SQLite the foreign key
(SQLite has no ``ALTER TABLE ADD CONSTRAINT``), while the copy benchmark needs a source that
carries the key, the unique e-mail index and the secondary index, as an application database
would. So the SQLite source is written here: same tables and rows as ``datagen`` (same seed,
same generator), the FOREIGN KEY declared in ``CREATE TABLE``, values stored the way SQLAlchemy
stores them (NUMERIC as REAL, DATETIME as ``YYYY-MM-DD HH:MM:SS.ffffff`` text), indexes built
after the load, no ANALYZE (pgloader would copy ``sqlite_stat1`` as one more table). Files are
cached in ``bench/data`` (git-ignored) under their size and seed and marked complete with
``PRAGMA user_version``, so an interrupted build is never reused.
"""

from __future__ import annotations

import datetime as dt
import itertools
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import sqlite as sqlite_dialect

from bench import datagen

COMPLETE = 20_240_601  # PRAGMA user_version of a finished file
INSERT_CHUNK = 100_000


def bench_tables() -> tuple[sa.MetaData, sa.Table, sa.Table]:
    """datagen's tables plus the foreign key and the two indexes, as one metadata."""
    md = sa.MetaData()
    users, orders = datagen.tables(md)
    orders.append_constraint(sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_orders_user"))
    sa.Index("ux_users_email", users.c.email, unique=True)
    sa.Index("ix_orders_user", orders.c.user_id)
    return md, users, orders


def _sqlite_value(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    return v


def _converted(rows: Iterator[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
    for row in rows:
        yield tuple(_sqlite_value(v) for v in row)


def sqlite_source(users: int, orders: int, seed: int = 42, cache_dir: Path = datagen.DATA_DIR) -> Path:
    """The SQLite source file for these sizes, built once and reused."""
    path = cache_dir / f"copy-src-{users}-{orders}-{seed}.db"
    if path.exists():
        with sqlite3.connect(path) as db:
            if db.execute("PRAGMA user_version").fetchone()[0] == COMPLETE:
                return path
        path.unlink()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _build_sqlite(tmp, users, orders, seed)
    tmp.replace(path)
    return path


def _build_sqlite(path: Path, users: int, orders: int, seed: int) -> None:
    _md, t_users, t_orders = bench_tables()
    dialect = sqlite_dialect.dialect()
    db = sqlite3.connect(path, isolation_level=None)
    try:
        db.execute("PRAGMA journal_mode=OFF")  # a scratch file: rebuilt from scratch if interrupted
        db.execute("PRAGMA synchronous=OFF")
        for table in (t_users, t_orders):
            db.execute(str(sa.schema.CreateTable(table).compile(dialect=dialect)))
        for table, rows in (
            (t_users, datagen.users_rows(users, seed)),
            (t_orders, datagen.orders_rows(orders, seed, users)),
        ):
            marks = ", ".join("?" * len(table.columns))
            sql = f"INSERT INTO {table.name} VALUES ({marks})"
            it = _converted(rows)
            db.execute("BEGIN")
            while chunk := list(itertools.islice(it, INSERT_CHUNK)):
                db.executemany(sql, chunk)
            db.execute("COMMIT")
        for table in (t_users, t_orders):
            for ix in table.indexes:
                db.execute(str(sa.schema.CreateIndex(ix).compile(dialect=dialect)))
        db.execute(f"PRAGMA user_version = {COMPLETE}")
    finally:
        db.close()


def pg_source(url: str, users: int, orders: int, seed: int = 42) -> dict[str, float]:
    """PostgreSQL source through datagen (COPY, then indexes and the foreign key, then VACUUM ANALYZE)."""
    return datagen.load(url, users, orders, seed).seconds


def export_csv(sqlite_path: Path, table: str, out: Path) -> float:
    """Export one table with the sqlite3 shell (C, the fastest exporter at hand); returns seconds.

    NULL is written as ``\\N``, which LOAD DATA reads as NULL; rows end with CRLF (the shell's CSV).
    """
    started = time.monotonic()
    script = f".headers off\n.mode csv\n.nullvalue '\\N'\n.output {out}\nSELECT * FROM {table} ORDER BY id;\n"
    subprocess.run(["sqlite3", str(sqlite_path)], input=script, text=True, check=True)
    return time.monotonic() - started
