"""server_info: what this server is and which tools it offers (useful to check an install)."""

from __future__ import annotations

from pydantic import Field

from dmig import __version__
from dmig.context import RunContext
from dmig.models import Input, Output
from dmig.registry import ToolSpec, tools_for


class ServerInfoInput(Input):
    pass


class ToolSummary(Output):
    name: str
    read_only: bool
    destructive: bool


class ServerInfoOutput(Output):
    version: str
    read_only_mode: bool
    project_dir: str = Field(description="The project folder the harness tools work in.")
    tools: list[ToolSummary]


def server_info(inp: ServerInfoInput, rc: RunContext) -> ServerInfoOutput:
    return ServerInfoOutput(
        version=__version__,
        read_only_mode=rc.read_only,
        project_dir=str(rc.project_dir),
        tools=[
            ToolSummary(name=t.name, read_only=t.read_only, destructive=t.destructive) for t in tools_for(rc.read_only)
        ],
    )


TOOLS = [
    ToolSpec(
        name="server_info",
        func=server_info,
        input_model=ServerInfoInput,
        output_model=ServerInfoOutput,
        title="Server info",
        description="Version, mode (read-only or not), project folder and the list of tools this server offers.",
    )
]
