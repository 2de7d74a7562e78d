"""MCP resources and prompts (workflow prompts, plans and reports) registered beside the tools."""

from __future__ import annotations

from mcp.server import MCPServer

from dmig.context import RunContext


def register_extras(server: MCPServer, rc: RunContext) -> None:
    """Capabilities add their resources and prompts here as they land."""
    return None
