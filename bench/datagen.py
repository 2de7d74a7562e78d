"""Deterministic benchmark data: ``users`` and ``orders``, loaded fast into SQLite, PostgreSQL or MariaDB.

The same seed gives the same rows on every database, so two databases loaded by this module
hold equal tables, and ``plant`` then makes the target differ in a known way (rows missing,
extra and changed), which a diff must find exactly. Bulk paths: PostgreSQL ``COPY FROM STDIN``,
MariaDB ``LOAD DATA LOCAL INFILE`` (foreign key checks off during the load, as every bulk
loader does), SQLite ``executemany`` in one transaction. Indexes and the foreign key are added
after the load, which is how large loads are done.

    python -m bench.datagen URL --users 100000 [--orders N] [--seed 42] [--plant 9]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

from dmig.db import localinfile
from dmig.db.engine import create
from dmig.db.urls import dialect_of, parse_url

STATUSES = ("active", "inactive", "pending", "banned", "deleted")
FIRST = ("ana", "bruno", "chloé", "dmitri", "eva", "françois", "gül", "hiro", "inés", "józef", "kai", "lena", "mårten")
LAST = ("silva", "okafor", "müller", "tanaka", "garcía", "kowalski", "nguyen", "o'brien", "smith", "ivanova", "ßauer")
NOTES = ("gift wrap", "leave at door", "fragile ☂", "call first", "", "express", "retour 🚚", "invoice needed")
EPOCH = dt.datetime(2020, 1, 1)
DATA_DIR = Path(__file__).resolve().parent / "data"  # git-ignored cache of generated TSV files
CHUNK = 50_000

DATETIME6 = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def tables(metadata: sa.MetaData | None = None) -> tuple[sa.Table, sa.Table]:
    md = metadata or sa.MetaData()
    users = sa.Table(
        "users",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_name", sa.String(100), nullable=False),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("age", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("balance", sa.Numeric(12, 2), nullable=False),
        sa.Column("created_at", DATETIME6, nullable=False),
    )
    orders = sa.Table(
        "orders",
        md,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("user_id", sa.BigInteger, nullable=False),
        sa.Column("amount", sa.Numeric(12, 2), nullable=False),
        sa.Column("note", sa.Text),
        sa.Column("created_at", DATETIME6, nullable=False),
    )
    return users, orders


def _ts(rng: random.Random) -> dt.datetime:
    return EPOCH + dt.timedelta(seconds=rng.randrange(0, 5 * 365 * 86400), microseconds=rng.randrange(0, 1_000_000))


def _user(i: int, rng: random.Random) -> tuple[Any, ...]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return (
        i,
        f"{first} {last}",
        f"{first}.{last}.{i}@example.com".replace("'", ""),
        rng.randrange(16, 95) if rng.random() > 0.05 else None,
        rng.choice(STATUSES),
        Decimal(rng.randrange(-100_000, 10_000_000)) / 100,
        _ts(rng),
    )


def _order(i: int, rng: random.Random, users: int) -> tuple[Any, ...]:
    return (
        i,
        rng.randrange(1, users + 1),
        Decimal(rng.randrange(1, 5_000_000)) / 100,
        rng.choice(NOTES) if rng.random() > 0.3 else None,
        _ts(rng),
    )


def user_row(i: int, seed: int) -> tuple[Any, ...]:
    """One stand-alone user (for planted extra rows), a function of (seed, i) alone."""
    return _user(i, random.Random(seed * 1_000_003 + i))


def users_rows(n: int, seed: int) -> Iterator[tuple[Any, ...]]:
    """Rows 1..n; each block of CHUNK rows has its own generator, seeded by (seed, block)."""
    for start in range(1, n + 1, CHUNK):
        rng = random.Random(seed * 7_919 + start)
        for i in range(start, min(start + CHUNK, n + 1)):
            yield _user(i, rng)


def orders_rows(n: int, seed: int, users: int) -> Iterator[tuple[Any, ...]]:
    for start in range(1, n + 1, CHUNK):
        rng = random.Random(seed * 104_729 + start)
        for i in range(start, min(start + CHUNK, n + 1)):
            yield _order(i, rng, users)


def _text(v: Any) -> str:
    """One field of PostgreSQL COPY text format / MariaDB LOAD DATA defaults (same escapes)."""
    if v is None:
        return "\\N"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S.%f")
    s = str(v)
    if any(c in s for c in "\\\t\n\r"):
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s


def _chunks(rows: Iterator[tuple[Any, ...]]) -> Iterator[str]:
    buf: list[str] = []
    for row in rows:
        buf.append("\t".join(_text(v) for v in row))
        if len(buf) >= CHUNK:
            yield "\n".join(buf) + "\n"
            buf.clear()
    if buf:
        yield "\n".join(buf) + "\n"


@dataclass
class LoadReport:
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def tsv_file(kind: str, n: int, seed: int, users: int, cache_dir: Path) -> Path:
    """The rows as a TSV file, generated once per (kind, n, seed, users) and reused by every load."""
    path = cache_dir / f"{kind}-{n}-{users}-{seed}.tsv"
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    rows = users_rows(n, seed) if kind == "users" else orders_rows(n, seed, users)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for chunk in _chunks(rows):
            fh.write(chunk)
    tmp.replace(path)
    return path


def _copy_pg(engine: sa.Engine, table: sa.Table, path: Path) -> None:
    cols = ", ".join(f'"{c.name}"' for c in table.columns)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with cur.copy(f'COPY "{table.name}" ({cols}) FROM STDIN') as copy, path.open("rb") as fh:  # type: ignore[attr-defined]
            while block := fh.read(1 << 20):
                copy.write(block)
        raw.commit()
    finally:
        raw.close()


def _load_data_mysql(engine: sa.Engine, table: sa.Table, path: Path) -> None:
    cols = ", ".join(f"`{c.name}`" for c in table.columns)
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        with localinfile.allow_file(raw.dbapi_connection, str(path)):  # the driver sends this file and no other
            cur.execute(
                f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table.name}` CHARACTER SET utf8mb4 "
                f"FIELDS TERMINATED BY '\\t' ESCAPED BY '\\\\' LINES TERMINATED BY '\\n' ({cols})",
                (str(path),),
            )
        raw.commit()
    finally:
        raw.close()


def _executemany_sqlite(engine: sa.Engine, table: sa.Table, rows: Iterator[tuple[Any, ...]]) -> None:
    names = [c.name for c in table.columns]
    with engine.begin() as conn:
        batch: list[dict[str, Any]] = []
        for row in rows:
            batch.append(dict(zip(names, row, strict=True)))
            if len(batch) >= CHUNK:
                conn.execute(table.insert(), batch)
                batch.clear()
        if batch:
            conn.execute(table.insert(), batch)


def load(url: str, users: int, orders: int | None = None, seed: int = 42, cache_dir: Path = DATA_DIR) -> LoadReport:
    """Create users and orders (dropping old ones) and fill them; returns rows and seconds per step."""
    orders = 2 * users if orders is None else orders
    dialect = dialect_of(parse_url(url))
    engine = create(url, must_exist=False, local_infile=dialect == "mysql")  # only our own CSV files are sent
    report = LoadReport()
    md = sa.MetaData()
    t_users, t_orders = tables(md)
    try:
        with engine.begin() as conn:
            if dialect == "mysql":
                conn.exec_driver_sql("SET SESSION foreign_key_checks = 0")
            for table in (t_orders, t_users):  # dependents first: the foreign key is not in the metadata
                conn.execute(sa.schema.DropTable(table, if_exists=True))
            md.create_all(conn)
        for table, n in ((t_users, users), (t_orders, orders)):
            started = time.monotonic()
            if dialect == "sqlite":
                rows = users_rows(n, seed) if table is t_users else orders_rows(n, seed, users)
                _executemany_sqlite(engine, table, rows)
            else:
                path = tsv_file(table.name, n, seed, users, cache_dir)
                report.seconds[f"generate {table.name}"] = round(time.monotonic() - started, 2)
                started = time.monotonic()
                (_copy_pg if dialect == "postgresql" else _load_data_mysql)(engine, table, path)
            report.rows[table.name] = n
            report.seconds[f"load {table.name}"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        with engine.begin() as conn:
            conn.execute(sa.schema.CreateIndex(sa.Index("ux_users_email", t_users.c.email, unique=True)))
            conn.execute(sa.schema.CreateIndex(sa.Index("ix_orders_user", t_orders.c.user_id)))
            if dialect != "sqlite":
                conn.exec_driver_sql(
                    "ALTER TABLE orders ADD CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)"
                )
        report.seconds["indexes + foreign key"] = round(time.monotonic() - started, 2)
        started = time.monotonic()
        analyze(engine, dialect)
        report.seconds["analyze"] = round(time.monotonic() - started, 2)
    finally:
        engine.dispose()
    return report


def analyze(engine: sa.Engine, dialect: str) -> None:
    """Fresh statistics, so planners and row estimates see the loaded table."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for name in ("users", "orders"):
            if dialect == "postgresql":
                conn.exec_driver_sql(f'VACUUM ANALYZE "{name}"')
            elif dialect == "mysql":
                conn.exec_driver_sql(f"ANALYZE TABLE `{name}`").all()
            else:
                conn.exec_driver_sql("ANALYZE")


