"""issue 13 item 2: no write is refused during expand and backfill of a NOT NULL change.

PostgreSQL used to add ``CHECK (value IS NOT NULL) NOT VALID`` in expand: every UPDATE of a row the
backfill had not reached yet (``UPDATE lib2 SET title = 'renamed' WHERE id = 3``), every old-code
INSERT, and the backfill's own batches violated it. Here old-shape and new-shape writers run on
their own connections for the whole run and every refused write is counted: there must be none.
MariaDB and SQLite enforce NOT NULL only at contract (MODIFY / table rebuild): the same test runs
there to show they have no such window. Contract still enforces the constraint.
"""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from dmig.execute import complete, run_plan
from execute_helpers import dialect, engine, execute, make_plan, query

ROWS = 400


def _lib2(url: str) -> None:
    execute(url, "CREATE TABLE lib2 (id BIGINT PRIMARY KEY, title VARCHAR(100), value INTEGER)")
    values = ", ".join(f"({i}, 't{i}', {'NULL' if i % 3 == 0 else i})" for i in range(1, ROWS + 1))
    execute(url, f"INSERT INTO lib2 (id, title, value) VALUES {values}")


def _spec(url: str) -> dict[str, Any]:
    ops: list[dict[str, Any]] = [
        {"op": "set_not_null", "table": "lib2", "column": "value", "type": "integer"},
        {"op": "backfill", "table": "lib2", "key": ["id"], "set": {"value": "0"}, "where": "value IS NULL"},
    ]
    if dialect(url) == "postgresql":  # staged (nullable, default set apart, backfilled) only on PostgreSQL
        ops.append(
            {"op": "add_column", "table": "lib2", "key": ["id"],
             "column": {"name": "ref_uuid", "type": "uuid", "nullable": False, "default_function": "uuid"}}
        )  # fmt: skip
    return {"version": 1, "id": "lib2-nn", "options": {"batch_size": 25, "throttle_ms": 20}, "operations": ops}


def _guard(url: str) -> list[str]:
    return {
        "postgresql": ["SET statement_timeout = 20000"],
        "mysql": ["SET SESSION max_statement_time = 20"],
        "sqlite": ["PRAGMA busy_timeout = 20000"],
    }[dialect(url)]


class Writers:
    """Old-shape writers (never set value: update title, insert without it) and new-shape ones (set value)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.stop = threading.Event()
        self.ok = 0
        self.refused: list[str] = []
        self.threads = [
            threading.Thread(target=self._run, args=(shape, seed), daemon=True)
            for shape, seed in (("old", 1), ("new", 2), ("old", 3))
        ]

    def _run(self, shape: str, seed: int) -> None:
        rng = random.Random(seed)
        eng = engine(self.url)
        next_id = 100_000 * seed
        try:
            with eng.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                for s in _guard(self.url):
                    conn.exec_driver_sql(s)
                while not self.stop.is_set():
                    next_id += 1
                    row = rng.choice([i for i in range(3, ROWS + 1, 3)])  # rows whose value is NULL until backfilled
                    if shape == "old":
                        writes = [
                            ("UPDATE lib2 SET title = :t WHERE id = :i", {"t": f"renamed {next_id}", "i": row}),
                            ("INSERT INTO lib2 (id, title) VALUES (:i, 'old code')", {"i": next_id}),
                        ]
                    else:
                        writes = [
                            ("UPDATE lib2 SET title = :t, value = 7 WHERE id = :i", {"t": f"new {next_id}", "i": row}),
                            ("INSERT INTO lib2 (id, title, value) VALUES (:i, 'new code', 1)", {"i": next_id}),
                        ]
                    for sql, params in writes:
                        try:
                            conn.execute(sa.text(sql), params)
                            self.ok += 1
                        except sa.exc.DBAPIError as exc:
                            self.refused.append(f"{shape}: {sql[:30]}: {str(exc.orig).splitlines()[0]}")
                    time.sleep(0.02)
        finally:
            eng.dispose()

    def __enter__(self) -> Writers:
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(30)
        assert not any(t.is_alive() for t in self.threads), "a writer hung"


def test_no_write_is_refused_during_expand_and_backfill(db_url: str, project: Path) -> None:
    _lib2(db_url)
    plan, _ = make_plan(project, db_url, _spec(db_url))
    assert not [s for s in plan.phase_steps("expand") if "NOT NULL" in " ".join(s.sql) and "CHECK" in " ".join(s.sql)]
    with Writers(db_url) as writers:
        time.sleep(0.2)
        first = run_plan(plan, confirm=plan.checksum, url=db_url)
        time.sleep(0.2)
    assert not writers.refused, f"{len(writers.refused)} refused of {writers.ok + len(writers.refused)}: " + "; ".join(
        writers.refused[:5]
    )
    assert writers.ok > 100
    # old code inserted rows without value after the backfill's bound: validation says so, nothing is enforced yet
    assert first.state in ("validated", "backfilled")
    # the application now writes the new shape; the stragglers are filled and the run validates
    execute(db_url, "UPDATE lib2 SET value = 0 WHERE value IS NULL")
    assert run_plan(plan, confirm=plan.checksum, url=db_url).state == "validated"
    assert complete(plan, confirm=plan.checksum, project_dir=project, url=db_url).state == "completed"
    with pytest.raises(sa.exc.DBAPIError):  # contract enforces NOT NULL
        execute(db_url, "INSERT INTO lib2 (id, title) VALUES (999999, 'after contract')")
    assert query(db_url, "SELECT count(*) FROM lib2 WHERE value IS NULL") == [(0,)]
