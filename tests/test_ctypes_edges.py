"""Values Python's datetime cannot hold, and SQLite columns without a declared type (issue 14).

PostgreSQL's ``time`` 24:00:00, ``date``/``timestamp`` infinity, BC and after-9999 values made psycopg
fail the whole page, so the whole table; a SQLite column declared without a type failed the
SQLite-to-SQLite copy with CompileError (NullType).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import run_copy
from ctypes_helpers import DIALECTS, db, query, rejects, run_sql

EDGE = {
    1: ("24:00:00", "2024-01-01", "2024-01-01 00:00:00"),
    2: ("00:00:00", "infinity", "-infinity"),
    3: ("12:00:00", "0044-03-15 BC", "0044-03-15 12:00:00 BC"),
    4: ("12:00:00", "12024-01-01", "294276-12-31 23:59:59.999999"),
    5: (None, None, None),
}


@pytest.mark.pg
@pytest.mark.parametrize("target_kind", DIALECTS)
def test_postgresql_values_beyond_python(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    src = db(request, tmp_path, "postgresql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    values = ", ".join(f"({i}, {', '.join('NULL' if v is None else repr(v) for v in row)})" for i, row in EDGE.items())
    run_sql(src, "CREATE TABLE e (id INT PRIMARY KEY, t TIME, d DATE, ts TIMESTAMP)", f"INSERT INTO e VALUES {values}")
    out = run_copy(src, tgt, project)
    [table] = out.tables
    assert table.state == "done", out.model_dump_json(indent=1)
    if target_kind == "postgresql":
        got = {r[0]: r[1:] for r in query(tgt, "SELECT id, t::text, d::text, ts::text FROM e")}
        assert got == EDGE
        return
    got = {r[0]: r[1:] for r in query(tgt, "SELECT id, t, d, ts FROM e")}
    if target_kind == "sqlite":  # the text of what SQLite cannot hold as a Python value, kept as text
        assert set(got) == set(EDGE) and table.rejects == 0
        assert got[1][0] == "24:00:00" and got[2][1:] == ("infinity", "-infinity")
        assert got[3][1:] == ("0044-03-15 BC", "0044-03-15 12:00:00.000000 BC")
        assert got[4][2] == "294276-12-31 23:59:59.999999"
        return
    # MariaDB: TIME holds 24:00:00; no infinity, BC or year 10000+: those rows are rejected with the reason
    assert set(got) == {1, 5}
    assert str(got[1][0]) == "1 day, 0:00:00"
    assert {r["key"][0] for r in rejects(project, out)} == {2, 3, 4}
    assert all("Incorrect" in r["error"] for r in rejects(project, out)), rejects(project, out)


@pytest.mark.parametrize("target_kind", DIALECTS)
def test_sqlite_column_without_a_type(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    src = db(request, tmp_path, "sqlite", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(src, "CREATE TABLE u (id INTEGER PRIMARY KEY, v)", "INSERT INTO u VALUES (1, 'text'), (2, 42), (3, NULL)")
    out = run_copy(src, tgt, project)
    assert out.tables[0].state == "done" and out.tables[0].rejects == 0, out.model_dump_json(indent=1)
    got = dict(query(tgt, "SELECT id, v FROM u"))
    if target_kind == "sqlite":  # untyped again: 42 stays an integer
        assert got == {1: "text", 2: 42, 3: None}
        assert [r[2] for r in query(tgt, "PRAGMA table_info(u)")] == ["INTEGER", ""]
    else:  # across dialects the documented form of an untyped column is text
        assert got == {1: "text", 2: "42", 3: None}
