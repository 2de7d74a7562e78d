"""Every tool answers hostile-but-well-typed input with a specific structured error (issue 20.6).

One ``dmig serve`` child per corpus chunk, driven over stdio by the official client, as Claude Code
does. The corpus is deterministic and built from each registered tool's own input schema: every
string (or list of strings) field gets the hostile values of its kind (identifiers with quotes,
backticks, NUL, unicode, ANSI escapes, very long names; database URLs that point at a dropped
database, an unreachable port, a corrupt/empty SQLite file or a folder; missing, foreign or
malformed ids and paths). For each answer: a success, or an error whose code is specific (never
E_INTERNAL or the generic E_DMIG, always parseable JSON); no SQL text of ours beyond a short
bounded form; the server's stderr holds no Python traceback; the server answers afterwards.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
import sqlalchemy as sa
from mcp import Client
from mcp.client.stdio import stdio_client

from conftest import IN_CI, MYSQL_ADMIN_URL, PG_ADMIN_URL, _unreachable
from dmig.registry import tools_for
from mcp_client import result_payload, server_params

# ------------------------------------------------------------------------------------------ corpus

LONG = "L" * 5000
IDENTS: dict[str, str] = {
    "unknown": "no_such_thing",
    "dquote": 'q"uo"te',
    "squote": "it's",
    "backtick": "back`tick",
    "nul": "nul\x00byte",
    "unicode": "ünï😀‮drow",
    "ansi": "\x1b[2J\x1b]0;pwn\x07x",
    "long": "L" * 300,
    "very_long": LONG,
    "empty": "",
    "option": "--result-file=/tmp/dmig-sweep-x",
    "sql": "x; DROP TABLE users --",
    "system": "pg_catalog.pg_authid",
}
TEXTS: dict[str, str] = {
    "nul": "a\x00b",
    "ansi": "\x1b[2J\x1b]0;pwn\x07",
    "unicode": "ünï😀‮",
    "very_long": LONG,
    "empty": "",
}
PATHS: dict[str, str] = {
    "missing": "docs/nothing-here.yaml",
    "nul": "docs/a\x00b.yaml",
    "very_long": "docs/" + LONG + ".yaml",
    "outside_abs": "/etc/passwd",
    "outside_rel": "../outside.yaml",
    "directory": "docs",
    "corrupt": "docs/corrupt.yaml",
    "empty": "docs/empty.yaml",
    "ansi": "docs/\x1b[2J.yaml",
}
IDS: dict[str, str] = {
    "missing": "no-such-id",
    "traversal": "../../../etc/passwd",
    "nul": "nul\x00id",
    "very_long": LONG,
    "ansi": "\x1b[2Jid",
    "empty": "",
    "other_project": "{other_plan}",
    "other_backup": "{other_backup}",
}
# URL templates, resolved once the scratch databases and files exist ({tmp}: beside the project).
URLS: dict[str, str] = {
    "sqlite_missing": "sqlite:///{tmp}/missing.db",
    "sqlite_corrupt": "sqlite:///{tmp}/corrupt.db",
    "sqlite_empty": "sqlite:///{tmp}/empty.db",
    "sqlite_directory": "sqlite:///{tmp}/folder.db",
    "sqlite_nul": "sqlite:///{tmp}/a\x00b.db",
    "sqlite_long": "sqlite:///{tmp}/" + "L" * 4000 + ".db",
    "pg_unreachable": "postgresql://postgres@127.0.0.1:1/x",
    "mysql_unreachable": "mysql://root@127.0.0.1:1/x",
    "pg_dropped": "{pg_dropped}",
    "mysql_dropped": "{mysql_dropped}",
    "pg_nul_db": "postgresql://postgres@127.0.0.1:5432/a%00b",
    "mysql_nul_db": "mysql://root@127.0.0.1:3306/a%00b",
    "not_a_url": "not a url",
    "unset_env": "env:DMIG_SWEEP_NO_SUCH_VARIABLE",
}

URL_FIELDS = {"url", "source_url", "target_url", "source", "target"}
PATH_FIELDS = {"spec", "rules", "path", "folder", "reject_file", "files_affected", "remove_files"}
ID_FIELDS = {"backup_id", "migration_id", "story_id", "run_id", "protect", "story", "plan", "confirm", "context"}
# Set only by the user (sec-exec): a hostile value here is a command that verify would run.
SKIP_FIELDS = {"test_command", "init_script"}
# Slow tools get short runs; destructive ones get a confirm that cannot match.
BASE: dict[str, dict[str, Any]] = {
    "workload": {"seconds": 0.3, "threads": 1, "rate": None, "max_ops": 20, "sample_locks": False},
    "monitor": {"run_id": "sweep", "duration_seconds": 0.5, "baseline_seconds": 0.1, "report": False},
    "health": {"rounds": 1},
    "copy": {"verify": False},
    "diff": {"table": "users", "statement_timeout_s": 10},
    "inspect": {"timeout_seconds": 10},
    "plan_migration": {"sample": False},
    "run_migration": {"dry_run": True},
    "restore_backup": {"dry_run": True},
}
REQUIRED_DEFAULTS: dict[str, Any] = {
    "url": "{good}", "source_url": "{good}", "target_url": "{tmp}/copy-target.db", "table": "users",
    "plan": "no-such-plan", "confirm": "not-the-token", "spec": "docs/nothing-here.yaml", "backup_id": "no-such",
    "story_id": "US-0001", "status": "ready", "type": "status", "text": "hello", "insight": "a learning",
    "message": "a baseline", "run_id": "sweep",
}  # fmt: skip
FILE_READING_FIELDS = PATH_FIELDS | {"plan"}


@dataclass(frozen=True)
class Case:
    tool: str
    field: str
    kind: str
    args: dict[str, Any]

    server: str = ""

    @property
    def id(self) -> str:
        return f"{self.tool}-{self.field}-{self.kind}" + (f"@{self.server}" if self.server else "")


def _field_type(prop: dict[str, Any]) -> str:
    """'str', 'list' (of strings) or '' (not a string field) from a JSON schema property."""
    options = prop.get("anyOf", [prop])
    if any(o.get("type") == "string" for o in options):
        return "str"
    if any(o.get("type") == "array" and o.get("items", {}).get("type") == "string" for o in options):
        return "list"
    return ""


def _values_for(name: str) -> dict[str, str]:
    """The hostile values of this field's kind."""
    if name in URL_FIELDS:
        return URLS
    if name in FILE_READING_FIELDS:
        values = {**PATHS, "missing_id": IDS["missing"], "other_project": IDS["other_project"]}
        if name == "folder":  # backup creates a missing folder: keep it off the file names other cases use
            keep = ("directory", "corrupt", "empty", "outside_abs")
            values = {k: v if k in keep else v + ".d" for k, v in values.items()}
        return values
    if name in ID_FIELDS:
        return IDS
    if name in ("sql", "probes", "text", "insight", "message", "reason", "override_reason", "type", "to",
                "from_agent", "status", "separator", "server_version", "dialect", "conventions", "remove_patterns",
                "remove_conventions", "waive_backup", "encrypt_key_env", "until", "mode", "format", "phase",
                "project_type", "verification_policy", "environment"):  # fmt: skip
        return TEXTS
    return IDENTS


