"""The diff benchmark's building blocks at a tiny size: the data generator's loaders and planting, found by diff."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# bench/ is a folder of scripts at the repository root, not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import datagen
from bench.diff_bench import markdown

from dmig.diff import diff_table


@pytest.mark.parametrize("target", ["pg_url", "mysql_url"])
def test_loaders_and_planting_round_trip(
    request: pytest.FixtureRequest, sqlite_url: str, target: str, tmp_path: Path
) -> None:
    tgt = request.getfixturevalue(target)
    datagen.load(sqlite_url, 300, seed=5)
    report = datagen.load(tgt, 300, seed=5, cache_dir=tmp_path)
    assert report.rows == {"users": 300, "orders": 600}
    assert diff_table(sqlite_url, tgt, "users").equal
    assert diff_table(sqlite_url, tgt, "orders").equal
    planted = datagen.plant(tgt, 9, 300, seed=5)
    result = diff_table(sqlite_url, tgt, "users")
    assert sorted(k[0] for k in result.missing_in_target) == planted.missing
    assert sorted(k[0] for k in result.extra_in_target) == planted.extra
    assert {c.key[0]: c.columns for c in result.changed} == planted.changed


def test_results_section_renders() -> None:
    ours = {
        "wall_median": 2.0,
        "inner_median": 1.5,
        "rss_mib": 70,
        "found_planted_exactly": True,
        "columns_right": True,
    }
    report = {
        "args": {"rows": 1000, "seed": 42, "plant": "9"},
        "machine": {k: "x" for k in ("date", "nproc", "memory", "cpu", "load", "python", "postgresql", "mariadb")}
        | {"reladiff": "0.6.0"},
        "load": {"postgresql source": [{"seconds": 1.0}]},
        "planted": {9: {"missing": [1], "extra": [2], "changed": {3: ["balance"]}}},
        "floor": {"pg->pg": {"both": 1.0, "source": 0.5, "target": 0.6}},
        "runs": [{"pair": "pg->pg", "differences": 3, "ours": ours, "reladiff": {**ours, "wall_median": 4.0}}],
    }
    text = markdown(report, ["--rows", "1000"])
    assert "| pg->pg | 3 | 2.00 | 1.50 | 4.00 | 2.00× | 1.00 | 1.50× | 70 | 70 | yes |" in text
