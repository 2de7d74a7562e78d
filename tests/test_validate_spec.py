"""The rule spec: the published JSON Schema matches the models, and malformed specs fail clearly."""

from __future__ import annotations

import json
from datetime import date, timedelta

import jsonschema
import pytest

from dmig.assets import schema_path
from dmig.errors import InvalidInput
from dmig.validate.load import parse_spec
from dmig.validate.spec import SCHEMA_FILE, json_schema, parse_duration, parse_type, schema_text

EXAMPLE = {
    "source": "env:SOURCE_DB_URL",
    "target": "env:TARGET_DB_URL",
    "defaults": {"sample_size": 5, "seed": 42, "tolerance": {"percent": 0.5}},
    "checks": [
        {"type": "row_count", "tables": ["users", {"source_table": "user", "target_table": "users2"}]},
        {
            "type": "not_null",
            "table": "users",
            "columns": ["email"],
            "where": [{"column": "active", "op": "=", "value": 1}],
        },
        {"type": "data_type", "table": "users", "column": "age", "castable_to": "numeric(5,2)"},
        {"type": "orphaned_fk", "all_declared": True},
        {"type": "range", "table": "orders", "column": "placed", "min": "2020-01-01", "max": 5},
        {"type": "enum", "table": "orders", "column": "status", "values": ["new", "paid"], "allow_null": False},
        {"type": "duplicates", "table": "users", "columns": ["email"]},
        {"type": "freshness", "table": "orders", "column": "placed", "max_age": "1d12h"},
        {
            "type": "spot_check",
            "table": "users",
            "key": ["id"],
            "columns": {
                "first_name": {"split_part": {"column": "user_name", "sep": " ", "index": 1}},
                "last_name": {"split_part": {"column": "user_name", "sep": " ", "index": 2, "rest": True}},
            },
            "compare": [
                {"name": "full", "source": "user_name", "target": {"concat": ["first_name", {"lit": " "}, "last_name"]}}
            ],
        },
    ],
}


def test_committed_schema_equals_the_models_schema() -> None:
    committed = schema_path(SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == schema_text(), "run: python -m dmig.validate.spec"


def test_example_spec_validates_against_models_and_published_schema() -> None:
    spec = parse_spec(EXAMPLE)
    assert len(spec.checks) == 9
    jsonschema.Draft202012Validator(json_schema()).validate(EXAMPLE)
    assert spec.checks[4].min == date(2020, 1, 1)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"type": "not_null", "table": "t"}, "checks.0.not_null.columns"),
        ({"type": "nope", "table": "t"}, "checks.0"),
        ({"type": "not_null", "table": "t", "columns": ["a"], "colums": ["typo"]}, "checks.0.not_null.colums"),
        ({"type": "data_type", "table": "t", "column": "a"}, "checks.0.data_type"),
        ({"type": "data_type", "table": "t", "column": "a", "castable_to": "money"}, "checks.0.data_type.castable_to"),
        ({"type": "data_type", "table": "t", "column": "a", "pattern": "(unclosed"}, "checks.0.data_type.pattern"),
        ({"type": "range", "table": "t", "column": "a"}, "checks.0.range"),
        ({"type": "freshness", "table": "t", "column": "a", "max_age": "soon"}, "checks.0.freshness.max_age"),
        (
            {"type": "orphaned_fk", "table": "t", "columns": ["a", "b"], "parent_table": "p", "parent_columns": ["id"]},
            "checks.0.orphaned_fk",
        ),
        (
            {"type": "not_null", "table": "t", "columns": ["a"], "where": [{"column": "a", "op": "in", "value": 1}]},
            "checks.0.not_null.where.0",
        ),
        (
            {
                "type": "not_null",
                "table": "t",
                "columns": ["a"],
                "where": [{"column": "a", "op": "like", "value": "x"}],
            },
            "checks.0.not_null.where.0.op",
        ),
        ({"type": "not_null", "table": "bad\x00name", "columns": ["a"]}, "checks.0.not_null.table"),
        ({"type": "spot_check", "table": "t", "key": ["id"], "keys": [[1, 2]]}, "checks.0.spot_check"),
    ],
)
def test_malformed_spec_is_invalid_input_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(InvalidInput) as err:
        parse_spec({"target": "sqlite://", "checks": [change]})
    fields = [e["field"] for e in err.value.details["errors"]]
    assert any(f.startswith(field) for f in fields), fields
    assert "input_value" not in json.dumps(err.value.details)  # the offending input is not echoed back


def test_spec_level_errors() -> None:
    with pytest.raises(InvalidInput):
        parse_spec({"checks": []})
    with pytest.raises(InvalidInput):
        parse_spec(["not", "an", "object"])
    dup = {"type": "not_null", "table": "t", "columns": ["a"], "name": "same"}
    with pytest.raises(InvalidInput) as err:
        parse_spec({"checks": [dup, dup]})
    assert "unique" in json.dumps(err.value.details)


def test_durations_and_types() -> None:
    assert parse_duration("1d12h") == timedelta(days=1, hours=12)
    assert parse_duration("90s") == timedelta(seconds=90)
    with pytest.raises(ValueError):
        parse_duration("")
    assert parse_type("NUMERIC(10, 2)").scale == 2
    assert parse_type("int").kind == "integer"
    assert parse_type("varchar(20)").precision == 20
    for bad in ("numeric(2,5)", "varchar", "integer(3)", "money"):
        with pytest.raises(ValueError):
            parse_type(bad)