def _base(tool: str, schema: dict[str, Any]) -> dict[str, Any]:
    args = {k: REQUIRED_DEFAULTS[k] for k in schema.get("required", []) if k in REQUIRED_DEFAULTS}
    if tool == "copy":
        args["target_url"] = "sqlite:///{tmp}/copy-target.db"
    if tool == "lint_migration":
        args["sql"] = "ALTER TABLE users ADD COLUMN x integer"
    if tool == "validate":
        args["spec"] = {"source": "{good}", "target": "{good}", "checks": [{"type": "row_count", "table": "users"}]}
    if tool == "abort_migration" or tool == "rollback" or tool == "complete_migration":
        args["plan"] = "no-such-plan"
    args.update(BASE.get(tool, {}))
    return args


def build_corpus() -> list[Case]:
    cases: list[Case] = []
    for spec in tools_for(False):
        schema = spec.input_model.model_json_schema()
        base = _base(spec.name, schema)
        cases.append(Case(spec.name, "(base)", "base", base))
        for name, prop in schema.get("properties", {}).items():
            kind = _field_type(prop)
            if not kind or name in SKIP_FIELDS:
                continue
            for key, value in _values_for(name).items():
                cases.append(Case(spec.name, name, key, {**base, name: [value] if kind == "list" else value}))
        cases += _server_cases(spec.name, schema, base)
    return cases + _nested_cases()


