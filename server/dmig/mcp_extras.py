"""MCP prompts and resources served beside the tools: the plugin's workflow prompts and agent prompt.

The same markdown files drive the Claude Code plugin (agent/, workflows/) and these MCP endpoints,
so a client without the plugin (or a user picking the prompt from a menu) gets the same text the
agent follows. Files are read when requested, not at start-up: a missing asset fails that one
request with a clear message instead of taking the whole server down.
"""

from __future__ import annotations

from dataclasses import dataclass

from mcp.server import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp_types.jsonrpc import INTERNAL_ERROR, INVALID_PARAMS

from dmig.assets import asset_path
from dmig.context import RunContext
from dmig.errors import DmigError
from dmig.redact import redact

AGENT_URI = "dmig://agent/ag-datamigration.md"


@dataclass(frozen=True)
class Asset:
    uri: str
    parts: tuple[str, ...]
    name: str
    title: str
    description: str


ASSETS = (
    Asset(
        AGENT_URI,
        ("agent", "ag-datamigration.md"),
        "ag-datamigration",
        "AG-DATAMIGRATION agent prompt",
        "The agent's role, hard rules, tool table and Plan → Build → Self-Improve workflow.",
    ),
    Asset(
        "dmig://workflows/workflow.md",
        ("workflows", "workflow.md"),
        "migration-workflow",
        "Data migration workflow",
        "Step-by-step runbook for one migration: which tool to call at each step and when to stop.",
    ),
    Asset(
        "dmig://workflows/self-improve.md",
        ("workflows", "self-improve.md"),
        "self-improve-guide",
        "Self-improve guide",
        "How to turn what a migration run measured into a self_improve call.",
    ),
)


def read_asset(*parts: str) -> str:
    """The text of a shipped file; a missing one is an MCP error whose message the client sees.

    (The SDK turns any other exception in a prompt or resource into a bare "Internal server error".)
    """
    try:
        return asset_path(*parts).read_text(encoding="utf-8")
    except DmigError as exc:
        raise MCPError(INTERNAL_ERROR, f"{exc.info().code}: {exc.info().message}") from None


def _reader(asset: Asset):
    """The handler of one static resource (the SDK wants a function without parameters)."""

    def read() -> str:
        return read_asset(*asset.parts)

    read.__name__ = asset.name.replace("-", "_")
    return read


def _preamble(pairs: list[tuple[str, str]]) -> str:
    """Arguments the user filled in, as a short header the workflow text then refers to (credentials masked)."""
    lines = [f"- {label}: {redact(value.strip())}" for label, value in pairs if value and value.strip()]
    return ("This run:\n" + "\n".join(lines) + "\n\n") if lines else ""


@dataclass(frozen=True)
class PromptSpec:
    name: str
    title: str
    description: str
    parts: tuple[str, ...]
    # (argument, label in the header, description shown to the user); all optional.
    arguments: tuple[tuple[str, str, str], ...]


PROMPTS = (
    PromptSpec(
        "migration_workflow",
        "Run a data migration (Plan → Build → Self-Improve)",
        "The AG-DATAMIGRATION runbook for one migration, with the tool to call at each step.",
        ("workflows", "workflow.md"),
        (
            ("story", "Story", "The AgileFlow story id, e.g. US-0042."),
            ("goal", "Goal", "What should change, e.g. split users.user_name into two columns."),
            ("databases", "Databases", "The databases involved, as env:VARNAME references (never a password)."),
        ),
    ),
    PromptSpec(
        "self_improve_guide",
        "Record what a migration run measured",
        "How to turn a finished run's measured figures into one self_improve call.",
        ("workflows", "self-improve.md"),
        (
            ("story", "Story", "The AgileFlow story id the run belonged to."),
            ("plan_id", "Plan", "The migration plan id whose run to learn from."),
        ),
    ),
)


def _prompt(spec: PromptSpec) -> Prompt:
    """A prompt whose text is the shipped file, headed by the arguments given; unknown arguments fail closed."""
    known = {arg for arg, _, _ in spec.arguments}

    def render(**values: str) -> str:
        unknown = sorted(set(values) - known)
        if unknown:
            message = f"unknown argument(s) for {spec.name}: {', '.join(unknown)}; known: {', '.join(sorted(known))}"
            raise MCPError(INVALID_PARAMS, message)
        header = _preamble([(label, str(values.get(arg) or "")) for arg, label, _ in spec.arguments])
        return header + read_asset(*spec.parts)

    return Prompt(
        name=spec.name,
        title=spec.title,
        description=spec.description,
        arguments=[PromptArgument(name=arg, description=text, required=False) for arg, _, text in spec.arguments],
        fn=render,
    )


def register_extras(server: MCPServer, rc: RunContext) -> None:
    """Register the resources and prompts; they only read shipped files, so read-only mode keeps them."""
    for asset in ASSETS:
        server.resource(
            asset.uri, name=asset.name, title=asset.title, description=asset.description, mime_type="text/markdown"
        )(_reader(asset))
    for spec in PROMPTS:
        server.add_prompt(_prompt(spec))
