"""Index kinds beyond a B-tree on plain columns: carried within their dialect, named (never rebuilt as a
B-tree that fails on long values) across."""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import run_copy
from cschema_helpers import rows, run_sql

LONG = "word " * 2000  # 10 KB: beyond InnoDB's 3072-byte key and PostgreSQL's ~2.7 KB B-tree entry


def _mysql_source(url: str) -> None:
    run_sql(
        url,
        "CREATE TABLE docs (id int PRIMARY KEY, body text, title varchar(200), FULLTEXT KEY ft_body (body), "
        "KEY pre_title (title(10)))",
        f"INSERT INTO docs VALUES (1, '{LONG}', 'a long title'), (2, 'short', 'b')",
    )


def test_fulltext_and_prefix_indexes_are_kept_within_mariadb(mysql_url: str, mysql_url2: str, project: Path) -> None:
    _mysql_source(mysql_url)

    out = run_copy(mysql_url, mysql_url2, project)

    assert out.ok, out.model_dump_json(indent=1)
    found = rows(
        mysql_url2,
        "SELECT INDEX_NAME, INDEX_TYPE, SUB_PART FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
        "AND TABLE_NAME = 'docs' AND INDEX_NAME <> 'PRIMARY' ORDER BY 1",
    )
    assert found == [("ft_body", "FULLTEXT", None), ("pre_title", "BTREE", 10)]
    assert rows(mysql_url2, "SELECT id FROM docs WHERE MATCH(body) AGAINST ('word')") == [(1,)]


@pytest.mark.parametrize("target", ["pg_url", "sqlite"])
def test_fulltext_is_named_not_rebuilt_as_btree_across(
    request: pytest.FixtureRequest, tmp_path: Path, mysql_url: str, project: Path, target: str
) -> None:
    tgt = f"sqlite:///{tmp_path / 't.db'}" if target == "sqlite" else request.getfixturevalue(target)
    _mysql_source(mysql_url)

    out = run_copy(mysql_url, tgt, project)

    assert out.ok, out.model_dump_json(indent=1)
    gone = {(o.name, o.reason.split(":")[0]) for o in out.not_carried if o.kind == "index"}
    assert gone == {("ft_body", "FULLTEXT index"), ("pre_title", "prefix-length index")}
    assert rows(tgt, "SELECT length(body) FROM docs WHERE id = 1") == [(len(LONG),)]


PG_INDEXES = [
    "CREATE INDEX docs_fts ON docs USING gin (to_tsvector('simple', body))",
    "CREATE INDEX docs_open ON docs (id) WHERE NOT closed",
    "CREATE INDEX docs_lower ON docs (lower(title))",
]


def test_gin_partial_and_expression_indexes_are_kept_within_postgresql(
    pg_url: str, pg_url2: str, project: Path
) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE docs (id int PRIMARY KEY, body text, title text, closed boolean NOT NULL DEFAULT false)",
        f"INSERT INTO docs VALUES (1, '{LONG}', 'T', false), (2, 'short', 'u', true)",
        *PG_INDEXES,
    )

    out = run_copy(pg_url, pg_url2, project)

    assert out.ok, out.model_dump_json(indent=1)
    assert not [o for o in out.not_carried if o.kind == "index"], out.not_carried
    query = (
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'docs' AND indexname <> 'docs_pkey' ORDER BY 1"
    )
    assert rows(pg_url2, query) == rows(pg_url, query)


def test_postgresql_index_kinds_are_named_across(pg_url: str, mysql_url: str, project: Path) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE docs (id int PRIMARY KEY, body text, title text, closed boolean NOT NULL DEFAULT false)",
        "INSERT INTO docs VALUES (1, 'x', 'T', false)",
        *PG_INDEXES,
    )

    out = run_copy(pg_url, mysql_url, project)

    assert out.ok, out.model_dump_json(indent=1)
    gone = {o.name: o.reason.split(":")[0] for o in out.not_carried if o.kind == "index"}
    assert gone == {"docs_fts": "expression index", "docs_open": "partial index", "docs_lower": "expression index"}