def _nested_cases() -> list[Case]:
    """Identifiers inside structured inputs: validate's checks, diff's row filters (each database)."""
    out = []
    for server, url in (("", "{good}"), ("pg", "{pg_good}"), ("mysql", "{mysql_good}")):
        for key, name in IDENTS.items():
            name = name[:128]  # validate's identifiers are bounded by the model: keep them valid in length
            for where, check in (
                ("check_table", {"type": "row_count", "table": name}),
                ("check_column", {"type": "not_null", "table": "users", "columns": [name]}),
                ("check_filter", {"type": "not_null", "table": "users", "columns": ["id"],
                                  "where": [{"column": name, "op": "=", "value": name}]}),
                ("check_unique", {"type": "unique", "table": "users", "columns": [name]}),
            ):  # fmt: skip
                spec = {"source": url, "target": url, "checks": [check]}
                out.append(Case("validate", where, key, {"spec": spec}, server=server))
            diff = {"source_url": url, "target_url": url, "table": "users",
                    "where": [{"column": name, "op": ">=", "value": name}]}  # fmt: skip
            out.append(Case("diff", "where_column", key, diff, server=server))
    return out


SERVER_IDENTS = ("unknown", "dquote", "backtick", "nul", "unicode", "ansi", "long", "very_long", "empty", "system")


def _server_cases(tool: str, schema: dict[str, Any], base: dict[str, Any]) -> list[Case]:
    """The identifier cases again against a PostgreSQL and a MariaDB database (their errors differ)."""
    props = schema.get("properties", {})
    urls = [u for u in ("url", "source_url") if u in props]
    if not urls:
        return []
    out = []
    for server in ("pg", "mysql"):
        moved = {**base, urls[0]: "{" + server + "_good}"}
        if tool == "diff":
            moved["target_url"] = moved["source_url"]
        for name, prop in props.items():
            kind = _field_type(prop)
            if not kind or name in SKIP_FIELDS or _values_for(name) is not IDENTS:
                continue
            for key in SERVER_IDENTS:
                value = IDENTS[key]
                out.append(Case(tool, name, key, {**moved, name: [value] if kind == "list" else value}, server=server))
    return out


CORPUS = build_corpus()

# ------------------------------------------------------------------------------------------ environment


@dataclass
class Env:
    project: Path
    tmp: Path
    values: dict[str, str] = field(default_factory=dict)
    dropped: list[tuple[str, str, str]] = field(default_factory=list)  # (admin url, database, dialect): dropped first
    kept: list[tuple[str, str, str]] = field(default_factory=list)  # dropped at the end

    def resolve(self, value: Any) -> Any:
        if isinstance(value, str):
            for key, real in self.values.items():
                value = value.replace("{" + key + "}", real)
            return value
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        return value


def _git_project(root: Path) -> None:
    root.mkdir(parents=True)
    (root / "README.md").write_text("sweep\n")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t.invalid", "-C", str(root)]
    subprocess.run(["git", "init", "-q", "-b", "main", str(root)], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "init"], check=True)


