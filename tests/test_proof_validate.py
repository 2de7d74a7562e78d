"""validate's spot check uses the same comparison rules as the diff (issue 14, items 3, 5 and 6):
CHAR(n) unpadded, JSON by content (a jsonb scalar string equals the same JSON text), bits by integer,
and a join table (every column in the key) is checked by key presence instead of "nothing to compare".
Each verdict is checked against a plain read of both sides compared in Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dmig.diff import diff_table
from dmig.validate.load import parse_spec
from dmig.validate.runner import run_spec
from proof_helpers import PAIRS, db, independent_equal, pair_id, run_sql


def _spot(source: str, target: str, table: str, key: list[str], **extra: Any) -> Any:
    check = {"name": "spot", "type": "spot_check", "table": table, "key": key, **extra}
    spec = {"source": source, "target": target, "defaults": {"spot_rows": 50, "seed": 3}, "checks": [check]}
    [out] = run_spec(parse_spec(spec)).checks
    return out


@pytest.fixture(params=PAIRS, ids=pair_id)
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    return db(request, tmp_path, request.param[0], "source"), db(request, tmp_path, request.param[1], "target")


def test_char_padding_agrees_with_diff(pair: tuple[str, str]) -> None:
    src, tgt = pair
    rows = [{"id": i, "c": v} for i, v in enumerate(["ab", "", "x y", None, "abcde"], start=1)]
    padded = [{"id": r["id"], "c": None if r["c"] is None else r["c"].ljust(5)} for r in rows]
    run_sql(src, "CREATE TABLE c (id INTEGER PRIMARY KEY, c CHAR(5))", "INSERT INTO c VALUES (:id, :c)", params=rows)
    run_sql(tgt, "CREATE TABLE c (id INTEGER PRIMARY KEY, c CHAR(5))", "INSERT INTO c VALUES (:id, :c)", params=padded)
    assert independent_equal(src, tgt, "c", {1: "char"})
    out = _spot(src, tgt, "c", ["id"])
    assert out.status == "pass", out
    assert diff_table(src, tgt, "c").equal
    run_sql(tgt, "UPDATE c SET c = 'ac' WHERE id = 1")
    out = _spot(src, tgt, "c", ["id"])
    assert out.status == "fail" and out.figures["field_mismatches"] == {"c": 1}, out


def test_join_table_is_checked_by_key_presence(pair: tuple[str, str]) -> None:
    src, tgt = pair
    ddl = "CREATE TABLE link (a INTEGER NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (a, b))"
    rows = [{"a": a, "b": b} for a in range(1, 6) for b in range(1, 4)]
    run_sql(src, ddl, "INSERT INTO link VALUES (:a, :b)", params=rows)
    run_sql(tgt, ddl, "INSERT INTO link VALUES (:a, :b)", params=rows)
    out = _spot(src, tgt, "link", ["a", "b"])
    assert out.status == "pass", out
    assert "key presence" in out.summary and out.figures["rows_compared"] == 15
    run_sql(tgt, "DELETE FROM link WHERE a = 5 AND b = 3")
    out = _spot(src, tgt, "link", ["a", "b"])
    assert out.status == "fail" and out.figures["missing_in_target"] == 1, out


DOCS = ["scalar string", {"b": 1, "a": [1, 2.5]}, 42, [True, None], {"é": {"y": 1, "x": 2}}]


def test_json_scalar_string_equals_the_same_json_text(pair: tuple[str, str]) -> None:
    """One side a JSON column (jsonb on PostgreSQL), the other the document's text in a TEXT column."""
    src, tgt = pair
    kind = {"postgresql": "JSONB", "mysql": "JSON", "sqlite": "JSON"}[
        "postgresql" if src.startswith("postgresql") else "mysql" if src.startswith("mysql") else "sqlite"
    ]
    rows = [{"id": i, "j": json.dumps(d)} for i, d in enumerate(DOCS, start=1)]
    run_sql(src, f"CREATE TABLE j (id INTEGER PRIMARY KEY, j {kind})", "INSERT INTO j VALUES (:id, :j)", params=rows)
    run_sql(tgt, "CREATE TABLE j (id INTEGER PRIMARY KEY, j TEXT)", "INSERT INTO j VALUES (:id, :j)", params=rows)
    assert independent_equal(src, tgt, "j", {1: "json"})
    out = _spot(src, tgt, "j", ["id"])
    assert out.status == "pass", out
    run_sql(tgt, "UPDATE j SET j = :j WHERE id = 1", params=[{"j": json.dumps("other string")}])
    out = _spot(src, tgt, "j", ["id"])
    assert out.status == "fail" and out.figures["field_mismatches"] == {"j": 1}, out
