"""Each lint rule with a positive and a negative case on raw SQL (PostgreSQL via pglast, MySQL via sqlglot),
ignore comments, spec lint, and the `dmig lint` exit codes."""

from __future__ import annotations

import pytest

from dmig.lint.engine import lint_spec, lint_sql
from dmig.lint.rules import RULES
from dmig.spec.context import OpContext
from spec_helpers import spec_of

T = "SET lock_timeout = '2s'; SET statement_timeout = '60s';\n"
M = "SET SESSION lock_wait_timeout = 2; SET SESSION max_statement_time = 60;\n"

PG_CASES = [
    ("pg-create-index-non-concurrent", "CREATE INDEX i ON t (a)", "CREATE INDEX CONCURRENTLY i ON t (a)"),
    ("pg-drop-index-non-concurrent", "DROP INDEX i", "DROP INDEX CONCURRENTLY i"),
    ("pg-reindex-non-concurrent", "REINDEX TABLE t", "REINDEX TABLE CONCURRENTLY t"),
    (
        "pg-concurrently-in-transaction",
        "BEGIN; CREATE INDEX CONCURRENTLY i ON t (a); COMMIT",
        "CREATE INDEX CONCURRENTLY i ON t (a)",
    ),
    (
        "pg-constraint-not-valid",
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id)",
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id) NOT VALID; "
        "ALTER TABLE t VALIDATE CONSTRAINT f",
    ),
    (
        "pg-constraint-not-valid",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0)",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a > 0) NOT VALID",
    ),
    (
        "pg-set-not-null-without-check",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT c; "
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
    ),
    (
        "pg-unique-constraint-exclusive",
        "ALTER TABLE t ADD CONSTRAINT u UNIQUE (a)",
        "CREATE UNIQUE INDEX CONCURRENTLY u ON t (a); ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX u",
    ),
    (
        "pg-volatile-default",
        "ALTER TABLE t ADD COLUMN c uuid DEFAULT gen_random_uuid()",
        "ALTER TABLE t ADD COLUMN c timestamptz DEFAULT now()",
    ),
    ("pg-volatile-default", "ALTER TABLE t ADD COLUMN c bigserial", "ALTER TABLE t ADD COLUMN c bigint"),
    (
        "pg-stored-generated-rewrite",
        "ALTER TABLE t ADD COLUMN c int GENERATED ALWAYS AS (a * 2) STORED",
        "ALTER TABLE t ADD COLUMN c int",
    ),
    ("column-type-change", "ALTER TABLE t ALTER COLUMN a TYPE bigint", "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1"),
    (
        "adding-required-column",
        "ALTER TABLE t ADD COLUMN c int NOT NULL",
        "ALTER TABLE t ADD COLUMN c int NOT NULL DEFAULT 0",
    ),
    ("rename-column", "ALTER TABLE t RENAME COLUMN a TO b", "ALTER TABLE t ADD COLUMN b int"),
    ("rename-table", "ALTER TABLE t RENAME TO u", "ALTER TABLE t ADD COLUMN b int"),
    ("drop-column", "ALTER TABLE t DROP COLUMN a", "ALTER TABLE t ADD COLUMN b int"),
    ("drop-table", "DROP TABLE t", "DROP INDEX CONCURRENTLY i"),
    ("truncate-cascade", "TRUNCATE t CASCADE", "TRUNCATE t"),
    ("pg-table-rewrite", "VACUUM FULL t", "VACUUM t"),
    ("pg-table-rewrite", "CLUSTER t USING i", "ANALYZE t"),
    (
        "pg-prefer-jsonb",
        "CREATE TABLE t (id bigint PRIMARY KEY, j json)",
        "CREATE TABLE t (id bigint PRIMARY KEY, j jsonb)",
    ),
    ("prefer-bigint-keys", "CREATE TABLE t (id serial PRIMARY KEY)", "CREATE TABLE t (id bigserial PRIMARY KEY)"),
    (
        "pg-prefer-timestamptz",
        "CREATE TABLE t (id bigint PRIMARY KEY, at timestamp)",
        "CREATE TABLE t (id bigint PRIMARY KEY, at timestamptz)",
    ),
    ("parse-error", "ALTER TABLE t ADD COLUMN", "ALTER TABLE t ADD COLUMN c int"),
]

