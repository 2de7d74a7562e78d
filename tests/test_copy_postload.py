"""PostgreSQL post-load builds (``dmig.move.postload``): keys, indexes and foreign keys of the tables a copy
created, each started as soon as its locks allow.

A foreign key is added NOT VALID and validated separately there, so these tests pin what that must never
change: every key ends validated or absent (never left NOT VALID), orphans are reported and the key is
dropped, a NOT VALID key left by a stopped run is validated by the next one, and hostile names survive.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from copy_helpers import engine, planned_targets, run_copy
from dmig.move import schema as S

PARENT = 'odd "users"; x%'  # a hostile name: quoting is checked on every statement the builds send


def _source(tmp_path: Path, orphans: bool = False) -> str:
    url = f"sqlite:///{tmp_path / 'src.db'}"
    e = engine(url)
    q = e.dialect.identifier_preparer.quote(PARENT)
    with e.begin() as conn:
        conn.exec_driver_sql(f"CREATE TABLE {q} (id INTEGER PRIMARY KEY, email TEXT)")
        conn.exec_driver_sql(f"CREATE UNIQUE INDEX ux_email ON {q} (email)")
        conn.exec_driver_sql(
            f"CREATE TABLE orders (id INTEGER PRIMARY KEY, user_id INTEGER REFERENCES {q}(id), note TEXT)"
        )
        conn.exec_driver_sql("CREATE INDEX ix_orders_user ON orders (user_id)")
        conn.exec_driver_sql(f"INSERT INTO {q} VALUES (?, ?)", [(i, f"u{i}@x") for i in range(1, 3001)])
        rows = [(i, 1 + i % 3000, f"n{i}") for i in range(1, 6001)]
        if orphans:
            rows[10] = (11, 999_999, "orphan")
        conn.exec_driver_sql("INSERT INTO orders VALUES (?, ?, ?)", rows)
    e.dispose()
    return url


def _foreign_keys(url: str) -> dict[str, bool]:
    """name -> validated, for the foreign keys on orders."""
    e = engine(url)
    with e.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT conname, convalidated FROM pg_constraint WHERE conrelid = 'orders'::regclass AND contype = 'f'"
            )
        ).all()
    e.dispose()
    return dict(rows)  # type: ignore[arg-type]


def test_keys_indexes_and_a_validated_foreign_key(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _source(tmp_path)

    out = run_copy(src, pg_url, project, workers=2, partition_rows=1000, batch_size=500)

    assert out.ok, out.model_dump_json(indent=1)
    orders = next(t for t in out.tables if t.table == "orders")
    parent = next(t for t in out.tables if t.table == PARENT)
    assert sorted(c.kind for c in orders.constraints) == ["foreign_key", "index", "primary_key"]
    assert sorted(c.kind for c in parent.constraints) == ["primary_key", "unique"]
    assert all(c.ok for c in orders.constraints + parent.constraints)
    assert orders.fk_seconds > 0
    [(name, validated)] = _foreign_keys(pg_url).items()
    assert validated, name
    e = engine(pg_url)
    insp = sa.inspect(e)
    assert insp.get_pk_constraint(PARENT)["name"] == f"{PARENT}_pkey"
    assert {i["name"] for i in insp.get_indexes("orders")} == {"ix_orders_user"}
    e.dispose()


def test_orphans_drop_the_key_and_fail_the_table(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _source(tmp_path, orphans=True)

    out = run_copy(src, pg_url, project, workers=2, partition_rows=1000, batch_size=500)

    orders = next(t for t in out.tables if t.table == "orders")
    assert not out.ok and orders.state == "failed" and orders.rows == 6000
    [fk] = [c for c in orders.constraints if c.kind == "foreign_key"]
    assert not fk.ok and "violates foreign key constraint" in (fk.error or "")
    assert _foreign_keys(pg_url) == {}  # dropped, not left NOT VALID


def test_a_not_valid_key_left_by_a_stopped_run_is_validated_or_dropped(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    src = _source(tmp_path)
    assert run_copy(src, pg_url, project).ok
    [name] = _foreign_keys(pg_url)
    targets = planned_targets(src, pg_url, project)
    tgt = engine(pg_url)
    q = tgt.dialect.identifier_preparer.quote(PARENT)

    def not_valid_again(extra: str = "") -> None:
        with tgt.begin() as conn:
            conn.exec_driver_sql(f'ALTER TABLE orders DROP CONSTRAINT "{name}"')
            if extra:
                conn.exec_driver_sql(extra)
            conn.exec_driver_sql(
                f'ALTER TABLE orders ADD CONSTRAINT "{name}" FOREIGN KEY (user_id) REFERENCES {q} (id) NOT VALID'
            )

    try:
        not_valid_again()
        [report] = S.build_foreign_keys(tgt, targets["orders"])
        assert report.ok and _foreign_keys(pg_url) == {name: True}

        not_valid_again("INSERT INTO orders VALUES (99999, 424242, 'orphan')")
        [report] = S.build_foreign_keys(tgt, targets["orders"])
        assert not report.ok and "violates foreign key constraint" in (report.error or "")
        assert _foreign_keys(pg_url) == {}

        assert S.build_foreign_keys(tgt, targets["orders"], skip={name}) == []
    finally:
        tgt.dispose()
