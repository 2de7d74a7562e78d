"""Untrusted SQL and oversized inputs are refused fast with a structured error, never a crash."""

from __future__ import annotations

import time

import pytest

from dmig.errors import DmigError
from dmig.lint.sql_parse import MAX_OPERATORS, parse
from mcp_client import call

HOSTILE = {
    "plus_chain": "SELECT " + "+".join(["1"] * 30_000),
    "deep_parens": "SELECT " + "(" * 5_000 + "1" + ")" * 5_000,
    "and_chain": "SELECT 1 WHERE " + " AND ".join(["a = 1"] * 5_000),
}


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_sql_is_refused_fast(dialect: str, name: str) -> None:
    # CPU time of this process: the parser's own work, which a blow-up would show, and not how long
    # the machine's other processes (parallel test workers) kept it waiting for a core.
    started = time.process_time()
    with pytest.raises(DmigError) as err:
        parse(HOSTILE[name], dialect)
    assert err.value.code == "E_INVALID_INPUT"
    assert time.process_time() - started < 2


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_expression_at_the_limit_still_parses(dialect: str) -> None:
    parse("SELECT " + "+".join(["1"] * (MAX_OPERATORS - 10)), dialect)


def test_lint_over_mcp_survives_hostile_sql(project) -> None:
    out = call(
        project,
        [
            ("lint_migration", {"sql": HOSTILE["plus_chain"]}),
            ("lint_migration", {"sql": "SELECT " + "A" * 1_100_000}),
            ("server_info", {}),
        ],
        "--read-only",
    )
    assert out[0]["error"]["code"] == "E_INVALID_INPUT"
    assert out[1]["error"]["code"] == "E_INVALID_INPUT"
    assert out[2]["read_only_mode"] is True


BIG = "A" * 3_000_000  # over the 2M budget of dmig.bounds; 10 MB is the transport's (test_security_limits.py)
MEDIUM = "A" * 100_000
OVERSIZED = [
    ("inspect", {"url": BIG}),
    ("bus_append", {"type": "note", "text": BIG}),
    ("status_update", {"story_id": BIG, "status": "ready"}),
    ("lint_migration", {"sql": BIG}),
    ("self_improve", {"insight": BIG}),
    ("lint_migration", {"spec": BIG}),
    ("inspect", {"url": MEDIUM}),
    ("bus_append", {"type": "note", "text": MEDIUM}),
    ("status_update", {"story_id": MEDIUM, "status": "ready"}),
    ("self_improve", {"insight": MEDIUM}),
    ("lint_migration", {"spec": MEDIUM}),
]


def test_oversized_strings_are_refused_fast_over_mcp(project) -> None:
    started = time.perf_counter()
    out = call(project, [*OVERSIZED, ("server_info", {})])
    assert time.perf_counter() - started < 60
    for (tool, args), payload in zip(OVERSIZED, out[:-1], strict=True):
        assert payload["error"]["code"] == "E_INVALID_INPUT", (tool, list(args))
    assert out[-1]["read_only_mode"] is False
    audit = (project / "docs/00-meta/dmig-audit.jsonl").read_text()
    assert "AAAAAAAAAA" not in audit
