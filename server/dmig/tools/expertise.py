"""expertise_read and self_improve: the agent's domain memory (AgileFlow's expertise.yaml).

Thin adapters over dmig.harness.expertise, which holds the location rules, validation, the
folding that keeps the file short, and ``measured_throughput`` for the planner.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from dmig.context import RunContext
from dmig.fields import Path
from dmig.harness import expertise as ex
from dmig.models import Input, Output
from dmig.registry import ToolSpec

_PATH_HELP = (
    "Expertise file to use instead of the default lookup (must be inside the project). Default: "
    "$DMIG_EXPERTISE_PATH, then expertise_path in docs/00-meta/environment.json, then "
    ".agileflow/experts/datamigration/expertise.yaml, then the plugin's seed."
)


class ExpertiseReadInput(Input):
    path: Path | None = Field(None, description=_PATH_HELP)
    digest: bool = Field(
        False, description="Return a small digest (counts, last 5 insights, conventions) instead of the whole file."
    )


class Problem(Output):
    kind: str = Field(description="schema (violates the schema), missing_path (a listed file is gone), too_long.")
    where: str = Field(description="JSON pointer into the file, e.g. /learnings/3/date.")
    message: str


class ExpertiseReadOutput(Output):
    path: str = Field(description="The file read (relative to the project when inside it).")
    source: ex.Source = Field(
        description="Which location rule chose it: input, env, environment.json, project, plugin."
    )
    line_count: int
    valid: bool = Field(description="True when the file satisfies the schema and every listed path exists.")
    problems: list[Problem] = Field(description="What to fix, with self_improve or by hand.")
    expertise: dict[str, Any] | None = Field(None, description="The whole parsed file (absent with digest=true).")
    digest: dict[str, Any] | None = Field(None, description="The bounded digest (only with digest=true).")


def expertise_read(inp: ExpertiseReadInput, rc: RunContext) -> ExpertiseReadOutput:
    reading = ex.read(rc.project_dir, inp.path)
    return ExpertiseReadOutput(
        path=ex.display_path(reading.location.path, rc.project_dir),
        source=reading.location.source,
        line_count=reading.lines,
        valid=not [p for p in reading.problems if p["kind"] != "too_long"],
        problems=[Problem(**p) for p in reading.problems],
        expertise=None if inp.digest else reading.data,
        digest=ex.digest_of(reading.data) if inp.digest else None,
    )


class SelfImproveInput(ex.Improvement):
    path: Path | None = Field(None, description=_PATH_HELP)


class SelfImproveOutput(Output):
    path: str = Field(description="The file written (relative to the project).")
    source: ex.Source
    created_from_seed: bool = Field(description="True when this call created the project's copy from the seed.")
    learning: dict[str, Any] = Field(description="The learning added, as written.")
    folded: int = Field(description="Oldest learnings folded into learnings_summary by this call.")
    aggregated: int = Field(description="Folded entries merged into per-dialect/operation figures by this call.")
    line_count: int
    over_limit: bool = Field(description=f"True when even after folding the file exceeds {ex.MAX_LINES} lines.")
    changes: list[str] = Field(description="What changed besides the learning.")


def self_improve(inp: SelfImproveInput, rc: RunContext) -> SelfImproveOutput:
    rc.require_writable("self_improve")
    done = ex.self_improve(rc.project_dir, inp, explicit=inp.path)
    return SelfImproveOutput(
        path=ex.display_path(done.location.path, rc.project_dir),
        source=done.location.source,
        created_from_seed=done.created_from_seed,
        learning=done.learning,
        folded=done.folded,
        aggregated=done.aggregated,
        line_count=done.lines,
        over_limit=done.lines > ex.MAX_LINES,
        changes=done.changes,
    )


TOOLS = [
    ToolSpec(
        name="expertise_read",
        func=expertise_read,
        input_model=ExpertiseReadInput,
        output_model=ExpertiseReadOutput,
        title="Read expertise",
        description=(
            "Load the data-migration expertise (AgileFlow expertise.yaml): patterns, per-dialect lock facts, "
            "checklist, conventions and past learnings with measured throughput. Read it before planning. "
            "Reports where it came from and every problem (schema violations, listed paths that no longer exist)."
        ),
        read_only=True,
        idempotent=True,
        cli_positional=("path",),
        cli_exit_code=lambda out: 0 if out.valid else 1,
    ),
    ToolSpec(
        name="self_improve",
        func=self_improve,
        input_model=SelfImproveInput,
        output_model=SelfImproveOutput,
        title="Self-improve expertise",
        description=(
            "After a successful run, record one learning in expertise.yaml: the insight, the files touched and the "
            "figures measured (dialect, operation, rows, seconds); optionally add or update patterns, conventions "
            "and key files. Refuses duplicates and missing paths; validates against the schema before an atomic "
            "write; folds the oldest learnings into learnings_summary to stay under 200 lines (YAML comments are "
            "not kept). Creates the project's .agileflow/experts/datamigration/expertise.yaml from the seed if absent."
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
        cli_positional=("insight",),
    ),
]
