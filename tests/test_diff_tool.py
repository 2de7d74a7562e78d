"""The diff tool's edges: errors, options, read-only sessions, the report, the CLI and the MCP stdio path."""

from __future__ import annotations

import json
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from diff_helpers import execute, load, nasty_rows, nasty_table
from dmig.diff import diff_table
from dmig.diff.report import cell, to_markdown
from dmig.diff.sides import Side
from dmig.errors import ConnectionFailed, DatabaseError, InvalidInput, NotFound
from mcp_client import call, dmig_executable

UNREACHABLE = "postgresql://postgres@127.0.0.1:1/nothing"


def _pair(src: str, tgt: str, n: int = 60) -> list[dict]:
    rows = nasty_rows(n)
    load(src, nasty_table(), rows)
    load(tgt, nasty_table(), rows)
    return rows


def test_unknown_table_names_the_side(sqlite_url: str, pg_url: str) -> None:
    _pair(sqlite_url, pg_url)
    with pytest.raises(NotFound) as exc:
        diff_table(sqlite_url, pg_url, "nasty", target_table="nope")
    assert exc.value.details["side"] == "target" and "nope" in exc.value.message
    with pytest.raises(NotFound) as exc:
        diff_table(sqlite_url, pg_url, "absent")
    assert exc.value.details["side"] == "source"


def test_bad_key_and_columns_fail_clearly(sqlite_url: str, mysql_url: str) -> None:
    _pair(sqlite_url, mysql_url)
    execute(mysql_url, sa.text("ALTER TABLE nasty DROP COLUMN score"))
    with pytest.raises(InvalidInput, match="key column 'nope' does not exist on the source"):
        diff_table(sqlite_url, mysql_url, "nasty", key=["nope"])
    with pytest.raises(InvalidInput, match="exists on the source but not on the target"):
        diff_table(sqlite_url, mysql_url, "nasty", key=["score"])
    result = diff_table(sqlite_url, mysql_url, "nasty")
    assert result.equal and result.columns_only_in_source == ["score"] and "score" not in result.columns
    execute(mysql_url, sa.text("UPDATE nasty SET label = 'x' WHERE id = 1"))
    with pytest.raises(InvalidInput, match="not unique"):
        only_set = [{"column": "flag", "op": "is_not_null"}]
        diff_table(sqlite_url, mysql_url, "nasty", key=["flag"], where=only_set, **_tight())
    with pytest.raises(InvalidInput, match="NULL"):
        diff_table(sqlite_url, mysql_url, "nasty", key=["label"])


def test_unreachable_database_is_a_connection_error(sqlite_url: str) -> None:
    load(sqlite_url, nasty_table(), [])
    with pytest.raises(ConnectionFailed) as exc:
        diff_table(sqlite_url, UNREACHABLE, "nasty")
    assert exc.value.code == "E_CONNECTION"


def test_columns_subset_target_table_and_filter(pg_url: str, mysql_url: str) -> None:
    rows = nasty_rows(200)
    load(pg_url, nasty_table(), rows)
    load(mysql_url, nasty_table("nasty_v2"), rows)
    t = nasty_table("nasty_v2")
    execute(mysql_url, t.update().where(t.c.id.in_([4, 400])).values(label="changed", amount=Decimal("1.23")))
    whole = diff_table(pg_url, mysql_url, "nasty", target_table="nasty_v2")
    assert [c.key for c in whole.changed] == [[4], [400]]
    subset = diff_table(pg_url, mysql_url, "nasty", target_table="nasty_v2", columns=["amount"])
    assert subset.columns == ["id", "amount"] and [c.columns for c in subset.changed] == [["amount"], ["amount"]]
    untouched = diff_table(pg_url, mysql_url, "nasty", target_table="nasty_v2", columns=["score", "created_at"])
    assert untouched.equal
    filtered = diff_table(
        pg_url, mysql_url, "nasty", target_table="nasty_v2", where=[{"column": "id", "op": ">", "value": 100}]
    )
    assert [c.key for c in filtered.changed] == [[400]] and filtered.stats.rows_source == 166
    in_list = diff_table(
        pg_url,
        mysql_url,
        "nasty",
        target_table="nasty_v2",
        where=[{"column": "id", "op": "in", "value": [1, 4, 7]}, {"column": "label", "op": "is_not_null"}],
    )
    assert [c.key for c in in_list.changed] == [[4]]
    with pytest.raises(InvalidInput):
        diff_table(
            pg_url, mysql_url, "nasty", target_table="nasty_v2", where=[{"column": "id", "op": "in", "value": 3}]
        )
    with pytest.raises(InvalidInput):
        diff_table(
            pg_url, mysql_url, "nasty", target_table="nasty_v2", where=[{"column": "id; drop", "op": "=", "value": 1}]
        )


