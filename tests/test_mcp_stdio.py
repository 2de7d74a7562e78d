"""The server as Claude Code sees it: spawned over stdio, called with the official mcp client."""

from __future__ import annotations

from pathlib import Path

from dmig.registry import all_tools
from mcp_client import call, list_tools


def test_every_registered_tool_is_listed_with_true_annotations(project: Path) -> None:
    listed = {t.name: t for t in list_tools(project)}
    specs = {s.name: s for s in all_tools()}
    assert set(listed) == set(specs)
    for name, tool in listed.items():
        spec = specs[name]
        ann = tool.annotations
        assert ann is not None, name
        assert ann.read_only_hint is spec.read_only, name
        assert ann.destructive_hint is spec.destructive, name
        assert ann.idempotent_hint is spec.idempotent, name
        assert ann.open_world_hint is spec.open_world, name
        assert tool.output_schema, f"{name} has no structured output schema"
        assert tool.description and len(tool.description) > 20, name


def test_read_only_mode_hides_every_tool_that_writes(project: Path) -> None:
    listed = {t.name for t in list_tools(project, "--read-only")}
    writers = {s.name for s in all_tools() if not s.read_only}
    assert listed and not (listed & writers)
    [info] = call(project, [("server_info", {})], "--read-only")
    assert info["read_only_mode"] is True


def test_unknown_argument_is_a_structured_error(project: Path) -> None:
    [out] = call(project, [("server_info", {"surprise": 1})])
    assert out["error"]["code"] == "E_INVALID_INPUT"
