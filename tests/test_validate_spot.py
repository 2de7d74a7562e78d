"""Spot checks and row counts across dialect pairs, through a split-column mapping."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dmig.validate.load import parse_spec
from dmig.validate.runner import ValidationRun, run_spec
from validate_helpers import CHANGED_ID, MISSING_ID, plant_pair

SPLIT = {
    "first_name": {"split_part": {"column": "user_name", "sep": " ", "index": 1}},
    "last_name": {"split_part": {"column": "user_name", "sep": " ", "index": 2, "rest": True}},
}
MERGED = [{"name": "user_name", "source": "user_name", "target": {"concat": ["first_name", {"lit": " "}, "last_name"]}}]


def run(source: str, target: str, checks: list[dict[str, Any]], seed: int = 7) -> ValidationRun:
    spec = {"source": source, "target": target, "defaults": {"spot_rows": 10, "seed": seed}, "checks": checks}
    return run_spec(parse_spec(spec))


def assert_split_mapping_finds_exactly_the_planted_differences(source: str, target: str) -> None:
    plant_pair(source, target)
    checks = [
        {
            "name": "split",
            "type": "spot_check",
            "table": "people",
            "key": ["id"],
            "keys": [CHANGED_ID, MISSING_ID],
            "edge_columns": ["balance"],
            "recent": {"column": "created_at", "rows": 2},
            "columns": SPLIT,
        },
        {"name": "merged", "type": "spot_check", "table": "people", "key": ["id"], "compare": MERGED,
         "include_common": False, "keys": [CHANGED_ID], "random": 0, "edges": False},
        {"name": "clean", "type": "spot_check", "table": "people", "key": ["id"], "columns": SPLIT,
         "where": [{"column": "id", "op": "not in", "value": [CHANGED_ID, MISSING_ID]}]},
    ]  # fmt: skip
    result = run(source, target, checks)
    split, merged, clean = result.checks
    assert split.status == "fail", split
    assert split.figures["fields"] == ["first_name", "last_name", "email", "balance", "active", "created_at"]
    assert split.figures["missing_in_target"] == 1 and split.figures["field_mismatches"] == {"last_name": 1}
    by_key = {m["key"]["id"]: m for m in split.sample}
    assert set(by_key) == {CHANGED_ID, MISSING_ID}
    assert by_key[CHANGED_ID]["fields"] == {"last_name": {"source": f"Family{CHANGED_ID}", "target": "Changed"}}
    assert by_key[MISSING_ID]["problem"] == "missing in target"
    assert "named" in by_key[MISSING_ID]["chosen_as"]
    assert {1, 40} <= set(split.figures["keys_chosen"])  # min/max key and min/max balance edges
    full = {"source": f"Given{CHANGED_ID} Family{CHANGED_ID}", "target": f"Given{CHANGED_ID} Changed"}
    assert merged.sample == [{"key": {"id": CHANGED_ID}, "chosen_as": ["named"], "fields": {"user_name": full}}]
    assert clean.status == "pass" and clean.figures["rows_compared"] >= 10  # 10.50 == 10.5, True == 1
    assert all(q.on in ("source", "target") for q in split.queries)


def test_sqlite_to_postgresql(sqlite_url: str, pg_url: str) -> None:
    assert_split_mapping_finds_exactly_the_planted_differences(sqlite_url, pg_url)


def test_postgresql_to_mariadb(pg_url: str, mysql_url: str) -> None:
    assert_split_mapping_finds_exactly_the_planted_differences(pg_url, mysql_url)


def test_mariadb_to_sqlite(mysql_url: str, sqlite_url: str) -> None:
    assert_split_mapping_finds_exactly_the_planted_differences(mysql_url, sqlite_url)


def test_same_seed_picks_the_same_rows_on_every_dialect(
    sqlite_url: str, pg_url: str, mysql_url: str, tmp_path: Path
) -> None:
    plant_pair(sqlite_url, pg_url)
    plant_pair(mysql_url, f"sqlite:///{tmp_path / 'second_target.db'}")  # a MariaDB copy of the same source
    checks = [{"type": "spot_check", "table": "people", "key": ["id"], "columns": SPLIT, "edges": False}]
    chosen = []
    for src in (sqlite_url, mysql_url):
        [check] = run(src, pg_url, checks, seed=11).checks
        chosen.append(check.figures["keys_chosen"])
    [again] = run(sqlite_url, pg_url, checks, seed=11).checks
    [other] = run(sqlite_url, pg_url, checks, seed=12).checks
    assert chosen[0] == chosen[1] == again.figures["keys_chosen"] and len(chosen[0]) >= 8
    assert other.figures["keys_chosen"] != chosen[0]


def test_positional_sampling_for_text_keys(sqlite_url: str, pg_url: str) -> None:
    plant_pair(sqlite_url, pg_url)
    checks = [{"type": "spot_check", "table": "people", "key": ["email"], "compare": MERGED, "include_common": False}]
    [check] = run(sqlite_url, pg_url, checks).checks
    assert check.figures["rows_chosen"] == 12  # 10 random positions + min/max key
    assert any("row_number() OVER" in q.sql for q in check.queries)
    assert check.figures["missing_in_target"] == int(f"p{MISSING_ID}@example.test" in check.figures["keys_chosen"])


def test_row_count_tolerance_absolute_and_percent(sqlite_url: str, pg_url: str) -> None:
    plant_pair(sqlite_url, pg_url)  # 40 rows vs 39
    checks = [
        {"name": "exact", "type": "row_count", "tables": ["people"]},
        {"name": "abs", "type": "row_count", "tables": ["people"], "tolerance": {"absolute": 1}},
        {"name": "pct_ok", "type": "row_count", "tables": ["people"], "tolerance": {"percent": 2.5}},
        {"name": "pct_low", "type": "row_count", "tables": ["people"], "tolerance": {"percent": 2.0}},
        {"name": "scoped", "type": "row_count", "tables": [{"table": "people", "where": [
            {"column": "id", "op": "between", "value": [10, 20]}]}]},
        {"name": "renamed", "type": "row_count", "tables": [{"source_table": "people", "target_table": "nope"}]},
    ]  # fmt: skip
    c = {r.name: r for r in run(sqlite_url, pg_url, checks).checks}
    assert c["exact"].status == "fail" and c["exact"].figures == {
        "source": 40,
        "target": 39,
        "difference": -1,
        "allowed": 0,
    }
    assert c["abs"].status == "pass" and c["pct_ok"].status == "pass"
    assert c["pct_low"].status == "fail" and c["pct_low"].figures["allowed"] == 0
    assert c["scoped"].status == "pass" and c["scoped"].figures["source"] == 11
    assert c["renamed"].status == "error" and "'nope'" in c["renamed"].error.message
