"""Modes (create, truncate, append, incremental), run identity, table selection and the error contract."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from copy_helpers import database, engine, make_people, read_rows, run_copy
from dmig.errors import ConfirmationRequired, Conflict, ConnectionFailed, InvalidInput, NotFound


def _count(url: str, table: str = "people") -> int:
    e = engine(url)
    with e.connect() as conn:
        n = conn.execute(sa.select(sa.func.count()).select_from(sa.table(table))).scalar()
    e.dispose()
    return int(n or 0)


def _exec(url: str, *sql: str) -> None:
    e = engine(url)
    with e.begin() as conn:
        for s in sql:
            conn.exec_driver_sql(s)
    e.dispose()


def test_create_refuses_a_non_empty_target_and_a_rerun_is_already_complete(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 300)
    first = run_copy(src, pg_url, project)
    assert first.ok and first.tables[0].rows == 300

    again = run_copy(src, pg_url, project)
    assert again.already_complete and again.ok and again.totals.rows_this_call == 0
    assert _count(pg_url) == 300

    # A different mapping is a different run, which must not load into a non-empty table it did not create.
    with pytest.raises(Conflict, match="not empty"):
        run_copy(src, pg_url, project, batch_size=10, mapping={"people": {"exclude_columns": ["note"]}})


def test_truncate_needs_the_confirmation_token_then_replaces_rows(
    tmp_path: Path, mysql_url: str, project: Path
) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 200)
    assert run_copy(src, mysql_url, project).ok
    _exec(mysql_url, "DELETE FROM people WHERE id <= 50", "UPDATE people SET note = 'changed'")

    with pytest.raises(ConfirmationRequired) as err:
        run_copy(src, mysql_url, project, mode="truncate")
    token = err.value.details["confirm"]
    assert token.startswith("truncate-") and err.value.details["tables"] == ["people"]
    with pytest.raises(ConfirmationRequired):
        run_copy(src, mysql_url, project, mode="truncate", confirm="truncate-wrong")

    out = run_copy(src, mysql_url, project, mode="truncate", confirm=token)
    assert out.ok and out.tables[0].rows == 200 and not out.tables[0].created
    assert read_rows(mysql_url) == read_rows(src)


def test_append_adds_rows_and_duplicates_become_rejects(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, 100)
    assert run_copy(
        src, pg_url, project, mapping={"people": {"filter": [{"column": "id", "op": "le", "value": 60}]}}
    ).ok
    out = run_copy(src, pg_url, project, mode="append", batch_size=16)
    # ids 1..60 exist already: each is a unique violation, isolated by bisection, the other 40 rows land.
    assert out.tables[0].rows == 40 and out.tables[0].rejects == 60
    assert out.verification.tables[0].counts_match is None  # append: counts are not comparable
    assert _count(pg_url) == 100
    lines = (project / out.reject_file).read_text().splitlines()
    assert len(lines) == 60 and {json.loads(x)["key"][0] for x in lines} == set(range(1, 61))


def test_incremental_copies_new_rows_and_updates_changed_ones(
    tmp_path: Path, pg_url: str, mysql_url: str, project: Path
) -> None:
    make_people(pg_url, 500)
    assert run_copy(pg_url, mysql_url, project).ok
    make_people(pg_url, 50, start=501)
    by_key = run_copy(pg_url, mysql_url, project, mode="incremental", tables=["people"])
    assert by_key.ok and by_key.tables[0].rows_this_call == 50  # newer than the target's max id
    assert _count(mysql_url) == 550

    # Changes to old rows (their updated_at moves forward): a key pass cannot see them, verification can.
    _exec(pg_url, "UPDATE people SET note = 'late edit', updated_at = now() + interval '1 day' WHERE id IN (3, 4)")
    blind = run_copy(pg_url, mysql_url, project, mode="incremental", tables=["people"])
    assert blind.tables[0].rows_this_call == 0 and blind.verification.ok is False

    by_time = run_copy(pg_url, mysql_url, project, mode="incremental", since_column="updated_at")
    assert by_time.ok, by_time.model_dump_json(indent=1)
    notes = {r["id"]: r["note"] for r in read_rows(mysql_url)}
    assert notes[3] == notes[4] == "late edit" and _count(mysql_url) == 550

    # A finished catch-up pass: the same command runs the next pass (nothing new: zero rows).
    again = run_copy(pg_url, mysql_url, project, mode="incremental", tables=["people"])
    assert again.ok and not again.already_complete and again.tables[0].rows_this_call == 0


def test_table_selection_globs_exclusions_and_unknown_names(tmp_path: Path, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _exec(
        src,
        "CREATE TABLE order_items (id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, v TEXT)",
        "CREATE TABLE audit (id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO orders VALUES (1, 'a')",
    )
    out = run_copy(src, f"sqlite:///{tmp_path / 't.db'}", project, tables=["order*"], exclude_tables=["*_items"])
    assert [t.table for t in out.tables] == ["orders"]
    with pytest.raises(NotFound) as err:
        run_copy(src, f"sqlite:///{tmp_path / 't2.db'}", project, tables=["nope"])
    assert err.value.code == "E_NOT_FOUND"
    with pytest.raises(NotFound):
        run_copy(src, f"sqlite:///{tmp_path / 't2.db'}", project, tables=["zz*"])
    with pytest.raises(InvalidInput, match="mapping names tables"):
        run_copy(src, f"sqlite:///{tmp_path / 't3.db'}", project, tables=["orders"], mapping={"audit": {}})


def test_unreachable_database_is_a_connection_error_without_the_password(tmp_path: Path, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _exec(src, "CREATE TABLE t (id INTEGER PRIMARY KEY)")
    with pytest.raises(ConnectionFailed) as err:
        run_copy(src, "postgresql://u:hunter2secret@127.0.0.1:1/x", project)
    info = err.value.info()
    assert info.code == "E_CONNECTION" and "hunter2secret" not in info.model_dump_json()


def test_hostile_identifiers_and_credentials(tmp_path: Path, pg_url: str, mysql_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    # (No backtick: SQLAlchemy's MySQL reflection returns such a name with the backtick doubled.)
    table, col = 'odd "tab"; x%', 'col "q"%; ü'
    e = engine(src)
    with e.begin() as conn:
        t = sa.Table(table, sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True), sa.Column(col, sa.String(40)))
        t.create(conn)
        conn.execute(sa.insert(t), [{"id": i, col: f"v{i}'; DROP TABLE people; --"} for i in range(1, 41)])
        conn.execute(sa.insert(t).values(id=41, **{col: "x" * 20}))
    e.dispose()
    secret_pg = pg_url.replace("postgres@", "postgres:pw-Zq81x@")
    for target in (secret_pg, mysql_url):
        out = run_copy(src, target, project, batch_size=7)
        assert out.ok, out.model_dump_json(indent=1)
        assert out.tables[0].rows == 41 and out.verification.tables[0].checksum == "match", out.verification
        assert "pw-Zq81x" not in out.model_dump_json()
    tgt = engine(pg_url)
    with tgt.connect() as conn:
        got = conn.execute(sa.select(sa.column(col)).select_from(sa.table(table)).order_by(sa.column("id"))).scalars()
        assert list(got)[:2] == ["v1'; DROP TABLE people; --", "v2'; DROP TABLE people; --"]
    tgt.dispose()


def test_restart_forgets_checkpoints(tmp_path: Path, project: Path) -> None:
    src, tgt = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'tgt.db'}"
    make_people(src, 120)
    first = run_copy(src, tgt, project, mode="append")
    assert first.ok and first.tables[0].rows == 120
    _exec(tgt, "DELETE FROM people")
    again = run_copy(src, tgt, project, mode="append")
    assert again.already_complete and _count(tgt) == 0
    fresh = run_copy(src, tgt, project, mode="append", restart=True)
    assert fresh.ok and not fresh.already_complete and _count(tgt) == 120


def test_table_without_a_key_is_copied_in_one_transaction(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _exec(src, "CREATE TABLE log (at TEXT, msg TEXT)")
    e = engine(src)
    with e.begin() as conn:
        conn.exec_driver_sql("INSERT INTO log VALUES (?, ?)", [(f"t{i % 10}", f"m{i}") for i in range(1000)])
    e.dispose()
    out = run_copy(src, pg_url, project, batch_size=64)
    assert out.ok and out.tables[0].rows == 1000 and out.tables[0].partitions == 1
    assert any("no primary key" in n for n in out.tables[0].notes)
    assert out.verification.tables[0].counts_match and out.verification.tables[0].checksum == "match"


@pytest.mark.parametrize("kind", ["postgresql", "mysql", "sqlite"])
def test_foreign_keys_are_built_after_the_load_and_orphans_are_reported(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, kind: str
) -> None:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    _exec(
        src,
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
        "CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES users(id) ON DELETE CASCADE)",
        "INSERT INTO users VALUES (1, 'a'), (2, 'b')",
        "INSERT INTO orders VALUES (10, 2), (11, 1), (12, NULL)",
    )
    tgt = database(request, tmp_path, kind, "tgt")
    out = run_copy(src, tgt, project, workers=2)
    assert out.ok, out.model_dump_json(indent=1)
    orders = next(t for t in out.tables if t.table == "orders")
    # PostgreSQL: the primary key is built after the load too (dmig.move.primarykey), before the FK.
    kinds = ["primary_key", "foreign_key"] if kind == "postgresql" else ["foreign_key"]
    assert [c.kind for c in orders.constraints] == kinds and all(c.ok for c in orders.constraints)
    e = engine(tgt)
    fks = sa.inspect(e).get_foreign_keys("orders")
    e.dispose()
    assert fks and fks[0]["referred_table"] == "users" and fks[0]["options"].get("ondelete") == "CASCADE"

    # An orphan (filtered parent) makes the FK fail: reported on the table, exit code non-zero.
    tgt2 = f"sqlite:///{tmp_path / 'tgt2.db'}" if kind == "sqlite" else tgt
    if kind != "sqlite":
        _exec(tgt, "DROP TABLE orders", "DROP TABLE users")
    bad = run_copy(src, tgt2, project, mapping={"users": {"filter": [{"column": "id", "op": "eq", "value": 1}]}})
    orders = next(t for t in bad.tables if t.table == "orders")
    assert not bad.ok and orders.state == "failed" and not orders.constraints[-1].ok
    assert orders.rows == 3 and "foreign_key" in (orders.error or "")