def _users_db(path: Path) -> None:
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, user_name TEXT, first_name TEXT, last_name TEXT)")
    con.executemany("INSERT INTO users VALUES (?, ?, NULL, NULL)", [(i, f"ada lovelace {i}") for i in range(1, 21)])
    con.commit()
    con.close()


def _scratch_db(admin_url: str, dialect: str) -> str:
    name = f"dmig_sweep_{uuid.uuid4().hex[:10]}"
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"' if dialect == "pg" else f"CREATE DATABASE `{name}`")
    eng.dispose()
    url = sa.make_url(admin_url).set(database=name)
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id INTEGER PRIMARY KEY, user_name VARCHAR(80))")
        conn.exec_driver_sql("INSERT INTO users VALUES (1, 'ada lovelace')")
    eng.dispose()  # no pooled connection left open for the whole sweep (the drop needs none, servers are shared)
    return url.render_as_string(hide_password=False)


def _drop_db(admin_url: str, name: str, dialect: str) -> None:
    quoted, force = (f'"{name}"', " WITH (FORCE)") if dialect == "pg" else (f"`{name}`", "")
    eng = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with eng.connect() as conn:
        conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {quoted}{force}")
    eng.dispose()


def make_env(tmp: Path) -> Env:
    project = tmp / "project"
    _git_project(project)
    env = Env(project=project, tmp=tmp)
    docs = project / "docs"
    docs.mkdir()
    (docs / "corrupt.yaml").write_bytes(os.urandom(4096))
    (docs / "empty.yaml").write_bytes(b"")
    (tmp / "outside.yaml").write_text("checks: []\n")
    (tmp / "corrupt.db").write_bytes(os.urandom(8192))
    (tmp / "empty.db").write_bytes(b"")
    (tmp / "folder.db").mkdir()
    _users_db(tmp / "good.db")
    env.values.update(tmp=str(tmp), good=f"sqlite:///{tmp / 'good.db'}")
    for server, admin, dialect in (("pg", PG_ADMIN_URL, "pg"), ("mysql", MYSQL_ADMIN_URL, "my")):
        if reason := _unreachable("postgresql" if server == "pg" else "mariadb", admin):
            if IN_CI:
                pytest.fail(f"{reason} (CI=true: the sweep must reach every database)")
            env.values[f"{server}_dropped"] = env.values[f"{server}_good"] = f"sqlite:///{tmp}/missing.db"
            continue
        for key in (f"{server}_dropped", f"{server}_good"):
            url = _scratch_db(admin, dialect)
            env.values[key] = url
            into = env.dropped if key.endswith("dropped") else env.kept
            into.append((admin, sa.make_url(url).database or "", dialect))
    # A plan and a backup of another project (same user key): their ids must mean nothing here.
    other = tmp / "other"
    _git_project(other)
    env.values["other_plan"] = str(other / "docs/migrations/other-plan/plan.yaml")
    env.values["other_backup"] = "20260101T000000000Z-0123abcd"
    return env


# ------------------------------------------------------------------------------------------ running


@dataclass
class Answer:
    case: Case
    payload: dict[str, Any] | None
    crash: str | None = None


def _drop_inspected(env: Env) -> None:
    for admin, name, dialect in env.dropped:
        _drop_db(admin, name, dialect)


async def _session(env: Env, cases: list[Case], errlog: Any, before: Callable[[], None] | None) -> list[Answer]:
    out: list[Answer] = []
    async with AsyncExitStack() as stack:
        transport = stdio_client(server_params(env.project), errlog=errlog)
        client = await stack.enter_async_context(Client(transport, read_timeout_seconds=120))
        if before is not None:
            for key in ("pg_dropped", "mysql_dropped"):  # inspected first, so pools and caches know them
                await client.call_tool("inspect", {"url": env.values[key]})
            before()
        for case in cases:
            try:
                result = await client.call_tool(case.tool, env.resolve(case.args))
            except Exception as exc:  # the transport died or the call hung: the server did not stay alive
                out.append(Answer(case, None, crash=f"{type(exc).__name__}: {exc}"[:300]))
                return out
            out.append(Answer(case, result_payload(result)))
        alive = await client.call_tool("server_info", {})
        if alive.is_error:
            out.append(Answer(Case("server_info", "(after)", "alive", {}), None, crash="server_info failed"))
    return out


