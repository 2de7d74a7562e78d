"""diff_table across database pairs: equal data is equal, planted differences are found exactly."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from diff_helpers import execute, load, nasty_rows, nasty_table, plant
from dmig.diff import diff_table

PAIRS = [
    ("sqlite_url", "pg_url"),
    ("pg_url", "mysql_url"),
    ("sqlite_url", "mysql_url"),
    ("pg_url", "pg_url2"),
    ("mysql_url", "pg_url"),
]
# Small segments and thresholds so that a few hundred rows already exercise several bisection levels.
TIGHT = {"segments": 4, "bisection_factor": 4, "download_threshold": 16}


@pytest.fixture(params=PAIRS, ids=lambda p: f"{p[0][:-4]}-{p[1][:-4]}")
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    src = request.getfixturevalue(request.param[0])
    tgt = request.getfixturevalue(request.param[1])
    yield src, tgt


def test_identical_nasty_data_is_equal(pair: tuple[str, str]) -> None:
    src, tgt = pair
    rows = nasty_rows(400)
    load(src, nasty_table(), rows)
    load(tgt, nasty_table(), rows)
    result = diff_table(src, tgt, "nasty", **TIGHT)
    assert result.equal and result.complete, result
    assert result.mode == "bisection" and result.key == ["id"]
    assert (result.stats.rows_source, result.stats.rows_target) == (400, 400)
    assert result.missing_count == result.extra_count == result.changed_count == 0


def test_planted_differences_found_exactly(pair: tuple[str, str]) -> None:
    src, tgt = pair
    rows = nasty_rows(400)
    table = nasty_table()
    load(src, table, rows)
    load(tgt, table, rows)
    plant(
        tgt,
        table,
        delete=[1, 601, 1198],
        insert=[{"id": 2, "label": "extra"}, {"id": 5000, "label": None}],
        update={
            4: {"amount": Decimal("10.51")},
            7: {"created_at": dt.datetime(2024, 2, 29, 23, 59, 59, 999998)},
            10: {"label": "a|b "},
            13: {"body": None},
            16: {"score": 0.1001},
            19: {"blob": b"\x00"},
            22: {"flag": True, "big": 2},
            301: {"label": ""},
        },
    )
    result = diff_table(src, tgt, "nasty", **TIGHT)
    assert not result.equal and result.complete
    assert result.missing_in_target == [[1], [601], [1198]]
    assert result.extra_in_target == [[2], [5000]]
    changed = {tuple(c.key): c.columns for c in result.changed}
    assert changed == {
        (4,): ["amount"],
        (7,): ["created_at"],
        (10,): ["label"],
        (13,): ["body"],
        (16,): ["score"],
        (19,): ["blob"],
        (22,): ["flag", "big"],
        (301,): ["label"],
    }
    assert (result.missing_count, result.extra_count, result.changed_count) == (3, 2, 8)
    assert result.stats.max_depth >= 1 and result.stats.leaf_downloads >= 1


def test_null_versus_empty_string_is_a_difference(pg_url: str, mysql_url: str) -> None:
    rows = nasty_rows(30)
    table = nasty_table()
    load(pg_url, table, rows)
    load(mysql_url, table, rows)
    null_row = next(r["id"] for r in rows if r["label"] is None)
    empty_row = next(r["id"] for r in rows if r["label"] == "")
    plant(mysql_url, table, delete=[], insert=[], update={null_row: {"label": ""}, empty_row: {"label": None}})
    result = diff_table(pg_url, mysql_url, "nasty")
    got = {c.key[0]: (c.source["label"], c.target["label"]) for c in result.changed}
    assert got == {null_row: (None, ""), empty_row: ("", None)}


def _composite(name: str = "lines") -> sa.Table:
    return sa.Table(
        name,
        sa.MetaData(),
        sa.Column("order_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("line_no", sa.String(20), primary_key=True),
        sa.Column("qty", sa.Integer),
        sa.Column("price", sa.Numeric(10, 3)),
    )


@pytest.mark.parametrize(("a", "b"), [("pg_url", "mysql_url"), ("sqlite_url", "pg_url")])
def test_composite_key(request: pytest.FixtureRequest, a: str, b: str) -> None:
    src, tgt = request.getfixturevalue(a), request.getfixturevalue(b)
    table = _composite()
    # Many rows share one order_id, so bisection must cut inside a single first-column value.
    rows = [{"order_id": i // 50, "line_no": f"L{i % 50:03d}", "qty": i, "price": Decimal(i) / 8} for i in range(600)]
    load(src, table, rows)
    load(tgt, table, rows)
    execute(
        tgt,
        table.delete().where(sa.and_(table.c.order_id == 3, table.c.line_no == "L007")),
        table.update().where(sa.and_(table.c.order_id == 5, table.c.line_no == "L049")).values(price=Decimal("1.001")),
        table.insert().values(order_id=3, line_no="L007x", qty=1, price=None),
    )
    result = diff_table(src, tgt, "lines", **TIGHT)
    assert result.key == ["order_id", "line_no"]
    assert result.missing_in_target == [[3, "L007"]]
    assert result.extra_in_target == [[3, "L007x"]]
    assert [(c.key, c.columns) for c in result.changed] == [([5, "L049"], ["price"])]


def _text_keyed(collation: str | None = None) -> sa.Table:
    key_type = sa.String(64, collation=collation) if collation else sa.String(64)
    return sa.Table(
        "words",
        sa.MetaData(),
        sa.Column("word", key_type, primary_key=True),
        sa.Column("n", sa.Integer),
    )


WORDS = [
    *(f"w{i:04d}" for i in range(300)),
    "Apple",
    "apple ",
    "Zebra",
    "zebra",
    "émile",
    "Émile",
    "😀",
    "a|b",
    "_under",
    "~tilde",
    "",
    "ß",
]


@pytest.mark.parametrize(
    ("a", "b", "collation"),
    [
        ("pg_url", "mysql_url", None),
        ("sqlite_url", "pg_url", None),
        ("mysql_url", "sqlite_url", None),
        # MariaDB's default case-insensitive collation: ranges are compared in byte order instead.
        ("pg_url", "mysql_url", "utf8mb4_general_ci"),
    ],
)
def test_text_keys(request: pytest.FixtureRequest, a: str, b: str, collation: str | None) -> None:
    src, tgt = request.getfixturevalue(a), request.getfixturevalue(b)
    words = WORDS if collation is None else [w for w in WORDS if w not in ("Apple", "Zebra", "Émile", "apple ")]
    rows = [{"word": w, "n": i} for i, w in enumerate(words)]
    for url in (src, tgt):
        coll = collation if url.startswith("mysql") else None
        load(url, _text_keyed(coll), rows)
    t = _text_keyed()
    execute(
        tgt,
        t.delete().where(t.c.word.in_(["w0100", "😀"])),
        t.update().where(t.c.word.in_(["émile", "w0200"])).values(n=-1),
        t.insert().values(word="w0100b", n=5),
    )
    result = diff_table(src, tgt, "words", **TIGHT)
    assert sorted(result.missing_in_target) == sorted([["w0100"], ["😀"]])
    assert result.extra_in_target == [["w0100b"]]
    assert sorted(c.key[0] for c in result.changed) == sorted(["émile", "w0200"])
    if collation:
        assert any("byte order" in w for w in result.warnings)
    same = diff_table(src, src, "words", **TIGHT)
    assert same.equal


def _no_pk() -> sa.Table:
    return sa.Table(
        "events",
        sa.MetaData(),
        sa.Column("kind", sa.String(20)),
        sa.Column("amount", sa.Numeric(8, 2)),
        sa.Column("note", sa.Text),
    )


@pytest.mark.parametrize(("a", "b"), [("sqlite_url", "pg_url"), ("pg_url", "mysql_url")])
def test_table_without_key_is_compared_as_multiset(request: pytest.FixtureRequest, a: str, b: str) -> None:
    src, tgt = request.getfixturevalue(a), request.getfixturevalue(b)
    rows = [{"kind": f"k{i % 7}", "amount": Decimal(i % 13), "note": None if i % 5 == 0 else "x|y"} for i in range(500)]
    load(src, _no_pk(), rows)
    load(tgt, _no_pk(), rows)
    equal = diff_table(src, tgt, "events")
    assert equal.mode == "multiset" and equal.equal and equal.key == []
    t = _no_pk()
    # Remove one copy of a duplicated row, add two copies of a new row.
    with sa.create_engine(tgt).begin() as conn:
        dup = rows[7]
        if tgt.startswith("postgresql"):
            conn.execute(
                sa.text(
                    "DELETE FROM events WHERE ctid IN (SELECT ctid FROM events WHERE kind = :k AND amount = :a LIMIT 1)"
                ),
                {"k": dup["kind"], "a": dup["amount"]},
            )
        else:
            conn.execute(
                sa.text("DELETE FROM events WHERE kind = :k AND amount = :a LIMIT 1"),
                {"k": dup["kind"], "a": dup["amount"]},
            )
        conn.execute(t.insert(), [{"kind": "new", "amount": Decimal("1.50"), "note": ""}] * 2)
    result = diff_table(src, tgt, "events")
    assert result.mode == "multiset" and not result.equal
    assert (result.missing_count, result.extra_count) == (1, 2)
    assert result.missing_in_target == [[dup["kind"], str(dup["amount"].normalize()), dup["note"]]]
    assert result.extra_in_target == [["new", "1.5", ""], ["new", "1.5", ""]]


def test_limit_is_honoured(pg_url: str, mysql_url: str) -> None:
    rows = nasty_rows(300)
    table = nasty_table()
    load(pg_url, table, rows)
    load(mysql_url, table, rows)
    execute(mysql_url, table.delete().where(table.c.id % 2 == 0))  # 150 rows missing
    result = diff_table(pg_url, mysql_url, "nasty", limit=10, **TIGHT)
    assert not result.equal and not result.complete
    assert len(result.missing_in_target) <= 10 and result.missing_count >= 10
    full = diff_table(pg_url, mysql_url, "nasty", limit=1000, **TIGHT)
    assert full.complete and full.missing_count == 150 and len(full.missing_in_target) == 150
    zero = diff_table(pg_url, mysql_url, "nasty", limit=0)
    assert not zero.equal and zero.missing_in_target == []


def test_empty_target_settles_from_counts(sqlite_url: str, pg_url: str) -> None:
    rows = nasty_rows(200)
    load(sqlite_url, nasty_table(), rows)
    load(pg_url, nasty_table(), [])
    result = diff_table(sqlite_url, pg_url, "nasty", limit=5)
    assert result.missing_count == 200 and len(result.missing_in_target) == 5
    assert result.missing_in_target[0] == [1]


def test_default_settings_batch_many_small_segments(sqlite_url: str, pg_url: str) -> None:
    """Default sizes: 256-key first-level buckets from one grouped pass, mismatching ones fetched together."""
    rows = nasty_rows(3000, step=1)
    table = nasty_table()
    load(sqlite_url, table, rows)
    load(pg_url, table, rows)
    changed = [5, 700, 1400, 2100, 2999]
    plant(pg_url, table, delete=[300, 2500], insert=[], update={k: {"big": 42} for k in changed})
    result = diff_table(sqlite_url, pg_url, "nasty")
    assert result.stats.segments_initial == 12 and result.stats.leaf_downloads == 7
    assert result.missing_in_target == [[300], [2500]]
    assert [c.key[0] for c in result.changed] == changed and all(c.columns == ["big"] for c in result.changed)
    assert result.stats.queries_source <= 5  # bounds, one grouped pass, one batched fetch, details
