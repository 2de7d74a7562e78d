"""Tables full of awkward values, created the same way on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

DATETIME6 = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

TEXTS = [
    "plain",
    "",
    None,
    "a|b",
    "!",
    "1:x",
    "3:abc|",
    "emoji 😀🎉",
    "e\u0301 combining",
    "é precomposed",
    "tab\tnew\nline",
    "quote ' and \" and \\ and %s %",
    "Ünïcödé ß 中文",
    "trailing space ",
    "NULL",
]
AMOUNTS = [Decimal("0"), Decimal("-0.01"), Decimal("9999999999.99"), Decimal("10.50"), Decimal("100.00"), None]
TIMESTAMPS = [
    dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
    dt.datetime(1970, 1, 1),
    dt.datetime(2000, 1, 1, 0, 0, 0, 1),
    None,
    dt.datetime(1999, 12, 31, 12, 30, 45, 500000),
]
FLAGS = [True, False, None]
BIGS = [9223372036854775807, -9223372036854775808, 0, 1, -1, None]
FLOATS = [0.1, -2.5, 1e10, 3.141592653589793, None, 0.0, 1234.5678]
BLOBS = [b"", b"\x00\xff|!", None, "😀".encode()]


def nasty_table(name: str = "nasty", *, pk: bool = True) -> sa.Table:
    md = sa.MetaData()
    return sa.Table(
        name,
        md,
        sa.Column("id", sa.BigInteger, primary_key=pk, autoincrement=False, nullable=False),
        sa.Column("label", sa.String(200)),
        sa.Column("body", sa.Text),
        sa.Column("amount", sa.Numeric(12, 2)),
        sa.Column("created_at", DATETIME6),
        sa.Column("flag", sa.Boolean),
        sa.Column("big", sa.BigInteger),
        sa.Column("score", sa.Double),
        sa.Column("blob", sa.LargeBinary),
    )


def nasty_rows(n: int, step: int = 3) -> list[dict[str, Any]]:
    """Deterministic rows cycling through every awkward value; ids have gaps (``step``)."""
    rows = []
    for i in range(n):
        rows.append(
            {
                "id": i * step + 1,
                "label": TEXTS[i % len(TEXTS)],
                "body": ("long " * 1200 + str(i)) if i % 97 == 0 else TEXTS[(i * 7) % len(TEXTS)],
                "amount": AMOUNTS[i % len(AMOUNTS)],
                "created_at": TIMESTAMPS[i % len(TIMESTAMPS)],
                "flag": FLAGS[i % len(FLAGS)],
                "big": BIGS[i % len(BIGS)],
                "score": FLOATS[i % len(FLOATS)],
                "blob": BLOBS[i % len(BLOBS)],
            }
        )
    return rows


def load(url: str, table: sa.Table, rows: Iterable[dict[str, Any]]) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            table.metadata.create_all(conn)
            rows = list(rows)
            for start in range(0, len(rows), 500):
                conn.execute(table.insert(), rows[start : start + 500])
    finally:
        engine.dispose()


def execute(url: str, *statements: Any) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for stmt in statements:
                conn.execute(stmt)
    finally:
        engine.dispose()


def plant(
    url: str, table: sa.Table, *, delete: list[int], insert: list[dict[str, Any]], update: dict[int, dict]
) -> None:
    """Make the target differ: rows deleted (missing), inserted (extra), updated (changed)."""
    stmts: list[Any] = []
    if delete:
        stmts.append(table.delete().where(table.c.id.in_(delete)))
    for key, values in update.items():
        stmts.append(table.update().where(table.c.id == key).values(**values))
    if insert:
        stmts.append(table.insert().values(insert))
    execute(url, *stmts)
