"""MariaDB's ``ON UPDATE CURRENT_TIMESTAMP`` is kept within MariaDB and named across (its default kept)."""

from __future__ import annotations

from pathlib import Path

from copy_helpers import run_copy
from cschema_helpers import rows, run_sql

TABLE = (
    "CREATE TABLE t (id int PRIMARY KEY, v int, "
    "changed timestamp NOT NULL DEFAULT current_timestamp() ON UPDATE current_timestamp())"
)


def test_on_update_is_kept_within_mariadb(mysql_url: str, mysql_url2: str, project: Path) -> None:
    run_sql(mysql_url, TABLE, "INSERT INTO t (id, v) VALUES (1, 1)")

    out = run_copy(mysql_url, mysql_url2, project)

    assert out.ok, out.model_dump_json(indent=1)
    query = (
        "SELECT EXTRA FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't' "
        "AND COLUMN_NAME = 'changed'"
    )
    assert "on update" in rows(mysql_url2, query)[0][0].lower()
    assert not out.not_carried


def test_on_update_is_named_across_and_the_default_kept(mysql_url: str, pg_url: str, project: Path) -> None:
    run_sql(mysql_url, TABLE, "INSERT INTO t (id, v) VALUES (1, 1)")

    out = run_copy(mysql_url, pg_url, project)

    assert out.ok, out.model_dump_json(indent=1)
    [gone] = out.not_carried
    assert (gone.kind, gone.name) == ("on update", "changed") and "ON UPDATE" in gone.reason.upper()
    default = rows(
        pg_url,
        "SELECT column_default FROM information_schema.columns WHERE table_name = 't' AND column_name = 'changed'",
    )
    assert "CURRENT_TIMESTAMP" in str(default[0][0]).upper()
