"""Measured facts for self_improve, taken from tool outputs only, and the estimate-versus-actual figures.

One correction is applied, and said so in the fact's notes: run_migration's backfill seconds are
wall time including the throttle pauses between batches, while the planner adds those pauses on
top of rows / rate. Recording the raw wall time would count the pauses twice in the next
estimate, so the backfill fact carries the working time (wall time minus the configured pauses,
which the executor sleeps exactly) and the pauses are named in the notes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def backfill_facts(run: dict[str, Any], throttle_ms: int) -> list[dict[str, Any]]:
    """One fact per finished backfill of a run_migration answer, throttle pauses excluded."""
    by_step = {b["step_id"]: b for b in run.get("backfills", [])}
    facts = []
    for fact in run.get("measured", []):
        if fact.get("operation") != "backfill":
            facts.append(fact)
            continue
        batches = next((b["batches"] for b in by_step.values() if b["table"] == fact.get("table")), 1)
        pauses = max(0, batches - 1) * throttle_ms / 1000
        work = round(max(float(fact["seconds"]) - pauses, 1e-3), 3)
        notes = (
            f"wall {fact['seconds']:.3f} s minus {batches - 1} throttle pauses of {throttle_ms} ms "
            "(the planner adds the pauses itself)"
        )
        facts.append({**fact, "seconds": work, "rows_per_s": round(fact["rows"] / work, 1), "notes": notes})
    return facts


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
