"""Helpers for the plugin tests: reading the plugin's markdown, extracting tool mentions, MCP prompts/resources.

The convention for naming a dmig tool in the plugin's markdown (agent prompt, workflows, slash
commands), which ``mentioned_tools`` extracts and nothing else:

* the full Claude Code name ``mcp__plugin_agileflow_dmig__<tool>`` anywhere (frontmatter lists), or
* the short name written as a call inside backticks: `` `inspect()` ``, `` `verify(story=...)` ``.

A bare backticked word (`` `backfill` ``, `` `env:VARNAME` ``) is never a tool mention, so the
prose can name phases, fields and files freely without confusing the check.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import yaml
from mcp import Client, StdioServerParameters

ROOT = Path(__file__).resolve().parents[1]
PLUGIN_NAME = "agileflow"
SERVER_KEY = "dmig"
PREFIX = f"mcp__plugin_{PLUGIN_NAME}_{SERVER_KEY}__"

FULL_RE = re.compile(re.escape(PREFIX) + r"([a-z][a-z0-9_]*)")
SHORT_RE = re.compile(r"`([a-z][a-z0-9_]*)\(")
ANY_MCP_RE = re.compile(r"mcp__[A-Za-z0-9_-]+")
TABLE_ROW_RE = re.compile(r"^\|\s*`([a-z][a-z0-9_]*)\(\)`\s*\|", re.MULTILINE)

AGENT = ROOT / "agent" / "ag-datamigration.md"
WORKFLOWS = sorted((ROOT / "workflows").glob("*.md"))
COMMANDS = sorted((ROOT / "commands").rglob("*.md"))


def load_json(relative: str) -> Any:
    return json.loads((ROOT / relative).read_text(encoding="utf-8"))


def split_frontmatter(path: Path) -> tuple[dict[str, Any], str]:
    """YAML frontmatter (empty when absent) and the body after it."""
    text = path.read_text(encoding="utf-8")
    if not text.startswith("---\n"):
        return {}, text
    end = text.index("\n---\n", 4)
    return yaml.safe_load(text[4:end]) or {}, text[end + 5 :]


def tool_list(value: Any) -> list[str]:
    """A frontmatter tool list: a comma-separated string or a YAML list."""
    items = value if isinstance(value, list) else str(value or "").split(",")
    return [str(item).strip() for item in items if str(item).strip()]


def dmig_tools_in(names: list[str]) -> set[str]:
    return {name[len(PREFIX) :] for name in names if name.startswith(PREFIX)}


def mentioned_tools(text: str) -> set[str]:
    return set(FULL_RE.findall(text)) | set(SHORT_RE.findall(text))


def foreign_mcp_names(text: str) -> set[str]:
    """mcp__ names that do not carry this plugin's prefix: a typo'd plugin or server name never resolves."""
    return {name for name in ANY_MCP_RE.findall(text) if not name.startswith(PREFIX)}


def plugin_docs() -> list[Path]:
    return [AGENT, *WORKFLOWS, *COMMANDS]


def slash_name(command_file: Path) -> str:
    """commands/session/init.md → /agileflow:session:init."""
    parts = command_file.relative_to(ROOT / "commands").with_suffix("").parts
    return f"/{PLUGIN_NAME}:" + ":".join(parts)


def describe_difference(label_a: str, a: set[str], label_b: str, b: set[str]) -> str:
    """A failure message that names exactly what is missing on each side."""
    lines = []
    if a - b:
        lines.append(f"in {label_a} but not in {label_b}: {', '.join(sorted(a - b))}")
    if b - a:
        lines.append(f"in {label_b} but not in {label_a}: {', '.join(sorted(b - a))}")
    return "\n".join(lines)


@dataclass
class Served:
    prompts: dict[str, Any]
    prompt_texts: dict[str, str]
    resources: dict[str, Any]
    resource_texts: dict[str, str]


def stdio_params(command: str, project_dir: Path, env: dict[str, str] | None = None) -> StdioServerParameters:
    child_env = {"DMIG_PROJECT_DIR": str(project_dir), "PATH": os.environ.get("PATH", "")}
    child_env.update({k: os.environ[k] for k in ("DMIG_DATA_DIR",) if k in os.environ})  # the seal key
    child_env.update(env or {})
    return StdioServerParameters(command=command, args=["serve"], env=child_env, cwd=str(project_dir))


def served_extras(params: StdioServerParameters, prompt_args: dict[str, dict[str, str]] | None = None) -> Served:
    """List and fetch every prompt and resource the server offers, over stdio with the official client."""

    async def run() -> Served:
        async with Client(params, read_timeout_seconds=120) as client:
            prompts = {p.name: p for p in (await client.list_prompts()).prompts}
            texts = {}
            for name in prompts:
                result = await client.get_prompt(name, (prompt_args or {}).get(name, {}))
                texts[name] = "".join(getattr(m.content, "text", "") for m in result.messages)
            resources = {str(r.uri): r for r in (await client.list_resources()).resources}
            bodies = {}
            for uri in resources:
                contents = (await client.read_resource(uri)).contents
                bodies[uri] = "".join(getattr(c, "text", "") for c in contents)
            return Served(prompts, texts, resources, bodies)

    return anyio.run(run)


def build_wheel(out_dir: Path) -> Path:
    """Build the distribution's wheel the way a release would (isolated hatchling build)."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--disable-pip-version-check",
            "-q",
            "-w",
            str(out_dir),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    )
    [wheel] = out_dir.glob("agileflow_datamigration-*.whl")
    return wheel


INITIALIZE = json.dumps(
    {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}},
    }
)


def start_launcher(launcher: Path, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    """Start ``bin/dmig-serve`` as Claude Code would, with one initialize request waiting on its stdin."""
    proc = subprocess.Popen(
        [str(launcher)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=str(cwd),
        text=True,
    )
    assert proc.stdin is not None
    proc.stdin.write(INITIALIZE + "\n")
    proc.stdin.flush()  # communicate() closes stdin next: the server answers, sees EOF and exits
    return proc
