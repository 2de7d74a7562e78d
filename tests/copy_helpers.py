"""Test data for ``copy``: a table of awkward values per dialect, and a canonical row reader to compare sides.

The ``people`` table carries what breaks naive copy tools: NULLs everywhere, unicode beyond the
BMP, tabs/newlines/backslashes/quotes and a literal ``\\N``, decimals at full scale, microsecond
timestamps, aware timestamps, booleans (MySQL ``tinyint(1)``), JSON, blobs with NUL and escape
bytes, MariaDB unsigned integers above the signed range, enums, and MySQL zero dates.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import sqlalchemy as sa
from mcp import Client

from dmig.context import RunContext
from dmig.db.urls import dialect_of, parse_url
from dmig.move.models import CopyRequest, CopySummary
from dmig.move.service import copy_database
from mcp_client import dmig_executable, result_payload, server_params

NAMES = [
    "Ann Smith",
    "Zoë Ångström",
    "李 小龙",
    "🙂 Émoji Face",
    "O'Brien \\ \t tab\nnew line",
    "Solo",
    "Jean Paul Sartre",
]
STATUSES = ["new", "active", "closed"]
ZERO_DATE_EVERY = 100


def dialect(url: str) -> str:
    return dialect_of(parse_url(url))


def engine(url: str) -> sa.Engine:
    e = sa.create_engine(parse_url(url))
    d = dialect(url)
    if d == "mysql":
        sa.event.listen(e, "connect", lambda c, _r: c.cursor().execute("SET time_zone = '+00:00'"))
    elif d == "postgresql":
        sa.event.listen(e, "connect", lambda c, _r: c.execute("SET TIME ZONE 'UTC'"))
    return e


def person(i: int, d: str) -> dict[str, Any]:
    """Row ``i`` of the people table as canonical Python values (before per-dialect storage)."""
    scale = "{:04d}" if d == "sqlite" else "{:06d}"
    whole = i * 123 if d == "sqlite" else i * 1234567
    frac = scale.format(i % (10_000 if d == "sqlite" else 1_000_000))
    amount = Decimal(f"{'-' if i % 5 == 0 else ''}{whole}.{frac}")
    note = None if i % 7 == 0 else "" if i % 11 == 0 else "\\N" if i % 13 == 0 else f"note {i}; DROP TABLE x; --"
    if i % 50 == 0:
        note = "long " + "x" * 5000
    row = {
        "id": i,
        "user_name": f"{NAMES[i % len(NAMES)]} {i}" if i % 7 != 5 else NAMES[i % len(NAMES)],
        "note": note,
        "amount": amount,
        "ratio": None if i % 9 == 0 else i / 7.0,
        "active": None if i % 17 == 0 else i % 3 == 0,
        "created_at": dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i * 37, microseconds=(i * 7919) % 1_000_000),
        "birthday": dt.date(1970 + i % 50, 1 + i % 12, 1 + i % 28),
        "payload": None if i % 10 == 0 else {"i": i, "tags": ["a", "ü"], "nested": {"x": None, "q": "\"'\\"}},
        "avatar": None if i % 8 == 0 else bytes([i % 256, 0, 9, 10, 92, 255]),
        "status": STATUSES[i % 3],
    }
    if d != "sqlite":
        row["updated_at"] = dt.datetime(2023, 6, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i, microseconds=i)
    if d == "mysql":
        row["counter"] = 4_000_000_000 + i
        row["big"] = 18_000_000_000_000_000_000 + i
    return row


_DDL = {
    "postgresql": [
        "CREATE TYPE people_status AS ENUM ('new', 'active', 'closed')",
        """CREATE TABLE people (
            id BIGSERIAL PRIMARY KEY, user_name VARCHAR(100) NOT NULL, note TEXT, amount NUMERIC(18,6),
            ratio DOUBLE PRECISION, active BOOLEAN, created_at TIMESTAMP(6), birthday DATE, payload JSONB,
            avatar BYTEA, status people_status NOT NULL DEFAULT 'new', updated_at TIMESTAMPTZ)""",
        "CREATE INDEX ix_people_name ON people (user_name)",
        "CREATE UNIQUE INDEX ux_people_created ON people (created_at)",
    ],
    "mysql": [
        """CREATE TABLE people (
            id INT UNSIGNED AUTO_INCREMENT PRIMARY KEY, user_name VARCHAR(100) NOT NULL, note TEXT,
            amount DECIMAL(18,6), ratio DOUBLE, active TINYINT(1), created_at DATETIME(6), birthday DATE,
            payload JSON, avatar LONGBLOB, status ENUM('new','active','closed') NOT NULL DEFAULT 'new',
            updated_at TIMESTAMP(6) NULL, counter INT UNSIGNED, big BIGINT UNSIGNED,
            KEY ix_people_name (user_name), UNIQUE KEY ux_people_created (created_at))""",
    ],
    "sqlite": [
        """CREATE TABLE people (
            id INTEGER PRIMARY KEY AUTOINCREMENT, user_name VARCHAR(100) NOT NULL, note TEXT, amount DECIMAL(12,4),
            ratio REAL, active BOOLEAN, created_at DATETIME, birthday DATE, payload JSON, avatar BLOB,
            status VARCHAR(10) NOT NULL DEFAULT 'new' CHECK (status IN ('new','active','closed')))""",
        "CREATE INDEX ix_people_name ON people (user_name)",
        "CREATE UNIQUE INDEX ux_people_created ON people (created_at)",
    ],
}


def _stored(row: dict[str, Any], d: str) -> dict[str, Any]:
    out = dict(row)
    out["payload"] = None if row["payload"] is None else json.dumps(row["payload"], ensure_ascii=False)
    if d == "sqlite":
        out["created_at"] = row["created_at"].strftime("%Y-%m-%d %H:%M:%S.%f")
        out["birthday"] = row["birthday"].isoformat()
        out["amount"] = str(row["amount"])
        out["active"] = None if row["active"] is None else int(row["active"])
    if d == "mysql":
        out["updated_at"] = row["updated_at"].replace(tzinfo=None)
        if row["id"] % ZERO_DATE_EVERY == 0:
            out["birthday"] = "0000-00-00"
    return out


def make_people(url: str, n: int = 2000, start: int = 1) -> None:
    """Create (when start == 1) and fill the people table on ``url``."""
    d = dialect(url)
    e = engine(url)
    rows = [_stored(person(i, d), d) for i in range(start, start + n)]
    cols = list(rows[0])
    with e.begin() as conn:
        if d == "mysql":
            conn.exec_driver_sql("SET SESSION sql_mode = ''")  # allows the zero dates
        if start == 1:
            for ddl in _DDL[d]:
                conn.exec_driver_sql(ddl)
        stmt = sa.text(f"INSERT INTO people ({', '.join(cols)}) VALUES ({', '.join(':' + c for c in cols)})")
        conn.execute(stmt, rows)
    e.dispose()


def canon(column: str, v: Any) -> Any:
    """One comparable form per value, whatever the dialect stored."""
    if v is None:
        return None
    if column == "active":
        return bool(v)
    if column == "payload":
        return json.loads(v) if isinstance(v, str | bytes) else v
    if column in ("created_at", "updated_at"):
        if isinstance(v, str):
            v = dt.datetime.fromisoformat(v)
        return v.astimezone(dt.UTC).replace(tzinfo=None) if v.tzinfo else v
    if column == "birthday":
        if isinstance(v, str):
            return "zero date" if v.startswith("0000") else dt.date.fromisoformat(v)
        return v
    if isinstance(v, memoryview | bytearray):
        return bytes(v)
    if isinstance(v, float):
        return Decimal(repr(v)).normalize()
    if isinstance(v, Decimal | int) and not isinstance(v, bool):
        return Decimal(v).normalize()
    if isinstance(v, str) and column in ("amount", "counter", "big"):
        return Decimal(v).normalize()
    return v


def read_rows(url: str, table: str = "people", order_by: str = "id") -> list[dict[str, Any]]:
    e = engine(url)
    with e.connect() as conn:
        t = sa.table(table)
        rows = conn.execute(sa.select(sa.text("*")).select_from(t).order_by(sa.column(order_by))).mappings().all()
    e.dispose()
    return [{k: canon(k, v) for k, v in r.items()} for r in rows]


def expected_people(source_url: str, n: int = 2000) -> list[dict[str, Any]]:
    """The source rows as the target must hold them (zero dates become NULL, documented)."""
    out = []
    for r in read_rows(source_url):
        if dialect(source_url) == "mysql" and r["id"] % ZERO_DATE_EVERY == 0:
            r["birthday"] = None
        out.append(r)
    return out


def run_copy(source: str, target: str, project: Path, **options: Any) -> CopySummary:
    events: list[tuple[float, float | None, str | None]] = []
    rc = RunContext(project_dir=project, progress=lambda d, t=None, m=None: events.append((d, t, m)))
    out = copy_database(CopyRequest(source_url=source, target_url=target, **options), rc)
    out.__dict__["_progress"] = events
    return out


def cli(project: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DMIG_PROJECT_DIR": str(project)}
    return subprocess.run(
        [dmig_executable(), *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=project
    )


def popen(project: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DMIG_PROJECT_DIR": str(project)}
    return subprocess.Popen(
        [dmig_executable(), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        cwd=project,
        start_new_session=True,
    )


def mcp_copy_with_progress(
    project: Path, arguments: dict[str, Any]
) -> tuple[dict[str, Any], list[tuple[float, Any, Any]]]:
    """Call ``copy`` over real stdio and collect the progress notifications the client receives."""
    events: list[tuple[float, Any, Any]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    async def run() -> dict[str, Any]:
        async with Client(server_params(project), read_timeout_seconds=300) as client:
            result = await client.call_tool("copy", arguments, progress_callback=on_progress)
            return result_payload(result)

    return anyio.run(run), events


def source_columns(url: str, table: str = "people") -> Iterator[str]:
    e = engine(url)
    try:
        yield from (c["name"] for c in sa.inspect(e).get_columns(table))
    finally:
        e.dispose()


def database(request: Any, tmp_path: Path, kind: str, name: str = "tgt") -> str:
    """A fresh database of ``kind``: a SQLite file named ``name``, or the pg_url / mysql_url fixture."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    return request.getfixturevalue({"postgresql": "pg_url", "mysql": "mysql_url"}[kind])


