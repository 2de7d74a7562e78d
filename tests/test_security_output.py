"""Hostile text in what dmig shows and runs (issues 12.10 and 20.6).

- Control and bidi characters in names and values never reach the terminal raw; diff and inspect
  results carry the untrusted-data label (12.10).
- A native SQLite backup's schema SQL is checked before it runs (a tampered file cannot plant a
  trigger, a view, an ATTACH or anything but the manifest's table and its indexes).
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa

from backup_helpers import create_tables, manifest, root, take
from dmig.backup import native, restore
from dmig.db.urls import parse_url
from dmig.diff import diff_table
from dmig.errors import CorruptFile
from dmig.models import UNTRUSTED_NOTE
from dmig.render import has_unsafe, json_text, visible
from mcp_client import dmig_executable

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


# --- terminal escapes and data labels ----------------------------------------------------------

HOSTILE = [
    "\x1b[2J",  # clear screen
    "\x1b]0;pwned\x07",  # window title
    "a\rb",  # carriage return rewrites the line
    "\u202eevil",  # right-to-left override
    "\x9bc",  # C1 CSI
    "x\x7fy",  # DEL
    "\u2066iso\u2069",  # bidi isolate
    "\x08\x08back",  # backspaces
]
RAW = ["\x1b", "\x07", "\r", "\u202e", "\x9b", "\x7f", "\u2066", "\u2069", "\x08"]


@pytest.mark.parametrize("text", HOSTILE)
def test_visible_spells_out_every_active_character(text: str) -> None:
    shown = visible(text)
    assert not has_unsafe(shown) and not any(ch in shown for ch in RAW)
    assert visible("plain\ttext\nline") == "plain\ttext\nline"  # layout characters are kept


@pytest.mark.parametrize("text", HOSTILE)
def test_json_text_keeps_the_value_and_drops_the_raw_bytes(text: str) -> None:
    encoded = json_text(json.dumps({"v": text}, ensure_ascii=False))
    assert json.loads(encoded) == {"v": text}
    assert not any(ch in encoded for ch in RAW)


def _hostile_db(path: Path) -> str:
    con = sqlite3.connect(path)
    table = "t\x1b[2J\u202e"
    column = "c\x1b]0;title\x07"
    con.execute(f'CREATE TABLE "{table}" (id INTEGER PRIMARY KEY, "{column}" TEXT)')
    con.executemany(f'INSERT INTO "{table}" VALUES (?, ?)', list(enumerate(HOSTILE, start=1)))
    con.commit()
    con.close()
    return table


def _run(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [dmig_executable(), "--project-dir", str(project), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_inert(proc: subprocess.CompletedProcess[str]) -> None:
    for stream in (proc.stdout, proc.stderr):
        found = [repr(ch) for ch in RAW if ch in stream]
        assert not found, f"raw terminal characters {found} in output: {stream[:400]!r}"


@pytest.mark.parametrize("as_json", [False, True])
def test_cli_inspect_and_diff_print_hostile_names_and_values_inertly(project: Path, as_json: bool) -> None:
    src, tgt = project / "src.db", project / "tgt.db"
    table = _hostile_db(src)
    _hostile_db(tgt)
    con = sqlite3.connect(tgt)
    con.execute(f'UPDATE "{table}" SET "c\x1b]0;title\x07" = ? WHERE id = 1', ("\x1b[31mchanged\x1b[0m",))
    con.commit()
    con.close()
    extra = ["--json"] if as_json else []
    inspect = _run(project, "inspect", f"sqlite:///{src}", *extra)
    assert inspect.returncode == 0, inspect.stderr
    _assert_inert(inspect)
    if as_json:  # the JSON value keeps the real name; only its bytes on the terminal are inert
        assert any(t["name"] == table for t in json.loads(inspect.stdout)["tables"])
    else:
        assert "\\x1b" in inspect.stdout
    diff = _run(project, "diff", f"sqlite:///{src}", f"sqlite:///{tgt}", "--table", table, *extra)
    assert diff.returncode == 1, diff.stderr  # one row differs: found, and shown inertly
    _assert_inert(diff)
    bad = _run(project, "diff", f"sqlite:///{src}", f"sqlite:///{tgt}", "--table", "no\x1b[2Jsuch")
    assert bad.returncode == 2
    _assert_inert(bad)


def test_diff_result_labels_and_escapes_row_values(tmp_path: Path) -> None:
    src, tgt = tmp_path / "s.db", tmp_path / "t.db"
    table = _hostile_db(src)
    _hostile_db(tgt)
    con = sqlite3.connect(tgt)
    con.execute(f'UPDATE "{table}" SET "c\x1b]0;title\x07" = ? WHERE id = 2', ("\x1b[2Jgone",))
    con.commit()
    con.close()
    result = diff_table(f"sqlite:///{src}", f"sqlite:///{tgt}", table)
    dumped = result.model_dump(mode="json")
    assert dumped["note"] == UNTRUSTED_NOTE
    assert result.differences == 1
    text = json.dumps(dumped, ensure_ascii=False)
    assert "\x1b" not in text and "\\x1b" in text
