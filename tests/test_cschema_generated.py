"""Generated columns stay generated: verbatim within a dialect, translated (and tried on the target) across."""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import run_copy
from cschema_helpers import PAIRS, databases, generated_columns, rows, run_sql

DDL = {
    "postgresql": "CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED, t text)",
    "mysql": "CREATE TABLE g (id int PRIMARY KEY, a int, b int AS (a * 2) STORED, t text, c int AS (a + 1) VIRTUAL)",
    "sqlite": "CREATE TABLE g (id integer PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED, t text, "
    "c int AS (a + 1))",
}


@pytest.mark.parametrize(("source", "target"), PAIRS)
def test_generated_columns_are_carried_generated(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, source: str, target: str
) -> None:
    src, tgt = databases(request, tmp_path, source, target)
    run_sql(src, DDL[source], "INSERT INTO g (id, a, t) VALUES (1, 1, 'x'), (2, 5, 'y'), (3, NULL, NULL)")

    out = run_copy(src, tgt, project)

    assert out.ok, out.model_dump_json(indent=1)
    assert not [o for o in out.not_carried if o.kind == "generated column"], out.not_carried
    kept = generated_columns(tgt, "g")
    assert "b" in kept and (source == "postgresql" or "c" in kept), kept
    if source == target:
        assert kept == generated_columns(src, "g")
    assert rows(tgt, "SELECT id, a, b FROM g ORDER BY id") == [(1, 1, 2), (2, 5, 10), (3, None, None)]
    run_sql(tgt, "INSERT INTO g (id, a, t) VALUES (4, 21, 'z')")  # the target computes it itself
    assert rows(tgt, "SELECT b FROM g WHERE id = 4") == [(42,)]


def test_a_generated_column_the_target_cannot_compute_is_loaded_plain_and_named(
    pg_url: str, mysql_url: str, project: Path
) -> None:
    run_sql(
        pg_url,
        "CREATE FUNCTION twice(x int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT x * 2'",
        "CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (twice(a)) STORED)",
        "INSERT INTO g (id, a) VALUES (1, 1), (2, 5)",
    )

    out = run_copy(pg_url, mysql_url, project)

    assert out.ok, out.model_dump_json(indent=1)
    [gone] = [o for o in out.not_carried if o.kind == "generated column"]
    assert gone.name == "b" and "plain column" in gone.reason
    assert "function" in {o.kind for o in out.not_carried}  # twice() itself is listed, not copied
    assert generated_columns(mysql_url, "g") == {}
    assert rows(mysql_url, "SELECT id, a, b FROM g ORDER BY id") == [(1, 1, 2), (2, 5, 10)]


def test_appending_into_a_users_table_loads_a_column_it_stores(pg_url: str, pg_url2: str, project: Path) -> None:
    """The target table is the user's and stores ``b``: the source's values go into it (it is not computed there)."""
    run_sql(pg_url, DDL["postgresql"], "INSERT INTO g (id, a) VALUES (1, 1), (2, 5)")
    run_sql(pg_url2, "CREATE TABLE g (id int PRIMARY KEY, a int, b int, t text)")

    out = run_copy(pg_url, pg_url2, project, mode="append")

    assert out.ok, out.model_dump_json(indent=1)
    assert rows(pg_url2, "SELECT id, a, b FROM g ORDER BY id") == [(1, 1, 2), (2, 5, 10)]
