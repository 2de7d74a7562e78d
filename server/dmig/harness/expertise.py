"""The agent's expertise memory (expertise.yaml): find it, check it, digest it, and improve it.

AgileFlow experts read this file before any work and append what they learned after it. For a
data-migration agent the valuable part of a learning is what the run *measured* (rows, seconds,
rows per second per dialect and operation): the planner reads those figures back through
``measured_throughput`` to estimate the next run instead of guessing.

Where the file is (first match wins): an explicit path (must be inside the project), the
``DMIG_EXPERTISE_PATH`` environment variable (set by whoever starts the server, so it may point
outside the project), ``expertise_path`` in docs/00-meta/environment.json
(inside the project), the project's ``.agileflow/experts/datamigration/expertise.yaml``, and
finally the plugin's shipped seed. The seed is never written: the first self-improve of a project
copies it to the project location.

Rewrites keep every key (known or not) and the key order, but not YAML comments: PyYAML cannot
round-trip them, so the writer emits one fixed header comment instead. To keep the file focused
(AgileFlow's rule: under about 200 lines) the oldest learnings are folded into
``learnings_summary``: first into one-line entries (date, insight, figures), and when even those
do not fit, into per-dialect/operation aggregates whose figures the planner still sees. Only
the insight *text* of aggregated learnings is eventually lost; their count and dates remain.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import yaml
from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match
from pydantic import Field, field_validator, model_validator

import dmig
from dmig import fsutil, safeload
from dmig.assets import asset_path, schema_path
from dmig.context import RunContext
from dmig.errors import Conflict, CorruptFile, DmigError, InvalidInput, NotFound
from dmig.fields import FreeText, Identifier, Items, Label, Word
from dmig.fields import Path as PathText
from dmig.models import Input
from dmig.redact import redact_obj

PROJECT_FILE = ".agileflow/experts/datamigration/expertise.yaml"
ENVIRONMENT_FILE = "docs/00-meta/environment.json"
ENV_VAR = "DMIG_EXPERTISE_PATH"
SCHEMA = "expertise.schema.json"
MAX_LINES = 200
KEEP_RECENT = 5  # full learnings kept before any one-line summary entry is aggregated
MAX_BYTES = safeload.KINDS["expertise"].max_bytes
MAX_NODES = safeload.KINDS["expertise"].max_nodes  # YAML aliases can expand a small file into a huge tree
FOLDED_INSIGHT_CHARS = 240
MAX_TEXT_LINES = 12  # per insight or context
HEADER = (
    "# AG-DATAMIGRATION expertise (AgileFlow expert memory), maintained by dmig self_improve.\n"
    "# Rewrites keep every key but not comments. Schema: dmig/schemas/expertise.schema.json\n"
)

Source = Literal["input", "env", "environment.json", "project", "plugin"]
Dialect = Literal["sqlite", "postgresql", "mysql"]
_DIALECT_ALIASES = {"postgres": "postgresql", "pg": "postgresql", "mariadb": "mysql", "sqlite3": "sqlite"}
_OPERATION = re.compile(r"^[a-z][a-z0-9_]*$")


# --------------------------------------------------------------------------- location


@dataclass(frozen=True)
class Location:
    path: Path
    source: Source


def seed_path() -> Path:
    return asset_path("expertise", "expertise.yaml").resolve()


def locate(project_dir: Path, explicit: str | None = None) -> Location:
    """Apply the location rules in order; only the last two look at whether a file exists."""
    rc = RunContext(project_dir=Path(project_dir).resolve())
    if explicit:
        return Location(rc.project_path(explicit), "input")
    env_value = os.environ.get(ENV_VAR, "").strip()
    if env_value:
        raw = Path(env_value).expanduser()
        return Location((raw if raw.is_absolute() else rc.project_dir / raw).resolve(), "env")
    configured = _environment_override(rc)
    if configured is not None:
        return Location(configured, "environment.json")
    project_file = rc.project_path(PROJECT_FILE)
    if project_file.exists():
        return Location(project_file, "project")
    return Location(seed_path(), "plugin")


def _environment_override(rc: RunContext) -> Path | None:
    """environment.json is a project file other agents write, so its path is confined to the project."""
    env_file = rc.project_path(ENVIRONMENT_FILE)
    try:
        data = safeload.load_json(env_file, "project_json", shown=ENVIRONMENT_FILE)
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as exc:
        raise CorruptFile(f"{ENVIRONMENT_FILE} cannot be read as JSON: {exc}", path=ENVIRONMENT_FILE) from None
    if not isinstance(data, dict) or data.get("expertise_path") in (None, ""):
        return None
    value = data["expertise_path"]
    if not isinstance(value, str):
        raise CorruptFile(f"{ENVIRONMENT_FILE}: expertise_path must be a string", path=ENVIRONMENT_FILE)
    return rc.project_path(value)


def display_path(path: Path, project_dir: Path) -> str:
    """Project files relative (short, no home folder); the plugin's copy absolute."""
    try:
        return path.resolve().relative_to(Path(project_dir).resolve()).as_posix()
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- loading


