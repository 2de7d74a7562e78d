"""split_column for real on SQLite, PostgreSQL and MariaDB: expand, dual writes through both shapes,
backfill, validate, contract, old readers after contract; and expand -> rollback restoring the exact
original schema and data."""

from __future__ import annotations

import pytest

from spec_helpers import (
    backfill_all,
    backfill_batched,
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

ROWS = [
    (1, "Ada Lovelace"),
    (2, "Plato"),
    (3, ""),
    (4, None),
    (5, "Mary Ann Smith"),
    (6, " leading"),
    (7, "trailing "),
    (8, "O'Brien Jr"),
    (9, "Zoë Ünïcode-Ñame"),
    (10, "two  spaces"),
]
EXPECTED_PARTS = {
    1: ("Ada", "Lovelace"),
    2: ("Plato", None),
    3: ("", None),
    4: (None, None),
    5: ("Mary", "Ann Smith"),
    6: ("", "leading"),
    7: ("trailing", ""),
    8: ("O'Brien", "Jr"),
    9: ("Zoë", "Ünïcode-Ñame"),
    10: ("two", " spaces"),
}
SPLIT = {
    "op": "split_column",
    "table": "users",
    "key": ["id"],
    "column": "user_name",
    "into": ["first_name", "last_name"],
}


def _parts(url: str) -> dict[int, tuple]:
    return {r[0]: (r[1], r[2]) for r in query(url, "SELECT id, first_name, last_name FROM users")}


def _old_reader(url: str) -> dict[int, str | None]:
    setup = ["SET search_path = dmig_compat, public"] if dialect(url) == "postgresql" else []
    return {r[0]: r[1] for r in query(url, "SELECT id, user_name FROM users", setup=setup)}


def test_split_column_full_cycle(db_url: str) -> None:
    users_table(db_url, ROWS)
    spec = spec_of(SPLIT)
    rendered = render_live(db_url, spec)
    op = rendered.operations[0]

    run_phase(db_url, rendered, "expand")
    # Before the backfill the old rows are unsplit: validation must fail.
    assert not checks_pass(db_url, op.validate_)

    # Old writer (user_name only) and new writer (first/last only) at the same time.
    execute(db_url, "INSERT INTO users (id, user_name) VALUES (100, 'Grace Hopper')")
    execute(db_url, "INSERT INTO users (id, first_name, last_name) VALUES (101, 'Alan', 'Turing')")
    execute(db_url, "INSERT INTO users (id, first_name) VALUES (102, 'Cher')")
    assert _parts(db_url)[100] == ("Grace", "Hopper")
    assert query(db_url, "SELECT user_name FROM users WHERE id = 101") == [("Alan Turing",)]
    assert query(db_url, "SELECT user_name FROM users WHERE id = 102") == [("Cher",)]
    execute(db_url, "UPDATE users SET user_name = 'Grace Brewster Hopper' WHERE id = 100")
    assert _parts(db_url)[100] == ("Grace", "Brewster Hopper")
    execute(db_url, "UPDATE users SET last_name = 'Turing OBE' WHERE id = 101")
    assert query(db_url, "SELECT user_name FROM users WHERE id = 101") == [("Alan Turing OBE",)]

    # Backfill once over the whole (small) table; a second run finds nothing to do.
    assert backfill_all(db_url, op.backfill) == 9  # every seed row except user_name NULL
    assert backfill_all(db_url, op.backfill) == 0
    parts = _parts(db_url)
    for key, expected in EXPECTED_PARTS.items():
        assert parts[key] == expected, key
    # The backfill did not disturb the old column (the reverse trigger stays quiet when parts match).
    assert query(db_url, "SELECT user_name FROM users WHERE id = 7") == [("trailing ",)]
    values = check_values(db_url, op.validate_)
    assert all(v == 0 for v in values.values()), values

    originals = {**dict(ROWS), 100: "Grace Brewster Hopper", 101: "Alan Turing OBE", 102: "Cher"}
    run_phase(db_url, rendered, "contract")
    _assert_old_column_gone(db_url)
    assert _old_reader(db_url) == originals
    # After contract new writers write only the parts; old readers see the rebuilt value.
    execute(db_url, "INSERT INTO users (id, first_name, last_name) VALUES (200, 'Linus', 'Torvalds')")
    assert _old_reader(db_url)[200] == "Linus Torvalds"


def test_split_column_batched_backfill(db_url: str) -> None:
    users_table(db_url, ROWS)
    rendered = render_live(db_url, spec_of(SPLIT))
    op = rendered.operations[0]
    run_phase(db_url, rendered, "expand")
    assert backfill_batched(db_url, op.backfill, batch=3) == 9
    assert _parts(db_url) == EXPECTED_PARTS
    assert checks_pass(db_url, op.validate_)


@pytest.mark.parametrize("backfilled", [False, True])
def test_split_column_rollback_restores_schema_and_data(db_url: str, backfilled: bool) -> None:
    users_table(db_url, ROWS)
    before = schema_snapshot(db_url)
    data = query(db_url, "SELECT id, user_name FROM users ORDER BY id")
    rendered = render_live(db_url, spec_of(SPLIT))
    run_phase(db_url, rendered, "expand")
    assert schema_snapshot(db_url) != before
    if backfilled:
        backfill_all(db_url, rendered.operations[0].backfill)
    run_phase(db_url, rendered, "rollback")
    assert schema_snapshot(db_url) == before
    assert query(db_url, "SELECT id, user_name FROM users ORDER BY id") == data


def _assert_old_column_gone(url: str) -> None:
    """PostgreSQL: the base table lost user_name (the compat view has it); elsewhere it is a generated column."""
    import sqlalchemy as sa

    if dialect(url) == "postgresql":
        with pytest.raises(sa.exc.ProgrammingError):
            query(url, "SELECT user_name FROM public.users")
    else:
        with pytest.raises(sa.exc.DatabaseError):
            execute(url, "INSERT INTO users (id, user_name) VALUES (300, 'x y')")


def test_split_column_with_hostile_identifiers(db_url: str) -> None:
    """Quotes, backticks, semicolons and unicode in every name: quoted by the dialect, never interpolated."""
    import sqlalchemy as sa

    from spec_helpers import engine

    table, col, first, last = 'us"er`s; --', "na'me", "fïrst", "la st"
    meta = sa.MetaData()
    t = sa.Table(
        table,
        meta,
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column(col, sa.String(100)),
    )
    eng = engine(db_url)
    meta.create_all(eng)
    with eng.begin() as conn:
        conn.execute(t.insert(), [{"id": 1, col: "Ada Lovelace"}, {"id": 2, col: "Plato"}])
    spec = spec_of(
        {"op": "split_column", "table": table, "column": col, "into": [first, last], "separator": "'"},
    )
    rendered = render_live(db_url, spec)
    run_phase(db_url, rendered, "expand")
    with eng.begin() as conn:
        conn.execute(t.insert(), {"id": 3, col: "it's"})
    backfill_all(db_url, rendered.operations[0].backfill)
    assert checks_pass(db_url, rendered.operations[0].validate_)
    t2 = sa.Table(table, sa.MetaData(), autoload_with=eng)
    with eng.connect() as conn:
        rows = {r[0]: (r[1], r[2]) for r in conn.execute(sa.select(t2.c.id, t2.c[first], t2.c[last]))}
    eng.dispose()
    assert rows == {1: ("Ada Lovelace", None), 2: ("Plato", None), 3: ("it", "s")}
    run_phase(db_url, rendered, "rollback")
