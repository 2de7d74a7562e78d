"""User probe queries: one plain SELECT or nothing; and the read-only session as the second wall."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.monitor import guard
from dmig.monitor.monitor import Monitor
from dmig.monitor.probes import Probe, run_probe
from dmig.monitor.session import MonitorSession
from monitor_helpers import TABLE, engine, make_table

HOSTILE_PG = [
    "SELECT 1; DROP TABLE x",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT pg_catalog.PG_READ_FILE('/etc/passwd')",
    "WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x",
    "WITH x AS (SELECT 1), y AS (INSERT INTO t VALUES (1) RETURNING *) SELECT * FROM x",
    "SELECT pg_sleep(0.05)",
    "SELECT pg_sleep(n) FROM t",
    "SELECT lo_import('/etc/passwd')",
    "SELECT * FROM dblink('dbname=x', 'DELETE FROM t') AS r(a int)",
    "COPY t TO '/tmp/x'",
    "SELECT * INTO new_t FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT query_to_xml('DELETE FROM t', true, true, '')",
    "SELECT nextval('s')",
    "SELECT pg_advisory_lock(1)",
    "EXPLAIN ANALYZE DELETE FROM t",
    "DELETE FROM t",
    "",
    "SELEC 1",
]
HOSTILE_MYSQL = [
    "SELECT 1; DROP TABLE x",
    "SELECT * INTO OUTFILE '/tmp/x' FROM t",
    "SELECT * FROM t INTO DUMPFILE '/tmp/x'",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT SLEEP(1)",
    "SELECT BENCHMARK(1000000, MD5('a'))",
    "SELECT 1 /*! , LOAD_FILE('/etc/passwd') */",
    "SELECT 1 /*M!100000 , SLEEP(5) */",
    "SELECT 1 INTO @x",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t LOCK IN SHARE MODE",
    "SELECT GET_LOCK('x', 10)",
    "SELECT NEXTVAL(s)",
    "UPDATE t SET v = 1",
    "LOAD DATA INFILE '/etc/passwd' INTO TABLE t",
]
HOSTILE_SQLITE = [
    "SELECT load_extension('evil')",
    "SELECT writefile('/tmp/x', 'y')",
    "DELETE FROM t",
    "SELECT 1; SELECT 2",
]


@pytest.mark.parametrize("sql", HOSTILE_PG)
def test_postgres_refuses_hostile_probe(sql: str) -> None:
    with pytest.raises(InvalidInput) as err:
        guard.vet(sql, "postgresql")
    assert err.value.details["reason"] == "probe_refused"
    assert "refused" in err.value.message


@pytest.mark.parametrize("sql", HOSTILE_MYSQL)
def test_mysql_refuses_hostile_probe(sql: str) -> None:
    with pytest.raises(InvalidInput):
        guard.vet(sql, "mysql")


@pytest.mark.parametrize("sql", HOSTILE_SQLITE)
def test_sqlite_refuses_hostile_probe(sql: str) -> None:
    with pytest.raises(InvalidInput):
        guard.vet(sql, "sqlite")


@pytest.mark.parametrize(
    ("dialect", "sql"),
    [
        ("postgresql", "SELECT count(*) FROM t WHERE id BETWEEN 1 AND 10"),
        ("postgresql", "WITH r AS (SELECT id FROM t ORDER BY id LIMIT 5) SELECT * FROM r"),
        ("postgresql", "SELECT pg_sleep(0.005)"),
        ("mysql", "SELECT id FROM t WHERE id IN (SELECT id FROM u) UNION SELECT 1"),
        ("sqlite", "SELECT max(id) FROM t"),
    ],
)
def test_plain_selects_pass(dialect: str, sql: str) -> None:
    assert guard.vet(sql, dialect).sql  # type: ignore[arg-type]


def test_mysql_probe_gets_a_row_cap_limit_and_loses_comments() -> None:
    vetted = guard.vet("SELECT id /* note */ FROM t", "mysql", row_cap=50)
    assert vetted.sql.endswith("LIMIT 51")
    assert "note" not in vetted.sql


def test_monitor_refuses_before_touching_the_database(sqlite_url: str) -> None:
    """A refused probe fails construction; nothing was connected or run (the file does not even exist)."""
    with pytest.raises(InvalidInput):
        Monitor(sqlite_url.replace("test.db", "missing.db"), probe_queries=["SELECT 1", "SELECT 1; DELETE FROM t"])


def test_session_refuses_writes_even_past_the_guard(db_url: str) -> None:
    """Second wall: a write that somehow reached the probe session is refused by the database itself."""
    make_table(db_url, rows=3)
    session = MonitorSession(db_url, statement_timeout_s=2.0)
    try:
        tbl = sa.table(TABLE, sa.column("id"), sa.column("v"))
        write = Probe("user_evil", lambda _tick: (tbl.insert().values(id=999, v="x"), {}))
        result = run_probe(session, write, 1, 10)
    finally:
        session.close()
    assert not result.ok
    assert any(s in (result.error or "").lower() for s in ("read-only", "read only", "readonly"))
    eng = engine(db_url)
    with eng.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(tbl)).scalar_one() == 3
    eng.dispose()


def test_user_probe_runs_with_row_cap(pg_url: str) -> None:
    make_table(pg_url, rows=50)
    with Monitor(pg_url, probe_queries=[f"SELECT id FROM {TABLE} ORDER BY id"], row_cap=7) as mon:
        snap = mon.sample()
    user = next(p for p in snap.probes if p.probe == "user_1")
    assert user.ok and user.rows == 7 and user.truncated