def load(path: Path) -> dict[str, Any]:
    """Parse the file into plain JSON-like data (YAML dates become ISO strings)."""
    try:
        raw = safeload.read_bytes(path, "expertise", shown=str(path))
    except FileNotFoundError:
        raise NotFound(f"expertise file {path} does not exist", path=str(path)) from None
    try:
        data = safeload.parse_yaml(raw.decode("utf-8"), "expertise", shown=f"expertise file {path}")
        plain = _plain(data, [MAX_NODES])
    except UnicodeDecodeError:
        raise CorruptFile(f"expertise file {path} is not UTF-8 text", path=str(path)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = {"line": mark.line + 1, "column": mark.column + 1} if mark else {}
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CorruptFile(f"expertise file {path} is not valid YAML: {problem}", path=str(path), **where) from None
    except RecursionError:
        raise CorruptFile(f"expertise file {path} is nested too deeply", path=str(path)) from None
    if not isinstance(plain, dict):
        raise CorruptFile(f"expertise file {path} must hold a mapping at the top level", path=str(path))
    return plain


def _plain(obj: Any, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0:
        raise CorruptFile(f"expertise file expands to more than {MAX_NODES} YAML nodes")
    if isinstance(obj, dt.datetime):
        if obj.tzinfo is not None and obj.utcoffset() == dt.timedelta(0):
            return obj.replace(tzinfo=None).isoformat() + "Z"
        return obj.isoformat()
    if isinstance(obj, dt.date):
        return obj.isoformat()
    if isinstance(obj, dict):
        return {str(k): _plain(v, budget) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [_plain(v, budget) for v in obj]
    if isinstance(obj, bytes):
        raise CorruptFile("expertise file holds binary data")
    return obj


def line_count(text: str) -> int:
    return text.count("\n") + (0 if text.endswith("\n") or not text else 1)


# --------------------------------------------------------------------------- validation


@functools.cache
def _validator() -> Draft202012Validator:
    schema = json.loads(schema_path(SCHEMA).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problems(data: Any) -> list[dict[str, str]]:
    """Each violation with a JSON-pointer location; for anyOf/oneOf the most relevant branch's reason."""
    out = []
    for err in sorted(_validator().iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path]):
        detail = best_match(err.context) if err.context else err
        where = "/" + "/".join(str(p) for p in detail.absolute_path)
        out.append({"kind": "schema", "where": where, "message": detail.message[:300]})
    return out


def iter_file_entries(data: dict[str, Any]) -> Iterator[tuple[str | None, dict[str, Any]]]:
    """(group, entry) for every entry under ``files``, whichever of the two shapes the file uses."""
    files = data.get("files")
    groups = files.items() if isinstance(files, dict) else [(None, files)]
    for group, entries in groups:
        if isinstance(entries, list):
            for entry in entries:
                if isinstance(entry, dict):
                    yield group, entry


def plugin_roots() -> list[Path]:
    """Where the plugin's own files live: its source tree (or the wheel's assets) and CLAUDE_PLUGIN_ROOT."""
    roots = [seed_path().parent.parent]
    if os.environ.get("CLAUDE_PLUGIN_ROOT"):
        roots.append(Path(os.environ["CLAUDE_PLUGIN_ROOT"]))
    return roots


def path_exists(rel: str, project_dir: Path) -> bool:
    """True when ``rel`` exists in the project or in the plugin (an installed wheel has no server/ folder)."""
    bases = [Path(project_dir), *plugin_roots()]
    if any((base / rel).exists() for base in bases):
        return True
    installed = Path(dmig.__file__).resolve().parent.parent  # server/dmig/x == <site-packages>/dmig/x
    return rel.startswith("server/") and (installed / rel.removeprefix("server/")).exists()


def missing_listed_paths(data: dict[str, Any], project_dir: Path) -> list[str]:
    paths = [e["path"] for _, e in iter_file_entries(data) if isinstance(e.get("path"), str)]
    return [p for p in paths if not path_exists(p, project_dir)]


def problems_of(data: dict[str, Any], project_dir: Path, lines: int) -> list[dict[str, str]]:
    problems = schema_problems(data)
    problems += [
        {"kind": "missing_path", "where": "/files", "message": f"listed path {p} does not exist"}
        for p in missing_listed_paths(data, project_dir)
    ]
    if lines > MAX_LINES:
        problems.append({"kind": "too_long", "where": "/", "message": f"{lines} lines; keep it under {MAX_LINES}"})
    return problems


@dataclass
class Reading:
    location: Location
    data: dict[str, Any]
    lines: int
    problems: list[dict[str, str]]


def read(project_dir: Path, explicit: str | None = None) -> Reading:
    location = locate(project_dir, explicit)
    data = load(location.path)
    lines = line_count(safeload.read_text(location.path, "expertise", shown=str(location.path)))
    return Reading(location, data, lines, problems_of(data, project_dir, lines))


# --------------------------------------------------------------------------- digest


def _clip(text: str, limit: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def _insight(learning: dict[str, Any]) -> str:
    value = learning.get("insight") or learning.get("learning") or ""
    return value if isinstance(value, str) else str(value)


def _list(data: dict[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    return value if isinstance(value, list) else []


def _summary(data: dict[str, Any]) -> dict[str, Any]:
    value = data.get("learnings_summary")
    return value if isinstance(value, dict) else {}


def digest_of(data: dict[str, Any], conventions_limit: int = 12) -> dict[str, Any]:
    """A few hundred tokens of the file: enough for an agent's context, never the whole memory."""
    learnings = [item for item in _list(data, "learnings") if isinstance(item, dict)]
    summary = _summary(data)
    conventions = [c for c in _list(data, "conventions") if isinstance(c, str)]
    facts = sum(len(_facts(item.get("measured"))) for item in learnings)
    return {
        "domain": data.get("domain"),
        "version": data.get("version"),
        "last_updated": data.get("last_updated"),
        "counts": {
            "files": sum(1 for _ in iter_file_entries(data)),
            "patterns": len(_list(data, "patterns")),
            "conventions": len(conventions),
            "learnings": len(learnings),
            "folded_learnings": summary.get("folded_count", 0),
            "measured_facts": facts,
        },
        "recent_learnings": [
            {"date": item.get("date"), "insight": _clip(_insight(item), 200)} for item in reversed(learnings[-5:])
        ],
        "conventions": [_clip(c, 120) for c in conventions[:conventions_limit]],
    }


def digest(project_dir: Path) -> dict[str, Any]:
    """For obtain_context: never raises; a broken or missing file is reported inside the digest."""
    try:
        reading = read(project_dir)
    except DmigError as exc:
        return {"error": exc.info().model_dump()}
    out = digest_of(reading.data)
    out.update(
        path=display_path(reading.location.path, project_dir),
        source=reading.location.source,
        problems=len(reading.problems),
    )
    return out


# --------------------------------------------------------------------------- measured figures


def normalize_dialect(value: str) -> str:
    lowered = value.strip().lower()
    return _DIALECT_ALIASES.get(lowered, lowered)


def normalize_operation(value: str) -> str:
    return re.sub(r"[\s\-]+", "_", value.strip().lower())


def _facts(measured: Any) -> list[dict[str, Any]]:
    if isinstance(measured, dict):
        return [measured]
    return [f for f in measured if isinstance(f, dict)] if isinstance(measured, list) else []


def _rate(fact: dict[str, Any]) -> float | None:
    if isinstance(fact.get("rows_per_s"), int | float):
        return float(fact["rows_per_s"])
    rows, seconds = fact.get("rows"), fact.get("seconds")
    if isinstance(rows, int) and isinstance(seconds, int | float) and seconds > 0:
        return round(rows / seconds, 2)
    return None


def _matching(facts: list[dict[str, Any]], dialect: str, operation: str) -> list[dict[str, Any]]:
    out = []
    for fact in facts:
        if not isinstance(fact.get("dialect"), str) or not isinstance(fact.get("operation"), str):
            continue
        if normalize_dialect(fact["dialect"]) == dialect and normalize_operation(fact["operation"]) == operation:
            out.append(fact)
    return out


def _dated(items: list[Any], origin: str, rank: int, dialect: str, operation: str) -> Iterator[tuple[tuple, dict]]:
    """(sort key, fact) for each matching fact of learnings or folded entries; rows_per_s filled in."""
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        for fact in _matching(_facts(item.get("measured")), dialect, operation):
            rate = _rate(fact)
            filled = {**fact, "rows_per_s": rate} if rate is not None and "rows_per_s" not in fact else fact
            key = (str(item.get("date", ""))[:10], rank, index)
            yield key, {**filled, "date": item.get("date"), "source": origin}


def facts_for(data: dict[str, Any], dialect: str, operation: str) -> list[dict[str, Any]]:
    """Newest first: live learnings, then folded entries, then aggregates (the oldest knowledge)."""
    dialect, operation = normalize_dialect(dialect), normalize_operation(operation)
    summary = _summary(data)
    dated = [
        *_dated(_list(data, "learnings"), "learning", 1, dialect, operation),
        *_dated(summary.get("entries") or [], "summary", 0, dialect, operation),
    ]
    dated.sort(key=lambda pair: pair[0], reverse=True)
    aggregates = [
        {**agg, "date": agg.get("last_date"), "source": "aggregate"}
        for agg in _matching(_facts(summary.get("measured")), dialect, operation)
    ]
    return [fact for _, fact in dated] + aggregates


def measured_throughput(project_dir: Path, dialect: str, operation: str) -> list[dict[str, Any]]:
    """The planner's view of past runs: every measured fact for this dialect/operation, newest first.

    Each item is a measured fact (dialect, operation, rows, seconds, rows_per_s, table, ...; see
    the schema's ``measured_fact``) plus ``date`` and ``source`` ("learning", "summary" or
    "aggregate"). Aggregates carry ``samples`` and min/max rates instead of one run's figures.
    Raises CorruptFile for an unreadable file; no file at all gives an empty list.
    """
    try:
        data = load(locate(project_dir).path)
    except NotFound:
        return []
    return facts_for(data, dialect, operation)


# --------------------------------------------------------------------------- self-improve input


class MeasuredFact(Input):
    """One figure a run measured; the planner reads these back for its estimates."""

    dialect: Dialect = Field(description="Database the work ran on (for a copy: the target). mariadb → mysql.")
    operation: Word = Field(
        description="What was measured: copy, backfill, validate, checksum_diff, add_column, create_index, backup...",
    )
    rows: int | None = Field(None, ge=0, description="Rows processed.")
    seconds: float | None = Field(None, ge=0, allow_inf_nan=False, description="Wall-clock seconds it took.")
    rows_per_s: float | None = Field(
        None, ge=0, allow_inf_nan=False, description="Throughput; computed from rows/seconds when omitted."
    )
    table: Identifier | None = Field(None, description="Table the figure is about.")
    source_dialect: Dialect | None = Field(None, description="For copies: where the rows came from.")
    target_dialect: Dialect | None = Field(None, description="For copies: where the rows went.")
    bytes: int | None = Field(None, ge=0, description="Bytes moved, when known.")
    batch_size: int | None = Field(None, ge=1, description="Rows per batch used.")
    workers: int | None = Field(None, ge=1, description="Parallel workers used.")
    server_version: Word | None = Field(None, description="Server version the figure was measured on.")
    lock_wait_s: float | None = Field(None, ge=0, allow_inf_nan=False, description="Longest lock wait seen.")
    notes: str | None = Field(None, max_length=300, description="Anything that explains the figure.")

    @field_validator("dialect", "source_dialect", "target_dialect", mode="before")
    @classmethod
    def _alias(cls, value: Any) -> Any:
        return normalize_dialect(value) if isinstance(value, str) else value

    @field_validator("operation")
    @classmethod
    def _operation(cls, value: str) -> str:
        op = normalize_operation(value)
        if not _OPERATION.match(op):
            raise ValueError("operation must be a word such as copy, backfill or create_index")
        return op

    @model_validator(mode="after")
    def _figures(self) -> MeasuredFact:
        if self.seconds is None and self.rows_per_s is None:
            raise ValueError("a measured fact needs seconds or rows_per_s")
        if self.rows is not None and self.seconds:
            computed = round(self.rows / self.seconds, 2)
            if self.rows_per_s is None:
                self.rows_per_s = computed
            elif abs(self.rows_per_s - computed) > 0.02 * computed + 0.01:
                raise ValueError(f"rows_per_s {self.rows_per_s} disagrees with rows/seconds = {computed}")
        return self

    def as_entry(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PatternUpdate(Input):
    name: Label = Field(min_length=1, description="Pattern name; an existing pattern of that name is updated.")
    description: FreeText | None = Field(None, description="What it does and when to use it.")
    location: FreeText | None = Field(None, description="Where it lives (code path or spec operation).")
    example: FreeText | None = Field(None, description="A short concrete example.")


class FileUpdate(Input):
    path: PathText = Field(min_length=1, description="Relative path that exists in the project (or the plugin).")
    purpose: FreeText | None = Field(None, description="Why the agent should know this file.")
    conventions: FreeText | None = Field(None, description="Rules for changing it.")
    group: Word | None = Field(None, description="files group for a new entry (default: project).")


class Improvement(Input):
    """What one piece of work taught; self_improve turns it into a learning and list updates."""

    insight: FreeText = Field(min_length=1, description="What was learned (required, one learning).")
    context: str | None = Field(None, max_length=500, description="The story or run it came from, e.g. US-0042.")
    files_affected: Items[PathText] = Field(
        default_factory=list, description="Paths the work touched, relative to the project; each must exist."
    )
    measured: Items[MeasuredFact] = Field(
        default_factory=list, description="Figures the run measured, e.g. [{dialect, operation, rows, seconds}]."
    )
    patterns: Items[PatternUpdate] = Field(default_factory=list, description="Patterns to add or update by name.")
    conventions: Items[FreeText] = Field(
        default_factory=list, description="Conventions to add (duplicates are ignored)."
    )
    files: Items[FileUpdate] = Field(default_factory=list, description="Key files to add or update by path.")
    remove_patterns: Items[Label] = Field(default_factory=list, description="Names of patterns to remove.")
    remove_conventions: Items[FreeText] = Field(default_factory=list, description="Conventions to remove (exact text).")
    remove_files: Items[PathText] = Field(
        default_factory=list, description="Paths to remove from files (e.g. deleted)."
    )

    @field_validator("insight")
    @classmethod
    def _nonblank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("insight must not be blank")
        return value.strip()

    @field_validator("insight", "context")
    @classmethod
    def _few_lines(cls, value: str | None) -> str | None:
        """The newest learning is never folded, so one huge entry must not break the 200-line rule."""
        if value is not None and value.strip().count("\n") >= MAX_TEXT_LINES:
            raise ValueError(f"keep it to {MAX_TEXT_LINES} lines at most; put details in the story or the run report")
        return value


# --------------------------------------------------------------------------- self-improve


def _norm(text: str) -> str:
    return " ".join(str(text).split()).casefold().rstrip(".")


def _norm_path(text: str) -> str:
    return str(PurePosixPath(text.strip().replace("\\", "/"))).rstrip("/")


@dataclass
class Improved:
    location: Location
    created_from_seed: bool
    learning: dict[str, Any]
    folded: int
    aggregated: int
    lines: int
    changes: list[str] = field(default_factory=list)


def self_improve(
    project_dir: Path, imp: Improvement, explicit: str | None = None, now: dt.datetime | None = None
) -> Improved:
    """Add one learning (plus list updates), validated in full before an atomic, locked write."""
    project_dir = Path(project_dir).resolve()
    rc = RunContext(project_dir=project_dir)
    affected = _affected_paths(rc, imp.files_affected)
    for update in imp.files:
        _relative_or_refuse(update.path)
    location = locate(project_dir, explicit)
    target, from_seed = _write_target(rc, location)
    now = now or dt.datetime.now(dt.UTC)
    with fsutil.locked(target):
        created = from_seed and not target.exists()
        data = load(seed_path() if created else target)
        broken = schema_problems(data)
        if broken:
            raise CorruptFile(
                f"{display_path(target, project_dir)} does not satisfy the expertise schema", errors=broken
            )
        changes = _apply_updates(data, imp, project_dir)
        learning = _add_learning(data, imp, affected, now)
        data["last_updated"] = now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        # The memory is read back into every later session: never a credential in it.
        data, learning = redact_obj(data), redact_obj(learning)
        text, folded, aggregated = fold_to_fit(data)
        problems = schema_problems(_plain(safeload.parse_yaml(text, "expertise"), [MAX_NODES]))
        if problems:
            raise InvalidInput("the improved expertise would not satisfy the schema; nothing written", errors=problems)
        fsutil.atomic_write_text(target, text)
    location = Location(target, "project") if from_seed else location
    if created:
        changes.insert(0, f"created {display_path(target, project_dir)} from the plugin's seed")
    return Improved(location, created, learning, folded, aggregated, line_count(text), changes)


def _write_target(rc: RunContext, location: Location) -> tuple[Path, bool]:
    """Never write the shipped seed: a project without its own file gets one created from it."""
    if location.source == "plugin" or (location.source != "input" and location.path == seed_path()):
        return rc.project_path(PROJECT_FILE), True
    if not location.path.exists():
        raise NotFound(
            f"expertise file {location.path} (from {location.source}) does not exist; copy the seed there first",
            path=str(location.path),
            seed=str(seed_path()),
        )
    return location.path, False


def _affected_paths(rc: RunContext, paths: list[str]) -> list[str]:
    resolved = [(p, rc.project_path(p)) for p in paths]
    missing = [p for p, full in resolved if not full.exists()]
    if missing:
        raise NotFound(f"files_affected do not exist in the project: {', '.join(missing)}", missing=missing)
    out: list[str] = []
    for _, full in resolved:
        rel = display_path(full, rc.project_dir) if full != rc.project_dir else "."
        if rel not in out:
            out.append(rel)
    return out


def _relative_or_refuse(path: str) -> str:
    norm = _norm_path(path)
    if PurePosixPath(norm).is_absolute() or ".." in PurePosixPath(norm).parts:
        raise InvalidInput(f"files entries must be relative paths without '..': {path}", path=path)
    return norm


def _add_learning(data: dict[str, Any], imp: Improvement, affected: list[str], now: dt.datetime) -> dict[str, Any]:
    new = _norm(imp.insight)
    known = {_norm(_insight(item)) for item in _list(data, "learnings") if isinstance(item, dict)}
    known |= {_norm(e.get("insight", "")) for e in _summary(data).get("entries") or []}
    if new in known or _norm(_clip(imp.insight, FOLDED_INSIGHT_CHARS)) in known:
        raise Conflict("this insight is already recorded in the expertise; record what is new", insight=imp.insight)
    learning: dict[str, Any] = {"date": now.astimezone(dt.UTC).date().isoformat(), "insight": imp.insight}
    if imp.context:
        learning["context"] = imp.context.strip()
    if affected:
        learning["files_affected"] = affected
    if imp.measured:
        learning["measured"] = [fact.as_entry() for fact in imp.measured]
    learnings = data.get("learnings") if isinstance(data.get("learnings"), list) else []
    data["learnings"] = [*learnings, learning]
    return learning


# --------------------------------------------------------------------------- list updates


def _apply_updates(data: dict[str, Any], imp: Improvement, project_dir: Path) -> list[str]:
    changes = _update_conventions(data, imp)
    changes += _update_patterns(data, imp)
    changes += _update_files(data, imp, project_dir)
    missing = missing_listed_paths(data, project_dir)
    if missing:
        raise NotFound(
            f"files lists paths that do not exist: {', '.join(missing)}; fix them or pass remove_files",
            missing=missing,
        )
    return changes


def _removals(requested: list[str], present: set[str], what: str, key: Any = _norm) -> set[str]:
    wanted = {key(r): r for r in requested}
    unknown = [r for k, r in wanted.items() if k not in present]
    if unknown:
        raise NotFound(f"cannot remove {what} that are not there: {', '.join(unknown)}", missing=unknown)
    return set(wanted)


def _update_conventions(data: dict[str, Any], imp: Improvement) -> list[str]:
    current = [c for c in _list(data, "conventions") if isinstance(c, str)]
    drop = _removals(imp.remove_conventions, {_norm(c) for c in current}, "conventions")
    kept: dict[str, str] = {}
    for text in current:
        if _norm(text) not in drop:
            kept.setdefault(_norm(text), text)
    added = []
    for text in (c.strip() for c in imp.conventions):
        if text and _norm(text) not in kept:
            kept[_norm(text)] = text
            added.append(text)
    if "conventions" in data or kept:
        data["conventions"] = list(kept.values())
    return [f"convention added: {_clip(t, 80)}" for t in added] + [f"{len(drop)} convention(s) removed"] * bool(drop)


def _update_patterns(data: dict[str, Any], imp: Improvement) -> list[str]:
    current = [p for p in _list(data, "patterns") if isinstance(p, dict)]
    drop = _removals(imp.remove_patterns, {_norm(p.get("name", "")) for p in current}, "patterns")
    kept: dict[str, dict[str, Any]] = {}
    for pattern in current:
        if _norm(pattern.get("name", "")) not in drop:
            kept.setdefault(_norm(pattern.get("name", "")), pattern)
    changes = [f"{len(drop)} pattern(s) removed"] if drop else []
    for update in imp.patterns:
        key = _norm(update.name)
        given = update.model_dump(exclude_none=True)
        changes.append(("pattern updated: " if key in kept else "pattern added: ") + update.name)
        kept[key] = {**kept[key], **given, "name": kept[key]["name"]} if key in kept else given
    if "patterns" in data or kept:
        data["patterns"] = list(kept.values())
    return changes


def _update_files(data: dict[str, Any], imp: Improvement, project_dir: Path) -> list[str]:
    files = data.get("files")
    if not isinstance(files, dict | list):
        files = {}
    drop = _removals(
        imp.remove_files, {_norm_path(e.get("path", "")) for _, e in iter_file_entries(data)}, "files", _norm_path
    )
    if isinstance(files, dict):
        kept = {g: [e for e in es if _norm_path(str(e.get("path", ""))) not in drop] for g, es in files.items()}
        files = {g: es for g, es in kept.items() if es or not files[g]}  # drop only groups this emptied
    else:
        files = [e for e in files if _norm_path(str(e.get("path", ""))) not in drop]
    if "files" in data or imp.files:
        data["files"] = files
    changes = [f"{len(drop)} file entr(ies) removed"] if drop else []
    by_path = {_norm_path(str(e.get("path", ""))): e for _, e in iter_file_entries(data)}
    for update in imp.files:
        rel = _relative_or_refuse(update.path)
        if not path_exists(rel, project_dir):
            raise NotFound(f"file {rel} does not exist in the project or the plugin", missing=[rel])
        given = update.model_dump(exclude_none=True, exclude={"group", "path"})
        if rel in by_path:
            by_path[rel].update(given)
            changes.append(f"file updated: {rel}")
            continue
        entry = {"path": rel, **given}
        by_path[rel] = entry
        if isinstance(files, list):
            files.append(entry)
        else:
            files.setdefault(update.group or "project", []).append(entry)
        changes.append(f"file added: {rel}")
    return changes


# --------------------------------------------------------------------------- folding and rendering


def fold_to_fit(data: dict[str, Any], max_lines: int = MAX_LINES) -> tuple[str, int, int]:
    """Render, folding the oldest learnings until the file fits (or nothing is left to fold).

    Rendering the whole file is the slow part, so each round folds as many items as its
    estimate of the lines each saves says are needed, then renders again to check.
    """
    folded = aggregated = 0
    while True:
        text = render(data)
        excess = line_count(text) - max_lines
        progressed = False
        while excess > 0:
            step = _fold_one(data)
            if step is None:
                break
            kind, saved = step
            folded += kind == "fold"
            aggregated += kind == "aggregate"
            excess -= max(saved, 1)
            progressed = True
        if not progressed:
            return text, folded, aggregated


def _fold_one(data: dict[str, Any]) -> tuple[str, int] | None:
    """Fold the oldest full learning (keeping KEEP_RECENT) or else aggregate the oldest one-line entry."""
    learnings = _list(data, "learnings")
    entries = _summary(data).get("entries") or []
    if len(learnings) > KEEP_RECENT or (not entries and len(learnings) > 1):
        saved = line_count(_dump(_styled({"learnings": learnings[:1]})["learnings"])) - 1
        _fold_oldest_learning(data)
        return "fold", saved
    if entries:
        _aggregate_oldest_entry(data)
        return "aggregate", 1
    return None


def _summary_for_update(data: dict[str, Any]) -> dict[str, Any]:
    """learnings_summary right after learnings (created on first fold), keys in the schema's order."""
    summary = _summary(data)
    if "learnings_summary" not in data:
        rebuilt: dict[str, Any] = {}
        for key, value in data.items():
            rebuilt[key] = value
            if key == "learnings":
                rebuilt["learnings_summary"] = summary
        rebuilt.setdefault("learnings_summary", summary)
        data.clear()
        data.update(rebuilt)
    summary.setdefault("folded_count", 0)
    return summary


def _widen_dates(summary: dict[str, Any], date: str) -> None:
    if date:
        summary["first_date"] = min(filter(None, [summary.get("first_date"), date]))
        summary["last_date"] = max(filter(None, [summary.get("last_date"), date]))


def _fold_oldest_learning(data: dict[str, Any]) -> None:
    oldest = data["learnings"].pop(0)
    summary = _summary_for_update(data)
    date = str(oldest.get("date", "")) if isinstance(oldest, dict) else ""
    entry: dict[str, Any] = {"date": date, "insight": _clip(_insight(oldest), FOLDED_INSIGHT_CHARS) or "(empty)"}
    facts = _facts(oldest.get("measured")) if isinstance(oldest, dict) else []
    if facts:
        entry["measured"] = facts
    summary["folded_count"] += 1
    _widen_dates(summary, date)
    summary["entries"] = [*(summary.get("entries") or []), entry]
    _order_summary(summary)


def _aggregate_oldest_entry(data: dict[str, Any]) -> None:
    summary = _summary_for_update(data)
    entry = summary["entries"].pop(0)
    if not summary["entries"]:
        del summary["entries"]
    aggregates = summary.get("measured") or []
    for fact in _facts(entry.get("measured")):
        key = (normalize_dialect(fact["dialect"]), normalize_operation(fact["operation"]))
        current = next((a for a in aggregates if (a["dialect"], a["operation"]) == key), None)
        merged = _merge(current, fact, entry["date"])
        if current is None:
            aggregates.append(merged)
        else:
            aggregates[aggregates.index(current)] = merged
    summary["aggregated_count"] = summary.get("aggregated_count", 0) + 1
    if aggregates:
        summary["measured"] = aggregates
    _order_summary(summary)


def _merge(agg: dict[str, Any] | None, fact: dict[str, Any], date: str) -> dict[str, Any]:
    """Fold one fact into its dialect/operation aggregate; rows_per_s stays sum(rows) / sum(seconds)."""
    agg = dict(agg or {"samples": 0})
    rows, seconds, rate = fact.get("rows"), fact.get("seconds"), _rate(fact)
    if isinstance(rows, int) and isinstance(seconds, int | float):
        agg["rows"] = agg.get("rows", 0) + rows
        agg["seconds"] = round(agg.get("seconds", 0) + seconds, 3)
    if agg.get("seconds"):
        agg["rows_per_s"] = round(agg["rows"] / agg["seconds"], 2)
    if rate is not None:
        agg["rows_per_s_min"] = min(agg.get("rows_per_s_min", rate), rate)
        agg["rows_per_s_max"] = max(agg.get("rows_per_s_max", rate), rate)
    if isinstance(seconds, int | float):
        agg["seconds_max"] = max(agg.get("seconds_max", seconds), seconds)
    agg["first_date"] = min(filter(None, [agg.get("first_date"), date])) if date else agg.get("first_date")
    agg["last_date"] = max(filter(None, [agg.get("last_date"), date])) if date else agg.get("last_date")
    order = ["samples", "rows", "seconds", "rows_per_s", "rows_per_s_min", "rows_per_s_max", "seconds_max"]
    out = {
        "dialect": normalize_dialect(fact["dialect"]),
        "operation": normalize_operation(fact["operation"]),
        "samples": agg["samples"] + 1,
    }
    out.update({k: agg[k] for k in order[1:] if k in agg})
    out.update({k: agg[k] for k in ("first_date", "last_date") if agg.get(k)})
    return out


def _order_summary(summary: dict[str, Any]) -> None:
    order = ["folded_count", "first_date", "last_date", "entries", "aggregated_count", "measured"]
    items = {k: summary[k] for k in order if k in summary}
    summary.clear()
    summary.update(items)


class _FlowMap(dict):
    """Rendered on one line: measured facts and folded entries stay compact."""


class _FlowList(list):
    """Rendered on one line: short path lists."""


class _Dumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        return super().increase_indent(flow, False)  # indent lists under their key, as AgileFlow's files do


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(_FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
_Dumper.add_representer(_FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))


def _styled(data: dict[str, Any]) -> dict[str, Any]:
    out = dict(data)
    learnings = []
    for item in _list(data, "learnings"):
        if isinstance(item, dict):
            item = dict(item)
            for key in ("files_affected", "files_touched"):
                if isinstance(item.get(key), list):
                    item[key] = _FlowList(item[key])
            if isinstance(item.get("measured"), list):
                item["measured"] = [_FlowMap(f) if isinstance(f, dict) else f for f in item["measured"]]
        learnings.append(item)
    if "learnings" in data:
        out["learnings"] = learnings
    summary = _summary(data)
    if summary:
        summary = dict(summary)
        for key in ("entries", "measured"):
            if key in summary:
                summary[key] = [_FlowMap(e) for e in summary[key]]
        out["learnings_summary"] = summary
    return out


def _dump(obj: Any) -> str:
    return yaml.dump(obj, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=4096, default_flow_style=False)


def render(data: dict[str, Any]) -> str:
    return HEADER + _space_sections(_dump(_styled(data)))


def _space_sections(body: str) -> str:
    """A blank line before each top-level section, as hand-written AgileFlow files have."""
    lines = body.splitlines(keepends=True)
    out = lines[:1]
    for line in lines[1:]:
        if line[:1] not in ("", " ", "-", "#") and line.rstrip().endswith(":") and out[-1].strip():
            out.append("\n")
        out.append(line)
    return "".join(out)