@dataclass
class Planted:
    missing: list[int]
    extra: list[int]
    changed: dict[int, list[str]]


def plant(url: str, count: int, users: int, seed: int = 42) -> Planted:
    """Make the target's ``users`` differ in ``count`` rows: a third missing, a third extra, a third changed.

    Missing users take their orders with them (the foreign key); extra users get ids past the end;
    changed users get a new balance and, every other one, a new e-mail address too.
    """
    rng = random.Random(seed + 7)
    per = max(1, count // 3)
    picked = rng.sample(range(1, users + 1), 2 * per)
    missing, changed_ids = sorted(picked[:per]), sorted(picked[per:])
    extra = [users + 1 + k * 7 for k in range(per)]
    t_users, t_orders = tables()
    changed: dict[int, list[str]] = {}
    engine = create(url)
    try:
        with engine.begin() as conn:
            conn.execute(t_orders.delete().where(t_orders.c.user_id.in_(missing)))
            conn.execute(t_users.delete().where(t_users.c.id.in_(missing)))
            for k, uid in enumerate(changed_ids):
                values: dict[str, Any] = {"balance": Decimal("0.01") * (k + 1)}
                if k % 2 == 0:
                    values["email"] = f"changed.{uid}@example.org"
                conn.execute(t_users.update().where(t_users.c.id == uid).values(**values))
                changed[uid] = sorted(values, key=[c.name for c in t_users.columns].index)
            names = [c.name for c in t_users.columns]
            conn.execute(t_users.insert(), [dict(zip(names, user_row(uid, seed + 1), strict=True)) for uid in extra])
    finally:
        engine.dispose()
    return Planted(missing=missing, extra=extra, changed=changed)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="target database URL (the database must exist; SQLite files are created)")
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--orders", type=int, default=None, help="default: twice the users")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--plant", type=int, default=0, help="then make users differ in this many rows")
    args = parser.parse_args(argv)
    report = load(args.url, args.users, args.orders, args.seed)
    print(f"rows: {report.rows}  seconds: {report.seconds}")
    if args.plant:
        planted = plant(args.url, args.plant, args.users, args.seed)
        print(f"planted: missing {planted.missing} extra {planted.extra} changed {planted.changed}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
