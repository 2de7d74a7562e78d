"""CHECK constraints and views are carried on every pair (translated with sqlglot across dialects and proven
on the target); triggers and routines are named, not copied."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copy_helpers import cli, dialect, run_copy
from cschema_helpers import PAIRS, databases, fails, rows, run_sql

TABLE = {
    "postgresql": "CREATE TABLE g (id int PRIMARY KEY, a int, t varchar(20), CONSTRAINT ck_a_positive CHECK (a > 0))",
    "mysql": "CREATE TABLE g (id int PRIMARY KEY, a int, t varchar(20), CONSTRAINT ck_a_positive CHECK (a > 0))",
    "sqlite": "CREATE TABLE g (id integer PRIMARY KEY, a int, t varchar(20), CONSTRAINT ck_a_positive CHECK (a > 0))",
}
TRIGGER = {
    "postgresql": [
        "CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        "CREATE TRIGGER g_touch BEFORE UPDATE ON g FOR EACH ROW EXECUTE FUNCTION touch()",
    ],
    "mysql": ["CREATE TRIGGER g_touch BEFORE UPDATE ON g FOR EACH ROW SET NEW.a = NEW.a"],
    "sqlite": ["CREATE TRIGGER g_touch AFTER UPDATE ON g BEGIN SELECT 1; END"],
}


def _checks(url: str) -> list[str]:
    d = dialect(url)
    if d == "postgresql":
        found = rows(
            url, "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'c' AND conrelid = 'g'::regclass"
        )
        assert all(valid for _n, valid in found)
        return sorted(n for n, _v in found)
    if d == "mysql":
        return [
            n
            for (n,) in rows(
                url,
                "SELECT CONSTRAINT_NAME FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"
                " AND TABLE_NAME = 'g' ORDER BY 1",
            )
        ]
    sql = rows(url, "SELECT sql FROM sqlite_master WHERE name = 'g'")[0][0]
    return ["ck_a_positive"] if "ck_a_positive" in sql and "CHECK" in sql.upper() else []


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_checks_and_views_are_carried_and_triggers_named(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, source: str, target: str
) -> None:
    src, tgt = databases(request, tmp_path, source, target)
    run_sql(
        src,
        TABLE[source],
        "INSERT INTO g VALUES (1, 1, 'one'), (2, 5, 'five'), (3, 9, NULL)",
        "CREATE VIEW big AS SELECT id, a FROM g WHERE a > 1",
        "CREATE VIEW bigger AS SELECT id FROM big WHERE a > 6",  # depends on the first view
        *TRIGGER[source],
    )

    out = run_copy(src, tgt, project)

    assert out.ok, out.model_dump_json(indent=1)
    assert _checks(tgt) == ["ck_a_positive"]
    assert fails(tgt, "INSERT INTO g VALUES (10, -1, 'neg')")
    assert rows(tgt, "SELECT id, a FROM big ORDER BY id") == [(2, 5), (3, 9)]
    assert rows(tgt, "SELECT id FROM bigger") == [(3,)]
    assert not [o for o in out.not_carried if o.kind in ("check", "view")], out.not_carried
    assert ("trigger", "g_touch") in {(o.kind, o.name) for o in out.not_carried}


def test_the_cli_names_what_is_not_carried(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    run_sql(src, TABLE["sqlite"], "INSERT INTO g VALUES (1, 1, 'one')", *TRIGGER["sqlite"])

    text = cli(project, "copy", src, pg_url)
    assert text.returncode == 0, text.stdout + text.stderr
    assert "not carried over (1):" in text.stdout and "trigger g.g_touch: not copied" in text.stdout

    js = cli(project, "copy", src, pg_url, "--json")
    out = json.loads(js.stdout)
    assert [(o["kind"], o["name"]) for o in out["not_carried"]] == [("trigger", "g_touch")]


def test_a_check_the_rows_break_is_named_not_silently_dropped(tmp_path: Path, pg_url: str, project: Path) -> None:
    """SQLite accepts a check on rows that were already there (added through a rebuilt schema); PostgreSQL's
    VALIDATE finds the violating row, and the check is listed with the reason."""
    src = f"sqlite:///{tmp_path / 'src.db'}"
    run_sql(src, "CREATE TABLE g (id integer PRIMARY KEY, a int, CONSTRAINT ck_a_positive CHECK (a > 0))")
    run_sql(src, "PRAGMA ignore_check_constraints = 1")
    e_sql = "INSERT INTO g VALUES (1, 1), (2, -2)"
    import sqlite3

    con = sqlite3.connect(tmp_path / "src.db")
    con.execute("PRAGMA ignore_check_constraints = 1")
    con.execute(e_sql)
    con.commit()
    con.close()

    out = run_copy(src, pg_url, project)

    [gone] = [o for o in out.not_carried if o.kind == "check"]
    assert gone.name == "ck_a_positive" and "not kept" in gone.reason, gone
    assert _checks(pg_url) == []
    assert rows(pg_url, "SELECT count(*) FROM g") == [(2,)]


def test_views_are_not_made_on_the_users_tables(tmp_path: Path, pg_url: str, project: Path) -> None:
    """Append mode loads into the user's table: the user's own view of that name is neither checked nor dropped."""
    src = f"sqlite:///{tmp_path / 'src.db'}"
    run_sql(src, TABLE["sqlite"], "INSERT INTO g VALUES (1, 1, 'one')", "CREATE VIEW big AS SELECT id FROM g")
    run_sql(pg_url, TABLE["postgresql"], "CREATE VIEW big AS SELECT id, t FROM g")

    out = run_copy(src, pg_url, project, mode="append")

    assert out.ok, out.model_dump_json(indent=1)
    assert rows(pg_url, "SELECT id, t FROM big") == [(1, "one")]  # still the user's view, with its two columns
