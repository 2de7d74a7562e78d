"""PostgreSQL: the keys, indexes and foreign keys of the tables a copy created, each started as soon as
its locks allow, instead of every foreign key after every index.

Measured on the copy benchmark (2 cores, 1M users + 2M orders): once the last table was loaded, its
key and unique e-mail index (~1 s) and then the foreign key's validation (~1.3 s: one anti-join
query, on one core) ran one after the other, on the critical path of the whole copy.

The locks decide what may overlap (PostgreSQL's "Table-level locks"):

* ``CREATE INDEX`` takes SHARE: several builds on one table run at once.
* ``ADD FOREIGN KEY ... NOT VALID`` takes SHARE ROW EXCLUSIVE on both tables: it waits for any
  index build on either, but is itself instant.
* ``VALIDATE CONSTRAINT`` takes SHARE UPDATE EXCLUSIVE on the referencing table (it would wait for
  an index build there) and only ROW SHARE on the referenced one (index builds there go on).

So a referenced table builds its key first, alone; every foreign key whose referencing table is
fully indexed is then added NOT VALID and validated at once, beside the referenced table's other
index builds (and, later, the verification). A key whose referencing table finishes later is added
when it does, if its parent is done. A key that does not validate is dropped and reported, which
leaves the target as a validating ``ADD CONSTRAINT`` would: without it. The rest (MySQL, SQLite,
keys to tables this run did not create) keeps the one-at-a-time path after the load.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.move import primarykey
from dmig.move import schema as S
from dmig.move.models import IndexReport


class Table(Protocol):
    """What the builds need of the service's per-table entry."""

    name: str
    target: S.TargetTable
    reports: list[IndexReport]
    index_seconds: float
    fk_seconds: float


class Builds:
    """The post-load builds of the tables this run created on PostgreSQL; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        tables: list[Table],
        pool: ThreadPoolExecutor,
        with_key: set[str],
        on_indexed: Callable[[Table], None] = lambda _t: None,
    ) -> None:
        self.engine, self.pool, self.with_key, self.on_indexed = engine, pool, with_key, on_indexed
        by_target = {t.target.table.name: t for t in tables}
        self.edges: list[tuple[Table, Table, sa.ForeignKeyConstraint]] = []
        for child in tables:
            for fk in child.target.foreign_keys:
                parent = by_target.get(fk.referred_table.name)
                if parent is not None:
                    self.edges.append((child, parent, fk))
        self.parents = {parent.name for _, parent, _ in self.edges}
        self.state: dict[str, str] = {}
        self.lock = threading.Lock()
        self.table_jobs: list[Future[None]] = []  # one per table: its key and indexes
        self.validations: list[Future[None]] = []  # one per foreign key started here
        self.handled: set[str] = set()  # foreign keys built (or refused) here: the later pass skips them

    def loaded(self, table: Table) -> None:
        """The table's last partition is in: build its key and indexes (on the pool)."""
        with self.lock:
            self.table_jobs.append(self.pool.submit(self._build, table))

    def wait_indexes(self) -> None:
        """Every table's key and index builds finished (errors raised); validations may still run."""
        for future in list(self.table_jobs):
            future.result()

    def wait_keys(self) -> None:
        """Every foreign key started here validated (or dropped): called after ``wait_indexes``, so the
        verification can start in between and read beside the validations."""
        with self.lock:
            pending = list(self.validations)
        for future in pending:
            future.result()

    def _build(self, table: Table) -> None:
        start = time.perf_counter()
        key = table.name in self.with_key
        if key and table.name in self.parents:  # the key alone first: the foreign keys need only it
            table.reports += primarykey.build_with_indexes(self.engine, table.target, key=True, secondary=False)
            self._advance(table, "keyed")  # keys to it are added now, before its index builds start
            with self.lock:
                self.state[table.name] = "indexing"
            key = False
        table.reports += primarykey.build_with_indexes(self.engine, table.target, key=key)
        table.index_seconds = time.perf_counter() - start
        self._advance(table, "indexed")
        self.on_indexed(table)

    def _advance(self, table: Table, state: str) -> None:
        """Record the table's new state and start every foreign key whose locks are now free. Under the
        lock, so a referenced table cannot start an index build while a key to it is being added."""
        with self.lock:
            self.state[table.name] = state
            ready = [
                (c, p, fk)
                for c, p, fk in self.edges
                if self.state.get(c.name) == "indexed" and self.state.get(p.name) in ("keyed", "indexed")
            ]
            for edge in ready:
                self.edges.remove(edge)
                child, _parent, fk = edge
                self.handled.add(str(fk.name))
                started = time.perf_counter()
                added = S.timed("foreign_key", str(fk.name), lambda fk=fk: S.add_foreign_key_not_valid(self.engine, fk))
                if not added.ok:
                    child.reports.append(added)
                    continue
                self.validations.append(self.pool.submit(self._validate, child, fk, started))

    def _validate(self, child: Table, fk: sa.ForeignKeyConstraint, started: float) -> None:
        report = S.timed("foreign_key", str(fk.name), lambda: S.validate_or_drop(self.engine, fk))
        seconds = time.perf_counter() - started  # the NOT VALID add included
        child.reports.append(report.model_copy(update={"seconds": seconds}))
        child.fk_seconds += seconds
