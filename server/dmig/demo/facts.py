"""Measured facts for self_improve, taken from tool outputs only, and the estimate-versus-actual figures.

run_migration's measured backfill facts already carry working time (wall time minus the throttle
sleeps, which the planner adds back itself), so they are recorded as they come.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def backfill_facts(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run's own measured facts (backfills with working time, see the module docstring)."""
    return list(run.get("measured", []))


def copy_facts(copy: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {
            "dialect": copy["target_dialect"],
            "operation": "copy",
            "table": t["table"],
            "rows": t["rows_this_call"],
            "seconds": t["seconds"],
            "bytes": t["bytes"],
            "source_dialect": copy["source_dialect"],
            "target_dialect": copy["target_dialect"],
            "workers": copy["workers"],
            "batch_size": copy["batch_size"],
        }
        for t in copy.get("tables", [])
        if t.get("rows_this_call") and t.get("seconds")
    ]


def backup_facts(dialect: str, backup: dict[str, Any], verify: dict[str, Any]) -> list[dict[str, Any]]:
    rows = backup["backup"]["rows"]
    out = [{"dialect": dialect, "operation": "backup", "rows": rows, "seconds": backup["seconds"],
            "bytes": backup["backup"]["bytes_stored"]}]  # fmt: skip
    restore_s = verify.get("verification", {}).get("restore_seconds")
    if restore_s:
        out.append({"dialect": dialect, "operation": "restore", "rows": rows, "seconds": restore_s,
                    "notes": "verify_backup's test restore into a scratch database"})  # fmt: skip
    return out


def step_seconds(outcome: dict[str, Any], phase: str) -> float:
    return round(sum(s.get("seconds", 0.0) for s in outcome.get("steps", []) if s.get("phase") == phase), 3)


def backfill_seconds(run: dict[str, Any]) -> float:
    return round(sum(b["seconds"] for b in run.get("backfills", [])), 3)


@dataclass(frozen=True)
class Estimates:
    """The backfill estimate of the plan before and after learning, against what each run measured."""

    before: float
    before_source: str
    measured_first: float
    after: float
    after_source: str
    measured_second: float

    @classmethod
    def of(cls, first: dict[str, Any], first_run: dict[str, Any], second: dict[str, Any], second_run: dict[str, Any]):
        """From the two plans' backfill estimates (plan.yaml) and the two runs' answers."""
        return cls(
            before=float(first.get("seconds") or 0),
            before_source=str(first.get("source")),
            measured_first=backfill_seconds(first_run),
            after=float(second.get("seconds") or 0),
            after_source=str(second.get("source")),
            measured_second=backfill_seconds(second_run),
        )

    @staticmethod
    def error(estimate: float, measured: float) -> float:
        return abs(estimate - measured) / measured if measured else 0.0

    @property
    def improved(self) -> bool:
        return self.error(self.after, self.measured_second) < self.error(self.before, self.measured_first)

    def line(self) -> str:
        return (
            f"backfill estimate before learning {self.before:.2f}s ({self.before_source}; measured "
            f"{self.measured_first:.2f}s, off by {self.error(self.before, self.measured_first):.0%}), after learning "
            f"{self.after:.2f}s ({self.after_source}; measured {self.measured_second:.2f}s, off by "
            f"{self.error(self.after, self.measured_second):.0%})"
        )
