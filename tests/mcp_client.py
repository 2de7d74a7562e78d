"""Drive ``dmig serve`` exactly as Claude Code does: a child process over stdio, the official client."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import Client, StdioServerParameters


def dmig_executable() -> str:
    """The dmig console script of the interpreter running the tests."""
    candidate = Path(sys.executable).parent / "dmig"
    return str(candidate) if candidate.exists() else (shutil.which("dmig") or "dmig")


def server_params(project_dir: Path, *args: str, env: dict[str, str] | None = None) -> StdioServerParameters:
    # Test databases live beside the scratch project (pytest's tmp_path): allow that folder, as a user
    # would with DMIG_ALLOWED_DIRS. Tests of the confinement itself pass their own value.
    child_env = {
        "DMIG_PROJECT_DIR": str(project_dir),
        "PATH": os.environ.get("PATH", ""),
        "DMIG_ALLOWED_DIRS": str(Path(project_dir).resolve().parent),
    }
    child_env.update({k: os.environ[k] for k in ("DMIG_DATA_DIR",) if k in os.environ})  # the seal key
    child_env.update(env or {})
    return StdioServerParameters(command=dmig_executable(), args=["serve", *args], env=child_env, cwd=str(project_dir))


def result_payload(result: Any) -> dict[str, Any]:
    """Structured content on success; the parsed error JSON on a tool error."""
    if result.is_error:
        text = "".join(getattr(c, "text", "") for c in result.content)
        try:  # the SDK prefixes "Error executing tool X: " to the ToolError text
            return json.loads(text[text.index("{") :])
        except (ValueError, json.JSONDecodeError):
            return {"error": {"code": "E_UNPARSED", "message": text}}
    return result.structured_content


def call(
    project_dir: Path, calls: list[tuple[str, dict[str, Any]]], *serve_args: str, env: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """Spawn one server, make the calls in order, return each payload."""

    async def run() -> list[dict[str, Any]]:
        out = []
        async with Client(server_params(project_dir, *serve_args, env=env), read_timeout_seconds=300) as client:
            for name, arguments in calls:
                out.append(result_payload(await client.call_tool(name, arguments)))
        return out

    return anyio.run(run)


def _project_files(project_dir: Path) -> tuple[tuple[str, bytes], ...]:
    root = Path(project_dir)
    return tuple(
        (str(p.relative_to(root)), p.read_bytes())
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".git" not in p.relative_to(root).parts
    )


_listings: dict[tuple[Any, ...], list[Any]] = {}


def list_tools(project_dir: Path, *serve_args: str) -> list[Any]:
    """The tools a real ``dmig serve`` lists. The list depends only on the server's arguments (read-only or
    not), its environment and the project's files, so a listing is reused, in this test process, for the same
    arguments, environment and project content: a fresh scratch project costs no second server start (~3 s)."""
    params = server_params(project_dir, *serve_args)
    env = {k: v for k, v in (params.env or {}).items() if k not in ("DMIG_PROJECT_DIR", "DMIG_ALLOWED_DIRS")}
    key = (tuple(serve_args), tuple(sorted(env.items())), _project_files(project_dir))
    if key not in _listings:

        async def run() -> list[Any]:
            async with Client(params) as client:
                return (await client.list_tools()).tools

        _listings[key] = anyio.run(run)
    return list(_listings[key])