def run_cases(env: Env, cases: list[Case], chunk: int = 150) -> tuple[list[Answer], str]:
    answers: list[Answer] = []
    with tempfile.TemporaryFile("w+", encoding="utf-8") as errlog:
        first = True
        for i in range(0, len(cases), chunk):
            part = cases[i : i + chunk]
            hook = (lambda: _drop_inspected(env)) if first else None
            got = anyio.run(_session, env, part, errlog, hook)
            first = False
            answers += got
            if len(got) < len(part):  # a crash: go on after the crashing case in a new server
                rest = part[len(got) :]
                while rest:
                    more = anyio.run(_session, env, rest, errlog, None)
                    answers += more
                    rest = rest[len(more) :]
        errlog.seek(0)
        stderr = errlog.read()
    return answers, stderr


# ------------------------------------------------------------------------------------------ checks

_SQL = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM|CREATE TABLE|ALTER TABLE)\b.{0,400}", re.I | re.S)
MAX_SQL_ECHO = 200


def problem(answer: Answer) -> str | None:
    """Why this answer breaks the contract, or None."""
    if answer.crash:
        return f"server died or hung: {answer.crash}"
    payload = answer.payload or {}
    err = payload.get("error") if isinstance(payload, dict) else None
    if not err:
        return None
    code, message = err.get("code", ""), str(err.get("message", ""))
    if code in ("E_INTERNAL", "E_DMIG", "E_UNPARSED"):
        return f"{code}: {message[:300]}"
    text = json.dumps(err, ensure_ascii=False)
    for m in _SQL.finditer(text):
        if len(m.group(0)) > MAX_SQL_ECHO and "FROM" in m.group(0).upper():
            return f"SQL text leaked ({code}): {m.group(0)[:200]}"
    return None


# Session, not module, scope: an xdist worker interleaves other modules' tests with this group's, and
# pytest tears a module fixture down whenever the next test is in another module (the corpus ran twice).
@pytest.fixture(scope="session")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Answer], str]]:
    tmp = tmp_path_factory.mktemp("sweep")
    env = make_env(tmp)
    try:
        answers, stderr = run_cases(env, CORPUS)
        yield {a.case.id: a for a in answers}, stderr
    finally:
        for admin, name, dialect in env.dropped + env.kept:
            _drop_db(admin, name, dialect)
        shutil.rmtree(tmp, ignore_errors=True)


def _param(case: Case) -> Any:
    return pytest.param(case, id=case.id)


@pytest.mark.slow
@pytest.mark.xdist_group("sweep")  # one worker runs the corpus once (the module fixture), not one per worker
@pytest.mark.parametrize("case", [_param(c) for c in CORPUS])
def test_structured_answer(sweep: tuple[dict[str, Answer], str], case: Case) -> None:
    answers, _ = sweep
    answer = answers.get(case.id)
    assert answer is not None, "no answer: an earlier case killed the server"
    why = problem(answer)
    assert why is None, why


@pytest.mark.slow
@pytest.mark.xdist_group("sweep")
def test_no_traceback_and_alive(sweep: tuple[dict[str, Answer], str]) -> None:
    answers, stderr = sweep
    assert "Traceback" not in stderr, stderr[stderr.index("Traceback") :][:3000]
    crashes = [a.case.id for a in answers.values() if a.crash]
    assert not crashes, crashes


def test_corpus_covers_every_tool() -> None:
    assert {c.tool for c in CORPUS} == {s.name for s in tools_for(False)}
    assert len(CORPUS) > 500
