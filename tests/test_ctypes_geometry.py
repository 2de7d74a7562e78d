"""Types SQLAlchemy does not know (geometry on MariaDB, PostgreSQL's geometric types) are carried (issue 14).

Within a dialect the column keeps its native type, read from the catalog (MariaDB COLUMN_TYPE,
PostgreSQL format_type), and its values; across dialects it becomes text: WKT (``ST_AsText``) from
MariaDB, PostgreSQL's own text form (``(1,2)``, ``<(0,0),1>`` ...) from PostgreSQL.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from copy_helpers import run_copy
from ctypes_helpers import DIALECTS, column_types, db, query, run_sql

MYSQL_SHAPES = {
    "p": "POINT(1 2)",
    "ls": "LINESTRING(0 0,1 1,2 0.5)",
    "poly": "POLYGON((0 0,4 0,4 4,0 4,0 0))",
    "g": "MULTIPOINT(1 1,2 2)",
}


@pytest.mark.mysql
@pytest.mark.parametrize("target_kind", DIALECTS)
def test_mysql_geometry(request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str) -> None:
    src = db(request, tmp_path, "mysql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(
        src,
        "CREATE TABLE shapes (id INT PRIMARY KEY, p POINT, ls LINESTRING, poly POLYGON, g GEOMETRY NOT NULL)",
        "INSERT INTO shapes VALUES (1, "
        + ", ".join(f"ST_GeomFromText('{w}', {4326 if c == 'p' else 0})" for c, w in MYSQL_SHAPES.items())
        + ")",
        "INSERT INTO shapes VALUES (2, NULL, NULL, NULL, ST_GeomFromText('POINT(-1.5 3e10)'))",
    )
    out = run_copy(src, tgt, project)
    [table] = out.tables
    assert table.state == "done" and table.rejects == 0 and table.rows == 2, out.model_dump_json(indent=1)
    if target_kind == "mysql":
        got = query(
            tgt,
            "SELECT id, ST_AsText(p), ST_SRID(p), ST_AsText(ls), ST_AsText(poly), ST_AsText(g) FROM shapes ORDER BY id",
        )
        want = query(
            src,
            "SELECT id, ST_AsText(p), ST_SRID(p), ST_AsText(ls), ST_AsText(poly), ST_AsText(g) FROM shapes ORDER BY id",
        )
        assert got == want
        types = column_types(tgt, "mysql", "shapes")
        assert (types["p"], types["ls"], types["poly"], types["g"]) == ("point", "linestring", "polygon", "geometry")
        return
    got = query(tgt, "SELECT id, p, ls, poly, g FROM shapes ORDER BY id")
    assert got == [(1, *MYSQL_SHAPES.values()), (2, None, None, None, "POINT(-1.5 30000000000)")]


PG_SHAPES = {
    "p": ("point", "(1,2)"),
    "ln": ("line", "{1,-1,0}"),
    "sg": ("lseg", "[(0,0),(1,1)]"),
    "bx": ("box", "(2,2),(0,0)"),
    "pa": ("path", "[(0,0),(1,1),(2,0)]"),
    "pg": ("polygon", "((0,0),(1,1),(1,0))"),
    "ci": ("circle", "<(0,0),1.5>"),
}


@pytest.mark.pg
@pytest.mark.parametrize("target_kind", DIALECTS)
def test_postgresql_geometric_types(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target_kind: str
) -> None:
    src = db(request, tmp_path, "postgresql", "source")
    tgt = db(request, tmp_path, target_kind, "target")
    cols = ", ".join(f"{c} {t}" for c, (t, _v) in PG_SHAPES.items())
    run_sql(
        src,
        f"CREATE TABLE shapes (id INT PRIMARY KEY, {cols})",
        "INSERT INTO shapes VALUES (1, " + ", ".join(f"'{v}'" for _t, v in PG_SHAPES.values()) + ")",
        "INSERT INTO shapes (id) VALUES (2)",
    )
    out = run_copy(src, tgt, project)
    [table] = out.tables
    assert table.state == "done" and table.rejects == 0 and table.rows == 2, out.model_dump_json(indent=1)
    names = ", ".join(f"{c}::text" if target_kind == "postgresql" else c for c in PG_SHAPES)
    got = query(tgt, f"SELECT id, {names} FROM shapes ORDER BY id")
    assert got == [(1, *[v for _t, v in PG_SHAPES.values()]), (2, *[None] * len(PG_SHAPES))]
    if target_kind == "postgresql":
        assert {c: t for c, t in column_types(tgt, "postgresql", "shapes").items() if c != "id"} == {
            c: t for c, (t, _v) in PG_SHAPES.items()
        }
