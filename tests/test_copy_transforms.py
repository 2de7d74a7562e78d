"""Column mapping: rename, cast, split, concat, default, constant, drop, source-side expressions, filters."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from copy_helpers import database, engine, make_people, read_rows, run_copy
from dmig.errors import InvalidInput

MAPPING = {
    "people": {
        "target_table": "customers",
        "exclude_columns": ["avatar"],
        "filter": [
            {"column": "id", "op": "le", "value": 300},
            {"column": "status", "op": "in", "value": ["new", "active"]},
        ],
        "transforms": [
            {"op": "rename", "column": "note", "to": "remark"},
            {"op": "split", "column": "user_name", "into": ["first_name", "last_name"]},
            {"op": "concat", "columns": ["last_name", "first_name"], "into": "sort_name", "separator": ", "},
            {"op": "cast", "column": "amount", "to": "text"},
            {"op": "cast", "column": "active", "to": "integer"},
            {"op": "default", "column": "remark", "value": "(none)"},
            {"op": "constant", "column": "origin", "value": "legacy-crm"},
            {"op": "drop", "column": "payload"},
            {
                "op": "expr",
                "into": "amount_cents",
                "type": "decimal(24,2)",
                "expr": {"fn": "mul", "args": [{"col": "amount"}, {"lit": 100}]},
            },
            {"op": "expr", "into": "shout", "type": "text", "expr": {"fn": "upper", "args": [{"col": "status"}]}},
        ],
    }
}


@pytest.mark.parametrize("target", ["postgresql", "mysql", "sqlite"])
def test_transforms_build_the_target_columns(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, target: str
) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 400)
    tgt = database(request, tmp_path, target, "tgt")

    out = run_copy(src, tgt, project, mapping=MAPPING, batch_size=64)

    assert out.ok, out.model_dump_json(indent=1)
    [t] = out.tables
    source = {r["id"]: r for r in read_rows(src) if r["id"] <= 300 and r["status"] in ("new", "active")}
    assert t.target_table == "customers" and t.rows == len(source) and t.rejects == 0
    rows = read_rows(tgt, "customers")
    assert len(rows) == len(source)
    assert "avatar" not in rows[0] and "payload" not in rows[0] and "user_name" not in rows[0]
    for row in rows:
        s = source[int(row["id"])]
        parts = s["user_name"].split(" ", 1)
        assert row["first_name"] == parts[0]
        assert row["last_name"] == (parts[1] if len(parts) > 1 else None)
        assert row["sort_name"] == ", ".join(p for p in (row["last_name"], row["first_name"]) if p is not None)
        assert row["remark"] == ("(none)" if s["note"] is None else s["note"])
        assert Decimal(row["amount"]) == s["amount"]  # amount is now text
        assert row["active"] in (None, 0, 1) and (row["active"] is None) == (s["active"] is None)
        assert row["origin"] == "legacy-crm"
        assert Decimal(row["amount_cents"]) == (s["amount"] * 100).quantize(Decimal("0.01"))
        assert row["shout"] == s["status"].upper()
    e = engine(tgt)
    cols = {c["name"]: c for c in sa.inspect(e).get_columns("customers")}
    e.dispose()
    assert cols["remark"]["nullable"] is False  # a default makes the column NOT NULL
    assert isinstance(cols["amount"]["type"], sa.String | sa.Text)
    # Counts verify (filtered source rows == target rows); the key survived so the checksum ran on the
    # columns copied unchanged under the same name.
    [check] = out.verification.tables
    assert check.counts_match and check.checksum == "match"


def test_cast_failures_are_rejected_rows_not_errors(tmp_path: Path, project: Path) -> None:
    src, tgt = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'tgt.db'}"
    e = engine(src)
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE m (id INTEGER PRIMARY KEY, qty TEXT, born DATE)")
        conn.exec_driver_sql("INSERT INTO m VALUES (1, '10', '2020-01-01'), (2, 'ten', '2020-01-02')")
        conn.exec_driver_sql("INSERT INTO m VALUES (3, '3', '2021-02-30'), (4, '4.0', '2022-03-04')")
    e.dispose()
    out = run_copy(
        src,
        tgt,
        project,
        max_rejects=2,
        mapping={"m": {"transforms": [{"op": "cast", "column": "qty", "to": "integer"}]}},
    )
    assert out.ok and out.tables[0].rows == 2 and out.tables[0].rejects == 2
    got = {r["id"]: r["qty"] for r in read_rows(tgt, "m")}
    assert got == {1: 10, 4: 4}
    lines = (project / out.reject_file).read_text()
    assert "not an integer: 'ten'" in lines and "invalid date: '2021-02-30'" in lines


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ({"t": {"transforms": [{"op": "rename", "column": "nope", "to": "x"}]}}, "does not exist"),
        ({"t": {"transforms": [{"op": "rename", "column": "a", "to": "b"}]}}, "already exists"),
        ({"t": {"transforms": [{"op": "cast", "column": "a", "to": "varchar"}]}}, "unknown type"),
        ({"t": {"transforms": [{"op": "default", "column": "a", "value": "abc"}]}}, "not an integer"),
        ({"t": {"filter": [{"column": "zz", "op": "eq", "value": 1}]}}, "has no column"),
        (
            {"t": {"transforms": [{"op": "expr", "into": "x", "type": "text", "expr": {"fn": "pg_read_file"}}]}},
            "unknown function",
        ),
        (
            {"t": {"transforms": [{"op": "expr", "into": "x", "type": "text", "expr": {"sql": "1; DROP"}}]}},
            "unknown expression",
        ),
        ({"t": {"exclude_columns": ["ghost"]}}, "has no column"),
    ],
)
def test_bad_mappings_fail_before_anything_moves(tmp_path: Path, project: Path, mapping: dict, message: str) -> None:
    src, tgt = f"sqlite:///{tmp_path / 'src.db'}", tmp_path / "tgt.db"
    e = engine(src)
    with e.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, a INTEGER, b TEXT)")
    e.dispose()
    with pytest.raises(InvalidInput, match=message):
        run_copy(src, f"sqlite:///{tgt}", project, mapping=mapping)
    assert not tgt.exists() or "t" not in sa.inspect(sa.create_engine(f"sqlite:///{tgt}")).get_table_names()
