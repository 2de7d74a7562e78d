"""Foreign keys on a MariaDB target: added in place (no table rebuild) and proven by an anti-join.

A validating ``ADD CONSTRAINT`` makes InnoDB copy the whole child table (``ALGORITHM=COPY``); the
copy adds the key with ``foreign_key_checks=0`` instead and then looks for orphans itself. These
tests hold it to the same guarantee as the validating statement: a key whose rows do not hold is
reported as a failed constraint and is not left in the target, multi-column and self-referencing
keys included, and the session setting is restored whatever happens.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from copy_helpers import engine, planned_targets, run_copy
from dmig.db.urls import parse_url
from dmig.move import schema as S
from dmig.move.models import CopySummary, TableSummary

SOURCE = [
    "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
    "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER, note TEXT,"
    " CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id))",
    "CREATE TABLE regions (country VARCHAR(2), code INTEGER, name TEXT, PRIMARY KEY (country, code))",
    "CREATE TABLE shops (id INTEGER PRIMARY KEY, country VARCHAR(2), code INTEGER,"
    " CONSTRAINT fk_shops_region FOREIGN KEY (country, code) REFERENCES regions (country, code))",
    "CREATE TABLE staff (id INTEGER PRIMARY KEY, boss_id INTEGER,"
    " CONSTRAINT fk_staff_boss FOREIGN KEY (boss_id) REFERENCES staff (id))",
]
FKS = {"orders": "fk_orders_user", "shops": "fk_shops_region", "staff": "fk_staff_boss"}


def _exec(url: str, *sql: str, params: list[dict[str, Any]] | None = None) -> None:
    e = engine(url)
    with e.begin() as conn:
        for s in sql:
            if params:
                conn.execute(sa.text(s), params)
            else:
                conn.exec_driver_sql(s)
    e.dispose()


def _source(tmp_path: Path, orphans: bool) -> str:
    """Every key holds; with ``orphans`` each table also gets child rows whose parent is missing.

    SQLite does not enforce foreign keys unless asked, which is how real sources end up with orphans.
    Rows with a NULL in the key are never orphans (MATCH SIMPLE), whatever their other key column holds.
    """
    src = f"sqlite:///{tmp_path / ('orphans.db' if orphans else 'clean.db')}"
    _exec(src, *SOURCE)
    _exec(src, "INSERT INTO users VALUES (:id, :name)", params=[{"id": i, "name": f"u{i}"} for i in range(1, 51)])
    orders = [{"id": i, "u": 1 + i % 50 if i % 10 else None} for i in range(1, 3001)]
    if orphans:
        orders += [{"id": 5000 + i, "u": 900 + i} for i in range(1, 4)]
    _exec(src, "INSERT INTO orders VALUES (:id, :u, 'x')", params=orders)
    _exec(src, "INSERT INTO regions VALUES ('fr', 1, 'a'), ('fr', 2, 'b'), ('de', 1, 'c')")
    shops = "(1, 'fr', 1), (2, 'de', 1), (3, 'fr', NULL), (4, NULL, 77)"
    _exec(src, f"INSERT INTO shops VALUES {shops}" + (", (5, 'de', 2)" if orphans else ""))
    _exec(src, "INSERT INTO staff VALUES (1, NULL), (2, 1), (3, 2)" + (", (4, 99)" if orphans else ""))
    return src


def _fks(url: str) -> dict[str, dict[str, Any]]:
    e = engine(url)
    insp = sa.inspect(e)
    tables = set(FKS) & set(insp.get_table_names())
    out = {fk["name"]: fk for table in tables for fk in insp.get_foreign_keys(table)}
    e.dispose()
    return out


def _table(out: CopySummary, name: str) -> TableSummary:
    return next(t for t in out.tables if t.table == name)


@contextmanager
def _alter_rowcounts() -> Iterator[list[tuple[str, int]]]:
    """(statement, affected rows) of every ALTER TABLE run in this process: a table rebuild reports every row."""
    seen: list[tuple[str, int]] = []

    def after(_conn: Any, cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("ALTER TABLE"):
            seen.append((statement, cursor.rowcount))

    sa.event.listen(sa.engine.Engine, "after_cursor_execute", after)
    try:
        yield seen
    finally:
        sa.event.remove(sa.engine.Engine, "after_cursor_execute", after)


def _table_id(url: str, table: str) -> int:
    """InnoDB's id of the table: a rebuild (ALGORITHM=COPY) creates a new table with a new id."""
    e = engine(url)
    with e.connect() as conn:
        db = conn.execute(sa.text("SELECT DATABASE()")).scalar()
        found = conn.execute(
            sa.text("SELECT table_id FROM information_schema.innodb_sys_tables WHERE name = :n"), {"n": f"{db}/{table}"}
        ).scalar()
    e.dispose()
    assert found is not None
    return int(found)


