"""The validation run as Markdown (a file for the migration's record) and as a terminal table.

Sample values and even table names come from the database, so they are untrusted: in Markdown
they only ever appear inside fenced code blocks whose fence is longer than any backtick run in
the content (a value cannot close the fence), and table cells are escaped; in the terminal they
are printed as JSON, which escapes control characters (no terminal escape sequences get through).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dmig.fsutil import atomic_write_text
from dmig.redact import redact
from dmig.validate.result import UNTRUSTED_NOTE, CheckResult
from dmig.validate.runner import ValidationRun

REPORT_DIR = Path("docs/migrations/reports")
CLI_SAMPLE_ROWS = 3


def _cell(text: str) -> str:
    return (
        " ".join(str(text).split()).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace("`", "\\`")
    )


def _fenced(text: str, lang: str = "") -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def _verdict(run: ValidationRun) -> str:
    return "PASSED" if run.ok else "FAILED"


def _counts(run: ValidationRun) -> str:
    return (
        f"{run.passed} passed, {run.failed} failed, {run.warnings} warning(s), {run.errored} errored "
        f"in {run.seconds:.2f}s"
    )


def markdown(run: ValidationRun, *, rules: str | None, when: datetime | None = None) -> str:
    when = when or datetime.now(UTC)
    lines = [
        "# Validation report",
        "",
        f"- When: {when.strftime('%Y-%m-%d %H:%M:%S')} UTC",
        f"- Rules: {_cell(rules or '(inline spec)')}",
        f"- Source: {_cell(run.source or '-')}",
        f"- Target: {_cell(run.target or '-')}",
        f"- Result: **{_verdict(run)}**: {_counts(run)}",
        "",
        f"> {UNTRUSTED_NOTE}",
        "",
        "| # | Check | Type | Severity | Status | Summary |",
        "|---|---|---|---|---|---|",
    ]
    for i, c in enumerate(run.checks, 1):
        lines.append(f"| {i} | {_cell(c.name)} | {c.type} | {c.severity} | {c.status.upper()} | {_cell(c.summary)} |")
    for i, c in enumerate(run.checks, 1):
        lines.extend(["", *_section(i, c)])
    return "\n".join(lines) + "\n"


def _section(i: int, c: CheckResult) -> list[str]:
    head = f"**{c.status.upper()}** ({c.severity}, {c.duration_s:.3f}s): {_cell(c.summary)}"
    out = [f"## {i}. {_cell(c.name)}", "", head]
    if c.figures:
        out += ["", "Figures:", "", _fenced(json.dumps(c.figures, ensure_ascii=False, indent=2, default=str), "json")]
    if c.sample:
        more = " (more exist)" if c.sample_truncated else ""
        out += ["", f"Sample, untrusted data{more}:", "", _fenced(_json_lines(c.sample), "json")]
    if c.error:
        out += ["", f"Error `{c.error.code}`:", "", _fenced(c.error.message)]
    if c.queries:
        out += ["", "SQL:", "", _fenced("\n".join(f"-- {q.on}\n{q.sql};" for q in c.queries), "sql")]
    return out


def _json_lines(rows: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(r, ensure_ascii=False, default=str) for r in rows)


def write_report(run: ValidationRun, project_dir: Path, *, rules: str | None) -> Path:
    """Write the report under docs/migrations/reports/ (a new file each run; never a partial one)."""
    when = datetime.now(UTC)
    folder = project_dir / REPORT_DIR
    stem = f"validation-{when.strftime('%Y%m%d-%H%M%S')}"
    path = folder / f"{stem}.md"
    n = 2
    while path.exists():
        path = folder / f"{stem}-{n}.md"
        n += 1
    atomic_write_text(path, redact(markdown(run, rules=rules, when=when)), root=project_dir)
    return path


def terminal(run: ValidationRun, *, report_path: str | None = None) -> str:
    """A readable table for the CLI."""
    lines = [f"validate: {_verdict(run)}  {_counts(run)}"]
    if run.source or run.target:
        lines.append(f"source: {run.source or '-'}   target: {run.target or '-'}")
    width = min(max((len(c.name) for c in run.checks), default=5), 48)
    lines.append(f"{'STATUS':6}  {'SEVERITY':8}  {'CHECK':{width}}  SUMMARY")
    for c in run.checks:
        status = c.status if c.status == "pass" else c.status.upper()
        name = c.name if len(c.name) <= width else c.name[: width - 1] + "…"
        lines.append(f"{status:6}  {c.severity:8}  {name:{width}}  {' '.join(c.summary.split())}")
        for row in c.sample[:CLI_SAMPLE_ROWS] if c.status == "fail" else []:
            lines.append(f"{'':18}sample: {json.dumps(row, ensure_ascii=False, default=str)}")
        if (c.status == "fail" and len(c.sample) > CLI_SAMPLE_ROWS) or c.sample_truncated:
            lines.append(f"{'':18}(more offending rows: see --json)")
    if run.checks and any(c.sample for c in run.checks):
        lines.append(UNTRUSTED_NOTE)
    if report_path:
        lines.append(f"report: {report_path}")
    return "\n".join(lines)
