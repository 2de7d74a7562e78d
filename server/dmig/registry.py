"""The single list of tools that both front ends (MCP server, CLI) are generated from.

A tool is a service function ``fn(inp: InputModel, rc: RunContext) -> OutputModel`` plus the
facts a front end needs: its MCP annotations, its CLI positional arguments and exit-code rule.
Capability modules in ``dmig.tools`` declare ``TOOLS = [ToolSpec(...), ...]``; nothing else
needs editing to add a tool, which keeps the MCP server, the CLI and the docs in step.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

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
    # Which input fields hold database URLs and whether the tool writes to them. None: inferred from
    # the field names (url/source/target...; a writing tool is taken to write to every non-source URL).
    url_fields: dict[str, str] | None = None

    @property
    def command(self) -> str:
        return self.cli_name or self.name.replace("_", "-")


# Which module of dmig.tools declares each CLI command. Importing every tool module costs ~0.7 s and
# ~50 MB (lint's SQL parsers, the backup and migration engines...), and ``dmig copy`` runs with that
# resident for the whole load, so a subcommand imports only its own module. A command missing here
# still works (the CLI falls back to ``all_tools()``); tests/test_registry_index.py keeps it exact.
COMMAND_MODULES: dict[str, str] = {
    "abort-migration": "migrate",
    "backup": "backup",
    "baseline": "harness",
    "bus-append": "harness",
    "complete-migration": "migrate",
    "copy": "copy",
    "diff": "diff",
    "expertise-read": "expertise",
    "health": "monitor",
    "inspect": "inspect",
    "lint": "lint",
    "list-backups": "backup",
    "migration-status": "migrate",
    "monitor": "monitor",
    "obtain-context": "harness",
    "plan-migration": "migrate",
    "prune-backups": "backup",
    "restore-backup": "backup",
    "rollback": "rollback",
    "run-migration": "migrate",
    "self-improve": "expertise",
    "server-info": "server_info",
    "session-init": "harness",
    "session-resume": "harness",
    "status-update": "harness",
    "validate": "validate",
    "verify": "harness",
    "verify-backup": "backup",
    "workload": "workload",
}


def tool_modules() -> list[str]:
    """Names of the modules in dmig.tools, found on disk without importing them."""
    import dmig.tools as pkg

    return [mod.name for mod in pkgutil.iter_modules(pkg.__path__)]


def tools_in(module: str) -> list[ToolSpec]:
    """The TOOLS one module of dmig.tools declares (importing only that module)."""
    return list(getattr(importlib.import_module(f"dmig.tools.{module}"), "TOOLS", []))


def tool_for_command(command: str) -> ToolSpec | None:
    """The tool a CLI subcommand runs, importing only its module; None if the index does not know it."""
    module = COMMAND_MODULES.get(command)
    if module is None:
        return None
    return next((spec for spec in tools_in(module) if spec.command == command), None)


def all_tools() -> list[ToolSpec]:
    """Import every module in dmig.tools and collect its TOOLS, sorted by name."""
    specs: dict[str, ToolSpec] = {}
    for module in tool_modules():
        for spec in tools_in(module):
            if spec.name in specs:
                raise RuntimeError(f"tool {spec.name} is declared twice")
            specs[spec.name] = spec
    return [specs[name] for name in sorted(specs)]


def tools_for(read_only: bool) -> list[ToolSpec]:
    """In read-only mode a tool that can change a database or a project file does not exist at all."""
    return [t for t in all_tools() if t.read_only or not read_only]


_URL_FIELD_NAMES = ("url", "source_url", "target_url", "source", "target")


def url_fields(spec: ToolSpec) -> dict[str, str]:
    if spec.url_fields is not None:
        return spec.url_fields
    fields = {}
    for name in spec.input_model.model_fields:
        if name in _URL_FIELD_NAMES:
            fields[name] = "read" if spec.read_only or name.startswith("source") else "write"
    return fields


def _apply_policy(spec: ToolSpec, arguments: dict[str, Any]) -> dict[str, Any]:
    """Admit every URL argument under the call's policy gate (see dmig.policy.admit); aliases become env refs.

    URLs from other sources (spec files, rules files, plans, backup manifests) are admitted where
    they are read, through the same ``policy.admit``.
    """
    from dmig import policy as pol

    out = dict(arguments)
    for name, access in url_fields(spec).items():
        value = out.get(name)
        if isinstance(value, str) and value:
            out[name] = pol.admit(value, access, field=name, destructive=spec.destructive)  # type: ignore[arg-type]
    return out


def _policy_gate(spec: ToolSpec, rc: RunContext) -> contextlib.AbstractContextManager[object]:
    """The call's policy (read once; a corrupt file refuses the call here); none for tools without a database."""
    if not url_fields(spec):
        return contextlib.nullcontext()
    from dmig import policy as pol

    return pol.gate(rc.project_dir)


def run_tool(spec: ToolSpec, arguments: dict[str, Any], rc: RunContext) -> BaseModel:
    """Validate, guard, call and audit: the one code path both front ends use.

    The call's connection rules (``dmig.db.access``) are set here, around everything the tool does:
    a read-only tool, or any tool of a read-only server, gets read-only sessions at the database;
    under the MCP server SQLite files must be inside the project or ``DMIG_ALLOWED_DIRS``.
    """
    if rc.read_only and not spec.read_only:
        from dmig.errors import ReadOnlyMode

        raise ReadOnlyMode(f"tool {spec.name} is not available in read-only mode")
    from dmig import bounds
    from dmig.db import access

    if spec.read_only:
        bounds.check(spec.input_model, arguments)  # first: nothing reads an oversized input
    rules = access.for_call(
        read_only=spec.read_only or rc.read_only, project_dir=rc.project_dir, confine=rc.front_end == "mcp"
    )
    with access.scope(rules):
        return _run_checked(spec, arguments, rc)


def _run_checked(spec: ToolSpec, arguments: dict[str, Any], rc: RunContext) -> BaseModel:
    if spec.read_only:
        with _policy_gate(spec, rc):
            return spec.func(spec.input_model.model_validate(_apply_policy(spec, arguments)), rc)
    return _run_audited(spec, arguments, rc)


def _run_audited(spec: ToolSpec, arguments: dict[str, Any], rc: RunContext) -> BaseModel:
    from dmig import audit
    from dmig.errors import DmigError

    audit.preflight(rc.project_dir)  # a change that could not be audited is not made
    started = time.perf_counter()
    outcome, result = "error:E_INTERNAL", None
    from dmig import bounds

    try:
        try:
            bounds.check(spec.input_model, arguments)
        except bounds.InputTooLarge:
            arguments = bounds.placeholder(arguments)
            raise
        with _policy_gate(spec, rc):
            inp = spec.input_model.model_validate(_apply_policy(spec, arguments))
            out = spec.func(inp, rc)
        outcome, result = "ok", out.model_dump(mode="json")
        return out
    except DmigError as exc:
        outcome = f"error:{exc.code}"
        raise
    except ValidationError:
        outcome = "error:E_INVALID_INPUT"
        raise
    finally:
        try:
            audit.record(
                rc.project_dir,
                actor=rc.actor,
                front_end=rc.front_end,
                tool=spec.name,
                arguments=arguments,
                started=started,
                outcome=outcome,
                result=result,
            )
        except Exception:  # the audit must never turn a finished change into a reported failure
            logging.getLogger("dmig.audit").warning("could not append to the audit log", exc_info=True)