MYSQL_CASES = [
    (
        "mysql-algorithm-copy",
        "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=COPY",
        "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT",
    ),
    (
        "mysql-lock-not-none",
        "ALTER TABLE t ADD INDEX i (a), ALGORITHM=INPLACE, LOCK=SHARED",
        "ALTER TABLE t ADD INDEX i (a), ALGORITHM=INPLACE, LOCK=NONE",
    ),
    (
        "mysql-lock-not-none",
        "CREATE INDEX i ON t (a) ALGORITHM=INPLACE LOCK=EXCLUSIVE",
        "CREATE INDEX i ON t (a) ALGORITHM=INPLACE LOCK=NONE",
    ),
    (
        "mysql-table-copy",
        "ALTER TABLE t CONVERT TO CHARACTER SET utf8mb4",
        "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT",
    ),
    (
        "mysql-table-copy",
        "ALTER TABLE t ADD CONSTRAINT f FOREIGN KEY (a) REFERENCES u (id), ALGORITHM=INPLACE",
        "ALTER TABLE t ADD INDEX i (a), ALGORITHM=INPLACE, LOCK=NONE",
    ),
    ("mysql-missing-algorithm", "ALTER TABLE t ADD COLUMN c INT", "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT"),
    (
        "column-type-change",
        "ALTER TABLE t MODIFY COLUMN a BIGINT, ALGORITHM=INPLACE",
        "ALTER TABLE t ADD COLUMN b BIGINT, ALGORITHM=INSTANT",
    ),
    (
        "adding-required-column",
        "ALTER TABLE t ADD COLUMN c INT NOT NULL, ALGORITHM=INSTANT",
        "ALTER TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0, ALGORITHM=INSTANT",
    ),
    (
        "rename-column",
        "ALTER TABLE t RENAME COLUMN a TO b, ALGORITHM=INSTANT",
        "ALTER TABLE t ADD COLUMN b INT, ALGORITHM=INSTANT",
    ),
    ("rename-table", "RENAME TABLE a TO b", "ALTER TABLE t ADD COLUMN b INT, ALGORITHM=INSTANT"),
    (
        "drop-column",
        "ALTER TABLE t DROP COLUMN a, ALGORITHM=INSTANT",
        "ALTER TABLE t ADD COLUMN b INT, ALGORITHM=INSTANT",
    ),
    ("drop-table", "DROP TABLE t", "CREATE TABLE t2 (id BIGINT PRIMARY KEY)"),
    (
        "prefer-bigint-keys",
        "CREATE TABLE t (id INT AUTO_INCREMENT PRIMARY KEY)",
        "CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY)",
    ),
    ("missing-lock-timeout", "ALTER TABLE t ADD COLUMN c INT, ALGORITHM=INSTANT", None),
]


def _rules(sql: str, dialect: str, version: tuple[int, ...] = (15,), flavor: str | None = None) -> set[str]:
    return {f.rule for f in lint_sql(sql, dialect, version, flavor).findings if not f.ignored}


@pytest.mark.parametrize(("rule", "bad", "good"), PG_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(PG_CASES)])
def test_postgresql_rule(rule: str, bad: str, good: str) -> None:
    assert rule in _rules(T + bad, "postgresql")
    assert rule not in _rules(T + good, "postgresql")


@pytest.mark.parametrize(("rule", "bad", "good"), MYSQL_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(MYSQL_CASES)])
def test_mysql_rule(rule: str, bad: str, good: str | None) -> None:
    if rule == "missing-lock-timeout":
        assert rule in _rules(bad, "mysql", (10, 11), "mariadb")
        assert rule not in _rules(M + bad, "mysql", (10, 11), "mariadb")
        return
    assert rule in _rules(M + bad, "mysql", (10, 11), "mariadb")
    assert rule not in _rules(M + good, "mysql", (10, 11), "mariadb")


def test_timeouts_are_flagged_once_and_respected_when_set() -> None:
    findings = lint_sql(
        "CREATE INDEX CONCURRENTLY i ON t (a); ALTER TABLE t ADD COLUMN c int", "postgresql", (15,)
    ).findings
    assert [f.rule for f in findings].count("missing-lock-timeout") == 1
    assert "missing-statement-timeout" in {f.rule for f in findings}
    assert "missing-lock-timeout" not in _rules(T + "ALTER TABLE t ADD COLUMN c int", "postgresql")


def test_version_awareness() -> None:
    add_default = "ALTER TABLE t ADD COLUMN c int DEFAULT 0"
    assert "pg-default-rewrite-pre-11" in _rules(T + add_default, "postgresql", (10,))
    assert "pg-default-rewrite-pre-11" not in _rules(T + add_default, "postgresql", (11,))
    safe_nn = (
        "ALTER TABLE t ADD CONSTRAINT c CHECK (a IS NOT NULL) NOT VALID; ALTER TABLE t VALIDATE CONSTRAINT c; "
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL"
    )
    assert "pg-set-not-null-without-check" in _rules(T + safe_nn, "postgresql", (11,))


