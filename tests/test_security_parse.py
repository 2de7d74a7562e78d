"""Untrusted SQL must not crash the server (issue 20.4).

A 60 KB ``SELECT 1+1+...`` sent to the read-only ``lint_migration`` killed the whole MCP server
with SIGSEGV inside ``pglast.parse_sql``; a pre-scan of operators and parentheses stopped that one,
but a chain of 20,000 ``UNION`` s (or ``AT TIME ZONE`` s) still went straight through it and crashed
the server the same way. Every pglast entry point now goes through ``dmig.lint.pgsafe``, which
parses long statements in a forked child first. The tests send deep-nesting variants through the
real server over MCP stdio (a crash ends the process, so every later call would fail) and check
each answer is a result or a structured error, and that the server is alive afterwards.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from mcp_client import call as _call


def call(project: Path, calls: list[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
    """One real server over stdio (PYTHONPATH passed on, so the same tests can be run against older code)."""
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else None
    return _call(project, calls, env=env)


def _chain(sep: str, item: str, n: int) -> str:
    return sep.join([item] * n)


# name -> SQL; each is far beyond what a real migration needs and each nests (or lists) deeply.
VARIANTS: dict[str, str] = {
    "plus-30000": "SELECT " + _chain("+", "1", 30_000),
    "concat-30000": "SELECT " + _chain("||", "'a'", 30_000),
    "minus-prefix-30000": "SELECT " + "-" * 30_000 + "1",
    "union-20000": _chain(" UNION ", "SELECT 1", 20_000),
    "union-all-20000": _chain(" UNION ALL ", "SELECT 1", 20_000),
    "intersect-20000": _chain(" INTERSECT ", "SELECT 1", 20_000),
    "at-time-zone-20000": "SELECT now()" + " AT TIME ZONE 'UTC'" * 20_000,
    "parens-30000": "SELECT " + "(" * 30_000 + "1" + ")" * 30_000,
    "case-5000": "SELECT " + "CASE WHEN true THEN " * 5_000 + "1" + " END" * 5_000,
    "in-list-30000": "SELECT 1 WHERE 1 IN (" + _chain(",", "1", 30_000) + ")",
    "subquery-5000": "SELECT " + "(SELECT " * 5_000 + "1" + ")" * 5_000,
    "array-10000": "SELECT ARRAY" + "[" * 10_000 + "1" + "]" * 10_000,
    "json-literal-30000": "SELECT '" + "[" * 30_000 + "]" * 30_000 + "'::jsonb",
    "not-30000": "SELECT " + "NOT " * 30_000 + "true",
    "and-30000": "SELECT 1 WHERE " + _chain(" AND ", "true", 30_000),
    "function-10000": "SELECT " + "abs(" * 10_000 + "1" + ")" * 10_000,
    "cast-20000": "SELECT 1" + "::int" * 20_000,
    "collate-20000": "SELECT 'a'" + ' COLLATE "C"' * 20_000,
    "join-10000": "SELECT 1 FROM a" + " JOIN a ON true" * 10_000,
    "row-10000": "SELECT ROW" + "(" * 10_000 + "1" + ")" * 10_000,
    "is-null-20000": "SELECT 1" + " IS NULL" * 20_000,
    "many-statements": "SELECT 1;\n" * 20_000,
}
STRUCTURED = {"E_INVALID_INPUT", "E_SQL_TOO_COMPLEX"}


def _code(out: dict[str, Any]) -> str:
    return out.get("error", {}).get("code", "ok")


# sqlglot (MySQL, SQLite) is pure Python: deep nesting is a RecursionError, long flat lists only cost time
# (seconds each), so those dialects get the nesting variants and a few long ones.
GLOT_VARIANTS = [
    "plus-30000", "union-20000", "parens-30000", "case-5000", "subquery-5000", "array-10000", "not-30000",
    "function-10000", "row-10000", "in-list-30000",
]  # fmt: skip


def _variants(dialect: str) -> list[str]:
    return list(VARIANTS) if dialect == "postgresql" else GLOT_VARIANTS


@pytest.mark.parametrize("dialect", ["postgresql", "mysql", "sqlite"])
def test_lint_of_hostile_sql_over_mcp_stays_alive(project: Path, dialect: str) -> None:
    started = time.monotonic()
    names = _variants(dialect)
    calls = [("lint_migration", {"sql": VARIANTS[n], "dialect": dialect}) for n in names] + [("server_info", {})]
    out = call(project, calls)
    codes = dict(zip(names, map(_code, out), strict=False))
    bad = {k: (c, out[i].get("error", {}).get("message", "")[:200]) for i, (k, c) in enumerate(codes.items())
           if c not in STRUCTURED | {"ok"}}  # fmt: skip
    assert not bad, bad
    assert _code(out[-1]) == "ok" and out[-1]["version"]  # the server outlived every variant
    assert time.monotonic() - started < 240


def test_the_variants_that_used_to_crash_are_refused_specifically(project: Path) -> None:
    """Chains the pre-scan does not count (UNION, AT TIME ZONE) reach the parser: the child dies, not us."""
    names = ["union-20000", "intersect-20000", "at-time-zone-20000", "plus-30000"]
    out = call(project, [("lint_migration", {"sql": VARIANTS[n], "dialect": "postgresql"}) for n in names])
    codes = [_code(o) for o in out]
    assert codes[:3] == ["E_SQL_TOO_COMPLEX"] * 3, out
    assert out[0]["error"]["details"]["reason"] == "parser_crashed"
    assert codes[3] in STRUCTURED


def test_raw_sql_operations_in_an_inline_spec_over_mcp(project: Path) -> None:
    names = ["union-20000", "plus-30000", "at-time-zone-20000", "parens-30000", "case-5000", "subquery-5000"]
    calls: list[tuple[str, dict[str, Any]]] = [
        (
            "lint_migration",
            {
                "spec_inline": {"id": "m1", "operations": [{"op": "raw_sql", "sql": VARIANTS[n]}]},
                "dialect": "postgresql",
            },
        )
        for n in names
    ]
    calls.append(("server_info", {}))
    out = call(project, calls)
    for name, o in zip(names, out, strict=False):
        assert _code(o) in STRUCTURED | {"ok"}, (name, o)
    assert _code(out[-1]) == "ok"


@pytest.mark.pg
def test_raw_sql_in_a_planned_spec_and_health_probes_on_postgresql(project: Path, pg_url: str) -> None:
    """plan_migration lints a spec's raw_sql against the live server; health vets probe SQL with pglast."""
    import yaml

    spec = project / "specs" / "deep.yaml"
    spec.parent.mkdir()
    spec.write_text(
        yaml.safe_dump(
            {
                "id": "deep1",
                "database": pg_url,
                "operations": [{"op": "raw_sql", "sql": VARIANTS["union-20000"]}],
            }
        )
    )
    probes = [
        "SELECT " + _chain("+", "1", 4_000),
        "SELECT " + "(" * 4_000 + "1" + ")" * 4_000,
        _chain(" UNION ", "SELECT 1", 600),
        "SELECT " + "(SELECT " * 1_000 + "1" + ")" * 1_000,
    ]
    out = call(
        project,
        [("plan_migration", {"spec": "specs/deep.yaml"})]
        + [("health", {"url": pg_url, "probes": [p], "rounds": 1}) for p in probes]
        + [("server_info", {})],
    )
    assert _code(out[0]) in STRUCTURED | {"ok"}, out[0]
    for p, o in zip(probes, out[1:], strict=False):
        assert _code(o) in STRUCTURED | {"ok"}, (p[:40], o)
    assert _code(out[-1]) == "ok"


