"""``dmig demo``: run the migration story through ``dmig serve`` with the official MCP client.

The demo is what a user sees first, so it uses nothing but the public surface: it spawns the
server over stdio (as Claude Code does), calls the tools by name, and prints a short account
with the figures each tool returned. It needs nothing but SQLite; ``--source``/``--target``
point it at PostgreSQL or MariaDB instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters

from dmig.demo.sample import generate
from dmig.redact import redact

STORY_ID = "US-0001"


@dataclass
class Account:
    """What happened, step by step, for the closing summary."""

    lines: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.perf_counter)

    def step(self, title: str, detail: str, seconds: float, ok: bool = True) -> None:
        mark = "ok " if ok else "FAIL"
        line = f"[{mark}] {title:<28} {seconds:6.2f}s  {detail}"
        self.lines.append(line)
        print(redact(line), flush=True)
        if not ok:
            self.failures.append(title)


class StoryError(Exception):
    pass


class Session:
    """One MCP client session over stdio; ``call`` returns the structured result or raises."""

    def __init__(self, client: Client, account: Account) -> None:
        self.client = client
        self.account = account

    async def call(self, title: str, tool: str, args: dict[str, Any], summarize, *, expect_error: bool = False):
        t0 = time.perf_counter()
        result = await self.client.call_tool(tool, args)
        seconds = time.perf_counter() - t0
        if result.is_error:
            text = "".join(getattr(c, "text", "") for c in result.content)
            payload = json.loads(text[text.index("{") :]) if "{" in text else {"error": {"message": text}}
            err = payload.get("error", {})
            if expect_error:
                self.account.step(
                    title, f"refused as expected: {err.get('code')} {err.get('message', '')[:80]}", seconds
                )
                return payload
            detail = json.dumps(err.get("details", {}), ensure_ascii=False)[:600]
            self.account.step(title, f"{err.get('code')}: {err.get('message')}", seconds, ok=False)
            raise StoryError(f"{tool} failed: {err.get('code')}: {err.get('message')} {detail}")
        out = result.structured_content or {}
        self.account.step(title, summarize(out), seconds)
        return out


def _server_params(project: Path, env: dict[str, str]) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "dmig", "serve"],
        env={"DMIG_PROJECT_DIR": str(project), **env},
        cwd=str(project),
    )


def _scratch_project(root: Path) -> Path:
    """A user's project: a git repository with an AgileFlow story for the migration and one test."""
    project = root / "app-project"
    (project / "tests").mkdir(parents=True, exist_ok=True)
    (project / "data").mkdir(exist_ok=True)
    (project / "tests" / "test_app_db.py").write_text(
        textwrap.dedent(
            """\
            import sqlite3
            from pathlib import Path

            def test_application_database_opens():
                db = Path(__file__).resolve().parents[1] / "data" / "app.db"
                with sqlite3.connect(db) as conn:
                    assert conn.execute("SELECT count(*) FROM users").fetchone()[0] > 0
            """
        )
    )
    (project / ".gitignore").write_text("data/\n*.lock\n")
    git = ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.invalid", "-C", str(project)]
    if not (project / ".git").exists():
        subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True)
        subprocess.run([*git, "add", "."], check=True)
        subprocess.run([*git, "commit", "-q", "-m", "the application"], check=True)
    return project


def _seed_story(project: Path) -> None:
    status = project / "docs" / "09-agents" / "status.json"
    data = json.loads(status.read_text())
    data.setdefault("stories", {})[STORY_ID] = {
        "id": STORY_ID,
        "title": "Split users.user_name into first_name/last_name with zero downtime",
        "owner": "AG-DATAMIGRATION",
        "status": "ready",
        "test_status": "not_run",
    }
    status.write_text(json.dumps(data, indent=2) + "\n")


