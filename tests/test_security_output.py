"""Hostile text in what dmig shows and runs (issues 12.10 and 20.6).

- A native SQLite backup's schema SQL is checked before it runs (a tampered file cannot plant a
  trigger, a view, an ATTACH or anything but the manifest's table and its indexes).
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from backup_helpers import create_tables, manifest, root, take
from dmig.backup import native, restore
from dmig.db.urls import parse_url
from dmig.errors import CorruptFile

# --- native SQLite restore: the schema SQL from the backup file ---------------------------------

TAMPER = {
    "trigger": [
        "CREATE TABLE sentinel_keep (id INTEGER)",
        "CREATE TRIGGER evil AFTER INSERT ON nasty BEGIN DELETE FROM sentinel; END",
    ],
    "trigger_on_insert_elsewhere": [
        "CREATE TRIGGER evil2 BEFORE INSERT ON nasty BEGIN INSERT INTO sentinel VALUES (666); END",
    ],
    "view_instead_of_table": [
        "ALTER TABLE nasty RENAME TO nasty_real",
        "CREATE VIEW nasty AS SELECT * FROM nasty_real",
    ],
    "index_sql_rewritten_to_attach": [
        "CREATE INDEX ix_evil ON nasty (label)",
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET sql = 'ATTACH DATABASE ''{outside}'' AS x' WHERE name = 'ix_evil'",
    ],
    "table_sql_rewritten_to_trigger": [
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET sql = 'CREATE TRIGGER t2 AFTER INSERT ON sentinel BEGIN DELETE FROM sentinel; END'"
        " WHERE name = 'nasty' AND type = 'table'",
    ],
    "index_sql_rewritten_to_other_table": [
        "CREATE INDEX ix_evil ON nasty (label)",
        "PRAGMA writable_schema = ON",
        "UPDATE sqlite_master SET sql = 'CREATE INDEX ix_evil ON sentinel (id)' WHERE name = 'ix_evil'",
    ],
}


def _tamper(project: Path, backup_id: str, statements: list[str]) -> None:
    packed = root(project) / backup_id / native.SQLITE_FILE
    with gzip.open(packed, "rb") as fin:
        data = fin.read()
    work = packed.with_suffix(".work")
    work.write_bytes(data)
    con = sqlite3.connect(work)
    try:
        for sql in statements:
            con.execute(sql)
        con.commit()
    finally:
        con.close()
    with open(work, "rb") as fin, gzip.open(packed, "wb") as fout:
        shutil.copyfileobj(fin, fout)
    work.unlink()


def _tree(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


@pytest.mark.parametrize("scratch", [True, False], ids=["scratch", "real"])
@pytest.mark.parametrize("attack", sorted(TAMPER))
def test_tampered_sqlite_backup_schema_is_refused(tmp_path: Path, project: Path, attack: str, scratch: bool) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    create_tables(src)
    backup_id = take(project, src, fmt="native", tables=["nasty"]).manifest.backup_id
    outside = tmp_path / "outside.db"
    _tamper(project, backup_id, [s.replace("{outside}", str(outside)) for s in TAMPER[attack]])

    target_path = tmp_path / "target.db"
    con = sqlite3.connect(target_path)
    con.execute("CREATE TABLE sentinel (id INTEGER)")
    con.execute("INSERT INTO sentinel VALUES (1), (2)")
    con.commit()
    con.close()
    before = _tree(tmp_path)
    target = restore.Target(parse_url(f"sqlite:///{target_path}"), "sqlite", None, scratch)
    with pytest.raises(CorruptFile) as err:  # refused before any of the file's SQL runs
        restore.restore(root(project) / backup_id, manifest(project, backup_id), target, ["nasty"], None)
    assert "refused" in err.value.message or "integrity" in err.value.message or "SQLite" in err.value.message
    con = sqlite3.connect(target_path)
    try:
        assert con.execute("SELECT id FROM sentinel ORDER BY id").fetchall() == [(1,), (2,)]
        schema = con.execute("SELECT type, name FROM sqlite_master WHERE name <> 'sentinel'").fetchall()
        assert not [row for row in schema if row[0] in ("trigger", "view")], schema
        assert con.execute("PRAGMA database_list").fetchall()[1:] == []
    finally:
        con.close()
    assert not outside.exists()
    assert _tree(tmp_path) - before <= {str(target_path) + "-journal"}


def test_clean_sqlite_native_backup_still_restores_table_and_indexes(tmp_path: Path, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    create_tables(src)
    eng = sa.create_engine(src)
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE INDEX ix_label ON nasty (lower(label)) WHERE id > 1")
        conn.exec_driver_sql("CREATE UNIQUE INDEX ix_big ON nasty (big)")
    eng.dispose()
    backup_id = take(project, src, fmt="native").manifest.backup_id
    target_path = tmp_path / "target.db"
    target = restore.Target(parse_url(f"sqlite:///{target_path}"), "sqlite", None, True)
    out = restore.restore(
        root(project) / backup_id, manifest(project, backup_id), target, ["child", "nasty", "nokey"], None
    )
    assert {t: o.error for t, o in out.items()} == {"child": None, "nasty": None, "nokey": None}
    assert out["nasty"].rows == 4
    con = sqlite3.connect(target_path)
    names = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    con.close()
    assert {"ix_label", "ix_big"} <= names
    assert os.path.exists(target_path)
