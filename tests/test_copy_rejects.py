"""Rows the target refuses go to the reject file (batch bisection isolates them); the limit fails the table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copy_helpers import database, engine, read_rows, run_copy

BAD_LONG = {17, 230, 231, 600}  # name longer than the target's 12 characters
BAD_NULL = {99, 512}  # note NULL, target column NOT NULL
BAD_CHECK = {700}  # qty negative, target CHECK (qty >= 0)
BAD_DATE = {888}  # invalid date in the SQLite source: rejected while converting, before the write
BAD = BAD_LONG | BAD_NULL | BAD_CHECK | BAD_DATE
ROWS = 1000

TARGET_DDL = {
    "postgresql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(12), note TEXT NOT NULL, "
    "qty INTEGER CHECK (qty >= 0), born DATE)",
    "mysql": "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(12), note TEXT NOT NULL, "
    "qty INTEGER CHECK (qty >= 0), born DATE)",
    "sqlite": "CREATE TABLE items (id INTEGER PRIMARY KEY, name VARCHAR(12) CHECK (length(name) <= 12), "
    "note TEXT NOT NULL, qty INTEGER CHECK (qty >= 0), born DATE)",
}


def _source(path: Path) -> str:
    url = f"sqlite:///{path}"
    rows = []
    for i in range(1, ROWS + 1):
        name = "a name that is far too long" if i in BAD_LONG else f"item {i}"
        note = None if i in BAD_NULL else f"n{i}"
        qty = -1 if i in BAD_CHECK else i
        born = "2021-02-30" if i in BAD_DATE else f"2020-01-{1 + i % 28:02d}"
        rows.append((i, name, note, qty, born))
    e = engine(url)
    with e.begin() as conn:
        conn.exec_driver_sql(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, note TEXT, qty INTEGER, born DATE)"
        )
        conn.exec_driver_sql("INSERT INTO items VALUES (?, ?, ?, ?, ?)", rows)
    e.dispose()
    return url


def _target(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> str:
    url = database(request, tmp_path, kind, "tgt")
    e = engine(url)
    with e.begin() as conn:
        conn.exec_driver_sql(TARGET_DDL[kind])
    e.dispose()
    return url


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_rejected_rows_are_isolated_and_reported(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, kind: str
) -> None:
    src = _source(tmp_path / "src.db")
    tgt = _target(request, tmp_path, kind)
    if kind == "postgresql":
        tgt = tgt.replace("postgres@", "postgres:Sekr1t-pw@")  # trust auth ignores it; it must never be shown

    out = run_copy(src, tgt, project, batch_size=64, max_rejects=100)
    # SQLite to SQLite copies values exactly as stored (same declared types): the bad date is copied.
    bad = BAD - BAD_DATE if kind == "sqlite" else BAD

    [t] = out.tables
    assert out.ok, out.model_dump_json(indent=1)
    assert (t.state, t.rows, t.rejects, t.created) == ("done", ROWS - len(bad), len(bad), False)
    assert {r["id"] for r in read_rows(tgt, "items")} == set(range(1, ROWS + 1)) - bad
    [check] = out.verification.tables
    assert check.counts_match and check.source_rows == ROWS and check.target_rows == ROWS - len(bad)
    assert check.checksum == "match" and "rejected" in (check.detail or "")

    assert out.reject_file and out.reject_file.startswith("docs/migrations/rejects/")
    lines = [json.loads(x) for x in (project / out.reject_file).read_text().splitlines()]
    by_id = {x["key"][0]: x for x in lines}
    assert set(by_id) == bad
    if kind != "sqlite":
        assert by_id[888]["error"] == "invalid date: '2021-02-30'"
    assert by_id[17]["row"]["name"] == "a name that is far too long" and by_id[17]["table"] == "items"
    assert all(x["error"] and x["run"] == out.run_id for x in lines)
    text = (project / out.reject_file).read_text() + out.model_dump_json()
    assert "Sekr1t-pw" not in text

    # A re-run neither duplicates rows nor counts a reject twice.
    again = run_copy(src, tgt, project, batch_size=64, max_rejects=100)
    assert again.already_complete and again.totals.rejects == len(bad)
    assert len((project / out.reject_file).read_text().splitlines()) == len(bad)


def test_reject_limit_fails_the_table_with_a_clear_error(tmp_path: Path, project: Path) -> None:
    src = _source(tmp_path / "src.db")
    tgt = f"sqlite:///{tmp_path / 'tgt.db'}"
    e = engine(tgt)
    with e.begin() as conn:
        conn.exec_driver_sql(TARGET_DDL["sqlite"])
    e.dispose()
    out = run_copy(src, tgt, project, batch_size=100, reject_limit=3, reject_file="out/rejects.jsonl")
    [t] = out.tables
    assert not out.ok and t.state == "failed"
    assert "more than 3 rejected rows (reject_limit)" in (t.error or "")
    assert t.rejects == 3 and out.reject_file == "out/rejects.jsonl"
    assert "FAILED" in out.message


@pytest.mark.parametrize("native", ["1", "0"])
def test_text_that_is_not_utf8_is_rejected_not_fatal(
    tmp_path: Path, pg_url: str, project: Path, monkeypatch: pytest.MonkeyPatch, native: str
) -> None:
    """SQLite stores any bytes as TEXT and its driver refuses the whole page; only that row may be lost."""
    monkeypatch.setenv("DMIG_NATIVE", native)
    src = f"sqlite:///{tmp_path / 'src.db'}"
    e = engine(src)
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("INSERT INTO notes VALUES (?, ?)", [(i, f"note {i}") for i in range(1, 3001)])
        conn.exec_driver_sql("UPDATE notes SET body = CAST(x'66fe41' AS TEXT) WHERE id = 1500")
    e.dispose()

    out = run_copy(src, pg_url, project, batch_size=500, max_rejects=1)

    assert out.ok, out.model_dump_json(indent=1)
    assert (out.tables[0].rows, out.tables[0].rejects) == (2999, 1)
    [reject] = [json.loads(x) for x in (project / (out.reject_file or "")).read_text().splitlines()]
    assert reject["key"] == [1500] and "not valid UTF-8" in reject["error"]
    assert reject["row"]["body"] == "f\\xfeA"  # the bad byte escaped, the rest as it was
    assert {r["id"] for r in read_rows(pg_url, "notes")} == set(range(1, 3001)) - {1500}


def test_sqlite_integer_keys_are_64_bit_and_the_sequence_survives_the_maximum(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    """SQLite's INTEGER PRIMARY KEY is the 64-bit rowid: keys past 2^31 copy, and a key at a type's maximum
    does not make the sequence reset overflow."""
    src = f"sqlite:///{tmp_path / 'src.db'}"
    keys = [1, 2, 2**31 - 1, 2**31, 2**62]
    e = engine(src)
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY AUTOINCREMENT, v SMALLINT)")
        conn.exec_driver_sql("INSERT INTO t VALUES (?, ?)", [(k, 70_000) for k in keys])
    e.dispose()

    out = run_copy(src, pg_url, project)

    assert out.ok and out.tables[0].rows == len(keys), out.model_dump_json(indent=1)
    tgt = engine(pg_url)
    with tgt.begin() as conn:
        types = dict(
            conn.exec_driver_sql(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 't'"
            ).all()
        )
        new_id = conn.exec_driver_sql("INSERT INTO t (v) VALUES (1) RETURNING id").scalar()
    tgt.dispose()
    assert types == {"id": "bigint", "v": "bigint"}
    assert new_id == 2**62 + 1