def test_keys_are_added_in_place_and_hold(tmp_path: Path, mysql_url: str, project: Path) -> None:
    src = _source(tmp_path, orphans=False)
    with _alter_rowcounts() as alters:
        out = run_copy(src, mysql_url, project, workers=2)
    assert out.ok, out.model_dump_json(indent=1)
    for table, name in FKS.items():
        reports = _table(out, table).constraints
        assert [(r.name, r.kind, r.ok) for r in reports] == [(name, "foreign_key", True)]
    fks = _fks(mysql_url)
    assert fks["fk_shops_region"]["constrained_columns"] == ["country", "code"]
    assert fks["fk_shops_region"]["referred_columns"] == ["country", "code"]
    assert fks["fk_staff_boss"]["referred_table"] == "staff" and fks["fk_orders_user"]["referred_table"] == "users"

    added = [(sql, n) for sql, n in alters if "FOREIGN KEY" in sql]
    assert len(added) == 3
    # In place: no row was copied (a validating ADD CONSTRAINT reports all 3000 orders rows here).
    assert all(n == 0 for _sql, n in added), added

    # The server still enforces the keys it holds.
    e = engine(mysql_url)
    with e.connect() as conn:
        try:
            conn.exec_driver_sql("INSERT INTO shops VALUES (99, 'it', 1)")
            raise AssertionError("an orphan row was accepted")
        except sa.exc.IntegrityError as exc:
            assert "fk_shops_region" in str(exc.orig)
    e.dispose()


def test_orphans_fail_the_key_and_it_is_not_kept(tmp_path: Path, mysql_url: str, project: Path) -> None:
    src = _source(tmp_path, orphans=True)
    out = run_copy(src, mysql_url, project, workers=2)
    assert not out.ok
    for table, name in FKS.items():
        t = _table(out, table)
        assert t.state == "failed" and t.rows > 0
        [report] = t.constraints
        assert report.name == name and report.kind == "foreign_key" and not report.ok
        assert f"foreign_key {name}: " in (t.error or "") and "without a parent" in (report.error or "")
    orders = _table(out, "orders").constraints[0].error or ""
    assert orders.startswith("3 rows of orders without a parent (user_id not in users(id))"), orders
    assert "id=5001 user_id=901" in orders
    shops = _table(out, "shops").constraints[0].error or ""
    assert shops.startswith("1 row of shops without a parent (country, code not in regions(country, code))"), shops
    assert "id=5 country='de' code=2" in shops
    assert "id=4 boss_id=99" in (_table(out, "staff").constraints[0].error or "")

    # Nothing that lies is left behind: no constraint, and not the index InnoDB made for it.
    assert _fks(mysql_url) == {}
    e = engine(mysql_url)
    assert "fk_orders_user" not in {i["name"] for i in sa.inspect(e).get_indexes("orders")}
    e.dispose()

    # Once the parents exist, the same command resumes and adds the keys, still without a rebuild.
    _exec(
        mysql_url,
        "INSERT INTO users VALUES (901, 'a'), (902, 'b'), (903, 'c')",
        "INSERT INTO regions VALUES ('de', 2, 'd')",
        "INSERT INTO staff VALUES (99, NULL)",
    )
    before = _table_id(mysql_url, "orders")
    again = run_copy(src, mysql_url, project, workers=2)
    for table in FKS:
        assert [r.ok for r in _table(again, table).constraints] == [True], _table(again, table).constraints
    assert set(_fks(mysql_url)) == set(FKS.values())
    assert _table_id(mysql_url, "orders") == before