async def _story(project: Path, source_url: str, account: Account) -> None:
    async with Client(_server_params(project, {}), read_timeout_seconds=600) as client:
        s = Session(client, account)
        test_cmd = f"{sys.executable} -m pytest -q -p no:cacheprovider tests"
        await s.call(
            "session_init",
            "session_init",
            {"test_command": test_cmd},
            lambda o: f"harness files: {len(o.get('created', []))} created",
        )
        _seed_story(project)
        await s.call(
            "obtain_context",
            "obtain_context",
            {"story_id": STORY_ID},
            lambda o: f"branch {o.get('git', {}).get('branch')}, story {STORY_ID} loaded",
        )
        await s.call(
            "status_update → in-progress",
            "status_update",
            {"story_id": STORY_ID, "status": "in-progress", "reason": "demo migration starts"},
            lambda o: f"{o.get('from_status')} → {o.get('to_status')}",
        )
        await s.call(
            "inspect",
            "inspect",
            {"url": source_url},
            lambda o: ", ".join(f"{t['name']} {t['row_count']:,} rows" for t in o.get("tables", [])),
        )
        await s.call(
            "validate (source rules)",
            "validate",
            {"spec": _source_rules(source_url)},
            lambda o: f"{o.get('passed')} passed, {o.get('failed')} failed, {o.get('errored')} errors",
        )
        await s.call(
            "status_update (gate)",
            "status_update",
            {"story_id": STORY_ID, "status": "in-review"},
            lambda o: "",
            expect_error=True,
        )
        await s.call(
            "verify",
            "verify",
            {"story_id": STORY_ID},
            lambda o: f"tests {o.get('test_status')} ({o.get('passed')} passed, {o.get('failed')} failed)",
        )
        await s.call(
            "status_update → in-review",
            "status_update",
            {"story_id": STORY_ID, "status": "in-review"},
            lambda o: f"{o.get('from_status')} → {o.get('to_status')}",
        )
        await s.call(
            "bus_append",
            "bus_append",
            {"type": "status", "story": STORY_ID, "text": "users/orders validated; ready for review"},
            lambda o: "message appended to docs/09-agents/bus/log.jsonl",
        )


def _source_rules(url: str) -> dict[str, Any]:
    return {
        "target": url,
        "checks": [
            {"type": "not_null", "table": "users", "columns": ["email", "created_at"]},
            {"type": "unique", "table": "users", "columns": ["email"]},
            {
                "type": "orphaned_fk",
                "table": "orders",
                "columns": ["user_id"],
                "parent_table": "users",
                "parent_columns": ["id"],
            },
            {
                "type": "enum",
                "table": "users",
                "column": "status",
                "values": ["active", "inactive", "suspended", "pending"],
            },
            {"type": "range", "table": "orders", "column": "amount", "min": 0, "max": 9999999999.99},
        ],
    }


def run_demo(workdir: str | None = None, source: str | None = None, target: str | None = None) -> int:
    root = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="dmig-demo-"))
    root.mkdir(parents=True, exist_ok=True)
    account = Account()
    print(f"dmig demo: working in {root}")
    project = _scratch_project(root)
    if source is None:
        t0 = time.perf_counter()
        counts = generate(project / "data" / "app.db")
        account.step(
            "generate sample app db",
            f"users {counts['users']:,}, orders {counts['orders']:,} (SQLite)",
            time.perf_counter() - t0,
        )
        source = f"sqlite:///{project / 'data' / 'app.db'}"
    try:
        anyio.run(_story, project, source, account)
    except* StoryError as group:
        print(f"\ndemo stopped: {redact(str(group.exceptions[0]))}", file=sys.stderr)
    if account.failures:
        return 1
    total = time.perf_counter() - account.started
    print(f"\nAll {len(account.lines)} steps passed in {total:.1f}s.")
    print(f"Project folder: {project}")
    print(f"  status:  {project / 'docs/09-agents/status.json'}")
    print(f"  bus:     {project / 'docs/09-agents/bus/log.jsonl'}")
    return 0