@pytest.mark.parametrize("dialect", ["mysql", "sqlite"])
def test_health_probe_vetting_with_sqlglot_never_answers_e_internal(dialect: str) -> None:
    """sqlglot raises RecursionError on deep nesting: that used to be E_INTERNAL."""
    from dmig.errors import DmigError
    from dmig.monitor.guard import vet

    for sql in (
        "SELECT " + "(SELECT " * 90 + "1" + ")" * 90,
        "SELECT " + "abs(" * 400 + "1" + ")" * 400,
        "SELECT " + "NOT " * 1_500 + "1",
        "SELECT " + "CASE WHEN 1=1 THEN " * 400 + "1" + " END" * 400,
    ):
        with pytest.raises(DmigError) as info:
            vet(sql, dialect)
        assert info.value.code == "E_INVALID_INPUT"


def test_spec_expressions_too_deep_are_a_structured_error() -> None:
    from dmig.errors import InvalidInput
    from dmig.spec import expr

    deep = ("abs(" * 400 + "1" + ")" * 400, "CASE WHEN 1=1 THEN " * 400 + "1" + " END" * 400, "NOT " * 1_500 + "1")
    for text in deep:
        with pytest.raises(InvalidInput) as info:
            expr.parse(text)
        assert info.value.details.get("reason") == "too_deep"


# ------------------------------------------------------------------------------------------- pgsafe itself


def test_pgsafe_parses_what_is_fine_and_refuses_what_crashes() -> None:
    import pglast

    from dmig.lint import pgsafe

    fine = "SELECT " + _chain(", ", "a", 2_000) + " FROM t"
    assert len(fine) > pgsafe.INPROCESS_CHARS
    assert len(pgsafe.parse_sql(fine)[0].stmt.targetList) == 2_000
    with pytest.raises(pgsafe.SqlTooComplex) as info:
        pgsafe.parse_sql(VARIANTS["union-20000"])
    assert info.value.code == "E_SQL_TOO_COMPLEX" and info.value.details["reason"] == "parser_crashed"
    with pytest.raises(pglast.parser.ParseError):  # a syntax error stays a syntax error
        pgsafe.parse_sql("SELEC 1" + " " * 5_000)
    got = pgsafe.parse_each(["SELECT 1", "SELEC 2", fine])
    assert isinstance(got[1], pglast.parser.ParseError) and len(got) == 3


def test_pgsafe_timeout_kills_the_child(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmig.lint import pgsafe

    monkeypatch.setattr(pgsafe, "PROBE_TIMEOUT_S", 0.0)
    with pytest.raises(pgsafe.SqlTooComplex) as info:
        pgsafe.parse_sql("SELECT " + _chain(", ", "a", 20_000))
    assert info.value.details["reason"] == "parse_timeout"


def test_pgsafe_probe_cost_is_small() -> None:
    """The price of isolation: one fork per long statement (printed; bounded loosely for busy machines)."""
    from dmig.lint import pgsafe

    sql = "SELECT " + _chain(", ", "a", 2_000) + " FROM t"
    assert len(sql) > pgsafe.INPROCESS_CHARS
    pgsafe.probe([sql])
    rounds = 5
    started = time.perf_counter()
    for _ in range(rounds):
        pgsafe.probe([sql])
    per_probe = (time.perf_counter() - started) / rounds
    print(f"pgsafe probe: {per_probe * 1000:.1f} ms per long statement")
    assert per_probe < 2.0


def test_short_statements_are_parsed_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    from dmig.lint import pgsafe

    def no_fork(_texts: list[str]) -> None:
        raise AssertionError("forked for a short statement")

    monkeypatch.setattr(pgsafe, "probe", no_fork)
    assert pgsafe.parse_sql("SELECT " + _chain("+", "1", 1_500))
