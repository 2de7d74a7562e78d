"""MCP prompts and resources served beside the tools: the plugin's workflow prompts and agent prompt,
and the files a migration leaves in the project (plans, runbooks, run reports, validation and diff reports).

The same markdown files drive the Claude Code plugin (agent/, workflows/) and these MCP endpoints,
so a client without the plugin (or a user picking the prompt from a menu) gets the same text the
agent follows. Files are read when requested, not at start-up: a missing asset fails that one
request with a clear message instead of taking the whole server down.

Project files are served read-only through URI templates whose one variable is a single path
segment checked against a strict pattern, then resolved and required to stay under
docs/migrations/ (a symlink pointing out is refused too) and to be at most MAX_RESOURCE_BYTES.
``resources/list`` names the ones that exist at the time of the request, so a client sees the
plan a tool call has just written without reconnecting.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from mcp.server import MCPServer
from mcp.server.mcpserver.prompts.base import Prompt, PromptArgument
from mcp.shared.exceptions import MCPError
from mcp_types import Resource as MCPResource
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


# ------------------------------------------------------------------------------------ project files

MIGRATIONS_DIR = Path("docs", "migrations")
REPORTS_DIR = MIGRATIONS_DIR / "reports"
MAX_RESOURCE_BYTES = 2 * 1024 * 1024
MAX_LISTED = 200
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")
_MIME = {
    ".yaml": "application/yaml",
    ".md": "text/markdown",
    ".html": "text/html",
    ".json": "application/json",
    ".jsonl": "application/jsonl",
    ".txt": "text/plain",
}


@dataclass(frozen=True)
class RunFile:
    """One file a migration keeps in docs/migrations/<id>/ and its URI template."""

    filename: str
    name: str
    title: str
    description: str

    @property
    def template(self) -> str:
        return f"dmig://migrations/{{migration_id}}/{self.filename}"

    def uri(self, migration_id: str) -> str:
        return f"dmig://migrations/{migration_id}/{self.filename}"


RUN_FILES = (
    RunFile(
        "plan.yaml",
        "migration-plan",
        "Migration plan",
        "The sealed plan plan_migration wrote: steps per phase with SQL, locks, estimates, rollback, checksum.",
    ),
    RunFile(
        "runbook.md",
        "migration-runbook",
        "Migration runbook",
        "The human-readable runbook of a plan: what runs when, lock impact, checklist, how to roll back.",
    ),
    RunFile(
        "report.html",
        "migration-run-report",
        "Migration run report",
        "The monitor's self-contained HTML report of a run (latency, errors, verdicts over time).",
    ),
    RunFile(
        "metrics.jsonl",
        "migration-metrics",
        "Migration metrics timeline",
        "The monitor's metrics timeline of a run, one JSON sample per line.",
    ),
)
REPORTS_TEMPLATE = "dmig://reports/{name}"


def _refuse(message: str) -> MCPError:
    return MCPError(INVALID_PARAMS, message)


def _segment(value: str, what: str) -> str:
    """A URI variable is one plain path segment: no separator, no '..', no leading dot, bounded length."""
    if not _SEGMENT.match(value) or ".." in value:
        raise _refuse(f"invalid {what} {value[:80]!r}: use letters, digits, '.', '_' and '-' only (one path segment)")
    return value


def read_project_file(project_dir: Path, relative: Path) -> str:
    """The text of a file under docs/migrations/, refused if it resolves elsewhere, is missing or too large."""
    root = (project_dir / MIGRATIONS_DIR).resolve()
    path = (project_dir / relative).resolve()
    if not path.is_relative_to(root):
        raise _refuse(f"{relative.as_posix()} resolves outside {MIGRATIONS_DIR.as_posix()}/: refused")
    if not path.is_file():
        raise _refuse(f"{relative.as_posix()} does not exist in the project")
    size = path.stat().st_size
    if size > MAX_RESOURCE_BYTES:
        raise _refuse(
            f"{relative.as_posix()} is {size:,} bytes, more than the {MAX_RESOURCE_BYTES:,} served as a resource: "
            "read it from the project folder instead"
        )
    from dmig import safeload
    from dmig.errors import DmigError

    try:  # the checks above can race with a swap for a FIFO or a growing file: the read itself is bounded too
        raw = safeload.read_bytes(path, safeload.Kind("resource", MAX_RESOURCE_BYTES, "served as a resource"))
    except (OSError, DmigError) as exc:
        raise _refuse(f"{relative.as_posix()} cannot be served: {getattr(exc, 'message', None) or exc}") from None
    return redact(raw.decode("utf-8", errors="replace"))


def _mime(filename: str) -> str:
    return _MIME.get(Path(filename).suffix.lower(), "text/plain")


def _run_file_reader(project_dir: Path, run_file: RunFile) -> Callable[[str], str]:
    def read(migration_id: str) -> str:
        segment = _segment(migration_id, "migration id")
        return read_project_file(project_dir, MIGRATIONS_DIR / segment / run_file.filename)

    read.__name__ = run_file.name.replace("-", "_")
    return read


def _report_reader(project_dir: Path) -> Callable[[str], str]:
    def read_report(name: str) -> str:
        segment = _segment(name, "report name")
        if Path(segment).suffix.lower() not in _MIME:
            raise _refuse(f"{segment!r} is not a report file ({', '.join(sorted(_MIME))})")
        return read_project_file(project_dir, REPORTS_DIR / segment)

    return read_report


def _servable(root: Path, path: Path) -> bool:
    """What read_project_file would serve: a file resolving under docs/migrations/, within the size bound."""
    try:
        return path.is_file() and path.resolve().is_relative_to(root) and path.stat().st_size <= MAX_RESOURCE_BYTES
    except OSError:
        return False


def _existing_files(project_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(uri, name, mime) of the servable run files and reports present now, newest first, bounded."""
    root = (project_dir / MIGRATIONS_DIR).resolve()
    candidates: list[tuple[Path, str, str]] = []
    if root.is_dir():
        for folder in root.iterdir():
            if _SEGMENT.match(folder.name) and ".." not in folder.name:
                candidates += [(folder / f.filename, f.uri(folder.name), f"{folder.name}/{f.filename}")
                               for f in RUN_FILES]  # fmt: skip
    reports = root / "reports"
    if reports.is_dir():
        candidates += [
            (path, f"dmig://reports/{path.name}", f"reports/{path.name}")
            for path in reports.iterdir()
            if _SEGMENT.match(path.name) and path.suffix.lower() in _MIME
        ]
    found = [(path.stat().st_mtime, uri, name) for path, uri, name in candidates if _servable(root, path)]
    found.sort(key=lambda item: item[0], reverse=True)
    for _, uri, name in found[:MAX_LISTED]:
        yield uri, name, _mime(name)


