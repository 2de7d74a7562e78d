"""Files that stall or kill the server (issue 20.4): every file dmig parses is read bounded.

A 20 MB ``plan.yaml`` got no answer in 60 s, a 1 KB YAML alias bomb took 36.8 s, a FIFO in place
of a project file blocked the call forever (and every call after it), a NUL byte in a path was an
E_INTERNAL traceback, and a SQLite pattern check ``^(H+)+X$`` hung ``validate`` despite
``statement_timeout_s``. Each hostile file is planted where a tool reads it and the tool is
called for real (in-process through the registry, and over MCP stdio); the answer must be a
specific error code naming the path and the limit, within a second, never E_INTERNAL.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from dmig.context import RunContext
from dmig.errors import DmigError
from dmig.registry import all_tools, run_tool
from mcp_client import call

TOOLS = {t.name: t for t in all_tools()}
FAST_S = 2.0  # generous for a loaded CI machine; the refusals themselves take milliseconds


def within(fn: Callable[[], Any], seconds: float = 20.0) -> tuple[str, dict[str, Any], float]:
    """(error code or "ok", details, seconds) of ``fn``, run in a daemon thread so a hang fails the test."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn()
            box["code"] = "ok"
        except DmigError as exc:
            box["code"], box["details"], box["message"] = exc.code, dict(exc.details), exc.message
        except BaseException as exc:  # what used to become E_INTERNAL
            box["code"], box["message"] = f"E_INTERNAL {type(exc).__name__}", str(exc)[:300]

    started = time.monotonic()
    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    took = time.monotonic() - started
    if worker.is_alive():
        pytest.fail(f"no answer within {seconds}s: the call hangs")
    details = box.get("details", {})
    details["_message"] = box.get("message", "")
    details["_value"] = box.get("value")
    return box["code"], details, took


def tool(project: Path, name: str, args: dict[str, Any]) -> Any:
    return run_tool(TOOLS[name], args, RunContext(project_dir=project))


# ------------------------------------------------------------------------------------------- content


