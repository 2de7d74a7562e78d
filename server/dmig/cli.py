"""The ``dmig`` command line: one subcommand per tool, generated from the registry.

Options mirror the tool's input model (``--field-name``); ``--json`` prints the same structured
output the MCP tool returns. Exit codes: 0 success, 1 when a check found differences or
failures (per tool), 2 on an error (bad input, unreachable database, ...). Errors never show a
traceback; set DMIG_DEBUG=1 to see one for an internal error.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import types
import typing
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError

from dmig import __version__
from dmig.context import RunContext
from dmig.errors import DmigError, ErrorInfo, internal_error, validation_error
from dmig.redact import redact, redact_obj
from dmig.registry import ToolSpec, all_tools, run_tool, tool_for_command
from dmig.render import json_text, visible

_SIMPLE = {str: str, int: int, float: float}


def _unwrap_optional(ann: Any) -> Any:
    """The type under ``X | None`` and under the size limits of ``dmig.fields`` (``Annotated[str, ...]`` is a str)."""
    if typing.get_origin(ann) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1:
            ann = args[0]
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    return ann


def _add_field(parser: argparse.ArgumentParser, name: str, fi: Any, positional: bool) -> None:
    ann = _unwrap_optional(fi.annotation)
    origin = typing.get_origin(ann)
    help_text = (fi.description or "").replace("%", "%%")
    flag = name if positional else "--" + name.replace("_", "-")
    kwargs: dict[str, Any] = {"help": help_text}
    if not positional:
        kwargs["dest"] = name
        kwargs["default"] = argparse.SUPPRESS
    if ann is bool:
        if positional:
            raise TypeError(f"boolean field {name} cannot be positional")
        parser.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
        return
    if origin is Literal:
        kwargs["choices"] = [str(c) for c in typing.get_args(ann)]
    elif isinstance(ann, type) and issubclass(ann, Enum):
        kwargs["choices"] = [e.value for e in ann]
    elif origin in (list, tuple, set) and _unwrap_optional(typing.get_args(ann)[0]) in _SIMPLE:
        kwargs["nargs"] = "+" if not positional else "*"
        kwargs["type"] = _SIMPLE[_unwrap_optional(typing.get_args(ann)[0])]
    elif ann in _SIMPLE:
        kwargs["type"] = _SIMPLE[ann]
    else:
        kwargs["type"] = _json_arg
        kwargs["help"] = help_text + " (JSON)"
        kwargs["metavar"] = "JSON"
    if positional and not fi.is_required():
        kwargs["nargs"] = "?"
        kwargs["default"] = argparse.SUPPRESS
    parser.add_argument(flag, **kwargs)


def _json_arg(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc.msg}") from None


def _render_default(out: BaseModel) -> str:
    return yaml.safe_dump(out.model_dump(mode="json"), sort_keys=False, allow_unicode=True, width=110).rstrip()


def _say(text: str, file: Any = None) -> None:
    """Every human line the CLI prints passes here: names and values from a database or a file may
    hold terminal escapes (ESC[2J, a window-title change, CR, bidi overrides); they are shown, not obeyed."""
    print(visible(text), file=file or sys.stdout)


def _json(obj: Any) -> str:
    return json_text(json.dumps(obj, ensure_ascii=False, indent=2))


def _emit(out: BaseModel, spec: ToolSpec, as_json: bool) -> None:
    if as_json:
        print(_json(redact_obj(out.model_dump(mode="json"))))
    else:
        _say(redact((spec.cli_render or _render_default)(out)))


def _emit_error(info: ErrorInfo, as_json: bool) -> int:
    if as_json:
        print(_json({"error": info.model_dump()}))
    _say(f"dmig: error [{info.code}]: {info.message}", sys.stderr)
    for key, value in info.details.items():
        _say(f"  {key}: {json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value}", sys.stderr)
    return 2


class _Parser(argparse.ArgumentParser):
    """argparse echoes bad arguments (``invalid choice: '...'``): those are shown, not obeyed, too."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            (file or sys.stderr).write(visible(message))


def build_parser(specs: list[ToolSpec]) -> argparse.ArgumentParser:
    parser = _Parser(prog="dmig", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"dmig {__version__}")
    parser.add_argument("--project-dir", help="the AgileFlow project folder (default: $CLAUDE_PROJECT_DIR or .)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the MCP server (stdio by default)")
    serve.add_argument("--read-only", action="store_true", help="expose only tools that change nothing")
    serve.add_argument("--http", action="store_true", help="streamable HTTP on loopback instead of stdio")
    serve.add_argument("--port", type=int, default=8765)

    from dmig.demo.help import HELP as DEMO_HELP

    demo = sub.add_parser(
        "demo",
        help="run the migration story end to end through the MCP server (embedded SQLite by default)",
        description=DEMO_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    demo.add_argument("--workdir", help="scratch folder (default: a new temporary folder)")
    demo.add_argument("--source", help="the application database the story starts from (default: generated SQLite)")
    demo.add_argument("--target", help="the database the application moves to and is migrated on (default: SQLite)")

    sub.add_parser("tools", help="list the tools with their annotations")

    approve = sub.add_parser(
        "approve-test-command",
        help="show the project's test command and approve it, so verify may run it (never reachable over MCP)",
        description="verify, session_resume and baseline run only a test command the user approved for this "
        "project. This shows environment.json's test command exactly, asks, and records the approval (an HMAC "
        "with the key in the user's dmig data folder). A changed command needs a new approval.",
    )
    approve.add_argument("--yes", action="store_true", help="approve without asking (after reading the command)")
    approve.add_argument(
        "--pass-env",
        nargs="+",
        default=[],
        metavar="NAME",
        help="let these variables reach the command although they name a credential or a database URL",
    )
    approve.add_argument("--json", action="store_true", help="print the approval as JSON")

    for spec in specs:
        p = sub.add_parser(spec.command, help=spec.description.split("\n")[0], description=spec.description)
        p.add_argument("--json", action="store_true", help="print the structured result as JSON")
        for name, fi in spec.input_model.model_fields.items():
            _add_field(p, name, fi, positional=name in spec.cli_positional)
        p.set_defaults(_spec=spec)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The subcommand named on the command line, read without building any parser.

    Only the global ``--project-dir`` may come before it; anything else (``--help``, ``--version``,
    an abbreviated or unknown option) returns None and the full parser answers as it always did.
    """
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--project-dir":
            i += 2
        elif arg.startswith("--project-dir="):
            i += 1
        elif arg.startswith("-"):
            return None
        else:
            return arg
    return None


def _specs_for(argv: list[str]) -> list[ToolSpec]:
    """A tool subcommand needs only its own tool: importing every tool module costs ~0.7 s and ~50 MB
    that ``dmig copy`` would otherwise carry through the whole load. Anything else (help, ``tools``,
    ``serve``, an unknown command) gets them all."""
    command = _command_in(argv)
    spec = tool_for_command(command) if command else None
    return [spec] if spec is not None else all_tools()


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser(_specs_for(argv))
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    rc = RunContext(project_dir=Path(args.project_dir).resolve()) if args.project_dir else RunContext()
    if args.command == "serve":
        from dmig.mcp_server import serve

        serve(read_only=args.read_only, http=args.http, port=args.port)
        return 0
    if args.command == "demo":
        from dmig.demo import run_demo

        return run_demo(workdir=args.workdir, source=args.source, target=args.target)
    if args.command == "approve-test-command":
        return _approve_test_command(args, rc)
    if args.command == "tools":
        try:
            for spec in all_tools():
                flags = "read-only" if spec.read_only else ("destructive" if spec.destructive else "writes")
                _say(f"{spec.name:24} {flags:12} {spec.description.splitlines()[0]}")
            sys.stdout.flush()  # inside the try: a pipe closed early must fail here, not at exit
        except BrokenPipeError:
            _reader_left()
        return 0
    return _run(args, rc)


def _approve_test_command(args: argparse.Namespace, rc: RunContext) -> int:
    """The user's path to approve the test command (dmig.harness.approval); 1 when the user declines."""
    from dmig.harness import approval

    err = sys.stderr if args.json else sys.stdout
    try:
        out = approval.cli_approve(
            rc.project_dir,
            yes=args.yes,
            pass_env=args.pass_env,
            say=lambda line: _say(line, err),
            ask=input,
            interactive=sys.stdin.isatty(),
        )
    except DmigError as exc:
        return _emit_error(exc.info(), args.json)
    except (EOFError, KeyboardInterrupt):
        out = None
    if out is None:
        _say("not approved; verify keeps refusing this command", err)
        return 1
    if args.json:
        print(_json(out.model_dump(mode="json")))
    else:
        _say("approved" + (" (it already was)" if out.already else "") + f": verify may run it in {out.project}")
    return 0


def _reader_left() -> None:
    """`dmig ... | head`: the reader left; not an error of ours (and no second error at exit)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _run(args: argparse.Namespace, rc: RunContext) -> int:
    spec: ToolSpec = args._spec
    as_json = bool(args.json)
    arguments = {k: v for k, v in vars(args).items() if k in spec.input_model.model_fields}
    rc.progress = _stderr_progress if sys.stderr.isatty() and not as_json else rc.progress
    try:
        out = run_tool(spec, arguments, rc)
    except DmigError as exc:
        return _emit_error(exc.info(), as_json)
    except ValidationError as exc:
        return _emit_error(validation_error(exc), as_json)
    except KeyboardInterrupt:
        return _emit_error(ErrorInfo(code="E_INTERRUPTED", message="interrupted"), as_json)
    except Exception as exc:
        if os.environ.get("DMIG_DEBUG"):
            raise
        return _emit_error(internal_error(exc), as_json)
    try:
        _emit(out, spec, as_json)
    except BrokenPipeError:
        _reader_left()
    return spec.cli_exit_code(out) if spec.cli_exit_code else 0


def _stderr_progress(done: float, total: float | None = None, message: str | None = None) -> None:
    if total:
        width = 30
        filled = int(width * min(done / total, 1.0))
        bar = "#" * filled + "-" * (width - filled)
        line = f"\r[{bar}] {done / total:6.1%} {visible(redact(message or ''))}"
    else:
        line = f"\r{done:,.0f} {visible(redact(message or ''))}"
    print(line[:160].ljust(80), end="", file=sys.stderr, flush=True)
    if total and done >= total:
        print(file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
