"""CHAR padding, MySQL BIT and JSON compare by value, and the verdict agrees with a plain comparison
(issue 14, items 3-5). Each test reads both sides with plain SQLAlchemy and compares in Python
(``proof_helpers.same_value``) before asking dmig for its verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copy_helpers import run_copy
from dmig.diff import diff_table
from proof_helpers import PAIRS, db, independent_equal, pair_id, run_sql

CHARS = ["ab", "ab   ", "", " lead", "x y", None, "abcde"]


def _pair(request: pytest.FixtureRequest, tmp_path: Path, kinds: tuple[str, str]) -> tuple[str, str]:
    return db(request, tmp_path, kinds[0], "source"), db(request, tmp_path, kinds[1], "target")


@pytest.mark.parametrize("kinds", PAIRS, ids=pair_id)
def test_char_padding_is_one_rule(request: pytest.FixtureRequest, tmp_path: Path, kinds: tuple[str, str]) -> None:
    """CHAR(n) is compared with trailing blanks stripped, on both sides, whatever each side stores."""
    src, tgt = _pair(request, tmp_path, kinds)
    rows = [{"id": i, "c": v} for i, v in enumerate(CHARS, start=1)]
    run_sql(src, "CREATE TABLE c (id INTEGER PRIMARY KEY, c CHAR(5))", "INSERT INTO c VALUES (:id, :c)", params=rows)
    # the target pads every value to the full length (what PostgreSQL hands out for char(5))
    padded = [{"id": r["id"], "c": None if r["c"] is None else r["c"].ljust(5)} for r in rows]
    run_sql(tgt, "CREATE TABLE c (id INTEGER PRIMARY KEY, c CHAR(5))", "INSERT INTO c VALUES (:id, :c)", params=padded)
    assert independent_equal(src, tgt, "c", {1: "char"})
    result = diff_table(src, tgt, "c")
    assert result.equal, result.changed
    run_sql(tgt, "UPDATE c SET c = 'lead' WHERE id = 4")  # a leading blank is data
    assert not independent_equal(src, tgt, "c", {1: "char"})
    result = diff_table(src, tgt, "c")
    assert not result.equal and [c.key for c in result.changed] == [[4]]


@pytest.mark.parametrize("target_kind", ["sqlite", "postgresql", "mysql"])
def test_bit_is_compared_by_its_integer(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str, mysql_url: str
) -> None:
    """MySQL BIT(1)/BIT(8) copied anywhere: the check compares the column (never "counted only") and the
    verdict agrees with the bits read back as integers."""
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(
        mysql_url,
        "CREATE TABLE b (id INTEGER PRIMARY KEY, flag BIT(1), byte BIT(8))",
        "INSERT INTO b VALUES (1, b'0', b'01000001'), (2, b'1', b'0'), (3, NULL, b'11111111')",
    )
    out = run_copy(mysql_url, tgt, project)
    detail = " ".join(c.detail or "" for c in out.verification.tables)
    assert "counted only" not in detail
    try:
        identical = independent_equal(mysql_url, tgt, "b", {1: "bit", 2: "bit"})
    except Exception:  # the copy did not create or fill the table
        identical = False
    if not identical:
        # the only honest "passed": exactly the rows the target refused are missing, and said so
        if out.verification.ok:
            [check] = out.verification.tables
            assert check.rejects and check.source_rows == check.target_rows + check.rejects, check
            assert "rejected" in out.message
        assert not diff_table(mysql_url, tgt, "b").equal
        return
    result = diff_table(mysql_url, tgt, "b")
    assert result.equal, result
    assert out.ok and out.verification.ok, out.message


def test_bit_against_sqlite_bytes_and_text(tmp_path: Path, mysql_url: str) -> None:
    """What main's copy wrote into SQLite ('\\x00'/'\\x01' text) equals the bits; a changed bit is found."""
    run_sql(
        mysql_url, "CREATE TABLE b (id INTEGER PRIMARY KEY, flag BIT(1))", "INSERT INTO b VALUES (1, b'0'), (2, b'1')"
    )
    lite = f"sqlite:///{tmp_path / 'b.db'}"
    run_sql(
        lite, "CREATE TABLE b (id INTEGER PRIMARY KEY, flag TEXT)", "INSERT INTO b VALUES (1, char(0)), (2, char(1))"
    )
    assert independent_equal(mysql_url, lite, "b", {1: "bit"})
    assert diff_table(mysql_url, lite, "b").equal
    run_sql(lite, "UPDATE b SET flag = char(0) WHERE id = 2")
    result = diff_table(mysql_url, lite, "b")
    assert not result.equal and [c.key for c in result.changed] == [[2]]


DOCS = [
    {"b": 1, "a": [1, 2.5, "x"], "aa": {"z": None, "y": True}},
    {"name": "Zoë", "n": -0.5, "deep": {"k": [{"b": 2, "a": 1}]}},
    "scalar string",
    42,
    [],
    {},
    None,
]


def _json_table(url: str, kind: str) -> None:
    col = {"postgresql": "JSONB", "mysql": "JSON", "sqlite": "JSON"}[kind]
    rows = [{"id": i, "j": None if d is None else json.dumps(d)} for i, d in enumerate(DOCS, start=1)]
    run_sql(url, f"CREATE TABLE j (id INTEGER PRIMARY KEY, j {col})", "INSERT INTO j VALUES (:id, :j)", params=rows)


@pytest.mark.parametrize("kinds", PAIRS, ids=pair_id)
def test_json_is_compared_by_content(request: pytest.FixtureRequest, tmp_path: Path, kinds: tuple[str, str]) -> None:
    """jsonb reorders keys; the text on the other side does not: content decides, or the verdict says NOT compared."""
    src, tgt = _pair(request, tmp_path, kinds)
    _json_table(src, kinds[0])
    _json_table(tgt, kinds[1])
    assert independent_equal(src, tgt, "j", {1: "json"})
    result = diff_table(src, tgt, "j")
    if result.not_compared:
        assert {kinds[0], kinds[1]} == {"postgresql", "mysql"}, result.not_compared
        assert not result.equal and result.equal_on_compared
        assert result.not_compared[0].startswith("j ")
        return
    assert result.equal, result.changed
    changed = json.dumps({"b": 1, "a": [1, 2.5, "x"], "aa": {"z": None, "y": False}})
    run_sql(tgt, "UPDATE j SET j = :j WHERE id = 1", params=[{"j": changed}])
    assert not independent_equal(src, tgt, "j", {1: "json"})
    result = diff_table(src, tgt, "j")
    assert not result.equal and [c.key for c in result.changed] == [[1]]


@pytest.mark.parametrize("kinds", PAIRS, ids=pair_id)
def test_copy_of_json_verifies_by_content_or_names_the_column(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, kinds: tuple[str, str]
) -> None:
    """Before: the copy said "checksum match" (JSON counted only) and a diff then found most rows changed."""
    src, tgt = _pair(request, tmp_path, kinds)
    _json_table(src, kinds[0])
    out = run_copy(src, tgt, project)
    assert independent_equal(src, tgt, "j", {1: "json"})
    [check] = out.verification.tables
    result = diff_table(src, tgt, "j")
    if out.verification.not_compared:
        assert check.checksum == "partial" and "NOT compared: j.j" in out.message, out.message
        assert "verification passed" not in out.message
        assert result.not_compared and not result.equal
    else:
        assert check.checksum == "match" and out.ok, out.message
        assert "counted only" not in (check.detail or "")
        assert result.equal, result.changed
