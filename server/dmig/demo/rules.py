"""The validation rules the demo checks on the target, before and after contract.

They compare the target with the untouched source (row counts, a seeded spot check that the
parts rebuild each user's name) and check the target's own integrity (keys, references, allowed
values, ranges). The spot check only samples users with a name: a NULL name has NULL parts,
which the run's own validation (every row rebuilds its original) already covers.
"""

from __future__ import annotations

from typing import Any

from dmig.demo.databases import SOURCE, TARGET

EMPTY = {"lit": ""}
STATUSES = ["active", "inactive", "suspended", "pending"]


def _name_part(rest: bool) -> dict[str, Any]:
    return {"split_part": {"column": "user_name", "sep": " ", "index": 2 if rest else 1, "rest": rest}}


def post_migration_rules() -> dict[str, Any]:
    return {
        "source": SOURCE,
        "target": TARGET,
        "defaults": {"spot_rows": 200, "seed": 42},
        "checks": [
            {"type": "row_count", "tables": ["users", "orders"]},
            {"type": "not_null", "table": "users", "columns": ["email", "created_at"]},
            {"type": "unique", "table": "users", "columns": ["email"]},
            {
                "type": "orphaned_fk",
                "table": "orders",
                "columns": ["user_id"],
                "parent_table": "users",
                "parent_columns": ["id"],
            },
            {"type": "enum", "table": "users", "column": "status", "values": STATUSES},
            {"type": "range", "table": "orders", "column": "amount", "min": 0, "max": 9999999999.99},
            {
                "type": "spot_check",
                "name": "users: first_name/last_name split from the source's user_name",
                "table": "users",
                "key": ["id"],
                "where": [{"column": "user_name", "op": "is not null"}],
                "compare": [
                    {"name": "first_name", "source": _name_part(False), "target": "first_name"},
                    {"name": "last_name", "source": _name_part(True), "target": {"coalesce": ["last_name", EMPTY]}},
                ],
            },
        ],
    }
