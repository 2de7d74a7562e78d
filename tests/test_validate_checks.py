"""Every check family on every dialect, against planted data with known offenders."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from dmig.db.engine import create
from dmig.validate.db import open_database, session
from dmig.validate.load import parse_spec
from dmig.validate.runner import ValidationRun, run_spec
from validate_helpers import EXPECTED, HOSTILE_COLUMN, HOSTILE_TABLE, HOSTILE_TEXT, plant_checks


def run(url: str, checks: list[dict[str, Any]], **defaults: Any) -> ValidationRun:
    return run_spec(parse_spec({"target": url, "defaults": {"sample_size": 5, **defaults}, "checks": checks}))


def by_name(result: ValidationRun) -> dict[str, Any]:
    return {c.name: c for c in result.checks}


def ids(check: Any) -> list[int]:
    return [row["id"] for row in check.sample]


EMAILS = ["ada@example.test", "grace@example.test", "alan@example.test", "barbara@example.test"]
CHECKS: list[dict[str, Any]] = [
    {"name": "emails", "type": "not_null", "table": "customers", "columns": ["email", "first_name"]},
    {"name": "names", "type": "not_null", "table": "customers", "columns": ["first_name"]},
    {"name": "ints", "type": "data_type", "table": "customers", "column": "age_text", "castable_to": "integer"},
    {"name": "bigints", "type": "data_type", "table": "customers", "column": "age_text", "castable_to": "bigint"},
    {"name": "dates", "type": "data_type", "table": "customers", "column": "signup", "castable_to": "date"},
    {"name": "money", "type": "data_type", "table": "customers", "column": "balance", "castable_to": "numeric(4,1)"},
    {"name": "short", "type": "data_type", "table": "customers", "column": "status", "castable_to": "varchar(8)"},
    {"name": "mail_re", "type": "data_type", "table": "customers", "column": "email", "pattern": "@example[.]test$"},
    {"name": "case_re", "type": "data_type", "table": "customers", "column": "first_name", "pattern": "^[a-z]"},
    {
        "name": "icase_re",
        "type": "data_type",
        "table": "customers",
        "column": "first_name",
        "pattern": "^[a-z]",
        "case_insensitive": True,
    },
    {"name": "balance", "type": "range", "table": "customers", "column": "balance", "min": 0, "max": 100},
    {"name": "updated", "type": "range", "table": "customers", "column": "updated_at", "min": "2000-01-01"},
    {"name": "status", "type": "enum", "table": "customers", "column": "status", "values": ["active", "inactive"]},
    {
        "name": "status_ci",
        "type": "enum",
        "table": "customers",
        "column": "status",
        "values": ["ACTIVE", "inactive"],
        "case_sensitive": False,
        "where": [{"column": "id", "op": "<=", "value": 4}],
    },
    {"name": "mail_set", "type": "enum", "table": "customers", "column": "email", "values": EMAILS},
    {
        "name": "mail_set_nn",
        "type": "enum",
        "table": "customers",
        "column": "email",
        "values": EMAILS,
        "allow_null": False,
        "severity": "warning",
    },
    {"name": "email_uq", "type": "unique", "table": "customers", "columns": ["email"]},
    {"name": "id_uq", "type": "duplicates", "table": "customers", "columns": ["id"]},
    {"name": "fresh", "type": "freshness", "table": "customers", "column": "updated_at", "max_age": "1d"},
    {
        "name": "stale",
        "type": "freshness",
        "table": "customers",
        "column": "updated_at",
        "max_age": "1h",
        "reference": "2999-01-01T00:00:00Z",
    },
    {
        "name": "fk",
        "type": "orphaned_fk",
        "table": "orders",
        "columns": ["customer_id"],
        "parent_table": "customers",
        "parent_columns": ["id"],
    },
    {"name": "declared", "type": "orphaned_fk", "all_declared": True},
    {"name": "hostile", "type": "not_null", "table": HOSTILE_TABLE, "columns": [HOSTILE_COLUMN]},
    {"name": "no_table", "type": "not_null", "table": "no_such_table", "columns": ["a"]},
    {"name": "no_column", "type": "range", "table": "customers", "column": "no_such_column", "min": 1},
]
CHECK = {c["name"]: c for c in CHECKS}


def test_every_check_family_finds_the_planted_offenders(db_url: str) -> None:
    plant_checks(db_url)
    result = run(db_url, CHECKS)
    c = by_name(result)

    assert c["emails"].status == "fail" and c["emails"].figures["nulls"] == {"email": 1, "first_name": 0}
    assert ids(c["emails"]) == EXPECTED["null_emails"]
    assert c["names"].status == "pass" and c["names"].figures["offending"] == 0
    assert ids(c["ints"]) == EXPECTED["bad_integers"] and c["ints"].figures["offending"] == 2
    assert ids(c["bigints"]) == [4]  # 99999999999 fits a bigint
    assert ids(c["dates"]) == EXPECTED["bad_dates"]  # 2023-02-29 and month 13; 2024-02-29 is a leap day
    assert ids(c["money"]) == [3]  # 5.25 needs two decimals; 10.50 loses nothing
    assert ids(c["short"]) == [5]  # 'inactive' fits in 8 characters; the hostile text does not
    assert c["mail_re"].status == "pass"
    assert c["case_re"].figures["offending"] == 6 and c["icase_re"].status == "pass"
    assert ids(c["balance"]) == EXPECTED["negative_balances"]
    assert c["updated"].status == "pass"
    assert ids(c["status"]) == EXPECTED["bad_statuses"]
    assert c["status_ci"].status == "pass"  # 'Active' passes case-insensitively; row 5 is filtered out
    assert c["mail_set"].status == "pass"  # NULL allowed by default
    assert c["mail_set_nn"].status == "fail" and c["mail_set_nn"].severity == "warning"
    assert ids(c["mail_set_nn"]) == EXPECTED["null_emails"]
    assert c["email_uq"].figures["duplicate_groups"] == EXPECTED["duplicate_emails"]
    assert c["email_uq"].sample == [{"email": "ada@example.test", "(rows)": 2}]
    assert c["id_uq"].status == "pass"
    assert c["fresh"].status == "pass" and c["stale"].status == "fail"
    assert c["fk"].figures == {"offending": 1, "rows_with_key": 3}  # the NULL customer_id is not an orphan
    assert ids(c["fk"]) == EXPECTED["orphans"]
    declared = [r for r in result.checks if r.name.startswith("declared ")]
    assert [r.name for r in declared] == ["declared orders(customer_id) -> customers(id)"]
    assert declared[0].figures["offending"] == 1
    assert c["hostile"].figures["nulls"] == {HOSTILE_COLUMN: 1} and ids(c["hostile"]) == [2]

    assert c["no_table"].status == "error" and c["no_table"].error.code == "E_NOT_FOUND"
    assert "no_such_table" in c["no_table"].summary
    assert c["no_column"].status == "error" and "no_such_column" in c["no_column"].error.message
    assert "first_name" in c["no_column"].error.message  # the message lists the real columns

    assert result.errored == 2 and result.warnings == 1 and not result.ok
    assert result.passed + result.failed + result.warnings + result.errored == len(result.checks)
    for check in result.checks:
        if check.status != "error":
            assert check.queries and all(q.on == "target" for q in check.queries)
            assert all("SELECT" in q.sql for q in check.queries)


def test_hostile_row_text_is_returned_only_as_bounded_data(db_url: str) -> None:
    plant_checks(db_url)
    result = run(db_url, [CHECK["status"]], max_value_chars=24)
    [check] = result.checks
    row = next(r for r in check.sample if r["id"] == 5)
    assert row["status"].startswith(HOSTILE_TEXT[:24]) and row["status"].endswith("chars)")
    assert HOSTILE_TEXT not in check.summary
    assert "untrusted" in result.note
    assert json.loads(json.dumps(result.model_dump(mode="json")))  # plain JSON data, nothing executable


def test_sample_is_bounded_and_ordered_by_key(db_url: str) -> None:
    plant_checks(db_url)
    [check] = run(db_url, [CHECK["case_re"]], sample_size=2).checks  # six offenders
    assert check.figures["offending"] == 6 and ids(check) == [1, 2] and check.sample_truncated


def test_check_sessions_are_read_only_in_the_database(db_url: str) -> None:
    plant_checks(db_url)
    db = open_database("target", db_url, pool_size=1)
    try:
        with session(db, 5.0, []) as s:
            if s.dialect == "postgresql":
                assert s.conn.exec_driver_sql("SHOW statement_timeout").scalar() == "5s"
                assert s.conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            elif s.dialect == "mysql":
                assert float(s.conn.exec_driver_sql("SELECT @@max_statement_time").scalar()) == 5.0
            with pytest.raises(sa.exc.DBAPIError):
                s.conn.execute(sa.text("DELETE FROM customers"))
    finally:
        db.dispose()
    engine = create(db_url)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM customers")).scalar() == 6
    finally:
        engine.dispose()


def test_sqlite_statement_timeout_interrupts_a_long_query(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    engine = create(url, must_exist=False)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE big (id INTEGER PRIMARY KEY, v TEXT)"))
        conn.execute(
            sa.text(
                "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) "
                "INSERT INTO big SELECT i, printf('%d-x', i) FROM n"
            )
        )
    engine.dispose()
    checks = [{"type": "data_type", "table": "big", "column": "v", "castable_to": "timestamp"}]
    [check] = run(url, checks, statement_timeout_s=0.01).checks
    assert check.status == "error" and check.error.code == "E_DATABASE"
    assert "statement timeout" in check.error.message
