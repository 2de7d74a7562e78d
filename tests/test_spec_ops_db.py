"""Each operation's rendered SQL executed for real on SQLite, PostgreSQL and MariaDB."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from spec_helpers import (
    backfill_all,
    check_values,
    checks_pass,
    dialect,
    execute,
    query,
    render_live,
    run_phase,
    schema_snapshot,
    spec_of,
    users_table,
)


def _cycle(url: str, op: dict, *, backfill: bool = True) -> tuple:
    rendered = render_live(url, spec_of(op))
    run_phase(url, rendered, "expand")
    plan = rendered.operations[0].backfill
    if backfill and plan is not None:
        backfill_all(url, plan)
    checks = rendered.operations[0].validate_
    assert checks_pass(url, checks), check_values(url, checks)
    # Contract is rendered after validation, from the live schema at that moment (as the executor does).
    run_phase(url, render_live(url, spec_of(op)), "contract")
    return rendered


def test_add_column_constant_default(db_url: str) -> None:
    users_table(db_url, [(1, "a"), (2, "b")])
    op = {
        "op": "add_column",
        "table": "users",
        "column": {"name": "status", "type": "varchar(20)", "nullable": False, "default": "active"},
    }
    _cycle(db_url, op)
    assert query(db_url, "SELECT status FROM users ORDER BY id") == [("active",), ("active",)]
    execute(db_url, "INSERT INTO users (id, user_name) VALUES (3, 'c')")
    assert query(db_url, "SELECT status FROM users WHERE id = 3") == [("active",)]


def test_add_column_volatile_default_is_staged_on_postgresql(pg_url: str) -> None:
    users_table(pg_url, [(1, "a"), (2, "b")])
    op = {
        "op": "add_column",
        "table": "users",
        "column": {"name": "token", "type": "uuid", "nullable": False, "default_function": "uuid"},
    }
    rendered = render_live(pg_url, spec_of(op))
    sql = " ".join(s for st in rendered.operations[0].expand for s in st.sql)
    assert "ADD COLUMN IF NOT EXISTS token UUID" in sql and "gen_random_uuid" not in sql.split("SET DEFAULT")[0]
    _cycle(pg_url, op)
    tokens = query(pg_url, "SELECT token FROM users")
    assert len({t for (t,) in tokens}) == 2 and all(t is not None for (t,) in tokens)
    assert query(
        pg_url,
        "SELECT is_nullable FROM information_schema.columns WHERE table_name = 'users' AND column_name = 'token'",
    ) == [("NO",)]


def test_add_column_rollback(db_url: str) -> None:
    users_table(db_url, [(1, "a")])
    before = schema_snapshot(db_url)
    rendered = render_live(
        db_url, spec_of({"op": "add_column", "table": "users", "column": {"name": "age", "type": "integer"}})
    )
    run_phase(db_url, rendered, "expand")
    run_phase(db_url, rendered, "rollback")
    assert schema_snapshot(db_url) == before


def test_set_not_null(db_url: str) -> None:
    users_table(db_url, [(1, "a"), (2, None)])
    op = {"op": "set_not_null", "table": "users", "column": "user_name"}
    rendered = render_live(db_url, spec_of(op))
    run_phase(db_url, rendered, "expand")
    assert check_values(db_url, rendered.operations[0].validate_) == {"op0.validate.no_nulls": 1}
    execute(db_url, "UPDATE users SET user_name = 'b' WHERE id = 2")
    assert checks_pass(db_url, rendered.operations[0].validate_)
    run_phase(db_url, render_live(db_url, spec_of(op)), "contract")
    with pytest.raises(sa.exc.IntegrityError):
        execute(db_url, "INSERT INTO users (id, user_name) VALUES (3, NULL)")
    assert query(db_url, "SELECT id, user_name FROM users ORDER BY id") == [(1, "a"), (2, "b")]
    if dialect(db_url) == "postgresql":  # the helper CHECK is gone, the column itself is NOT NULL
        assert query(
            db_url, "SELECT count(*) FROM pg_constraint WHERE contype = 'c' AND conrelid = 'users'::regclass"
        ) == [(0,)]


def _parent_child(url: str) -> None:
    execute(
        url,
        "CREATE TABLE teams (id BIGINT PRIMARY KEY, name VARCHAR(50))",
        "CREATE TABLE players (id BIGINT PRIMARY KEY, team_id BIGINT, name VARCHAR(50))",
        "INSERT INTO teams (id, name) VALUES (1, 'red'), (2, 'blue')",
        "INSERT INTO players (id, team_id, name) VALUES (1, 1, 'x'), (2, NULL, 'y'), (3, 9, 'orphan')",
    )


def test_add_foreign_key(db_url: str) -> None:
    _parent_child(db_url)
    op = {
        "op": "add_foreign_key",
        "table": "players",
        "columns": ["team_id"],
        "ref_table": "teams",
        "ref_columns": ["id"],
        "on_delete": "SET NULL",
    }
    rendered = render_live(db_url, spec_of(op))
    [orphans] = rendered.operations[0].validate_
    assert check_values(db_url, [orphans]) == {orphans.id: 1}
    execute(db_url, "DELETE FROM players WHERE id = 3")
    _cycle(db_url, op)
    with pytest.raises(sa.exc.IntegrityError):
        execute(db_url, "INSERT INTO players (id, team_id, name) VALUES (4, 42, 'bad')")
    execute(db_url, "DELETE FROM teams WHERE id = 1")
    assert query(db_url, "SELECT team_id FROM players WHERE id = 1") == [(None,)]


def test_add_foreign_key_rollback(db_url: str) -> None:
    if dialect(db_url) == "sqlite":
        pytest.skip("SQLite adds the key by a rebuild in contract: nothing to roll back before it")
    _parent_child(db_url)
    execute(db_url, "DELETE FROM players WHERE id = 3")
    before = schema_snapshot(db_url)
    op = {
        "op": "add_foreign_key",
        "table": "players",
        "columns": ["team_id"],
        "ref_table": "teams",
        "ref_columns": ["id"],
    }
    rendered = render_live(db_url, spec_of(op))
    run_phase(db_url, rendered, "expand")
    run_phase(db_url, rendered, "contract")
    run_phase(db_url, rendered, "rollback")
    after = schema_snapshot(db_url)
    if dialect(db_url) == "mysql":  # InnoDB keeps the index it created for the key
        after["players"]["indexes"] = before["players"]["indexes"]
    assert after == before


def test_add_unique(db_url: str) -> None:
    users_table(db_url, [(1, "a"), (2, "a"), (3, None), (4, None)])
    op = {"op": "add_unique", "table": "users", "columns": ["user_name"]}
    rendered = render_live(db_url, spec_of(op))
    [dups] = rendered.operations[0].validate_
    assert dups.gates == "expand" and check_values(db_url, [dups]) == {dups.id: 1}
    execute(db_url, "UPDATE users SET user_name = 'b' WHERE id = 2")
    before = schema_snapshot(db_url)
    _cycle(db_url, op)
    with pytest.raises(sa.exc.IntegrityError):
        execute(db_url, "INSERT INTO users (id, user_name) VALUES (5, 'a')")
    execute(db_url, "INSERT INTO users (id, user_name) VALUES (6, NULL)")
    if dialect(db_url) == "postgresql":
        assert query(
            db_url, "SELECT count(*) FROM pg_constraint WHERE contype = 'u' AND conrelid = 'users'::regclass"
        ) == [(1,)]
    run_phase(db_url, rendered, "rollback")
    execute(db_url, "DELETE FROM users WHERE id = 6")
    assert schema_snapshot(db_url) == before


def test_add_index_and_rollback(db_url: str) -> None:
    users_table(db_url, [(1, "a"), (2, "b")])
    before = schema_snapshot(db_url)
    op = {"op": "add_index", "table": "users", "columns": ["user_name"]}
    rendered = render_live(db_url, spec_of(op))
    if dialect(db_url) == "postgresql":
        [step] = rendered.operations[0].expand
        assert not step.transactional and "CONCURRENTLY" in step.sql[0]
    run_phase(db_url, rendered, "expand")
    run_phase(db_url, rendered, "expand")  # retried step: IF NOT EXISTS keeps it harmless
    assert "ix_users_user_name" in str(schema_snapshot(db_url)["users"]["indexes"])
    run_phase(db_url, rendered, "rollback")
    assert schema_snapshot(db_url) == before


def test_change_column_type_with_dual_writes(db_url: str) -> None:
    execute(
        db_url,
        "CREATE TABLE accounts (id BIGINT PRIMARY KEY, balance INTEGER)",
        "INSERT INTO accounts (id, balance) VALUES (1, 10), (2, NULL), (3, -5)",
    )
    op = {
        "op": "change_column_type",
        "table": "accounts",
        "key": ["id"],
        "column": "balance",
        "type": "bigint",
        "from_type": "integer",
    }
    rendered = render_live(db_url, spec_of(op))
    shadow = "dmig_balance_new"
    run_phase(db_url, rendered, "expand")
    execute(db_url, "INSERT INTO accounts (id, balance) VALUES (4, 40)")
    assert query(db_url, f"SELECT {shadow} FROM accounts WHERE id = 4") == [(40,)]
    execute(db_url, f"INSERT INTO accounts (id, {shadow}) VALUES (5, 50)")
    assert query(db_url, "SELECT balance FROM accounts WHERE id = 5") == [(50,)]
    execute(db_url, "UPDATE accounts SET balance = 11 WHERE id = 1")
    # Row 1 was converted by the update trigger, row 2 is NULL on both sides: only row 3 needs the backfill.
    assert backfill_all(db_url, rendered.operations[0].backfill) == 1
    assert checks_pass(db_url, rendered.operations[0].validate_)
    run_phase(db_url, render_live(db_url, spec_of(op)), "contract")
    assert query(db_url, "SELECT id, balance FROM accounts ORDER BY id") == [
        (1, 11),
        (2, None),
        (3, -5),
        (4, 40),
        (5, 50),
    ]
    execute(db_url, "INSERT INTO accounts (id, balance) VALUES (6, 5000000000)")  # needs bigint
    assert query(db_url, "SELECT balance FROM accounts WHERE id = 6") == [(5000000000,)]


def test_rename_column_expand_contract(db_url: str) -> None:
    users_table(db_url, [(1, "a"), (2, None)])
    op = {"op": "rename_column", "table": "users", "column": "user_name", "to": "login", "type": "varchar(255)"}
    rendered = render_live(db_url, spec_of(op))
    run_phase(db_url, rendered, "expand")
    execute(db_url, "INSERT INTO users (id, user_name) VALUES (3, 'old-writer')")
    execute(db_url, "INSERT INTO users (id, login) VALUES (4, 'new-writer')")
    execute(db_url, "UPDATE users SET login = 'renamed' WHERE id = 3")
    assert query(db_url, "SELECT user_name FROM users WHERE id = 3") == [("renamed",)]
    assert query(db_url, "SELECT user_name FROM users WHERE id = 4") == [("new-writer",)]
    backfill_all(db_url, rendered.operations[0].backfill)
    assert checks_pass(db_url, rendered.operations[0].validate_)
    run_phase(db_url, render_live(db_url, spec_of(op)), "contract")
    assert query(db_url, "SELECT id, login FROM users ORDER BY id") == [
        (1, "a"),
        (2, None),
        (3, "renamed"),
        (4, "new-writer"),
    ]


def test_rename_column_in_place(db_url: str) -> None:
    users_table(db_url, [(1, "a")])
    op = {
        "op": "rename_column",
        "table": "users",
        "column": "user_name",
        "to": "login",
        "type": "varchar(255)",
        "mode": "in_place",
    }
    rendered = render_live(db_url, spec_of(op))
    assert rendered.operations[0].expand == [] and rendered.operations[0].contract[0].destructive
    run_phase(db_url, rendered, "contract")
    assert query(db_url, "SELECT login FROM users") == [("a",)]


def test_merge_columns(db_url: str) -> None:
    execute(
        db_url,
        "CREATE TABLE people (id BIGINT PRIMARY KEY, first_name VARCHAR(50), last_name VARCHAR(50))",
        "INSERT INTO people VALUES (1, 'Ada', 'Lovelace'), (2, 'Plato', NULL), (3, NULL, NULL)",
    )
    op = {"op": "merge_columns", "table": "people", "columns": ["first_name", "last_name"], "into": "full_name"}
    rendered = render_live(db_url, spec_of(op))
    run_phase(db_url, rendered, "expand")
    execute(db_url, "INSERT INTO people (id, full_name) VALUES (4, 'Alan Turing')")
    assert query(db_url, "SELECT first_name, last_name FROM people WHERE id = 4") == [("Alan", "Turing")]
    backfill_all(db_url, rendered.operations[0].backfill)
    assert checks_pass(db_url, rendered.operations[0].validate_)
    run_phase(db_url, render_live(db_url, spec_of(op)), "contract")
    assert query(db_url, "SELECT id, full_name FROM people ORDER BY id") == [
        (1, "Ada Lovelace"),
        (2, "Plato"),
        (3, None),
        (4, "Alan Turing"),
    ]


def test_add_check_and_backfill_op(db_url: str) -> None:
    execute(
        db_url,
        "CREATE TABLE items (id BIGINT PRIMARY KEY, price INTEGER, email VARCHAR(80), email_lc VARCHAR(80))",
        "INSERT INTO items VALUES (1, 5, 'A@X.org', NULL), (2, 0, 'b@y.org', NULL)",
    )
    spec_ops = [
        {"op": "backfill", "table": "items", "set": {"email_lc": "lower(email)"}},
        {"op": "add_check", "table": "items", "name": "price_nonneg", "expression": "price >= 0"},
    ]
    rendered = render_live(db_url, spec_of(*spec_ops))
    run_phase(db_url, rendered, "expand")
    assert backfill_all(db_url, rendered.operations[0].backfill) == 2
    assert checks_pass(db_url, [c for o in rendered.operations for c in o.validate_])
    run_phase(db_url, render_live(db_url, spec_of(*spec_ops)), "contract")
    assert query(db_url, "SELECT email_lc FROM items ORDER BY id") == [("a@x.org",), ("b@y.org",)]
    with pytest.raises(sa.exc.DatabaseError):
        execute(db_url, "INSERT INTO items (id, price) VALUES (3, -1)")


def test_create_table_and_rollback(db_url: str) -> None:
    before = schema_snapshot(db_url)
    op = {
        "op": "create_table",
        "table": "audit",
        "columns": [
            {"name": "id", "type": "bigint", "primary_key": True, "autoincrement": True},
            {"name": "note", "type": "text"},
            {"name": "at", "type": "timestamptz", "default_function": "current_timestamp"},
        ],
    }
    rendered = _cycle(db_url, op)
    execute(db_url, "INSERT INTO audit (note) VALUES ('x')")
    assert query(db_url, "SELECT note FROM audit") == [("x",)]
    run_phase(db_url, rendered, "rollback")
    assert schema_snapshot(db_url) == before
