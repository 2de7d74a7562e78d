"""Canonical values: the Python reference rules, and SQL on every dialect agreeing with them bit for bit."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from diff_helpers import load, nasty_rows, nasty_table
from dmig.diff.hashing import as_int, row_hash, row_string
from dmig.diff.normalize import canon, category_of, reconcile, token
from dmig.diff.plan import build_plan
from dmig.diff.sides import Side

NASTY_CATEGORIES = ["int", "text", "text", "decimal", "timestamp", "bool", "int", "float", "binary"]


@pytest.mark.parametrize(
    ("category", "value", "expected"),
    [
        ("int", 0, "0"),
        ("int", -9223372036854775808, "-9223372036854775808"),
        ("int", True, "1"),
        ("bool", False, "0"),
        ("int", 5.0, "5"),
        ("decimal", Decimal("10.50"), "10.5"),
        ("decimal", Decimal("100.00"), "100"),
        ("decimal", Decimal("-0.00"), "0"),
        ("decimal", Decimal("-0.01"), "-0.01"),
        ("decimal", Decimal("9999999999.99"), "9999999999.99"),
        ("decimal", 9999999999.99, "9999999999.99"),
        ("decimal", "1E+2", "100"),
        ("decimal", 7, "7"),
        ("float", 0.1, "0.1"),
        ("float", 1e10, "10000000000"),
        ("float", -1e-10, "-0.0000000001"),  # exact value (was rounded to 6 decimals: issue 14)
        ("float", 0.1234565, "0.1234565"),
        ("float", float("nan"), "NaN"),
        ("float", float("-inf"), "-Infinity"),
        ("timestamp", dt.datetime(2024, 2, 29, 23, 59, 59, 999999), "2024-02-29 23:59:59.999999"),
        ("timestamp", dt.datetime(1970, 1, 1), "1970-01-01 00:00:00.000000"),
        (
            "timestamp",
            dt.datetime(2024, 1, 1, 2, 0, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            "2024-01-01 00:00:00.000000",
        ),
        ("timestamp", "2024-01-01T03:04:05.5", "2024-01-01 03:04:05.500000"),
        ("timestamp", "2024-01-01 03:04:05+01:00", "2024-01-01 02:04:05.000000"),
        ("date", "2024-01-01 10:00:00", "2024-01-01"),
        ("time", dt.timedelta(hours=3, seconds=5, microseconds=1), "03:00:05.000001"),
        ("binary", b"\x00\xff", "00ff"),
        ("text", "😀", "😀"),
        ("text", None, None),
    ],
)
def test_canonical_text(category: str, value: object, expected: str | None) -> None:
    assert canon(category, value) == expected


def test_null_empty_and_separators_never_collide() -> None:
    cats = ["text", "text"]
    strings = {
        row_string(cats, v)
        for v in [(None, ""), ("", None), ("", ""), (None, None), ("a|b", "c"), ("a", "b|c"), ("!", None), (None, "!")]
    }
    assert len(strings) == 8
    assert token("text", True, None) == "!" and token("text", True, "") == "0:"
    assert row_hash(cats, ("a|b", "c")) != row_hash(cats, ("a", "b|c"))
    assert 0 <= row_hash(cats, ("x", "y")) < 2**60


def test_categories_and_reconciliation() -> None:
    import sqlalchemy as sa
    from sqlalchemy.dialects import mysql, postgresql

    assert category_of(postgresql.DOUBLE_PRECISION()) == "float"
    assert category_of(sa.Numeric(12, 2)) == "decimal"
    assert category_of(mysql.TINYINT(display_width=1)) == "int"
    assert category_of(postgresql.BYTEA()) == "binary"
    assert category_of(postgresql.TIMESTAMP(timezone=True)) == "timestamp"
    assert category_of(postgresql.UUID()) == "text"
    assert reconcile("text", "timestamp", True, False) == ("timestamp", "timestamp")
    assert reconcile("decimal", "float", False, False) == ("float", "float")
    assert reconcile("int", "decimal", False, False) == ("int", "decimal")


def test_sql_canonical_values_and_hashes_match_python(db_url: str) -> None:
    """Each dialect's SQL renders every awkward value, and hashes every row, exactly as Python does."""
    rows = nasty_rows(120)
    load(db_url, nasty_table(), rows)
    side = Side("source", db_url, "nasty", None, 1, 60)
    side.open()
    try:
        plan = build_plan(side, side, None, None, [])
        sp = plan.src
        # MySQL has no boolean type (BOOL is TINYINT(1)); both rules render 0/1 identically.
        assert [c.replace("bool", "int") for c in sp.categories] == [c.replace("bool", "int") for c in NASTY_CATEGORIES]
        import sqlalchemy as sa

        stmt = sp.filtered(sa.select(sp.col("id"), *sp.canon_columns(), sp.hash_expr()), None).order_by(sp.col("id"))
        got = side.submit(lambda conn: side.execute(conn, stmt)).result()
        total = side.submit(lambda conn: side.execute(conn, sp.checksum(None))).result()[0]
    finally:
        side.close()
    assert len(got) == len(rows)
    expected_sum = 0
    for row, db in zip(rows, got, strict=True):
        values = [row[c] for c in plan.columns]
        expected = [canon(cat, v) for cat, v in zip(NASTY_CATEGORIES, values, strict=True)]
        assert list(db[1:-1]) == expected, f"row {row['id']}"
        assert int(db[-1]) == row_hash(NASTY_CATEGORIES, values), f"row {row['id']}"
        expected_sum += int(db[-1])
    assert (int(total[0]), as_int(total[1])) == (len(rows), expected_sum)


def test_postgresql_timetz_is_canonicalised_like_python(pg_url: str) -> None:
    """timetz by wall time and offset, as Python's isoformat writes an aware time (the copy's text form)."""
    import sqlalchemy as sa

    values = [
        dt.time(1, 2, 3, 4, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.time(23, 59, 59, tzinfo=dt.UTC),
        dt.time(12, 0, 0, 500000, tzinfo=dt.timezone(-dt.timedelta(hours=5, minutes=30))),
    ]
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE tz (id int PRIMARY KEY, t timetz)")
        conn.execute(sa.text("INSERT INTO tz VALUES (:i, :t)"), [{"i": i, "t": v} for i, v in enumerate(values)])
    engine.dispose()
    side = Side("source", pg_url, "tz", None, 1, 60)
    side.open()
    try:
        sp = build_plan(side, side, None, None, []).src
        stmt = sp.filtered(sa.select(*sp.canon_columns()), None).order_by(sp.col("id"))
        got = side.submit(lambda conn: side.execute(conn, stmt)).result()
    finally:
        side.close()
    assert sp.categories == ["int", "timetz"]
    assert [r[1] for r in got] == [canon("timetz", v) for v in values]
    assert [r[1] for r in got] == ["01:02:03.000004+02:00", "23:59:59+00:00", "12:00:00.500000-05:30"]