def test_a_key_left_unproven_by_an_interrupted_run_is_checked_on_resume(
    tmp_path: Path, mysql_url: str, project: Path
) -> None:
    src = _source(tmp_path, orphans=True)
    assert not run_copy(src, mysql_url, project).ok
    # What a run killed between adding the key and checking it leaves behind.
    _exec(
        mysql_url,
        "SET foreign_key_checks = 0",
        "ALTER TABLE orders ADD CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id)",
    )
    again = run_copy(src, mysql_url, project)
    [report] = _table(again, "orders").constraints
    assert not report.ok and "3 rows of orders without a parent" in (report.error or "")
    assert "fk_orders_user" not in _fks(mysql_url)


def test_the_session_setting_is_restored_after_success_and_failure(
    tmp_path: Path, mysql_url: str, project: Path
) -> None:
    src = _source(tmp_path, orphans=True)
    assert not run_copy(src, mysql_url, project).ok
    targets = planned_targets(src, mysql_url, project)
    one = sa.create_engine(parse_url(mysql_url), pool_size=1, max_overflow=0)  # every step reuses one session

    def session() -> tuple[int, int]:
        with one.connect() as conn:
            return tuple(conn.execute(sa.text("SELECT CONNECTION_ID(), @@SESSION.foreign_key_checks")).one())  # type: ignore[return-value]

    try:
        conn_id, checks = session()
        assert checks == 1
        # Orphans: the anti-join fails the key after it was added with the checks off.
        [orphans] = S.build_foreign_keys(one, targets["orders"])
        assert not orphans.ok and "without a parent" in (orphans.error or "")
        assert session() == (conn_id, 1)
        # The ADD itself fails (the referenced column no longer matches): the server's message, checks restored.
        _exec(mysql_url, "ALTER TABLE staff MODIFY boss_id VARCHAR(10)")
        [refused] = S.build_foreign_keys(one, targets["staff"])
        assert not refused.ok and "fk_staff_boss" not in _fks(mysql_url)
        assert "foreign key" in (refused.error or "").lower()
        assert session() == (conn_id, 1)
        # A key that holds.
        _exec(mysql_url, "INSERT INTO regions VALUES ('de', 2, 'd')")
        [held] = S.build_foreign_keys(one, targets["shops"])
        assert held.ok and held.error is None and "fk_shops_region" in _fks(mysql_url)
        assert session() == (conn_id, 1)
    finally:
        one.dispose()


def test_a_parent_that_already_exists_in_the_target(tmp_path: Path, mysql_url: str, project: Path) -> None:
    """The parent table was made by the user (not by this run): the child's key is added and proven against it."""
    src = _source(tmp_path, orphans=False)
    _exec(mysql_url, "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, extra INT DEFAULT 7)")
    out = run_copy(src, mysql_url, project, tables=["users", "orders"])
    assert out.ok, out.model_dump_json(indent=1)
    assert not _table(out, "users").created and _table(out, "orders").created
    assert [r.ok for r in _table(out, "orders").constraints] == [True]
    assert _fks(mysql_url)["fk_orders_user"]["referred_table"] == "users"

    # A parent outside the copy is not given a key at all (the plan skips it with a note), as before.
    _exec(mysql_url, "DROP TABLE orders")
    alone = run_copy(src, mysql_url, project, tables=["orders"])
    assert alone.ok and _table(alone, "orders").constraints == [] and _fks(mysql_url) == {}
    assert any("foreign key fk_orders_user skipped" in n for n in _table(alone, "orders").notes)
