"""health/monitor probes are a closed set: the attacks of issue 20.1, on real PostgreSQL and MariaDB.

Each attack goes through the real tool (registry -> service) and must be refused before it runs;
the effect is then checked independently with plain SQL on a second connection: the replication
slot still exists, the statistics were not reset, no file content and no password hash appears in
any output. The walls behind the parser are tested on their own too: a probe that errors with data
in the message gets a SQLSTATE and a fixed reason only, and a PostgreSQL superuser's probes run as
a role without superuser rights.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from dmig.context import RunContext
from dmig.errors import DmigError
from dmig.monitor.monitor import Monitor
from dmig.monitor.probes import PG_PROBE_ROLE, Probe, ProbeTarget, run_probe
from dmig.monitor.session import MonitorSession
from dmig.registry import all_tools, run_tool
from monitor_helpers import TABLE, engine, make_table

SECRET = "s3cr3t-" + uuid.uuid4().hex[:8]

PG_ATTACKS = [
    # the exact exfiltration: ts_rewrite runs its second argument as a query
    "SELECT ts_rewrite('a'::tsquery, 'SELECT pg_read_file(''/etc/passwd'')::tsquery, ''b''::tsquery')",
    "SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery')",
    f"SELECT brin_summarize_new_values('{TABLE}_pkey')",
    f"SELECT gin_clean_pending_list('{TABLE}_pkey')",
    "SELECT pg_stat_reset()",
    "SELECT pg_stat_reset_shared('bgwriter')",
    f"SELECT pg_stat_reset_single_table_counters('{TABLE}'::regclass)",
    "SELECT pg_drop_replication_slot('{slot}')",
    "SELECT 1 FROM (SELECT pg_drop_replication_slot('{slot}')) x",
    "SELECT rolpassword FROM pg_authid",
    "SELECT CAST(rolpassword AS int) FROM pg_catalog.pg_authid",
    "SELECT (SELECT rolpassword FROM pg_authid LIMIT 1)::int",
    "SELECT * FROM pg_hba_file_rules",
    "SELECT * FROM pg_shadow",
    "SELECT * FROM information_schema.role_table_grants",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT * FROM pg_ls_dir('.')",
    "SELECT current_setting('data_directory')",
    "SELECT query_to_xml('SELECT pg_read_file(''/etc/passwd'')', true, true, '')",
    "SELECT xmlparse(document pg_read_file('/etc/passwd'))",
    "SELECT * FROM generate_series(1, 3)",
    "SELECT 1 OPERATOR(pg_catalog.+) 1",
    f"SELECT id::regclass FROM {TABLE}",
    f"SELECT count(*) FILTER (WHERE pg_stat_reset() IS NULL) FROM {TABLE}",
]
MYSQL_ATTACKS = [
    "SELECT authentication_string FROM mysql.user",
    "SELECT Password FROM mysql.user",
    "SELECT * FROM mysql.global_priv",
    "SELECT EXTRACTVALUE(1, CONCAT(0x7e, (SELECT authentication_string FROM mysql.user LIMIT 1)))",
    "SELECT * FROM information_schema.processlist",
    "SELECT * FROM performance_schema.threads",
    "SELECT LOAD_FILE('/etc/passwd')",
    "SELECT @@datadir",
    "SELECT USER()",
    "SELECT SLEEP(1)",
    "SELECT 1 /*! , LOAD_FILE('/etc/passwd') */",
]


def _health(project: Path, url: str, probes: list[str], **extra: object) -> tuple[str, DmigError | None]:
    spec = next(s for s in all_tools() if s.name == "health")
    try:
        out = run_tool(spec, {"url": url, "probes": probes, "rounds": 1, **extra}, RunContext(project_dir=project))
    except DmigError as exc:
        return json.dumps(exc.info().model_dump()), exc
    return out.model_dump_json(), None


@pytest.fixture
def pg_slot(pg_url: str) -> Iterator[str]:
    """A real physical replication slot (works at wal_level=replica); dropped at the end."""
    slot = f"dmig_sec_{uuid.uuid4().hex[:10]}"
    eng = engine(pg_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.execute(sa.text("SELECT pg_create_physical_replication_slot(:s)"), {"s": slot})
    try:
        yield slot
    finally:
        with eng.connect() as conn:
            conn.execute(
                sa.text("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = :s"),
                {"s": slot},
            )
        eng.dispose()


def _pg_state(url: str, slot: str) -> tuple[bool, object]:
    eng = engine(url)
    with eng.connect() as conn:
        exists = conn.execute(
            sa.text("SELECT count(*) FROM pg_replication_slots WHERE slot_name = :s"), {"s": slot}
        ).scalar_one()
        reset = conn.execute(
            sa.text("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
        ).scalar_one()
    eng.dispose()
    return exists == 1, reset


@pytest.mark.parametrize("attack", PG_ATTACKS)
def test_postgres_attacks_are_refused_before_running(project: Path, pg_url: str, pg_slot: str, attack: str) -> None:
    make_table(pg_url, rows=5)
    before = _pg_state(pg_url, pg_slot)
    text, err = _health(project, pg_url, [attack.replace("{slot}", pg_slot)], table=TABLE)
    assert err is not None and err.code == "E_INVALID_INPUT", text
    assert err.info().details.get("reason") == "probe_refused"
    assert _pg_state(pg_url, pg_slot) == before  # the slot is still there, the statistics not reset
    assert before[0]
    assert "root:" not in text and "SCRAM-SHA-256$" not in text


@pytest.mark.parametrize("attack", MYSQL_ATTACKS)
def test_mariadb_attacks_are_refused_before_running(project: Path, mysql_url: str, attack: str) -> None:
    make_table(mysql_url, rows=5)
    text, err = _health(project, mysql_url, [attack], table=TABLE)
    assert err is not None and err.code == "E_INVALID_INPUT", text
    assert "root:" not in text and "*" + "0" * 8 not in text


def test_a_view_is_not_a_plain_table(project: Path, pg_url: str, mysql_url: str, sqlite_url: str) -> None:
    """A view's body can call any function: a probe may read only plain tables (checked in the catalog)."""
    for url in (pg_url, mysql_url, sqlite_url):
        make_table(url, rows=3)
        eng = engine(url)
        with eng.begin() as conn:
            conn.execute(sa.text(f"CREATE VIEW probe_v AS SELECT id FROM {TABLE}"))
        eng.dispose()
        text, err = _health(project, url, ["SELECT count(*) FROM probe_v"])
        assert err is not None and err.code == "E_INVALID_INPUT", text
        assert "probe_v" in err.message and "not a plain table" in err.message
        text, err = _health(project, url, [f"SELECT count(*) FROM {TABLE} WHERE id > 0"])
        assert err is None, text
        assert json.loads(text)["probes"][-1] == "user_1"


