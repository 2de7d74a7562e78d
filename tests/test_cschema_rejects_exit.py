"""A copy that rejected rows does not succeed (exit 1, ok false) unless the user set a reject budget."""

from __future__ import annotations

import json
from pathlib import Path

from copy_helpers import cli
from cschema_helpers import run_sql


def _source(tmp_path: Path) -> str:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    run_sql(
        src,
        "CREATE TABLE nums (id integer PRIMARY KEY, n integer)",
        "INSERT INTO nums VALUES (1, 1), (2, 'not a number'), (3, 3)",  # SQLite keeps the text; PostgreSQL refuses
    )
    return src


def test_rejected_rows_fail_the_copy_without_a_budget(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _source(tmp_path)

    text = cli(project, "copy", src, pg_url)

    assert text.returncode == 1, text.stdout + text.stderr
    assert "1 row(s) rejected and no reject budget was set" in text.stdout
    assert "FAILED: 1 row(s) rejected, the budget is 0" in text.stdout


def test_a_reject_budget_lets_the_copy_succeed_and_says_so(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _source(tmp_path)

    out = cli(project, "copy", src, pg_url, "--max-rejects", "1", "--json")

    assert out.returncode == 0, out.stdout + out.stderr
    summary = json.loads(out.stdout)
    assert summary["ok"] and summary["totals"]["rejects"] == 1 and summary["max_rejects"] == 1
    assert "within max_rejects=1" in summary["message"]
