"""validate's spot check on SQLite tables whose primary key holds NULLs (declared type not exactly INTEGER):
`key = NULL` names no row, so those rows are compared as a multiset of whole rows, never reported as
"missing on both sides" (a FAIL on identical data) and never skipped (a PASS on different data)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dmig.validate.load import parse_spec
from dmig.validate.runner import run_spec

DDL = "CREATE TABLE t (id BIGINT PRIMARY KEY, v TEXT)"
ROWS = [(None, "a"), (None, "b"), (None, "b"), (1, "x"), (2, "y")]


def _db(path: Path, rows: list[tuple[Any, str]]) -> str:
    url = f"sqlite:///{path}"
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql(DDL)
        for k, v in rows:
            conn.exec_driver_sql("INSERT INTO t VALUES (?, ?)", (k, v))
    eng.dispose()
    return url


def _spot(src: str, tgt: str) -> Any:
    check = {"name": "spot", "type": "spot_check", "table": "t", "key": ["id"]}
    spec = {"source": src, "target": tgt, "defaults": {"spot_rows": 50, "seed": 1}, "checks": [check]}
    [out] = run_spec(parse_spec(spec)).checks
    return out


def _independent(src: str, tgt: str) -> bool:
    def rows(url: str) -> list[tuple[Any, ...]]:
        eng = sa.create_engine(url)
        with eng.connect() as conn:
            out = sorted(conn.exec_driver_sql("SELECT id, v FROM t").all(), key=repr)
        eng.dispose()
        return out

    return rows(src) == rows(tgt)


def test_identical_null_keyed_rows_pass(tmp_path: Path) -> None:
    src, tgt = _db(tmp_path / "s.db", ROWS), _db(tmp_path / "t.db", list(reversed(ROWS)))
    assert _independent(src, tgt)
    out = _spot(src, tgt)
    assert out.status == "pass", out
    assert "NULL key equal as a multiset" in out.summary and out.figures["null_key_rows"] == {"source": 3, "target": 3}


def test_a_changed_or_missing_null_keyed_row_fails(tmp_path: Path) -> None:
    src = _db(tmp_path / "s.db", ROWS)
    changed = _db(tmp_path / "c.db", [(None, "a"), (None, "b"), (None, "c"), (1, "x"), (2, "y")])
    missing = _db(tmp_path / "m.db", [(None, "a"), (None, "b"), (1, "x"), (2, "y")])
    for tgt in (changed, missing):
        assert not _independent(src, tgt)
        out = _spot(src, tgt)
        assert out.status == "fail", out
        assert "without an equal row on the other side" in out.summary
