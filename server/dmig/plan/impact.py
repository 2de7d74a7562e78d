"""What each step's lock does to other sessions, and the downtime estimate that follows from it.

"Zero downtime" is a claim about locks: a step blocks others for as long as it holds a lock they
conflict with, and, on PostgreSQL and MySQL, also while it merely *waits* for an exclusive lock
(new requests queue behind the waiting one). So each step gets an expected blocking time (the
lock granted at once) and a worst case (every attempt waits the full lock timeout before the
executor backs off and retries).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from dmig.plan.estimate import CATALOG_STEP_S
from dmig.plan.model import Downtime, Estimate
from dmig.spec.context import mysql_lock_wait_s
from dmig.spec.models import DEFAULT_LOCK_TIMEOUT_MS, DEFAULT_STATEMENT_TIMEOUT_MS, SpecOptions
from dmig.spec.steps import Step

ZERO_DOWNTIME_S = 1.0
UNBOUNDED_S = 1e12  # "no lock timeout": JSON has no infinity
MAX_STATEMENT_TIMEOUT_MS = 86_400_000
STATEMENT_TIMEOUT_FACTOR = 10  # a step's default statement timeout: ten times its estimate, at least the default


def lock_wait_s(options: SpecOptions, dialect: str) -> float:
    """How long one attempt may wait for its lock, as the database applies the effective timeout."""
    ms = options.effective_lock_timeout_ms
    return float(mysql_lock_wait_s(ms)) if dialect == "mysql" else ms / 1000


def step_statement_timeout_ms(options: SpecOptions, estimate: Estimate) -> int:
    """The spec's statement timeout, else the default stretched to ten times the step's estimate: a long online
    step (CREATE INDEX CONCURRENTLY on a big table) must not be cancelled by a bound meant for runaways."""
    if options.statement_timeout_ms is not None:
        return options.statement_timeout_ms
    scaled = math.ceil(estimate.seconds * STATEMENT_TIMEOUT_FACTOR) * 1000
    return min(MAX_STATEMENT_TIMEOUT_MS, max(DEFAULT_STATEMENT_TIMEOUT_MS, scaled))


def timeouts(options: SpecOptions, dialect: str, flavor: str | None) -> dict[str, Any]:
    """The plan's statement of the effective timeouts and where they come from."""
    lock_ms, stmt_ms = options.effective_lock_timeout_ms, options.effective_statement_timeout_ms
    out: dict[str, Any] = {
        "lock_timeout_ms": lock_ms,
        "lock_timeout_source": "spec"
        if options.lock_timeout_ms is not None
        else f"default ({DEFAULT_LOCK_TIMEOUT_MS} ms)",
        "statement_timeout_ms": stmt_ms,
        "statement_timeout_source": "spec"
        if options.statement_timeout_ms is not None
        else f"default ({DEFAULT_STATEMENT_TIMEOUT_MS} ms, or ten times a step's estimate when longer: see each step)",
        "max_lock_retries": options.max_lock_retries,
    }
    if dialect == "mysql":
        wait = mysql_lock_wait_s(lock_ms)
        out["applied_as"] = (
            f"lock_wait_timeout = innodb_lock_wait_timeout = {wait} s ({lock_ms} ms rounded up to whole seconds, "
            "the servers' unit; 0 would mean do not wait at all)"
        )
        if flavor != "mariadb":
            out["applied_as"] += "; MySQL's max_execution_time bounds SELECTs only, not DDL"
    elif dialect == "postgresql":
        out["applied_as"] = f"lock_timeout = {lock_ms} ms, statement_timeout = {stmt_ms} ms"
    else:
        out["applied_as"] = f"busy_timeout = {lock_ms} ms (SQLite has no statement timeout)"
    return out


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
    lock_wait = lock_wait_s(options, dialect)
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
    worst = blocking if not queues else min(UNBOUNDED_S, blocking + attempts * lock_wait)
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
    wait = lock_wait_s(options, dialect)
    source = "the spec's" if options.lock_timeout_ms is not None else "the default"
    reasons.append(
        f"each attempt waits at most {wait:g} s for its lock ({source} lock timeout), then backs off with jitter "
        f"and retries (at most {options.max_lock_retries} retries): a session queued behind a waiting step waits "
        "about as long, and the worst case assumes every attempt times out"
    )
    reasons.append("backfill batches take row locks only (one batch at a time), never a table lock")
    unbounded = [s.id for s in steps if s.worst_case_blocking_seconds >= UNBOUNDED_S]
    longest = max((s.blocking_seconds for s in steps), default=0.0)
    if unbounded:
        verdict = f"not zero downtime: {', '.join(unbounded)} may block other sessions without a bound"
    elif expected < ZERO_DOWNTIME_S and longest + wait <= 2 * ZERO_DOWNTIME_S:
        verdict = (
            f"zero downtime: other sessions wait about {expected:.2f} s in total, spread over brief catalog "
            f"changes; every step is bounded: no session waits more than about {longest + wait:.2f} s at a time "
            f"(lock timeout {wait:g} s plus the lock's hold time), even behind a long transaction"
        )
    elif expected < ZERO_DOWNTIME_S:
        verdict = (
            f"blocking windows total about {expected:.2f} s, but a session queued behind a step may wait up to "
            f"{longest + wait:.1f} s at a time (lock timeout {wait:g} s): not zero downtime; lower "
            "options.lock_timeout_ms"
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
