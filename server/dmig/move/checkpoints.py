"""Checkpoints and rejects, kept in the TARGET database in the same transaction as the rows.

``dmig_checkpoints`` has one row per (run, table, partition) with the partition's key range and
the last key committed, plus one table-level row (partition -1) with the table's state. Each
batch UPDATEs its partition row *conditionally on the version it read* before writing rows, in
the same transaction: a killed process leaves either the batch and its checkpoint, or neither,
and a second process working the same partition (a zombie worker of a killed run) finds the
version moved and stops instead of writing duplicates. ``dmig_rejects`` holds rejected rows the
same way, so a re-run never counts a reject twice; the JSONL reject file is exported from it.

Both tables are the copy's, not the user's: once a run is complete and verified (``finish``) its
checkpoint rows move to a record file in the project (``docs/migrations/copies/<run>.json``), which
makes the same command say "already complete" (and verify again) later, and the tables are dropped
when nothing is left in them; ``dmig_rejects`` stays only while it holds rejected rows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Engine

from dmig.fsutil import atomic_write_text
from dmig.move.rawconn import RawConn, execute_plain, table_sql
from dmig.move.typemap import Kind
from dmig.move.values import jsonable

TABLE_PART = -1  # the table-level state row
LONG_TEXT = sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def _tables(schema: str | None) -> tuple[sa.Table, sa.Table]:
    md = sa.MetaData(schema=schema)
    checkpoints = sa.Table(
        "dmig_checkpoints",
        md,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("table_name", sa.String(255), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("lo_key", sa.Text),
        sa.Column("hi_key", sa.Text),
        sa.Column("last_key", sa.Text),
        sa.Column("row_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("byte_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("reject_count", sa.BigInteger, nullable=False, default=0),
        sa.Column("info", LONG_TEXT),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False, default=0),
        sa.Column("updated_at", sa.String(40), nullable=False),
    )
    rejects = sa.Table(
        "dmig_rejects",
        md,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("table_name", sa.String(255), primary_key=True),
        sa.Column("part", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("key_json", sa.Text),
        sa.Column("row_json", LONG_TEXT),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    return checkpoints, rejects


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def encode_key(values: tuple[Any, ...] | list[Any] | None) -> str | None:
    return None if values is None else json.dumps([jsonable(v) for v in values], ensure_ascii=False)


def decode_key(text: str | None, kinds: list[Kind]) -> tuple[Any, ...] | None:
    """Back to driver-bindable values of the key's kinds."""
    if text is None:
        return None
    raw = json.loads(text)
    out = []
    for v, k in zip(raw, kinds, strict=True):
        if v is None or not isinstance(v, str):
            out.append(v)
        elif k.name == "decimal":
            out.append(Decimal(v))
        elif k.name == "datetime":
            out.append(dt.datetime.fromisoformat(v))
        elif k.name == "date":
            out.append(dt.date.fromisoformat(v))
        elif k.name == "bytes" and v.startswith("\\x"):
            out.append(bytes.fromhex(v[2:]))
        else:
            out.append(v)
    return tuple(out)


@dataclass
class PartState:
    table: str
    part: int
    lo_key: str | None
    hi_key: str | None
    last_key: str | None
    rows: int
    bytes: int
    rejects: int
    info: dict[str, Any] = field(default_factory=dict)
    state: str = "pending"
    version: int = 0

    @property
    def done(self) -> bool:
        return self.state == "done"


