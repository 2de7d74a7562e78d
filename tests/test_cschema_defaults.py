"""One column default the target refuses fails neither the copy nor the other tables: it is named and left out."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from copy_helpers import engine, run_copy


def _source(path: Path) -> str:
    url = f"sqlite:///{path}"
    e = sa.create_engine(url)
    with e.begin() as conn:
        conn.exec_driver_sql(
            """CREATE TABLE bad (id INTEGER PRIMARY KEY, n BIGINT DEFAULT '"0"', m INTEGER DEFAULT 7)"""
        )
        conn.exec_driver_sql("CREATE TABLE good (id INTEGER PRIMARY KEY, v TEXT DEFAULT 'x')")
        conn.exec_driver_sql("INSERT INTO bad (id, n) VALUES (1, 5), (2, NULL)")
        conn.exec_driver_sql("INSERT INTO good VALUES (1, 'a'), (2, 'b')")
    e.dispose()
    return url


@pytest.mark.parametrize("target", ["pg_url", "mysql_url"])
def test_a_default_the_target_refuses_is_reported_and_the_rest_copied(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target: str
) -> None:
    tgt = request.getfixturevalue(target)
    out = run_copy(_source(tmp_path / "src.db"), tgt, project)

    assert out.ok, out.model_dump_json(indent=1)
    bad = next(t for t in out.tables if t.table == "bad")
    assert any("n" in n and '"0"' in n for n in bad.notes), bad.notes
    e = engine(tgt)
    try:
        with e.connect() as conn:
            assert conn.execute(sa.text("SELECT id, n FROM bad ORDER BY id")).all() == [(1, 5), (2, None)]
            assert conn.execute(sa.text("SELECT id, v FROM good ORDER BY id")).all() == [(1, "a"), (2, "b")]
        columns = {c["name"]: c.get("default") for c in sa.inspect(e).get_columns("bad")}
        assert columns["n"] is None and "7" in str(columns["m"])  # only the refused default is left out
    finally:
        e.dispose()