@pytest.mark.parametrize(
    ("dialect", "probe"),
    [
        ("postgresql", f"SELECT CAST(v AS int) FROM {TABLE}"),
        ("postgresql", f"SELECT count(*) FROM {TABLE} WHERE v::int > 0"),
        ("postgresql", f"SELECT v::date FROM {TABLE}"),
        ("mariadb", f"SELECT CAST(v AS SIGNED) FROM {TABLE} WHERE id = 1 AND 1 = (SELECT 1 UNION SELECT 2)"),
    ],
)
def test_probe_error_texts_carry_no_data(project: Path, pg_url: str, mysql_url: str, dialect: str, probe: str) -> None:
    """An allowed probe that fails with row data in the server's message: only SQLSTATE + a fixed reason."""
    url = pg_url if dialect == "postgresql" else mysql_url
    make_table(url, rows=3)
    eng = engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text(f"UPDATE {TABLE} SET v = :s"), {"s": SECRET})
    eng.dispose()
    text, err = _health(project, url, [probe])
    assert err is None, text
    user = [p for p in json.loads(text)["snapshot"]["probes"] if p["probe"] == "user_1"]
    assert user and not user[0]["ok"] and user[0]["error"]
    assert SECRET not in text
    assert user[0]["error"].startswith(("SQLSTATE ", "MySQL error "))


def test_error_text_of_a_raw_exfiltration_is_reduced_on_mariadb(mysql_url: str) -> None:
    """Past the parser (a Probe built by hand): EXTRACTVALUE puts the hash in the error; it is not shown."""
    session = MonitorSession(mysql_url, statement_timeout_s=2.0)
    try:
        sql = "SELECT EXTRACTVALUE(1, CONCAT(0x7e, (SELECT CONCAT(user, ':', host) FROM mysql.user LIMIT 1)))"
        result = run_probe(session, Probe("user_raw", lambda _t: (sql, {})), 1, 10)
    finally:
        session.close()
    assert not result.ok and result.error and result.error.startswith("MySQL error")
    assert "~" not in result.error and "root" not in result.error


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT pg_read_file('/etc/passwd')",
        "SELECT pg_stat_reset()",
        "SELECT pg_drop_replication_slot('{slot}')",
        "SELECT pg_ls_dir('.')",
    ],
)
def test_postgres_superuser_probes_run_without_superuser_rights(pg_url: str, pg_slot: str, sql: str) -> None:
    """Third wall: even a probe that slipped past the parser runs as pg_read_all_data, which may not do these.

    (pg_read_all_data may read the catalogs, pg_authid included: that is why the parser and the catalog
    check refuse system tables; this wall is about superuser-only functions.)"""
    before = _pg_state(pg_url, pg_slot)
    session = MonitorSession(pg_url, statement_timeout_s=2.0)
    try:
        text = sql.replace("{slot}", pg_slot)
        probe = Probe("user_raw", lambda _t: (text, {}), role=PG_PROBE_ROLE)
        result = run_probe(session, probe, 1, 10)
    finally:
        session.close()
    assert not result.ok and result.error == "SQLSTATE 42501: insufficient privilege"
    assert _pg_state(pg_url, pg_slot) == before


def test_postgres_superuser_connection_gets_the_probe_role(pg_url: str) -> None:
    make_table(pg_url, rows=4)
    with Monitor(pg_url, probe_queries=[f"SELECT count(*) FROM {TABLE}"]) as mon:
        user = next(p for p in mon.probes if p.name == "user_1")
        snap = mon.sample()
    assert user.role == PG_PROBE_ROLE
    assert next(p for p in snap.probes if p.probe == "user_1").ok


def test_builtin_probes_are_built_from_names_not_text(pg_url: str) -> None:
    """The tool's own probes are SQLAlchemy Core statements over introspected names: a hostile table name
    is quoted as an identifier and the probes still read it (nothing runs as SQL text)."""
    name = 'x"; SELECT pg_stat_reset(); --'
    make_table(pg_url, rows=5, name=name)
    with Monitor(pg_url, target=ProbeTarget(table=name)) as mon:
        kinds = [p.name for p in mon.probes]
        snap = mon.sample()
        statements = [p.statement(0)[0] for p in mon.probes]
    assert kinds == ["round_trip", "pk_lookup", "index_range"]
    assert all(p.ok for p in snap.probes)
    assert not any(isinstance(s, str) for s in statements)