class Store:
    """Checkpoint and reject bookkeeping for one run in one target database."""

    def __init__(self, engine: Engine, run_id: str, schema: str | None = None, record: Path | None = None) -> None:
        self.engine = engine
        self.run_id = run_id
        self.checkpoints, self.rejects = _tables(schema)
        self.record = record  # where a finished run's checkpoints are kept (coordinator only)

    def ensure(self) -> None:
        with self.engine.begin() as conn:
            self.checkpoints.create(conn, checkfirst=True)
            self.rejects.create(conn, checkfirst=True)

    def load(self) -> dict[str, dict[int, PartState]]:
        """This run's state: from the target while it runs, from the record file once it finished."""
        c = self.checkpoints.c
        with self.engine.connect() as conn:
            rows: list[Any] = list(conn.execute(sa.select(self.checkpoints).where(c.run_id == self.run_id)).mappings())
        if not rows:
            rows = self.recorded()
        out: dict[str, dict[int, PartState]] = {}
        for r in rows:
            out.setdefault(r["table_name"], {})[r["part"]] = PartState(
                table=r["table_name"],
                part=r["part"],
                lo_key=r["lo_key"],
                hi_key=r["hi_key"],
                last_key=r["last_key"],
                rows=int(r["row_count"]),
                bytes=int(r["byte_count"]),
                rejects=int(r["reject_count"]),
                info=json.loads(r["info"]) if r["info"] else {},
                state=r["state"],
                version=int(r["version"]),
            )
        return out

    def forget(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.delete(self.checkpoints).where(self.checkpoints.c.run_id == self.run_id))
            conn.execute(sa.delete(self.rejects).where(self.rejects.c.run_id == self.run_id))
        if self.record is not None:
            self.record.unlink(missing_ok=True)

    def recorded(self) -> list[dict[str, Any]]:
        """The checkpoint rows of a finished run, from its record file (none when there is no record)."""
        if self.record is None or not self.record.is_file():
            return []
        try:
            data = json.loads(self.record.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return []  # unreadable: as if the run had never finished (the target decides what happens next)
        if not isinstance(data, dict) or data.get("run_id") != self.run_id:
            return []
        return [r for r in data.get("checkpoints", []) if isinstance(r, dict)]

    def in_target(self) -> bool:
        """Whether this run's checkpoints are (still) in the target rather than in the record file."""
        c = self.checkpoints.c
        with self.engine.connect() as conn:
            stmt = sa.select(sa.literal(1)).select_from(self.checkpoints).where(c.run_id == self.run_id).limit(1)
            return conn.execute(stmt).first() is not None

    def finish(self, target: str = "") -> None:
        """The run is complete and verified: its checkpoints move to the record file, out of the user's
        schema (``target``: the target's URL, password masked, says whose run it was). The file is written
        first, so a kill in between leaves the rows in both places (the target's win on the next run) and
        never in neither."""
        if self.record is None:
            return
        c = self.checkpoints.c
        with self.engine.connect() as conn:
            rows = [
                dict(r) for r in conn.execute(sa.select(self.checkpoints).where(c.run_id == self.run_id)).mappings()
            ]
        if rows:
            self.record.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(
                self.record, json.dumps({"run_id": self.run_id, "target": target, "checkpoints": rows}, default=str)
            )
            with self.engine.begin() as conn:
                conn.execute(sa.delete(self.checkpoints).where(c.run_id == self.run_id))

    def tidy(self) -> list[str]:
        """Drop the bookkeeping tables that hold no row of any run; returns the names of those left."""
        left = []
        for table in (self.checkpoints, self.rejects):
            with self.engine.begin() as conn:
                if not sa.inspect(conn).has_table(table.name, schema=table.schema):
                    continue
                if conn.dialect.name == "postgresql":  # no other run can add a row between the look and the drop
                    execute_plain(conn, f"LOCK TABLE {table_sql(conn.dialect, table)} IN ACCESS EXCLUSIVE MODE")
                if conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None:
                    table.drop(conn)
                else:
                    left.append(table.name if table.schema is None else f"{table.schema}.{table.name}")
        return left

    def _row(self, table: str, part: int, state: str, **values: Any) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "table_name": table,
            "part": part,
            "row_count": 0,
            "byte_count": 0,
            "reject_count": 0,
            "version": 0,
            "state": state,
            "updated_at": now(),
            **values,
        }

    def set_table_state(self, table: str, state: str, info: dict[str, Any]) -> None:
        """Upsert the table-level row (partition -1)."""
        c = self.checkpoints.c
        text = json.dumps(info, default=str)
        with self.engine.begin() as conn:
            where = (c.run_id == self.run_id) & (c.table_name == table) & (c.part == TABLE_PART)
            done = conn.execute(
                sa.update(self.checkpoints).where(where).values(state=state, info=text, updated_at=now())
            ).rowcount
            if not done:
                conn.execute(sa.insert(self.checkpoints).values(self._row(table, TABLE_PART, state, info=text)))

    def create_partitions(self, table: str, bounds: list[tuple[str | None, str | None]], info: dict[str, Any]) -> None:
        rows = [
            self._row(table, i, "pending", lo_key=lo, hi_key=hi, last_key=lo, info=json.dumps(info, default=str))
            for i, (lo, hi) in enumerate(bounds)
        ]
        with self.engine.begin() as conn:
            conn.execute(sa.insert(self.checkpoints), rows)

    # --- called by workers inside their batch transaction (RawConn) ---

    def advance(
        self, raw: RawConn, part: PartState, last_key: str | None, rows: int, nbytes: int, rejects: int, done: bool
    ) -> bool:
        """Move the partition forward iff nobody else did since we read it; False means we lost it."""
        values = {
            "w_run": self.run_id,
            "w_table": part.table,
            "w_part": part.part,
            "w_version": part.version,
            "last_key": last_key,
            "row_count": part.rows + rows,
            "byte_count": part.bytes + nbytes,
            "reject_count": part.rejects + rejects,
            "version": part.version + 1,
            "state": "done" if done else "loading",
            "updated_at": now(),
            "info": json.dumps(part.info, default=str),
        }
        return raw.rowcount_prepared(f"advance:{self.checkpoints.schema}", self._advance_statement, values) == 1

    def _advance_statement(self) -> sa.Update:
        c = self.checkpoints.c
        where = (
            (c.run_id == sa.bindparam("w_run"))
            & (c.table_name == sa.bindparam("w_table"))
            & (c.part == sa.bindparam("w_part"))
            & (c.version == sa.bindparam("w_version"))
        )
        names = ("last_key", "row_count", "byte_count", "reject_count", "version", "state", "updated_at", "info")
        return sa.update(self.checkpoints).where(where).values({n: sa.bindparam(n) for n in names})

    def table_rejects(self, raw: RawConn, table: str) -> int:
        c = self.checkpoints.c
        stmt = sa.select(sa.func.coalesce(sa.func.sum(c.reject_count), 0)).where(
            (c.run_id == self.run_id) & (c.table_name == table) & (c.part >= 0)
        )
        return int(raw.scalar(stmt) or 0)

    def add_rejects(self, raw: RawConn, part: PartState, items: list[tuple[str | None, str, str]]) -> None:
        if not items:
            return
        rows = [
            {
                "run_id": self.run_id,
                "table_name": part.table,
                "part": part.part,
                "seq": part.rejects + i + 1,
                "key_json": key,
                "row_json": row,
                "error": error,
                "created_at": now(),
            }
            for i, (key, row, error) in enumerate(items)
        ]
        for row in rows:
            raw.rowcount(sa.insert(self.rejects).values(**row))

    def all_rejects(self) -> list[dict[str, Any]]:
        r = self.rejects.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(self.rejects).where(r.run_id == self.run_id).order_by(r.table_name, r.part, r.seq)
            ).mappings()
            return [dict(x) for x in rows]
