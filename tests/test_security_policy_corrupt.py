"""A policy file that exists but cannot be trusted fails closed, fast (issue 12.8).

Missing policy: permissive (a laptop). Present but corrupt, too large, a YAML bomb, binary, a
symlink out of the project, a directory, a FIFO...: every database tool answers E_CORRUPT_FILE
well under a second, before touching any database, and writes nothing but its audit line.
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dmig import policy
from execute_helpers import users_table
from mcp_client import call
from policy_helpers import POLICY_FILE, STRICT, files, refused, schema, tool, write_policy

AUDIT = str(Path("docs") / "00-meta" / "dmig-audit.jsonl")


def _bomb() -> str:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\ndatabases: {}\n"


def _symlink(target: str | Callable[[Path], str]) -> Callable[[Path], None]:
    def make(project: Path) -> None:
        path = project / POLICY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(project) if callable(target) else target)

    return make


def _special(kind: str) -> Callable[[Path], None]:
    def make(project: Path) -> None:
        path = project / POLICY_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "directory":
            path.mkdir()
            (path / "dmig-policy.yaml").write_text(STRICT)
        elif kind == "fifo":
            os.mkfifo(path)
        elif kind == "sparse-20mb":
            with open(path, "wb") as fh:
                fh.write(b"version: 1\n")
                fh.truncate(20 * 1024 * 1024)

    return make


def _outside(project: Path) -> str:
    outside = project.parent / "elsewhere-policy.yaml"
    outside.write_text("version: 1\nallow_ad_hoc_urls: true\n")
    return str(outside)


CORRUPT: dict[str, str | bytes | Callable[[Path], None]] = {
    "bad-yaml": "{{{\n",
    "tab-indent": "databases:\n\tapp: {env: X}\n",
    "unknown-top-key": "version: 1\nread_only: true\n",
    "unknown-entry-key": "databases:\n  app: {env: APP_URL, writeable: true}\n",
    "wrong-version": "version: 2\n",
    "string-bool": "allow_ad_hoc_urls: 'yes please'\n",
    "int-bool": "databases:\n  app: {env: APP_URL, writable: 1}\n",
    "bad-duration": "databases:\n  app: {env: APP_URL, production: true, max_backup_age: soon}\n",
    "bad-alias-name": "databases:\n  'bad name!': {env: APP_URL}\n",
    "bad-env-name": "databases:\n  app: {env: 'APP URL; rm -rf /'}\n",
    "list-databases": "databases: [1, 2]\n",
    "top-level-list": "- version: 1\n",
    "top-level-scalar": "just a string\n",
    "python-tag": "!!python/object/apply:os.system ['touch /tmp/dmig-pwned']\n",
    "alias-bomb": _bomb(),
    "merge-alias": "base: &b {env: APP_URL, writable: true}\ndatabases:\n  app: *b\n",
    "deep-nesting": "x: " + "[" * 5000 + "]" * 5000 + "\n",
    "many-nodes": "databases: {}\nx: [" + "1," * 150_000 + "1]\n",
    "20mb-comment": "version: 1\n" + ("# padding " * 100 + "\n") * 20_500,
    "one-byte-over": "version: 1\n" + "#" * (policy.MAX_POLICY_BYTES - 11) + "\n",
    "binary": random.Random(7).randbytes(4096),
    "non-utf8": b"version: 1\n# caf\xe9 \xff\xfe\n",
    "nul-bytes": b"version: 1\x00\x00\ndatabases: {}\n",
    "sparse-20mb": _special("sparse-20mb"),
    "symlink-etc-passwd": _symlink("/etc/passwd"),
    "symlink-outside-project": _symlink(_outside),
    "symlink-dangling": _symlink("no-such-policy.yaml"),
    "symlink-loop": _symlink(lambda p: str(p / POLICY_FILE)),
    "directory": _special("directory"),
    "fifo": _special("fifo"),
}


def _install(project: Path, how: str | bytes | Callable[[Path], None]) -> None:
    if callable(how):
        how(project)
    else:
        write_policy(project, how)


def _sqlite(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        conn.execute("INSERT INTO t VALUES (1, 'a')")
    return f"sqlite:///{path}"


@pytest.mark.parametrize("name", list(CORRUPT))
def test_a_corrupt_policy_refuses_inspect_and_copy_fast(project: Path, tmp_path: Path, name: str) -> None:
    src = _sqlite(tmp_path / "src.db")
    dst = tmp_path / "dst.db"
    _install(project, CORRUPT[name])
    before = files(project)
    for tool_name, args in (
        ("inspect", {"url": src}),
        ("copy", {"source_url": src, "target_url": f"sqlite:///{dst}"}),
        ("validate", {"spec": {"target": src, "checks": [{"type": "not_null", "table": "t", "columns": ["v"]}]}}),
        ("diff", {"source_url": src, "target_url": src, "table": "t"}),
        ("backup", {"url": src}),
    ):
        code, message, seconds = refused(lambda t=tool_name, a=args: tool(project, t, a))
        assert code == "E_CORRUPT_FILE", (tool_name, message)
        assert "dmig-policy.yaml" in message and "refused" in message
        assert seconds < 1.0, (tool_name, seconds)
    assert not dst.exists()
    after = files(project)
    after.pop(AUDIT, None)
    after.pop(AUDIT + ".lock", None)
    assert after == before  # nothing written but the audit line
    assert not Path("/tmp/dmig-pwned").exists()


@pytest.mark.parametrize("name", ["20mb-comment", "alias-bomb", "symlink-etc-passwd", "fifo"])
def test_a_corrupt_policy_leaves_a_real_target_untouched(project: Path, pg_url: str, tmp_path: Path, name: str) -> None:
    src = _sqlite(tmp_path / "src.db")
    _install(project, CORRUPT[name])
    before = schema(pg_url)
    code, _, seconds = refused(lambda: tool(project, "copy", {"source_url": src, "target_url": pg_url}))
    assert code == "E_CORRUPT_FILE" and seconds < 1.0
    assert schema(pg_url) == before == []


def test_no_policy_file_is_the_permissive_laptop_mode(project: Path, tmp_path: Path) -> None:
    assert policy.load(project) is None
    assert tool(project, "inspect", {"url": _sqlite(tmp_path / "a.db")}).tables
    (project / "docs").mkdir()
    (project / "docs" / "00-meta").write_text("a file where the folder would be")
    assert policy.load(project) is None


def test_a_symlink_inside_the_project_is_followed(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / "policies").mkdir()
    (project / "policies" / "real.yaml").write_text(STRICT)
    _symlink(lambda p: str(p / "policies" / "real.yaml"))(project)
    loaded = policy.load(project)
    assert loaded is not None and set(loaded.databases) == {"app", "live", "prod"}


def test_tools_without_a_database_are_not_blocked(project: Path) -> None:
    write_policy(project, "{{{\n")
    assert tool(project, "server_info", {}).version
    tool(project, "bus_append", {"type": "status", "text": "still talking"})


def test_corrupt_policy_over_mcp_stdio(project: Path, tmp_path: Path) -> None:
    """Through the real server: a 20 MB policy and an alias bomb both answer E_CORRUPT_FILE, quickly."""
    src = _sqlite(tmp_path / "src.db")
    dst = tmp_path / "dst.db"
    write_policy(project, CORRUPT["20mb-comment"])
    started = time.monotonic()
    out = call(project, [("inspect", {"url": src}), ("copy", {"source_url": src, "target_url": f"sqlite:///{dst}"})])
    assert [o["error"]["code"] for o in out] == ["E_CORRUPT_FILE", "E_CORRUPT_FILE"]
    assert time.monotonic() - started < 30  # server start included; the calls themselves are milliseconds
    write_policy(project, CORRUPT["alias-bomb"])
    out = call(project, [("inspect", {"url": src})])
    assert out[0]["error"]["code"] == "E_CORRUPT_FILE"
    assert not dst.exists()


def test_policy_enforced_over_mcp_stdio(project: Path, pg_url: str, pg_url2: str) -> None:
    """Spec naming production: planned over MCP, run refused; a rules file naming an ad-hoc URL refused."""
    from execute_helpers import split_spec
    from policy_helpers import write_yaml

    users_table(pg_url)
    write_policy(project, STRICT)
    spec = write_yaml(project, "specs/split.yaml", {**split_spec(), "database": "env:PROD_URL"})
    rules = write_yaml(
        project,
        "rules/adhoc.yaml",
        {"target": pg_url2, "checks": [{"type": "not_null", "table": "users", "columns": ["id"]}]},
    )
    before = schema(pg_url)
    env = {"PROD_URL": pg_url, "APP_URL": "sqlite:///app.db", "LIVE_URL": "sqlite:///live.db"}
    planned = call(project, [("plan_migration", {"spec": spec, "sample": False})], env=env)[0]
    assert "checksum" in planned, planned
    out = call(
        project,
        [
            ("run_migration", {"plan": planned["plan_path"], "confirm": planned["checksum"]}),
            ("abort_migration", {"plan": planned["plan_path"], "confirm": planned["checksum"]}),
            ("validate", {"rules": rules}),
        ],
        env=env,
    )
    assert [o["error"]["code"] for o in out] == ["E_POLICY"] * 3, out
    assert schema(pg_url) == before
