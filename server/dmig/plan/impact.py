"""What each step's lock does to other sessions, and the downtime estimate that follows from it.

"Zero downtime" is a claim about locks: a step blocks others for as long as it holds a lock they
conflict with, and, on PostgreSQL and MySQL, also while it merely *waits* for an exclusive lock
(new requests queue behind the waiting one). So each step gets an expected blocking time (the
lock granted at once) and a worst case (every attempt waits the full lock timeout before the
executor backs off and retries).
"""

from __future__ import annotations

from dataclasses import dataclass

from dmig.plan.estimate import CATALOG_STEP_S
from dmig.plan.model import Downtime, Estimate
from dmig.spec.models import SpecOptions
from dmig.spec.steps import Step

ZERO_DOWNTIME_S = 1.0
UNBOUNDED_S = 1e12  # "no lock timeout": JSON has no infinity
DEFAULT_LOCK_WAIT_S = {"postgresql": None, "mysql": 31_536_000.0, "sqlite": 30.0}  # server defaults when unset


@dataclass
class Impact:
    blocks: str
    blocking_s: float
    worst_s: float


def _pg_blocks(lock: str) -> tuple[str, bool]:
    """(what it blocks, whether waiting for it queues others) from PostgreSQL's lock mode name."""
    mode = lock.upper()
    if "VIEW ONLY" in mode:
        return "readers of the view only, for a moment", False
    if "ACCESS EXCLUSIVE" in mode:
        return "all reads and writes of the table", True
    if "SHARE ROW EXCLUSIVE" in mode or mode.startswith("SHARE ") or mode == "SHARE" or mode == "EXCLUSIVE":
        return "writes to the table (reads continue)", True
    if "SHARE UPDATE EXCLUSIVE" in mode:
        return "other schema changes and VACUUM on the table (reads and writes continue)", False
    return "nothing (reads and writes continue)", False


def lock_impact(step: Step, dialect: str, estimate: Estimate, options: SpecOptions) -> Impact:
    attempts = options.max_lock_retries + 1
    lock_wait = (options.lock_timeout_ms / 1000) if options.lock_timeout_ms else DEFAULT_LOCK_WAIT_S[dialect]
    if dialect == "postgresql":
        blocks, queues = _pg_blocks(step.lock)
        blocking = estimate.seconds if queues else 0.0
    elif dialect == "mysql":
        sql = " ".join(step.sql).upper()
        copy = "ALGORITHM=COPY" in sql or "LOCK=SHARED" in sql or "LOCK=EXCLUSIVE" in sql
        if copy:
            blocks, blocking = "writes to the table for the whole table copy", estimate.seconds
        else:
            blocks = "all reads and writes of the table, briefly, while the metadata lock is held at start and end"
            blocking = min(estimate.seconds, 2 * CATALOG_STEP_S)
        queues = True
    else:
        blocks = "other writers to the database file (readers continue in WAL mode)"
        blocking, queues = estimate.seconds, False
    if not queues:
        worst = blocking
    elif lock_wait is None:
        worst = UNBOUNDED_S
    else:
        worst = min(UNBOUNDED_S, blocking + attempts * lock_wait)
    return Impact(blocks, round(blocking, 3), round(worst, 3))


def downtime(steps: list, options: SpecOptions, dialect: str) -> Downtime:
    """Sum the blocking windows; say which steps cause them and why."""
    expected = sum(s.blocking_seconds for s in steps)
    worst = sum(s.worst_case_blocking_seconds for s in steps)
    reasons: list[str] = []
    for s in steps:
        if s.blocking_seconds <= 0 and s.worst_case_blocking_seconds <= 0:
            continue
        reasons.append(
            f"{s.id} ({s.phase}): {s.lock} blocks {s.blocks} for ~{s.blocking_seconds:g} s "
            f"({'rewrites the table' if s.rewrites_table else 'catalog-only'}); contended worst case "
            f"{_seconds(s.worst_case_blocking_seconds)}"
        )
    if options.lock_timeout_ms is None and dialect != "sqlite":
        reasons.append(
            "no lock_timeout: a step waiting behind a long transaction queues every later query on the table "
            "for as long as that transaction lasts; set options.lock_timeout_ms"
        )
    else:
        reasons.append(
            f"each attempt waits at most {_seconds((options.lock_timeout_ms or 0) / 1000)} for its lock, then backs "
            f"off with jitter and retries (at most {options.max_lock_retries} retries): the worst case assumes "
            "every attempt times out"
        )
    reasons.append("backfill batches take row locks only (one batch at a time), never a table lock")
    if expected < ZERO_DOWNTIME_S:
        verdict = (
            f"zero downtime: other sessions wait about {expected:.2f} s in total, spread over brief catalog "
            "changes; no step blocks reads for longer than its lock is held"
        )
    else:
        verdict = f"blocking windows total about {expected:.1f} s: schedule the blocking steps in a quiet period"
    return Downtime(
        expected_blocking_seconds=round(expected, 3),
        worst_case_blocking_seconds=round(min(worst, UNBOUNDED_S), 3),
        verdict=verdict,
        reasoning=reasons,
    )


def _seconds(value: float) -> str:
    return "unbounded" if value >= UNBOUNDED_S else f"{value:g} s"
