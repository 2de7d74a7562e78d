"""A finished, verified copy leaves no bookkeeping table in the user's schema (dmig_rejects only while it holds
rejected rows); the same command then still says "already complete", and a killed copy still resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copy_helpers import cli, run_copy
from cschema_helpers import DIALECTS, databases, rows, run_sql


def _tables(url: str, dialect: str) -> set[str]:
    if dialect == "postgresql":
        query = "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
    elif dialect == "mysql":
        query = "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()"
    else:
        query = "SELECT name FROM sqlite_master WHERE type = 'table'"
    return {n for (n,) in rows(url, query)}


@pytest.mark.parametrize("target", DIALECTS)
def test_a_finished_copy_leaves_no_bookkeeping_table(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target: str
) -> None:
    src, tgt = databases(request, tmp_path, "sqlite", target)
    run_sql(src, "CREATE TABLE t (id integer PRIMARY KEY, v text)", "INSERT INTO t VALUES (1, 'a'), (2, 'b')")

    out = run_copy(src, tgt, project)

    assert out.ok, out.model_dump_json(indent=1)
    assert _tables(tgt, target) == {"t"}
    assert "no bookkeeping table left" in out.bookkeeping
    again = run_copy(src, tgt, project)
    assert again.ok and again.already_complete and again.totals.rows == 2
    assert _tables(tgt, target) == {"t"}


def test_rejected_rows_keep_dmig_rejects_and_say_so(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    run_sql(src, "CREATE TABLE nums (id integer PRIMARY KEY, n integer)", "INSERT INTO nums VALUES (1, 1), (2, 'x')")

    out = cli(project, "copy", src, pg_url, "--max-rejects", "1")

    assert out.returncode == 0, out.stdout + out.stderr
    assert _tables(pg_url, "postgresql") == {"nums", "dmig_rejects"}
    assert "the target keeps dmig_rejects (rejected rows)" in out.stdout
    assert rows(pg_url, "SELECT count(*) FROM dmig_rejects") == [(1,)]


def test_a_dropped_target_is_copied_again_not_called_complete(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    run_sql(src, "CREATE TABLE t (id integer PRIMARY KEY)", "INSERT INTO t VALUES (1)")
    assert run_copy(src, pg_url, project).ok
    run_sql(pg_url, "DROP TABLE t")

    out = json.loads(cli(project, "copy", src, pg_url, "--json").stdout)

    assert out["ok"] and not out["already_complete"] and out["totals"]["rows_this_call"] == 1