def test_hostile_identifiers_are_quoted(pg_url: str, mysql_url: str) -> None:
    name = 'we"ird`; tbl'
    table = sa.Table(
        name,
        sa.MetaData(),
        sa.Column("ké y", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("v'al", sa.Text),
    )
    rows = [{"ké y": i, "v'al": f"v{i}"} for i in range(50)]
    load(pg_url, table, rows)
    load(mysql_url, table, rows)
    execute(mysql_url, table.delete().where(table.c["ké y"] == 3))
    result = diff_table(pg_url, mysql_url, name)
    assert result.missing_in_target == [[3]] and result.key == ["ké y"]


def test_sessions_are_read_only(pg_url: str, mysql_url: str, sqlite_url: str) -> None:
    for url in (pg_url, mysql_url, sqlite_url):
        load(url, nasty_table(), nasty_rows(5))
        side = Side("source", url, "nasty", None, 1, 30)
        side.open()
        try:
            with pytest.raises(DatabaseError):
                side.submit(lambda conn, s=side: s.execute(conn, sa.text("DELETE FROM nasty"))).result()
        finally:
            side.close()
        assert diff_table(url, url, "nasty").stats.rows_source == 5


def test_statement_timeout(sqlite_url: str) -> None:
    load(sqlite_url, nasty_table(), nasty_rows(3000))
    with pytest.raises(DatabaseError, match="statement timeout"):
        diff_table(sqlite_url, sqlite_url, "nasty", statement_timeout_s=0.0001)


def test_threads_and_progress(pg_url: str, mysql_url: str) -> None:
    _pair(pg_url, mysql_url, 500)
    execute(mysql_url, sa.text("DELETE FROM nasty WHERE id IN (31, 301, 1201)"))
    seen: list[tuple[float, float | None]] = []
    result = diff_table(
        pg_url, mysql_url, "nasty", threads=3, progress=lambda d, t=None, m=None: seen.append((d, t)), **_tight()
    )
    assert result.missing_in_target == [[31], [301], [1201]] and result.stats.threads == 3
    assert seen and seen[-1][0] == seen[-1][1]


def _tight() -> dict:
    return {"segments": 4, "bisection_factor": 4, "download_threshold": 16}


def test_report_values_cannot_break_out() -> None:
    assert cell("a|b\n`x`") == '`` "a\\|b\\n`x`" ``'
    assert cell(None) == "NULL"


def _dmig(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dmig_executable(), "--project-dir", str(project), *args], capture_output=True, text=True, timeout=120
    )


def test_cli_json_and_exit_codes(project: Path, sqlite_url: str, pg_url: str) -> None:
    _pair(sqlite_url, pg_url)
    same = _dmig(project, "diff", sqlite_url, pg_url, "--table", "nasty", "--json")
    assert same.returncode == 0, same.stderr
    assert json.loads(same.stdout)["equal"] is True
    execute(pg_url, sa.text("DELETE FROM nasty WHERE id IN (1, 7)"), sa.text("UPDATE nasty SET big = 5 WHERE id = 4"))
    differs = _dmig(project, "diff", sqlite_url, pg_url, "--table", "nasty", "--key", "id", "--limit", "10", "--json")
    assert differs.returncode == 1, differs.stderr
    doc = json.loads(differs.stdout)
    assert doc["missing_in_target"] == [[1], [7]] and doc["changed"][0]["key"] == [4]
    text = _dmig(project, "diff", sqlite_url, pg_url, "--table", "nasty")
    assert text.returncode == 1 and "missing in target" in text.stdout and "[7]" in text.stdout
    broken = _dmig(project, "diff", sqlite_url, UNREACHABLE, "--table", "nasty", "--json")
    assert broken.returncode == 2 and json.loads(broken.stdout)["error"]["code"] == "E_CONNECTION"
    missing = _dmig(project, "diff", sqlite_url, pg_url, "--table", "ghost", "--json")
    assert missing.returncode == 2 and json.loads(missing.stdout)["error"]["code"] == "E_NOT_FOUND"


def test_mcp_stdio_diff_and_report(project: Path, sqlite_url: str, mysql_url: str) -> None:
    _pair(sqlite_url, mysql_url)
    execute(mysql_url, sa.text("UPDATE nasty SET label = 'evil | `x` \n# heading' WHERE id = 10"))
    args = {"source_url": sqlite_url, "target_url": "env:DMIG_DIFF_TARGET", "table": "nasty"}
    env = {"DMIG_DIFF_TARGET": mysql_url}
    plain, with_report, bad = call(
        project,
        [("diff", args), ("diff", {**args, "report": True}), ("diff", {**args, "limitt": 3})],
        env=env,
    )
    assert plain["equal"] is False and plain["changed"][0]["key"] == [10] and plain["report_path"] is None
    report = project / with_report["report_path"]
    assert report.is_file() and report.parent == project / "docs/migrations/reports"
    text = report.read_text()
    assert "\n# heading" not in text and "evil \\|" in text
    assert bad["error"]["code"] == "E_INVALID_INPUT"
    (ro,) = call(project, [("diff", {**args, "report": True})], "--read-only", env=env)
    assert ro["error"]["code"] == "E_READ_ONLY"
    (ro_plain,) = call(project, [("diff", args)], "--read-only", env=env)
    assert ro_plain["changed_count"] == 1


def test_markdown_report_structure(sqlite_url: str) -> None:
    load(sqlite_url, nasty_table(), nasty_rows(20))
    result = diff_table(sqlite_url, sqlite_url, "nasty")
    md = to_markdown(result)
    assert md.startswith("# Diff report:") and "| result | equal |" in md
