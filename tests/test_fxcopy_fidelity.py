"""Round-2 fidelity defects of the copy itself (values and column definitions changed silently).

Each test copies along one pair and reads the target back with plain driver reads (no dmig code):
NULL primary keys from SQLite, MariaDB FLOAT values, MariaDB column collations, and PostgreSQL
types without a native counterpart (inet, cidr, macaddr, interval, arrays, ranges, money).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import run_copy
from ctypes_helpers import DIALECTS, column_types, db, query, rejects, run_sql

FLOAT_MAX = 3.4028234663852886e38
FLOAT_MIN = 1.401298464324817e-45


@pytest.mark.parametrize("target_kind", DIALECTS)
def test_sqlite_null_primary_keys(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    """``id BIGINT PRIMARY KEY`` is not a rowid alias in SQLite: it holds NULLs. A SQLite target keeps them
    (the column stays BIGINT); PostgreSQL and MariaDB keys cannot be NULL: those rows are rejected, with why."""
    src = db(request, tmp_path, "sqlite", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(
        src,
        "CREATE TABLE nk (id BIGINT PRIMARY KEY, v TEXT)",
        "INSERT INTO nk VALUES (NULL, 'x'), (NULL, 'y'), (NULL, 'z'), (7, 'w')",
    )
    out = run_copy(src, tgt, project)
    got = sorted(query(tgt, "SELECT id, v FROM nk"), key=lambda r: r[1])
    if target_kind == "sqlite":
        assert got == [(7, "w"), (None, "x"), (None, "y"), (None, "z")]
        assert column_types(tgt, "sqlite", "nk")["id"] == "BIGINT"
        assert out.tables[0].rejects == 0
        return
    assert got == [(7, "w")]
    assert out.tables[0].rejects == 3, out.model_dump_json(indent=1)
    reasons = [str(r.get("reason") or r.get("error") or r) for r in rejects(project, out)]
    assert len(reasons) == 3 and all("NULL in primary key column id" in r for r in reasons), reasons


@pytest.mark.mysql
@pytest.mark.parametrize("target_kind", DIALECTS)
def test_mysql_float_arrives_exactly(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    """A MariaDB FLOAT holds a float32; the text protocol prints it with 6 digits (3.40282e+38)."""
    src = db(request, tmp_path, "mysql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(
        src,
        "CREATE TABLE fl (id INT PRIMARY KEY, f FLOAT, d DOUBLE)",
        f"INSERT INTO fl VALUES (1, {FLOAT_MAX!r}, 1.5), (2, 0.1, 0.1), (3, {FLOAT_MIN!r}, NULL), (4, NULL, 2.0)",
    )
    out = run_copy(src, tgt, project)
    assert out.tables[0].rejects == 0, out.model_dump_json(indent=1)
    # MariaDB's FLOAT and PostgreSQL's real print as float32 text: read them widened (exact)
    widened = {"mysql": "CAST(f AS DOUBLE)", "postgresql": "f::float8", "sqlite": "f"}[target_kind]
    read = f"SELECT id, {widened} FROM fl ORDER BY id"
    want = query(src, "SELECT id, CAST(f AS DOUBLE) FROM fl ORDER BY id")
    assert want[0][1] == FLOAT_MAX
    assert [(i, None if v is None else float(v)) for i, v in query(tgt, read)] == want


@pytest.mark.mysql
def test_mysql_to_mysql_keeps_column_collations(request: pytest.FixtureRequest, tmp_path: Path, project: Path) -> None:
    """Every text column keeps its own character set and collation, key columns included (a case-insensitive
    key stays case-insensitive), whatever the source table's and the target database's defaults are."""
    src = db(request, tmp_path, "mysql", "source")
    tgt = db(request, tmp_path, "mysql", "target")
    run_sql(
        src,
        "CREATE TABLE ck (id VARCHAR(10) COLLATE utf8mb4_general_ci PRIMARY KEY, "
        "ci VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci, "
        "bin VARCHAR(20) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin, "
        "lat VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_swedish_ci, t TEXT) "
        "DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin",
        "INSERT INTO ck VALUES ('a', 'x', 'y', 'z', 't'), ('B', 'X', 'Y', 'Z', 'T')",
    )
    sql = (
        "SELECT COLUMN_NAME, CHARACTER_SET_NAME, COLLATION_NAME FROM information_schema.COLUMNS "
        "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ck' ORDER BY COLUMN_NAME"
    )
    out = run_copy(src, tgt, project)
    assert out.tables[0].rejects == 0, out.model_dump_json(indent=1)
    assert query(tgt, sql) == query(src, sql)
    table = (
        "SELECT TABLE_COLLATION FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ck'"
    )
    assert query(tgt, table) == query(src, table) == [("utf8mb4_bin",)]
    assert query(tgt, "SELECT v FROM (SELECT id AS v FROM ck WHERE id = 'A') x") == [("a",)]


PG_TYPES = {
    "ip": ("inet", ["192.168.0.1", "10.0.0.0/8", "::1", "2001:db8::1/64"]),
    "net": ("cidr", ["192.168.0.0/24", "10.0.0.1/32", "2001:db8::/32"]),
    "mac": ("macaddr", ["08:00:2b:01:02:03", "ff:ff:ff:ff:ff:ff"]),
    "iv": ("interval", ["1 day 02:00:00", "1 year 2 mons", "-00:00:01.5", "3 days"]),
    "arr": ("integer[]", ["{1,2,3}", "{}", "{NULL,5}"]),
    "tarr": ("text[]", ['{a,"b c",NULL}', '{"x\\"y"}']),
    "rng": ("int4range", ["[1,5)", "empty", "(,3)"]),
    "tsr": ("tsrange", ['["2024-01-01 00:00:00","2024-01-02 00:00:00")']),
    "mon": ("money", ["$1,234.56", "-$0.01"]),
}


@pytest.mark.pg
@pytest.mark.parametrize("target_kind", ["sqlite", "mysql"])
def test_postgresql_types_cross_as_postgresql_text(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    """A PostgreSQL type the target has no counterpart for arrives as PostgreSQL's own text of the value
    ('192.168.0.1', not Python's '192.168.0.1/32'; '1 day 02:00:00', not '1 day, 2:00:00')."""
    src = db(request, tmp_path, "postgresql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    n = max(len(v) for _t, v in PG_TYPES.values())
    cols = ", ".join(f"{c} {t}" for c, (t, _v) in PG_TYPES.items())
    rows = []
    for i in range(n):
        vals = [f"'{v[i].replace(chr(39), chr(39) * 2)}'::{t}" if i < len(v) else "NULL" for t, v in PG_TYPES.values()]
        rows.append(f"({i + 1}, {', '.join(vals)})")
    run_sql(src, f"CREATE TABLE pt (id INT PRIMARY KEY, {cols})")
    run_sql(src, f"INSERT INTO pt VALUES {', '.join(rows)}")
    run_sql(src, "CREATE TABLE ip1 (id INTEGER PRIMARY KEY, ip INET)", "INSERT INTO ip1 VALUES (1, '192.168.0.1')")
    out = run_copy(src, tgt, project)
    assert [t.rejects for t in out.tables] == [0, 0], out.model_dump_json(indent=1)
    assert query(tgt, "SELECT id, ip FROM ip1") == [(1, "192.168.0.1")]
    # the literals above are written as PostgreSQL prints them (inet's output omits a full-length netmask,
    # which a cast to text would add: '192.168.0.1'::inet::text is '192.168.0.1/32')
    want = [(i + 1, *[v[i] if i < len(v) else None for _t, v in PG_TYPES.values()]) for i in range(n)]
    got = query(tgt, f"SELECT id, {', '.join(PG_TYPES)} FROM pt ORDER BY id")
    assert got == want


def test_sqlite_null_keys_beyond_one_batch_fail_the_table_saying_why(tmp_path: Path, project: Path) -> None:
    """NULL keys sort first and keyset paging cannot continue after a page of them: the table fails with
    the reason and what to do, never with a SQLAlchemy message about comparing with None."""
    src, tgt = f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 't.db'}"
    nulls = ", ".join(f"(NULL, 'n{i}')" for i in range(5))
    run_sql(src, "CREATE TABLE nk (id BIGINT PRIMARY KEY, v TEXT)", f"INSERT INTO nk VALUES {nulls}, (1, 'a')")
    out = run_copy(src, tgt, project, batch_size=2)
    assert out.tables[0].state == "failed"
    assert "more rows with a NULL primary key (id) than one batch" in (out.tables[0].error or "")
    assert run_copy(src, f"sqlite:///{tmp_path / 't2.db'}", project, batch_size=10).tables[0].state == "done"
    assert len(query(f"sqlite:///{tmp_path / 't2.db'}", "SELECT v FROM nk")) == 6
