"""Spec parsing, errors, hostile input, rendering of every operation for every dialect, the JSON Schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dmig.assets import schema_path
from dmig.errors import Conflict, InvalidInput
from dmig.spec.context import OpContext, session_settings
from dmig.spec.models import OP_NAMES, SCHEMA_FILE, SpecOptions, load_spec, parse_spec, parse_spec_text, schema_text
from dmig.spec.render import render_spec
from spec_helpers import spec_of

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "migrations" / "examples" / "split-user-name.yaml"
DIALECTS = [
    ("postgresql", "15"),
    ("postgresql", "10"),
    ("mysql", "10.11"),
    ("mysql", "mysql-8.0.36"),
    ("mysql", "10.2"),
    ("sqlite", "3.40"),
]

ONE_OF_EACH = [
    {"op": "create_table", "table": "t", "columns": [{"name": "id", "type": "bigint", "primary_key": True}]},
    {"op": "add_column", "table": "users", "column": {"name": "c", "type": "integer", "default": 0}},
    {"op": "drop_column", "table": "users", "column": "c"},
    {"op": "rename_column", "table": "users", "column": "a", "to": "b", "type": "text"},
    {"op": "split_column", "table": "users", "column": "user_name", "into": ["first_name", "last_name"]},
    {"op": "merge_columns", "table": "users", "columns": ["first_name", "last_name"], "into": "full_name"},
    {
        "op": "change_column_type",
        "table": "users",
        "column": "n",
        "type": "bigint",
        "from_type": "integer",
        "not_null": True,
    },
    {"op": "set_not_null", "table": "users", "column": "n", "type": "integer"},
    {"op": "add_foreign_key", "table": "users", "columns": ["team_id"], "ref_table": "teams", "ref_columns": ["id"]},
    {"op": "add_unique", "table": "users", "columns": ["email"]},
    {"op": "add_index", "table": "users", "columns": ["email"]},
    {"op": "add_check", "table": "users", "name": "ck", "expression": "n >= 0"},
    {"op": "backfill", "table": "users", "set": {"email_lc": "lower(email)"}},
    {"op": "move_table", "table": "users", "target_table": "users_v2"},
    {"op": "raw_sql", "sql": "UPDATE users SET n = 0 WHERE n IS NULL", "rollback_sql": "SELECT 1"},
]


def test_every_operation_is_covered_here() -> None:
    assert sorted(o["op"] for o in ONE_OF_EACH) == OP_NAMES


@pytest.mark.parametrize(("dialect", "version"), DIALECTS)
def test_every_operation_renders_for_every_dialect(dialect: str, version: str) -> None:
    spec = spec_of(*ONE_OF_EACH)
    rendered = render_spec(spec, OpContext.offline(dialect, version, spec.options))
    assert len(rendered.operations) == len(ONE_OF_EACH)
    ids = [s.id for op in rendered.operations for ph in ("expand", "contract", "rollback") for s in getattr(op, ph)]
    assert len(ids) == len(set(ids)), "step ids must be unique"
    for op in rendered.operations:
        for phase in ("expand", "contract", "rollback"):
            for step in getattr(op, phase):
                assert step.phase == phase and step.op == op.op
                assert step.sql or step.kind == "copy" or step.requires_live_schema, step.id
                assert step.lock and step.lock_reason
        for step in op.expand:  # rollback references resolve to real rollback steps
            assert set(step.rollback) <= {s.id for s in op.rollback}, step.id
    by_op = {op.op: op for op in rendered.operations}
    assert by_op["split_column"].backfill is not None and by_op["split_column"].validate_
    assert by_op["drop_column"].contract[0].destructive
    assert by_op["move_table"].expand[0].kind == "copy"


def test_postgresql_specifics() -> None:
    spec = spec_of(*ONE_OF_EACH)
    ops = {o.op: o for o in render_spec(spec, OpContext.offline("postgresql", "15", spec.options)).operations}
    index = ops["add_index"].expand[0]
    assert "CONCURRENTLY" in index.sql[0] and not index.transactional
    unique = ops["add_unique"].expand
    assert "CREATE UNIQUE INDEX CONCURRENTLY" in unique[0].sql[0] and "USING INDEX" in unique[1].sql[0]
    fk = ops["add_foreign_key"].expand
    assert fk[0].sql[-1].endswith("NOT VALID") and "VALIDATE CONSTRAINT" in fk[1].sql[0]
    nn = ops["set_not_null"]
    # issue 13: the NOT VALID check binds writers, so it is added at contract (after the backfill), not in expand
    assert nn.expand == [] and "NOT VALID" in nn.contract[0].sql[-1]
    assert [s.id.rsplit(".", 1)[-1] for s in nn.contract] == ["not_null_check", "validate_check", "set_not_null"]
    # PostgreSQL 10: SET NOT NULL would scan, so the validated CHECK stays the enforcement.
    old = {o.op: o for o in render_spec(spec, OpContext.offline("postgresql", "10", spec.options)).operations}
    assert [s.id.rsplit(".", 1)[-1] for s in old["set_not_null"].contract] == ["not_null_check", "validate_check"]
    assert "EXECUTE PROCEDURE" in old["split_column"].expand[-1].sql[-1]


def test_mysql_version_gates() -> None:
    spec = spec_of(*ONE_OF_EACH)
    new = {o.op: o for o in render_spec(spec, OpContext.offline("mysql", "10.11", spec.options)).operations}
    old = {o.op: o for o in render_spec(spec, OpContext.offline("mysql", "10.2", spec.options)).operations}
    assert "ALGORITHM=INSTANT" in new["add_column"].expand[0].sql[0]
    assert "ALGORITHM=INPLACE, LOCK=NONE" in old["add_column"].expand[0].sql[0]
    assert old["add_column"].expand[0].rewrites_table and not new["add_column"].expand[0].rewrites_table
    assert "ALGORITHM=INSTANT" in new["drop_column"].contract[0].sql[0]
    assert "ALGORITHM=INPLACE" in old["drop_column"].contract[0].sql[0]
    fk = new["add_foreign_key"].contract[0]
    assert fk.sql[0] == "SET SESSION foreign_key_checks = 0" and "ALGORITHM=INPLACE, LOCK=NONE" in fk.sql[1]


def test_sqlite_rebuild_needs_live_schema() -> None:
    spec = spec_of({"op": "set_not_null", "table": "users", "column": "n"})
    [step] = render_spec(spec, OpContext.offline("sqlite", "3.40", spec.options)).operations[0].contract
    assert step.requires_live_schema and step.sql == [] and step.rewrites_table and not step.transactional


def test_session_settings_per_dialect() -> None:
    opts = SpecOptions(lock_timeout_ms=1500, statement_timeout_ms=60000)
    assert session_settings(OpContext.offline("postgresql", "15", opts)) == [
        "SET lock_timeout = 1500",
        "SET statement_timeout = 60000",
    ]
    assert "SET SESSION max_statement_time = 60" in session_settings(OpContext.offline("mysql", "10.11", opts))
    assert "SET SESSION max_execution_time = 60000" in session_settings(OpContext.offline("mysql", "8.0.36", opts))
    assert session_settings(OpContext.offline("sqlite", None, opts)) == ["PRAGMA busy_timeout = 1500"]


def test_example_spec_loads() -> None:
    spec = load_spec(EXAMPLE)
    assert spec.operations[0].op == "split_column" and spec.database == "env:DMIG_TARGET_URL"


def test_malformed_spec_lists_pydantic_errors() -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec({"id": "x", "operations": [{"op": "split_column", "table": "users", "into": ["a"], "bogus": 1}]})
    fields = {e["field"] for e in err.value.details["errors"]}
    assert err.value.code == "E_INVALID_INPUT"
    assert any("column" in f for f in fields) and any("into" in f for f in fields) and any("bogus" in f for f in fields)


def test_unknown_op_and_bad_documents() -> None:
    with pytest.raises(InvalidInput, match="unknown op 'drop_database'"):
        parse_spec({"id": "x", "operations": [{"op": "drop_database"}]})
    with pytest.raises(InvalidInput, match="not valid YAML"):
        parse_spec_text("id: [unclosed")
    with pytest.raises(InvalidInput, match="mapping"):
        parse_spec_text("- just a list")
    with pytest.raises(InvalidInput):
        parse_spec({"id": "bad id with spaces", "operations": [ONE_OF_EACH[0]]})


@pytest.mark.parametrize("name", ["tab\tle", "x\x00", " padded", "a" * 200])
def test_hostile_identifiers_are_refused(name: str) -> None:
    with pytest.raises(InvalidInput):
        parse_spec({"id": "x", "operations": [{"op": "drop_column", "table": name, "column": "c"}]})


def test_hostile_identifiers_are_quoted() -> None:
    table, column = 'we"ird; DROP TABLE x --', "na`me'"
    spec = spec_of({"op": "drop_column", "table": table, "column": column})
    pg = render_spec(spec, OpContext.offline("postgresql", "15", spec.options)).operations[0].contract[0].sql[0]
    my = render_spec(spec, OpContext.offline("mysql", "10.11", spec.options)).operations[0].contract[0].sql[0]
    assert '"we""ird; DROP TABLE x --"' in pg and '"na`me\'"' in pg
    assert '`we"ird; DROP TABLE x --`' in my and "`na``me'`" in my


@pytest.mark.parametrize("expression", ["(SELECT 1)", "a; DROP TABLE t", "pg_sleep(10)", "t.a > 1", "a IS b"])
def test_unsafe_expressions_are_refused(expression: str) -> None:
    with pytest.raises(InvalidInput):
        spec = spec_of({"op": "add_check", "table": "t", "name": "c", "expression": expression})
        render_spec(spec, OpContext.offline("postgresql", "15", spec.options))


def test_unknown_types_are_refused() -> None:
    with pytest.raises(InvalidInput):
        parse_spec(
            {
                "id": "x",
                "operations": [
                    {"op": "add_column", "table": "t", "column": {"name": "c", "type": "int; DROP TABLE t"}}
                ],
            }
        )


def test_separator_is_validated_and_escaped() -> None:
    with pytest.raises(InvalidInput):
        spec_of({"op": "split_column", "table": "u", "column": "n", "into": ["a", "b"], "separator": "\n"})
    spec = spec_of({"op": "split_column", "table": "u", "column": "n", "into": ["a", "b"], "separator": "'; --"})
    sql = render_spec(spec, OpContext.offline("postgresql", "15", spec.options)).operations[0].backfill.update_all_sql
    assert "''; --'" in sql


def test_rollback_after_contract_is_refused() -> None:
    spec = spec_of(ONE_OF_EACH[4])
    with pytest.raises(Conflict, match="restore from the verified backup"):
        spec.operations[0].rollback(OpContext.offline("postgresql", "15", spec.options), "contract")


def test_committed_json_schema_matches_models() -> None:
    assert schema_path(SCHEMA_FILE).read_text(encoding="utf-8") == schema_text()
    schema = json.loads(schema_text())
    assert set(OP_NAMES) <= set(json.dumps(schema).split('"')), "every op appears in the schema"
