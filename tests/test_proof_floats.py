"""Doubles compare by their exact value on every dialect pair (issue 14, item 2).

Before: MariaDB normalised with CAST(... AS DECIMAL(65,6)), PostgreSQL/Python took 15 significant
digits then 6 decimals: 1e60 equalled 2e60, 1.797e308 copied exactly reported FAILED, and
505140.76916049956 had two spellings. Now every side renders the shortest round-trip digits in
plain notation; these tests check the tool against plain driver reads compared in Python.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import sqlalchemy as sa

from copy_helpers import run_copy
from dmig.diff import diff_table
from dmig.diff.normalize import canon, canon_sql
from dmig.diff.sides import Side
from proof_helpers import PAIRS, dialect, independent_equal, pair_fixture, pair_id, read, run_sql

EDGE = [
    1e60,
    -3.5e200,
    1.7976931348623157e308,
    -1.7976931348623157e308,
    505140.76916049956,
    0.1,
    5e-324,
    2.2250738585072014e-308,
    0.0,
    -0.0,
    1e15,
    1e16,
    1e-5,
    0.0001,
    123456789012345680000.0,
    0.30000000000000004,
    -2.5,
    3.141592653589793,
    1e21,
    9007199254740993.0,
]


def _values() -> list[float]:
    rng = random.Random(14)
    out = list(EDGE)
    for _ in range(300):
        out.append(rng.uniform(-1e6, 1e6))
        out.append(rng.choice([-1, 1]) * 10 ** rng.uniform(-300, 300))
    return out


DDL = "CREATE TABLE f (id INTEGER PRIMARY KEY, d DOUBLE PRECISION)"


def _load(url: str, values: list[float]) -> None:
    rows = [{"id": i, "d": v} for i, v in enumerate(values, start=1)]
    run_sql(url, DDL, "INSERT INTO f (id, d) VALUES (:id, :d)", params=rows)


@pytest.fixture(params=PAIRS, ids=pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path):
    yield from pair_fixture(request, tmp_path)


def test_identical_doubles_are_equal_and_near_ones_differ(pair: tuple[str, str]) -> None:
    src, tgt = pair
    values = _values()
    _load(src, values)
    _load(tgt, values)
    assert independent_equal(src, tgt, "f")
    result = diff_table(src, tgt, "f")
    assert result.equal, result.changed[:3]

    changed = {1: 2e60, 2: -1e100, 5: 505140.7691604996, 6: 0.10000000000000002, 7: 1e-323}
    engine = sa.create_engine(tgt, poolclass=sa.pool.NullPool)
    with engine.begin() as conn:
        for i, v in changed.items():
            conn.execute(sa.text("UPDATE f SET d = :d WHERE id = :i"), {"d": v, "i": i})
    engine.dispose()
    assert not independent_equal(src, tgt, "f")
    result = diff_table(src, tgt, "f")
    assert not result.equal
    assert sorted(c.key[0] for c in result.changed) == sorted(changed)
    assert result.missing_count == result.extra_count == 0


def test_sql_renders_every_double_as_python_does(db_url: str) -> None:
    """Each server's SQL canonical text equals the Python reference for the same stored double."""
    values = _values()
    _load(db_url, values)
    side = Side("source", db_url, "f", None, 1, 60.0)
    side.open()
    try:
        t = side.table(["id", "d"])
        stmt = sa.select(t.c.id, canon_sql(side.dialect, "float", t.c.d, side.version)).order_by(t.c.id)
        rows = side.submit(lambda conn: side.execute(conn, stmt)).result()
    finally:
        side.close()
    stored = dict(read(db_url, "f"))
    bad = [(i, stored[i], text, canon("float", stored[i])) for i, text in rows if text != canon("float", stored[i])]
    assert not bad, bad[:5]
    assert canon("float", 1e60) != canon("float", 2e60)
    assert canon("float", -0.0) == canon("float", 0.0) == "0"


def test_single_precision_compares_as_its_float32_value(pg_url: str, mysql_url: str, tmp_path: Path) -> None:
    """PostgreSQL real and MariaDB FLOAT hold float32: compared as that value, widened exactly."""
    pg, my = pg_url, mysql_url
    lite = f"sqlite:///{tmp_path / 'r.db'}"
    values = [0.1, 3.4e38, 1.5, -2.75, 16777216.0, 1e-30, 0.0]
    run_sql(
        pg,
        "CREATE TABLE r (id INTEGER PRIMARY KEY, v REAL)",
        "INSERT INTO r VALUES (:i, :v)",
        params=[{"i": i, "v": v} for i, v in enumerate(values)],
    )
    run_sql(
        my,
        "CREATE TABLE r (id INTEGER PRIMARY KEY, v FLOAT)",
        "INSERT INTO r VALUES (:i, :v)",
        params=[{"i": i, "v": v} for i, v in enumerate(values)],
    )
    run_sql(
        lite,
        "CREATE TABLE r (id INTEGER PRIMARY KEY, v REAL)",
        "INSERT INTO r VALUES (:i, :v)",
        params=[{"i": i, "v": v} for i, v in enumerate(values)],
    )
    for a, b in ((pg, my), (my, pg), (lite, pg), (lite, my), (pg, lite)):
        result = diff_table(a, b, "r")
        assert result.equal, (dialect(a), dialect(b), result.changed[:3])
    run_sql(lite, "UPDATE r SET v = 0.1000001 WHERE id = 0")
    assert not diff_table(lite, pg, "r").equal


@pytest.mark.parametrize("source_kind", ["sqlite", "postgresql", "mysql"])
def test_copy_of_doubles_into_mariadb_verifies(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, source_kind: str, mysql_url2: str
) -> None:
    """Before: every SQLite/PostgreSQL -> MariaDB copy of such a table said "verification FAILED"."""
    from proof_helpers import db

    src = db(request, tmp_path, source_kind, "source")
    tgt = mysql_url2
    _load(src, _values())
    out = run_copy(src, tgt, project)
    assert independent_equal(src, tgt, "f")
    assert out.ok, out.message
    [check] = out.verification.tables
    assert check.checksum == "match", check