def billion_laughs(levels: int = 9, width: int = 9) -> str:
    lines = ['a0: &a0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def merge_bomb() -> str:
    lines = ["m0: &m0 {k: v}"]
    for i in range(1, 25):
        lines.append(f"m{i}: &m{i} {{x: [*m{i - 1}, *m{i - 1}], y: [*m{i - 1}, *m{i - 1}]}}")
    return "\n".join(lines) + "\n"


def block_bomb() -> str:
    """The same exponential doubling in block style, anchors on sequences."""
    lines = ["s0: &s0 [x, x]"]
    for i in range(1, 40):
        lines.append(f"s{i}: &s{i}\n  - *s{i - 1}\n  - *s{i - 1}")
    return "\n".join(lines) + "\n"


YAML_BOMBS = {
    "billion-laughs": billion_laughs(),
    "merge-bomb": merge_bomb(),
    "block-bomb": block_bomb(),
    "many-aliases": "a: &a 1\nb: [" + ", ".join(["*a"] * 500) + "]\n",
    "deep-flow": "x: " + "[" * 900 + "]" * 900 + "\n",
    "deep-block": "".join("  " * i + f"k{i}:\n" for i in range(200)) + "  " * 200 + "v\n",
    "many-nodes": "x: [" + "1," * 600_000 + "1]\n",
}
BOMB_CODE = "E_DOCUMENT_TOO_COMPLEX"


def test_every_bomb_is_small_and_refused_in_milliseconds() -> None:
    from dmig import safeload

    for name, text in YAML_BOMBS.items():
        if name != "many-nodes":
            assert len(text) < 50_000, name
        started = time.monotonic()
        with pytest.raises(safeload.DocumentTooComplex) as info:
            safeload.parse_yaml(text, "plan", shown="plan.yaml")
        assert time.monotonic() - started < (1.0 if name == "many-nodes" else 0.1), name
        assert info.value.details["path"] == "plan.yaml" and "limit" in info.value.details, name
        assert info.value.details["reason"] in ("aliases", "nodes", "depth"), name
    for name in ("billion-laughs", "merge-bomb", "block-bomb"):
        assert len(YAML_BOMBS[name]) < 2_000, name


def test_reasonable_yaml_with_a_few_aliases_still_loads() -> None:
    from dmig import safeload

    text = "defaults: &d {batch: 10, throttle: 5}\nsteps:\n  - <<: *d\n    id: a\n  - <<: *d\n    id: b\n"
    assert safeload.parse_yaml(text, "plan")["steps"][1] == {"batch": 10, "throttle": 5, "id": "b"}
    assert safeload.parse_yaml("x: " + "[" * 60 + "]" * 60, "plan")["x"]
    with pytest.raises(yaml.YAMLError):  # only safe types: a python tag is a YAML error, not an object
        safeload.parse_yaml("!!python/object/apply:os.system ['touch /tmp/dmig-pwned']\n", "plan")
    assert not Path("/tmp/dmig-pwned").exists()


def test_deeper_than_libyaml_allows_is_a_yaml_error() -> None:
    """libyaml stops at 1,000 flow levels itself: a syntax error the callers already report."""
    from dmig import safeload

    with pytest.raises((safeload.DocumentTooComplex, yaml.YAMLError)):
        safeload.parse_yaml("x: " + "[" * 50_000 + "]" * 50_000, "plan")


def test_deep_json_is_a_structured_refusal() -> None:
    from dmig import safeload

    with pytest.raises(safeload.DocumentTooComplex):
        safeload.parse_json("[" * 200_000 + "]" * 200_000, "project_json", shown="status.json")


# ------------------------------------------------------------------------------------------- the reader


def plant(path: Path, how: str, text: str = "") -> None:
    """Put a hostile thing at ``path``: content, a huge (sparse) file, a FIFO, a folder, a device."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if how == "text":
        path.write_text(text, encoding="utf-8")
    elif how == "sparse-100mb":
        with open(path, "wb") as fh:
            fh.truncate(100 << 20)
    elif how == "real-20mb":
        path.write_text("# " + "x" * 98 + "\n" * 1 + ("#" + "y" * 99 + "\n") * 200_000, encoding="utf-8")
    elif how == "fifo":
        os.mkfifo(path)
    elif how == "directory":
        path.mkdir()
    elif how == "dev-zero":  # a character device that reads zeros forever, inside the project
        if os.geteuid() != 0:
            pytest.skip("creating a device node needs root")
        os.mknod(path, stat.S_IFCHR | 0o644, os.makedev(1, 5))
    else:
        raise AssertionError(how)


SPECIAL = {"fifo": "E_NOT_A_FILE", "directory": "E_NOT_A_FILE", "dev-zero": "E_NOT_A_FILE"}
SIZE = {"sparse-100mb": "E_FILE_TOO_LARGE"}


@pytest.mark.parametrize("how", [*SPECIAL, *SIZE, "real-20mb"])
@pytest.mark.parametrize("kind", ["plan", "spec", "rules", "expertise", "project_json", "manifest", "record"])
def test_the_reader_refuses_before_reading(tmp_path: Path, kind: str, how: str) -> None:
    from dmig import safeload

    path = tmp_path / "f"
    plant(path, how)
    code, details, took = within(lambda: safeload.read_bytes(path, kind, shown="f"))
    limit = safeload.KINDS[kind].max_bytes
    if how == "real-20mb" and limit >= 20_000_000:
        assert code == "ok"
        return
    assert code == {**SPECIAL, **SIZE}.get(how, "E_FILE_TOO_LARGE"), details
    assert details["path"] == "f" and took < FAST_S
    if code == "E_FILE_TOO_LARGE":
        assert details["limit"] == limit


def test_a_file_exactly_at_the_limit_is_read_and_one_byte_more_is_not(tmp_path: Path) -> None:
    from dmig import safeload

    kind = safeload.Kind("tiny", 100, "test")
    path = tmp_path / "f"
    path.write_bytes(b"x" * 100)
    assert safeload.read_bytes(path, kind) == b"x" * 100
    path.write_bytes(b"x" * 101)
    with pytest.raises(safeload.FileTooLarge):
        safeload.read_bytes(path, kind)


BAD_PATHS = {
    "nul": "docs/a\x00b.yaml",
    "nul-end": "plan.yaml\x00",
    "long-name": "docs/" + "n" * 300 + ".yaml",
    "long-path": "/".join(["d" * 200] * 30) + "/p.yaml",
}


@pytest.mark.parametrize("name", list(BAD_PATHS))
def test_impossible_paths_are_a_specific_error(tmp_path: Path, name: str) -> None:
    from dmig import safeload

    code, details, _ = within(lambda: safeload.read_bytes(tmp_path / BAD_PATHS[name], "plan"))
    assert code == "E_INVALID_PATH" and details["reason"] in ("nul_byte", "name_too_long", "path_too_long")


# ------------------------------------------------------------------------------------------- through the tools


def _sqlite(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
    return f"sqlite:///{path}"


PLAN = "docs/migrations/m1/plan.yaml"


def _cases(db: str) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """file kind -> (file in the project, tool, arguments that make the tool read it)."""
    return {
        "plan": (PLAN, "run_migration", {"plan": PLAN, "dry_run": True}),
        "plan-status": (PLAN, "migration_status", {"plan": PLAN}),
        "thresholds": (PLAN, "health", {"url": db, "plan": PLAN, "rounds": 1}),
        "spec-lint": ("specs/m.yaml", "lint_migration", {"spec": "specs/m.yaml"}),
        "spec-plan": ("specs/m.yaml", "plan_migration", {"spec": "specs/m.yaml"}),
        "rules-yaml": ("rules.yaml", "validate", {"rules": "rules.yaml"}),
        "rules-json": ("rules.json", "validate", {"rules": "rules.json"}),
        "expertise": ("exp.yaml", "expertise_read", {"path": "exp.yaml"}),
        "environment": ("docs/00-meta/environment.json", "expertise_read", {}),
        "status": ("docs/09-agents/status.json", "status_update", {"story_id": "US-1", "status": "in-progress"}),
    }


YAML_KINDS = {"plan", "plan-status", "thresholds", "spec-lint", "spec-plan", "rules-yaml", "expertise"}
# Tools that check "is a file" first answer a FIFO or folder with their own not-found error: also fine.
NOT_FOUND_OK = {"E_NOT_FOUND"}


def _expect(case: str, how: str) -> set[str]:
    if how in SPECIAL:
        return {"E_NOT_A_FILE", *NOT_FOUND_OK}
    if how in SIZE:
        return {"E_FILE_TOO_LARGE"}
    return {BOMB_CODE}


HOSTILE = ["fifo", "directory", "dev-zero", "sparse-100mb", "billion-laughs", "merge-bomb", "deep-flow"]


@pytest.mark.parametrize("how", HOSTILE)
@pytest.mark.parametrize("case", list(_cases("sqlite:///x.db")))
def test_a_hostile_project_file_gets_a_quick_specific_answer(
    project: Path, tmp_path: Path, case: str, how: str
) -> None:
    db = _sqlite(tmp_path / "db.sqlite")
    rel, name, args = _cases(db)[case]
    if how in YAML_BOMBS and case not in YAML_KINDS:
        pytest.skip("a YAML bomb is for YAML files")
    target = project / rel
    if how in YAML_BOMBS:
        plant(target, "text", YAML_BOMBS[how])
    else:
        plant(target, how)
    code, details, took = within(lambda: tool(project, name, args))
    assert code in _expect(case, how), (case, how, code, details.get("_message"))
    assert took < FAST_S, (case, how, took)
    if code in ("E_FILE_TOO_LARGE", BOMB_CODE):
        assert "limit" in details and details.get("path"), details


def test_obtain_context_reports_hostile_parts_and_still_answers(project: Path) -> None:
    """status.json a FIFO, environment.json a device, the bus log a FIFO: a briefing with problems, no hang."""
    plant(project / "docs/09-agents/status.json", "fifo")
    plant(project / "docs/00-meta/environment.json", "dev-zero")
    plant(project / "docs/09-agents/session-state.json", "sparse-100mb")
    plant(project / "docs/09-agents/bus/log.jsonl", "fifo")
    code, details, took = within(lambda: tool(project, "obtain_context", {}))
    assert code == "ok" and took < FAST_S
    problems = {p["part"]: p["code"] for p in details["_value"].problems}
    assert "E_INTERNAL" not in problems.values(), problems
    assert problems.get("status") == "E_NOT_A_FILE", problems
    assert problems.get("bus") == "E_NOT_A_FILE", problems


def test_a_bus_log_that_is_one_endless_line_is_tailed_within_its_budget(project: Path) -> None:
    from dmig.harness import bus

    log = project / "docs/09-agents/bus/log.jsonl"
    log.parent.mkdir(parents=True)
    with open(log, "wb") as fh:
        fh.write(b'{"type": "status", "text": "old"}\n')
        fh.write(b"x" * (40 << 20))  # 40 MB without a newline
        fh.write(b'\n{"type": "status", "text": "new"}\n')
    started = time.monotonic()
    got = bus.tail(log, 5)
    assert time.monotonic() - started < FAST_S
    assert [m["text"] for m in got.messages] == ["new"]


def test_a_hostile_backup_manifest_is_listed_with_its_error(project: Path) -> None:
    root = project / "docs/migrations/backups"
    for i, how in enumerate(("fifo", "sparse-100mb", "directory")):
        plant(root / f"20260101T00000000{i}Z-0000000{i}" / "manifest.json", how)
    code, details, took = within(lambda: tool(project, "list_backups", {}))
    assert code == "ok" and took < FAST_S
    errors = sorted(b.error or "" for b in details["_value"].backups)
    assert len(errors) == 3 and all(errors), errors
    assert any("at most" in e for e in errors) and any("FIFO" in e for e in errors)


@pytest.mark.parametrize("name", list(BAD_PATHS))
@pytest.mark.parametrize(
    ("tool_name", "field", "extra"),
    [
        ("run_migration", "plan", {"dry_run": True}),
        ("migration_status", "plan", {}),
        ("lint_migration", "spec", {}),
        ("plan_migration", "spec", {}),
        ("validate", "rules", {}),
        ("expertise_read", "path", {}),
    ],
)
def test_a_path_argument_with_nul_or_too_long_is_e_invalid_path(
    project: Path, tool_name: str, field: str, extra: dict[str, Any], name: str
) -> None:
    code, details, _ = within(lambda: tool(project, tool_name, {field: BAD_PATHS[name], **extra}))
    assert code in ("E_INVALID_PATH", "E_INVALID_INPUT"), (tool_name, name, code, details.get("_message"))
    assert "Traceback" not in details.get("_message", "")


def test_hostile_files_over_mcp_stdio(project: Path, tmp_path: Path) -> None:
    """The real server: bombs, FIFOs, 20 MB and NUL paths answered one after another by one process."""
    plant(project / PLAN, "text", YAML_BOMBS["billion-laughs"])
    plant(project / "specs/big.yaml", "real-20mb")
    plant(project / "rules.yaml", "fifo")
    plant(project / "docs/00-meta/environment.json", "fifo")
    started = time.monotonic()
    env = {"PYTHONPATH": os.environ["PYTHONPATH"]} if "PYTHONPATH" in os.environ else None  # old-code runs
    out = call(
        project,
        [
            ("migration_status", {"plan": PLAN}),
            ("lint_migration", {"spec": "specs/big.yaml"}),
            ("validate", {"rules": "rules.yaml"}),
            ("expertise_read", {}),
            ("lint_migration", {"spec": "specs/a\x00b.yaml"}),
            ("server_info", {}),
        ],
        env=env,
    )
    codes = [o.get("error", {}).get("code", "ok") for o in out]
    assert codes[0] == BOMB_CODE and codes[1] == "E_FILE_TOO_LARGE", out
    assert codes[2] in ("E_NOT_A_FILE", "E_NOT_FOUND") and codes[3] == "E_NOT_A_FILE", out
    assert codes[4] == "E_INVALID_PATH" and codes[5] == "ok", out
    assert time.monotonic() - started < 60


def test_fsutil_refuses_to_write_a_bomb_it_could_not_read_back(project: Path) -> None:
    from dmig import fsutil

    assert not fsutil._structured_ok("x.yaml", YAML_BOMBS["billion-laughs"])
    assert fsutil._structured_ok("x.yaml", "a: 1\n")


# ------------------------------------------------------------------------------------------- SQLite REGEXP


PATTERNS = [r"^(H+)+X$", r"^(H|HH)+X", r"^(H|H)+X", r"^((H+)+)+X$", r"(H*)*X", r"^(H+H+)+X$"]


def _haystack(path: Path, rows: int = 3) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.executemany("INSERT INTO t (v) VALUES (?)", [("H" * 40,)] * rows + [("HX",)])
    return f"sqlite:///{path}"


@pytest.mark.parametrize("pattern", PATTERNS)
def test_sqlite_pattern_check_honours_the_statement_timeout(tmp_path: Path, pattern: str) -> None:
    from dmig.validate.load import parse_spec
    from dmig.validate.runner import run_spec

    url = _haystack(tmp_path / "h.db")
    spec = {
        "target": url,
        "defaults": {"statement_timeout_s": 0.5},
        "checks": [
            {"name": "re", "type": "data_type", "table": "t", "column": "v", "pattern": pattern},
            {"name": "nn", "type": "not_null", "table": "t", "columns": ["v"]},
        ],
    }
    code, details, took = within(lambda: run_spec(parse_spec(spec)), seconds=30)
    assert code == "ok" and took < 10, (pattern, took)
    checks = {c.name: c for c in details["_value"].checks}
    assert checks["nn"].status == "pass"  # the other checks still ran
    if checks["re"].status == "error":  # timed out: a clear, structured failure
        assert checks["re"].error.code == "E_DATABASE"
        assert checks["re"].error.details["reason"] == "regex_timeout"
        assert "statement timeout" in checks["re"].error.message
    else:  # the regex engine found the answer fast: then it must be the right one
        assert checks["re"].status == "fail"


def test_the_classic_hang_is_now_a_regex_timeout(tmp_path: Path) -> None:
    """``^(H|H)+X`` on 40 H's: 2^40 steps for ``re`` (the server hung); the regex engine is stopped at the deadline."""
    from dmig.validate.load import parse_spec
    from dmig.validate.runner import run_spec

    url = _haystack(tmp_path / "h.db", rows=1)
    spec = {
        "target": url,
        "defaults": {"statement_timeout_s": 0.5},
        "checks": [{"name": "re", "type": "data_type", "table": "t", "column": "v", "pattern": r"^(H|H)+X"}],
    }
    code, details, took = within(lambda: run_spec(parse_spec(spec)), seconds=30)
    assert code == "ok" and took < 5
    check = details["_value"].checks[0]
    assert check.status == "error" and check.error.details["reason"] == "regex_timeout", check


def test_sqlite_regexp_is_still_python_compatible(tmp_path: Path) -> None:
    from dmig.validate.load import parse_spec
    from dmig.validate.runner import run_spec

    url = _haystack(tmp_path / "h.db", rows=1)
    checks = [
        {"name": "x", "type": "data_type", "table": "t", "column": "v", "pattern": r"^H+X?$"},
        {"name": "ci", "type": "data_type", "table": "t", "column": "v", "pattern": r"^h+", "case_insensitive": True},
        {"name": "d", "type": "data_type", "table": "t", "column": "v", "pattern": r"^\w{2}$"},
    ]
    got = {c.name: c for c in run_spec(parse_spec({"target": url, "checks": checks})).checks}
    assert got["x"].status == "pass" and got["ci"].status == "pass"
    assert got["d"].status == "fail"  # only "HX" has two word characters


def _server_side_patterns(url: str, create: str, fill: str) -> dict[str, str]:
    """Each pathological pattern as a check with a 1 s statement timeout: its status (printed)."""
    from dmig.validate.load import parse_spec
    from dmig.validate.runner import run_spec

    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(create)
        conn.exec_driver_sql(fill)
    engine.dispose()
    out = {}
    for pattern in PATTERNS:
        spec = {
            "target": url,
            "defaults": {"statement_timeout_s": 1},
            "checks": [{"name": "re", "type": "data_type", "table": "t", "column": "v", "pattern": pattern}],
        }
        code, details, took = within(lambda s=spec: run_spec(parse_spec(s)), seconds=30)
        assert code == "ok" and took < 10, (pattern, took)
        check = details["_value"].checks[0]
        assert check.status in ("fail", "error"), (pattern, check.status)
        if check.status == "error":
            assert "statement timeout" in check.error.message or "regular expression" in check.error.message, check
        out[pattern] = f"{check.status} in {took:.2f}s"
    print(out)
    return out


@pytest.mark.pg
def test_postgresql_pattern_check_is_bounded_by_its_statement_timeout(pg_url: str) -> None:
    """PostgreSQL's own regex engine (not backtracking): the patterns finish, or statement_timeout stops them."""
    _server_side_patterns(
        pg_url,
        "CREATE TABLE t (id serial PRIMARY KEY, v text)",
        "INSERT INTO t (v) SELECT repeat('H', 40) FROM generate_series(1, 3)",
    )


@pytest.mark.mysql
def test_mariadb_pattern_check_is_bounded(mysql_url: str) -> None:
    """MariaDB's PCRE: its backtracking limit or max_statement_time ends each pattern."""
    _server_side_patterns(
        mysql_url,
        "CREATE TABLE t (id int PRIMARY KEY AUTO_INCREMENT, v varchar(100))",
        "INSERT INTO t (v) VALUES (REPEAT('H', 40)), (REPEAT('H', 40)), ('HX')",
    )


def test_session_init_with_a_fifo_gitignore_does_not_hang(project: Path) -> None:
    plant(project / "docs/09-agents/.gitignore", "fifo")
    plant(project / "docs/00-meta/.gitignore", "sparse-100mb")
    code, details, took = within(lambda: tool(project, "session_init", {"test_command": "true"}))
    assert code == "ok" and took < 10, (code, details.get("_message"))
    assert (project / "docs/09-agents/status.json").is_file()