PYTHON = sys.executable


def planned_targets(src: str, tgt: str, project: Path) -> dict[str, Any]:
    """The copy's own plan of the target tables (``schema.TargetTable`` by source name), for calling a
    post-load step (index, key, foreign key builds) directly."""
    from dmig.move.service import _Copy

    req = CopyRequest(source_url=src, target_url=tgt)
    src_engine, tgt_engine = sa.create_engine(parse_url(src)), sa.create_engine(parse_url(tgt))
    try:
        run = _Copy(req, RunContext(project_dir=project), parse_url(src), parse_url(tgt), src_engine, tgt_engine)
        return {e.name: e.target for e in run._plan()}
    finally:
        src_engine.dispose()
        tgt_engine.dispose()


def run_records(project: Path) -> list[Path]:
    """The record files of the finished copies of ``project`` (their checkpoints, moved out of the target)."""
    return sorted((project / "docs" / "migrations" / "copies").glob("*.json"))


def recorded_checkpoints(project: Path, target: str | None = None) -> list[dict[str, Any]]:
    """The checkpoint rows of every finished copy of ``project`` (into ``target`` when given), as the target
    held them."""
    from dmig.db.urls import display_url

    shown = display_url(parse_url(target)) if target is not None else None
    out: list[dict[str, Any]] = []
    for path in run_records(project):
        record = json.loads(path.read_text())
        if shown is None or record.get("target") == shown:
            out += record["checkpoints"]
    return out


def edit_recorded_info(project: Path, part: int, edit: Any) -> None:
    """Change the info of partition ``part`` in the (single) finished copy's record: ``edit(info) -> None``."""
    [path] = run_records(project)
    data = json.loads(path.read_text())
    for row in data["checkpoints"]:
        if row["part"] == part:
            info = json.loads(row["info"])
            edit(info)
            row["info"] = json.dumps(info)
    path.write_text(json.dumps(data))
