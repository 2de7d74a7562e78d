"""Which shape the table is in right now, read from the catalog, so the workload knows which code may run.

``old``: the new columns do not exist (only old code runs). ``expanding``: they exist but the
two-way sync triggers do not cover INSERT and UPDATE yet (new code must still wait: a row it
wrote would leave the old column empty). ``expanded``: both shapes are live and kept in sync.
``contracted``: the old column is gone or is a generated column (old writers must be gone; old
readers read through the compat relation). The catalog queries bind every name as a parameter.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Literal

import sqlalchemy as sa

from dmig.db.urls import dialect_of
from dmig.workload.shape import Shape

Phase = Literal["old", "expanding", "expanded", "contracted"]
PHASES: tuple[Phase, ...] = ("old", "expanding", "expanded", "contracted")

_PG_COLUMNS = sa.text(
    "SELECT a.attname, a.attgenerated <> '' FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relname = :t AND n.nspname = coalesce(:s, "
    "current_schema()) AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped"
)
_PG_TRIGGERS = sa.text(
    "SELECT tg.tgtype FROM pg_trigger tg JOIN pg_class c ON c.oid = tg.tgrelid JOIN pg_namespace n "
    "ON n.oid = c.relnamespace WHERE c.relname = :t AND n.nspname = coalesce(:s, current_schema()) "
    "AND NOT tg.tgisinternal AND tg.tgenabled <> 'D'"
)
_PG_VIEW = sa.text(
    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
    "WHERE c.relname = :v AND n.nspname = :vs AND c.relkind = 'v'"
)
_MY_COLUMNS = sa.text(
    "SELECT column_name, extra LIKE '%GENERATED%' FROM information_schema.columns "
    "WHERE table_schema = coalesce(:s, DATABASE()) AND table_name = :t"
)
_MY_TRIGGERS = sa.text(
    "SELECT event_manipulation FROM information_schema.triggers "
    "WHERE event_object_schema = coalesce(:s, DATABASE()) AND event_object_table = :t"
)
_MY_VIEW = sa.text(
    "SELECT count(*) FROM information_schema.views WHERE table_schema = coalesce(:s, DATABASE()) AND table_name = :v"
)
_LITE_COLUMNS = sa.text("SELECT name, hidden IN (2, 3) FROM pragma_table_xinfo(:t)")
_LITE_TRIGGERS = sa.text("SELECT upper(sql) FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :t")
_LITE_VIEW = sa.text("SELECT count(*) FROM sqlite_master WHERE type = 'view' AND name = :v")

PG_TRIGGER_INSERT, PG_TRIGGER_UPDATE = 4, 16


@dataclass(frozen=True)
class SchemaState:
    phase: Phase
    compat: bool = False  # a compat relation for old readers exists
    columns: tuple[str, ...] = ()


def _trigger_events(conn: sa.Connection, dialect: str, shape: Shape) -> set[str]:
    binds = {"t": shape.table, "s": shape.schema}
    if dialect == "postgresql":
        events = set()
        for (tgtype,) in conn.execute(_PG_TRIGGERS, binds):
            events |= {"INSERT"} if tgtype & PG_TRIGGER_INSERT else set()
            events |= {"UPDATE"} if tgtype & PG_TRIGGER_UPDATE else set()
        return events
    if dialect == "mysql":
        return {str(r[0]).upper() for r in conn.execute(_MY_TRIGGERS, binds)}
    events = set()
    for (sql,) in conn.execute(_LITE_TRIGGERS, {"t": shape.table}):
        head = (sql or "").split(" ON ", 1)[0]
        events |= {e for e in ("INSERT", "UPDATE") if e in head}
    return events


def _columns(conn: sa.Connection, dialect: str, shape: Shape) -> dict[str, bool]:
    """{column: is_generated} of the base table."""
    stmt = {"postgresql": _PG_COLUMNS, "mysql": _MY_COLUMNS}.get(dialect, _LITE_COLUMNS)
    binds = {"t": shape.table} if dialect == "sqlite" else {"t": shape.table, "s": shape.schema}
    return {str(name): bool(gen) for name, gen in conn.execute(stmt, binds)}


def _compat_exists(conn: sa.Connection, dialect: str, shape: Shape) -> bool:
    if dialect == "postgresql":
        if not shape.compat_schema:
            return False
        return bool(conn.execute(_PG_VIEW, {"v": shape.table, "vs": shape.compat_schema}).scalar())
    if dialect == "mysql":
        return bool(conn.execute(_MY_VIEW, {"v": shape.compat_name(), "s": shape.schema}).scalar())
    return bool(conn.execute(_LITE_VIEW, {"v": shape.compat_name()}).scalar())


def read_state(conn: sa.Connection, shape: Shape) -> SchemaState:
    dialect = dialect_of(conn.engine.url)
    cols = _columns(conn, dialect, shape)
    compat = _compat_exists(conn, dialect, shape)
    names = tuple(sorted(cols))
    if not all(c in cols for c in shape.new):
        return SchemaState("old", compat, names)
    if shape.old not in cols or cols[shape.old]:
        return SchemaState("contracted", compat, names)
    synced = {"INSERT", "UPDATE"} <= _trigger_events(conn, dialect, shape)
    return SchemaState("expanded" if synced else "expanding", compat, names)


@dataclass
class PhaseChange:
    at_s: float
    phase: Phase
    source: str  # "catalog" | "told"


@dataclass
class SchemaWatcher:
    """Polls the catalog on its own connection; ``told`` overrides what it sees (the operator knows best)."""

    engine: sa.Engine
    shape: Shape
    interval_s: float = 0.2
    state: SchemaState = SchemaState("old")
    told: Phase | None = None
    changes: list[PhaseChange] = field(default_factory=list)
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _t0: float = field(default_factory=time.monotonic)

    @property
    def phase(self) -> Phase:
        return self.told or self.state.phase

    def refresh(self, conn: sa.Connection) -> SchemaState:
        before = self.phase
        self.state = read_state(conn, self.shape)
        if self.phase != before or not self.changes:
            self.changes.append(PhaseChange(round(time.monotonic() - self._t0, 3), self.phase, "catalog"))
        return self.state

    def tell(self, phase: Phase) -> None:
        self.told = phase
        self.changes.append(PhaseChange(round(time.monotonic() - self._t0, 3), phase, "told"))

    def start(self, t0: float) -> None:
        self._t0 = t0
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            self.refresh(conn)
        self._thread = threading.Thread(target=self._loop, name="dmig-workload-watch", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        conn: sa.Connection | None = None
        while not self._stop.wait(self.interval_s):
            try:
                if conn is None:
                    conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                self.refresh(conn)
            except sa.exc.SQLAlchemyError:
                self.errors += 1
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