def test_new_tables_in_the_same_file_are_exempt() -> None:
    sql = T + "CREATE TABLE t (id bigint PRIMARY KEY, a int); CREATE INDEX i ON t (a)"
    assert "pg-create-index-non-concurrent" not in _rules(sql, "postgresql")


def test_lines_and_excerpts() -> None:
    [f] = [f for f in lint_sql(T + "\n\n-- comment\nDROP TABLE t;", "postgresql", (15,)).findings]
    assert f.rule == "drop-table" and f.line == 5 and f.statement == "DROP TABLE t"
    [g] = [f for f in lint_sql(M + "\n\nDROP TABLE t;", "mysql", (10, 11), "mariadb").findings]
    assert g.line == 4


def test_ignore_with_reason_suppresses() -> None:
    sql = T + "-- dmig:ignore drop-table reason: empty table, never shipped\nDROP TABLE t;"
    result = lint_sql(sql, "postgresql", (15,))
    [f] = result.findings
    assert f.ignored and f.ignore_reason == "empty table, never shipped" and not result.has_errors
    same_line = T + "DROP TABLE t; -- dmig:ignore drop-table reason: scratch"
    assert lint_sql(same_line, "postgresql", (15,)).findings[0].ignored


def test_ignore_without_reason_is_an_error_and_suppresses_nothing() -> None:
    sql = T + "-- dmig:ignore pg-create-index-non-concurrent\nCREATE INDEX i ON t (a);"
    result = lint_sql(sql, "postgresql", (15,))
    rules = {f.rule: f for f in result.findings}
    assert not rules["pg-create-index-non-concurrent"].ignored
    assert rules["ignore-without-reason"].severity == "error" and rules["ignore-without-reason"].line == 2
    unknown = lint_sql(T + "-- dmig:ignore no-such-rule reason: x\nSELECT 1", "postgresql", (15,))
    assert [f.rule for f in unknown.findings] == ["unknown-rule"]


def test_spec_lint_and_op_ignores() -> None:
    spec = spec_of(
        {"op": "raw_sql", "sql": "CREATE INDEX i ON t (a)"},
        {
            "op": "drop_column",
            "table": "t",
            "column": "c",
            "ignore": [{"rule": "drop-column", "reason": "column unused since v3"}],
        },
        {
            "op": "rename_column",
            "table": "t",
            "column": "a",
            "to": "b",
            "type": "text",
            "mode": "in_place",
            "ignore": [{"rule": "rename-column"}],
        },
    )
    result = lint_spec(spec, OpContext.offline("postgresql", "15", spec.options))
    by = {(f.rule, f.op_index): f for f in result.findings}
    assert by[("raw-sql", 0)] and by[("pg-create-index-non-concurrent", 0)]
    assert by[("drop-column", 1)].ignored
    assert not by[("rename-column", 2)].ignored and ("ignore-without-reason", 2) in by
    assert "missing-lock-timeout" not in {f.rule for f in result.findings}  # the spec sets options.lock_timeout_ms


def test_spec_without_timeouts_gets_the_defaults_and_a_raised_one_is_flagged() -> None:
    """issue 13: unset timeouts are the executor's safe defaults (not a finding); raising the lock wait is."""
    from dmig.spec.models import parse_spec

    ops = [{"op": "add_index", "table": "t", "columns": ["a"]}]
    spec = parse_spec({"id": "x", "operations": ops})
    rules = {f.rule for f in lint_spec(spec, OpContext.offline("postgresql", "15", spec.options)).findings}
    assert not {"missing-lock-timeout", "missing-statement-timeout", "raised-lock-timeout"} & rules
    raised = parse_spec({"id": "x", "options": {"lock_timeout_ms": 5000}, "operations": ops})
    rules = {f.rule for f in lint_spec(raised, OpContext.offline("postgresql", "15", raised.options)).findings}
    assert "raised-lock-timeout" in rules


def test_operation_lints() -> None:
    spec = spec_of(
        {"op": "add_column", "table": "t", "column": {"name": "c", "type": "integer", "nullable": False}},
        {
            "op": "create_table",
            "table": "n",
            "columns": [{"name": "id", "type": "integer", "primary_key": True}, {"name": "j", "type": "json"}],
        },
        {"op": "add_check", "table": "t", "name": "ck", "expression": "c > 0"},
    )
    pg = {f.rule for f in lint_spec(spec, OpContext.offline("postgresql", "15", spec.options)).findings}
    assert {"adding-required-column", "prefer-bigint-keys", "pg-prefer-jsonb"} <= pg
    my = {f.rule for f in lint_spec(spec, OpContext.offline("mysql", "10.11", spec.options)).findings}
    assert "mysql-constraint-copy" in my


def test_every_rule_has_text() -> None:
    for rule in RULES.values():
        assert rule.message and rule.severity in ("error", "warning", "info")
