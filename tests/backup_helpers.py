"""Backup test fixtures: awkward tables on each dialect, file tampering, and shortcuts to the service."""

from __future__ import annotations

import datetime as dt
import os
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql

from dmig.backup import service
from dmig.backup.store import read_manifest

ROOT = "docs/migrations/backups"
DATETIME6 = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
TIME6 = sa.Time().with_variant(mysql.TIME(fsp=6), "mysql", "mariadb")
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

ROWS: list[dict[str, Any]] = [
    {
        "id": 1,
        "label": "",
        "body": "Ünïcödé ß 中文 😀 e\u0301",
        "amount": Decimal("12345678.1234"),
        "created_at": dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
        "day": dt.date(1999, 12, 31),
        "at": dt.time(23, 59, 59, 999999),
        "flag": True,
        "big": 9223372036854775807,
        "score": 0.1,
        "blob": b"\x00\xff|!\n",
        "doc": {"b": [1, 2], "a": None, "s": "quote ' \" \\"},
    },
    {
        "id": 2,
        "label": None,
        "body": None,
        "amount": None,
        "created_at": None,
        "day": None,
        "at": None,
        "flag": None,
        "big": None,
        "score": None,
        "blob": None,
        "doc": None,
    },
    {
        "id": 3,
        "label": "NULL",
        "body": "tab\tnew\nline |!",
        "amount": Decimal("-0.0001"),
        "created_at": dt.datetime(1970, 1, 1, 0, 0, 0, 1),
        "day": dt.date(2000, 2, 29),
        "at": dt.time(0, 0, 0, 1),
        "flag": False,
        "big": -9223372036854775808,
        "score": -2.5e-10,
        "blob": b"",
        "doc": [],
    },
    {
        "id": 4,
        "label": "trailing space ",
        "body": "",
        "amount": Decimal("0.0000"),
        "created_at": dt.datetime(2000, 1, 1),
        "day": dt.date(2024, 1, 1),
        "at": dt.time(12, 0),
        "flag": True,
        "big": 0,
        "score": 3.141592653589793,
        "blob": "😀".encode(),
        "doc": {"k": "v"},
    },
]


def metadata() -> sa.MetaData:
    md = sa.MetaData()
    sa.Table(
        "nasty",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("label", sa.String(100)),
        sa.Column("body", sa.Text),
        sa.Column("amount", sa.Numeric(20, 4)),
        sa.Column("created_at", DATETIME6),
        sa.Column("day", sa.Date),
        sa.Column("at", TIME6),
        sa.Column("flag", sa.Boolean),
        sa.Column("big", sa.BigInteger),
        sa.Column("score", sa.Double),
        sa.Column("blob", sa.LargeBinary),
        sa.Column("doc", JSON),
    )
    sa.Table(
        "child",
        md,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("nasty_id", sa.Integer, sa.ForeignKey("nasty.id")),
        sa.Column("note", sa.String(50)),
    )
    sa.Table("nokey", md, sa.Column("a", sa.Integer), sa.Column("b", sa.String(20)))
    return md


def create_tables(url: str, *, extra_rows: int = 0) -> list[str]:
    """nasty (every awkward value), child (FK to nasty), nokey (duplicates, no key)."""
    md = metadata()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            rows = list(ROWS) + [
                {"id": 100 + i, "label": f"row {i}", "body": "x" * (i % 7), "amount": Decimal(i) / 7}
                for i in range(extra_rows)
            ]
            conn.execute(md.tables["nasty"].insert(), [_fill(r) for r in rows])
            conn.execute(
                md.tables["child"].insert(),
                [{"id": i, "nasty_id": 1 + i % 4, "note": f"n{i}"} for i in range(1, 11)],
            )
            conn.execute(
                md.tables["nokey"].insert(), [{"a": 1, "b": "dup"}, {"a": 1, "b": "dup"}, {"a": None, "b": ""}]
            )
    finally:
        engine.dispose()
    return ["child", "nasty", "nokey"]


def _fill(row: dict[str, Any]) -> dict[str, Any]:
    cols = ["label", "body", "amount", "created_at", "day", "at", "flag", "big", "score", "blob", "doc"]
    return {c: row.get(c) for c in ["id", *cols]}


def run_sql(url: str, *statements: str) -> None:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for s in statements:
                conn.exec_driver_sql(s)
    finally:
        engine.dispose()


def root(project: Path) -> Path:
    return project / ROOT


def take(project: Path, url: str, **kw: Any) -> Any:
    return service.take_backup(root(project), url, project_dir=project, **kw)


def verify(project: Path, backup_id: str, url: str | None = None) -> Any:
    return service.verify_backup(root(project), backup_id, url)


def restore_confirm(project: Path, backup_id: str, url: str, tables: list[str] | None = None) -> str:
    """The confirm token of a restore, from its dry run (the only place it is shown)."""
    preview = service.restore_tables(project, backup_id, url, confirm=None, tables=tables, dry_run=True)
    assert preview.dry_run and preview.confirm_token
    return preview.confirm_token


def manifest(project: Path, backup_id: str) -> Any:
    return read_manifest(root(project) / backup_id)[0]


def table_file(project: Path, backup_id: str, table: str) -> Path:
    entry = manifest(project, backup_id).table(table)
    return root(project) / backup_id / entry.file


def flip_bytes(path: Path, offset_from_end: int = 40) -> None:
    data = bytearray(path.read_bytes())
    pos = max(len(data) - offset_from_end, len(data) // 2)
    for i in range(pos, min(pos + 4, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def modes(folder: Path) -> tuple[set[int], set[int]]:
    """(file modes, directory modes) under ``folder``, the folder included."""
    files, dirs = set(), {stat.S_IMODE(folder.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(folder):
        dirs |= {stat.S_IMODE(os.stat(os.path.join(dirpath, d)).st_mode) for d in dirnames}
        files |= {stat.S_IMODE(os.stat(os.path.join(dirpath, f)).st_mode) for f in filenames}
    return files, dirs
