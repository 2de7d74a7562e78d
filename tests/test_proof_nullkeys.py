"""A SQLite primary key holding NULL never lets the proof say "equal" (issue 14, item 1).

SQLite allows NULL in a primary key whose declared type is not exactly INTEGER. Key ranges never
hold a NULL, so the keyed diff used to skip those rows: source 3 rows, target 0, "equal".
"""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import run_copy
from dmig.diff import diff_table
from proof_helpers import db, independent_equal, run_sql

ROWS = [{"id": None, "v": "a"}, {"id": None, "v": "b"}, {"id": None, "v": "b"}]


def _sqlite_source(tmp_path: Path, key_type: str, rows: list[dict]) -> str:
    url = f"sqlite:///{tmp_path / ('src_' + key_type + '.db')}"
    run_sql(url, f"CREATE TABLE n (id {key_type} PRIMARY KEY, v TEXT)", "INSERT INTO n VALUES (:id, :v)", params=rows)
    return url


@pytest.mark.parametrize("key_type", ["TEXT", "BIGINT"])
@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql", "mysql"])
def test_null_keys_against_an_empty_target_are_different(
    request: pytest.FixtureRequest, tmp_path: Path, key_type: str, target_kind: str
) -> None:
    src = _sqlite_source(tmp_path, key_type, ROWS)
    tgt = db(request, tmp_path, target_kind, "target")
    ddl_key = "VARCHAR(20)" if key_type == "TEXT" else "BIGINT"
    run_sql(tgt, f"CREATE TABLE n (id {ddl_key} PRIMARY KEY, v TEXT)")
    assert not independent_equal(src, tgt, "n")
    result = diff_table(src, tgt, "n")
    assert not result.equal
    assert result.stats.rows_source == 3 and result.stats.rows_target == 0
    assert result.missing_count == 3
    assert any("NULL" in w for w in result.warnings)
    # and the other way round
    back = diff_table(tgt, src, "n")
    assert not back.equal and back.extra_count == 3


def test_null_keys_on_both_sides_compare_as_rows(tmp_path: Path) -> None:
    src = _sqlite_source(tmp_path, "TEXT", [*ROWS, {"id": "k", "v": "c"}])
    same = f"sqlite:///{tmp_path / 'same.db'}"
    run_sql(
        same,
        "CREATE TABLE n (id TEXT PRIMARY KEY, v TEXT)",
        "INSERT INTO n VALUES (:id, :v)",
        params=[*ROWS, {"id": "k", "v": "c"}],
    )
    assert independent_equal(src, same, "n")
    assert diff_table(src, same, "n").equal
    run_sql(same, "UPDATE n SET v = 'z' WHERE id IS NULL AND v = 'a'")
    assert not independent_equal(src, same, "n")
    result = diff_table(src, same, "n")
    assert not result.equal and result.missing_count == 1 and result.extra_count == 1


@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql", "mysql"])
def test_copy_never_passes_with_null_keys_left_out(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    src = _sqlite_source(tmp_path, "TEXT", [*ROWS, {"id": "k", "v": "c"}])
    tgt = db(request, tmp_path, target_kind, "target")
    out = run_copy(src, tgt, project)
    try:
        identical = independent_equal(src, tgt, "n")
    except Exception:  # the copy may not have created the table at all
        identical = False
    if identical:
        assert out.ok and out.verification.ok, out.message
        return
    # Rows the target cannot hold (a NULL primary key) are rejected and said so; the check may pass
    # only when exactly those rows are missing, and the diff itself never calls the tables equal.
    [check] = out.verification.tables
    assert check.source_rows == 4
    if out.verification.ok:
        assert check.rejects == 3 and check.target_rows == 1, check
        assert "rejected" in out.message and "rejected" in (check.detail or "")
    assert not diff_table(src, tgt, "n").equal
