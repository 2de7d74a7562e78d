"""The CLI's index of command -> tool module must match what the modules declare, and a subcommand
must import only its own module (importing them all cost ~0.7 s and ~50 MB on every command)."""

from __future__ import annotations

import json
import subprocess
import sys

from dmig.cli import _command_in
from dmig.registry import COMMAND_MODULES, all_tools, tool_for_command, tool_modules, tools_in


def test_index_names_every_command_and_the_module_that_declares_it() -> None:
    declared = {spec.command: module for module in tool_modules() for spec in tools_in(module)}
    missing = {c: m for c, m in declared.items() if COMMAND_MODULES.get(c) != m}
    stale = sorted(set(COMMAND_MODULES) - set(declared))
    assert not missing, f"add to dmig.registry.COMMAND_MODULES: {missing}"
    assert not stale, f"COMMAND_MODULES names commands no tool declares: {stale}"


def test_lookup_by_command_gives_the_same_spec_as_the_full_registry() -> None:
    for spec in all_tools():
        assert tool_for_command(spec.command) is spec
    assert tool_for_command("no-such-command") is None


def test_command_is_found_after_the_global_option_only() -> None:
    assert _command_in(["copy", "a", "b"]) == "copy"
    assert _command_in(["--project-dir", "p", "lint", "--json"]) == "lint"
    assert _command_in(["--project-dir=p", "diff"]) == "diff"
    assert _command_in(["--help"]) is None
    assert _command_in(["--project", "p", "copy"]) is None  # abbreviations: the full parser decides
    assert _command_in([]) is None


_PROBE = """
import json, sys
from dmig.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("dmig.tools.", "mcp", "sqlglot", "pglast")))))
"""


def _modules_loaded(*argv: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE, *argv], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.splitlines()[-1])


def test_a_subcommand_imports_only_its_own_tool_module() -> None:
    assert _modules_loaded("copy", "--help") == ["dmig.tools.copy"]  # no MCP SDK, no SQL parsers
    lint = _modules_loaded("--project-dir", ".", "lint", "--help")
    assert [m for m in lint if m.startswith(("dmig.tools.", "mcp"))] == ["dmig.tools.lint"]


def test_help_still_lists_every_command() -> None:
    out = subprocess.run([sys.executable, "-m", "dmig", "--help"], capture_output=True, text=True, check=True).stdout
    for spec in all_tools():
        assert spec.command in out, spec.command


def test_tools_listing_into_a_closed_pipe_is_not_an_error() -> None:
    """`dmig tools | head -1`: the reader leaves early; no traceback, exit 0."""
    dmig = [sys.executable, "-c", "import sys; from dmig.cli import main; sys.exit(main())", "tools"]
    proc = subprocess.Popen(dmig, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader is gone before the listing is written out
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, err
    assert "Traceback" not in err and "BrokenPipe" not in err
