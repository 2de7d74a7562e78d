"""The single list of tools that both front ends (MCP server, CLI) are generated from.

A tool is a service function ``fn(inp: InputModel, rc: RunContext) -> OutputModel`` plus the
facts a front end needs: its MCP annotations, its CLI positional arguments and exit-code rule.
Capability modules in ``dmig.tools`` declare ``TOOLS = [ToolSpec(...), ...]``; nothing else
needs editing to add a tool, which keeps the MCP server, the CLI and the docs in step.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from dmig.context import RunContext


@dataclass(frozen=True)
class ToolSpec:
    name: str
    func: Callable[[Any, RunContext], BaseModel]
    input_model: type[BaseModel]
    output_model: type[BaseModel]
    description: str
    title: str | None = None
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False
    # CLI: subcommand name (defaults to the tool name with dashes), positional fields, exit rule.
    cli_name: str | None = None
    cli_positional: tuple[str, ...] = ()
    cli_exit_code: Callable[[Any], int] | None = None
    cli_render: Callable[[Any], str] | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def command(self) -> str:
        return self.cli_name or self.name.replace("_", "-")


def all_tools() -> list[ToolSpec]:
    """Import every module in dmig.tools and collect its TOOLS, sorted by name."""
    import dmig.tools as pkg

    specs: dict[str, ToolSpec] = {}
    for mod in pkgutil.iter_modules(pkg.__path__):
        module = importlib.import_module(f"{pkg.__name__}.{mod.name}")
        for spec in getattr(module, "TOOLS", []):
            if spec.name in specs:
                raise RuntimeError(f"tool {spec.name} is declared twice")
            specs[spec.name] = spec
    return [specs[name] for name in sorted(specs)]


def tools_for(read_only: bool) -> list[ToolSpec]:
    """In read-only mode a tool that can change a database or a project file does not exist at all."""
    return [t for t in all_tools() if t.read_only or not read_only]


def run_tool(spec: ToolSpec, arguments: dict[str, Any], rc: RunContext) -> BaseModel:
    """Validate, guard and call: the one code path both front ends use."""
    if rc.read_only and not spec.read_only:
        from dmig.errors import ReadOnlyMode

        raise ReadOnlyMode(f"tool {spec.name} is not available in read-only mode")
    inp = spec.input_model.model_validate(arguments)
    return spec.func(inp, rc)
