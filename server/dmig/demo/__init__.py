"""The demo: the product's story, driven through the MCP server exactly as the agent drives it."""

from dmig.demo.story import run_demo

__all__ = ["run_demo"]