def _register_project_files(server: MCPServer, project_dir: Path) -> None:
    for run_file in RUN_FILES:
        server.resource(
            run_file.template,
            name=run_file.name,
            title=run_file.title,
            description=run_file.description,
            mime_type=_mime(run_file.filename),
        )(_run_file_reader(project_dir, run_file))
    server.resource(
        REPORTS_TEMPLATE,
        name="migration-report",
        title="Validation or diff report",
        description="A report validate or diff wrote under docs/migrations/reports/ (name as listed).",
        mime_type="text/markdown",
    )(_report_reader(project_dir))
    static_list = server.list_resources

    async def list_with_project_files() -> list[MCPResource]:
        # The SDK lists only resources registered up front; plans and reports appear while the server
        # runs, so the listing adds the ones that exist now (reads go through the templates above).
        found = [MCPResource(uri=uri, name=name, mime_type=mime) for uri, name, mime in _existing_files(project_dir)]
        return [*await static_list(), *found]

    server.list_resources = list_with_project_files  # type: ignore[method-assign]


def register_extras(server: MCPServer, rc: RunContext) -> None:
    """Register the resources and prompts; they only read files, so read-only mode keeps them."""
    for asset in ASSETS:
        server.resource(
            asset.uri, name=asset.name, title=asset.title, description=asset.description, mime_type="text/markdown"
        )(_reader(asset))
    for spec in PROMPTS:
        server.add_prompt(_prompt(spec))
    _register_project_files(server, rc.project_dir)
