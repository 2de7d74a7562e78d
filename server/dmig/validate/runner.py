"""Run a rule spec: expand it into units, run them in parallel (bounded), collect the verdicts.

A check that cannot run (unknown table or column, a query the database rejects, a timeout)
becomes a result with status ``error`` and a clear message while every other check still runs:
a planner-generated spec with one stale column name should not hide the other thirty answers.
What makes the whole call fail instead is what makes every answer meaningless: a malformed spec
(E_INVALID_INPUT, before anything runs), a database URL the spec needs but lacks, or a database
that cannot be reached (E_CONNECTION).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field

from dmig import policy
from dmig.context import ProgressFn
from dmig.errors import DatabaseError, DmigError, InvalidInput, internal_error
from dmig.redact import redact
from dmig.validate.checks import CheckEnv, counts, duplicates, enums, freshness, nulls, orphans, ranges, spotcheck
from dmig.validate.checks import types as type_checks
from dmig.validate.db import Database, open_database
from dmig.validate.result import UNTRUSTED_NOTE, CheckResult, Outcome
from dmig.validate.spec import (
    DataTypeCheck,
    EnumCheck,
    FreshnessCheck,
    NotNullCheck,
    OrphanedFkCheck,
    RangeCheck,
    RowCountCheck,
    SpotCheck,
    UniqueCheck,
    ValidationSpec,
)


class ValidationRun(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ok: bool = Field(description="True when no error-severity check failed and no check errored.")
    passed: int
    failed: int = Field(description="Error-severity checks that failed.")
    warnings: int = Field(description="Warning-severity checks that failed (do not fail the run).")
    errored: int = Field(description="Checks that could not run (see each one's error).")
    seconds: float
    source: str | None = Field(default=None, description="Source database (password masked).")
    target: str | None = Field(default=None, description="Target database (password masked).")
    checks: list[CheckResult]
    note: str = UNTRUSTED_NOTE


@dataclass
class Unit:
    """One result-producing piece of work (a check, or one table/FK of an expanding check)."""

    name: str
    type: str
    severity: str
    on: str
    fn: Callable[[CheckEnv], Outcome]


def default_name(check: Any) -> str:
    if isinstance(check, NotNullCheck | UniqueCheck):
        return f"{check.type} {check.table}({', '.join(check.columns)})"
    if isinstance(check, DataTypeCheck):
        test = f"castable_to {check.castable_to}" if check.castable_to else "pattern"
        return f"data_type {check.table}.{check.column} {test}"
    if isinstance(check, RangeCheck | EnumCheck | FreshnessCheck):
        return f"{check.type} {check.table}.{check.column}"
    if isinstance(check, OrphanedFkCheck):
        return f"orphaned_fk {check.label}"
    if isinstance(check, SpotCheck):
        return f"spot_check {check.label}"
    return check.type


_RUNNERS: dict[type, Callable[[Any, CheckEnv], Outcome]] = {
    NotNullCheck: nulls.run,
    DataTypeCheck: type_checks.run,
    RangeCheck: ranges.run,
    EnumCheck: enums.run,
    UniqueCheck: duplicates.run,
    FreshnessCheck: freshness.run,
    OrphanedFkCheck: orphans.run,
    SpotCheck: spotcheck.run,
}


def _units(check: Any, env: CheckEnv) -> list[Unit]:
    if isinstance(check, RowCountCheck):
        entries = counts.entries(check)
        out = []
        for e in entries:
            name = f"row_count {e.label}"
            if check.name:
                name = check.name if len(entries) == 1 else f"{check.name} {e.label}"
            out.append(Unit(name, check.type, check.severity, "both", lambda env, e=e: counts.run(check, e, env)))
        return out
    if isinstance(check, OrphanedFkCheck) and check.all_declared:
        found = orphans.discover(check, env)
        return [Unit(c.name or "", c.type, c.severity, c.on, lambda env, c=c: orphans.run(c, env)) for c in found]
    on = "both" if isinstance(check, SpotCheck) else check.on
    run = _RUNNERS[type(check)]
    return [Unit(check.name or default_name(check), check.type, check.severity, on, lambda env: run(check, env))]


def _error_info(exc: BaseException) -> Any:
    if isinstance(exc, DmigError):
        return exc.info()
    if isinstance(exc, sa.exc.SQLAlchemyError):
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
        return DatabaseError(redact(first[0] if first else type(exc).__name__)[:300]).info()
    return internal_error(exc)


def _execute(unit: Unit, defaults: Any, dbs: dict[str, Database]) -> CheckResult:
    env = CheckEnv(defaults=defaults, dbs=dbs)
    start = time.perf_counter()
    base = {"name": unit.name, "type": unit.type, "severity": unit.severity, "on": unit.on}
    try:
        out = unit.fn(env)
    except Exception as exc:
        info = _error_info(exc)
        return CheckResult(
            **base,
            status="error",
            summary=info.message,
            queries=env.queries,
            duration_s=round(time.perf_counter() - start, 4),
            error=info,
        )
    return CheckResult(
        **base,
        status="pass" if out.passed else "fail",
        summary=redact(out.summary),
        figures=out.figures,
        sample=out.sample,
        sample_truncated=out.sample_truncated,
        queries=env.queries,
        duration_s=round(time.perf_counter() - start, 4),
    )


def _sides_needed(spec: ValidationSpec) -> set[str]:
    sides: set[str] = set()
    for c in spec.checks:
        if isinstance(c, RowCountCheck | SpotCheck):
            sides |= {"source", "target"}
        else:
            sides.add(c.on)
    return sides


def _open(spec: ValidationSpec, urls: dict[str, str | None]) -> dict[str, Database]:
    dbs: dict[str, Database] = {}
    urls = dict(urls)
    for side in sorted(_sides_needed(spec)):
        raw = urls.get(side)
        if not raw:
            raise InvalidInput(f"a check runs on the {side} database but no {side} URL is given (spec or override)")
        # Rules files and inline specs are URL sources like any argument: every side passes the policy
        # (validation only reads) before the first connection is opened.
        urls[side] = policy.admit(raw, "read", field=side)
    try:
        for side in sorted(_sides_needed(spec)):
            dbs[side] = open_database(side, urls[side] or "", pool_size=spec.defaults.parallelism)
    except BaseException:
        for db in dbs.values():
            db.dispose()
        raise
    return dbs


def _unique_names(results: list[CheckResult]) -> None:
    seen: dict[str, int] = {}
    for r in results:
        seen[r.name] = seen.get(r.name, 0) + 1
        if seen[r.name] > 1:
            r.name = f"{r.name} #{seen[r.name]}"


def run_spec(
    spec: ValidationSpec,
    *,
    source: str | None = None,
    target: str | None = None,
    progress: ProgressFn | None = None,
) -> ValidationRun:
    """Run every check of ``spec`` (URL overrides win over the spec's own)."""
    started = time.perf_counter()
    urls = {"source": source or spec.source, "target": target or spec.target}
    dbs = _open(spec, urls)
    try:
        results: list[CheckResult | None] = []
        units: list[tuple[int, Unit]] = []
        for check in spec.checks:
            try:
                for u in _units(check, CheckEnv(defaults=spec.defaults, dbs=dbs)):
                    units.append((len(results), u))
                    results.append(None)
            except Exception as exc:
                info = _error_info(exc)
                name = check.name or default_name(check)
                on = "both" if isinstance(check, RowCountCheck | SpotCheck) else check.on
                results.append(
                    CheckResult(
                        name=name, type=check.type, severity=check.severity, on=on, status="error",
                        summary=info.message, error=info,
                    )
                )  # fmt: skip
        done = 0
        with ThreadPoolExecutor(max_workers=spec.defaults.parallelism, thread_name_prefix="dmig-validate") as pool:
            futures = {pool.submit(_execute, u, spec.defaults, dbs): i for i, u in units}
            for fut, i in futures.items():
                results[i] = fut.result()
                done += 1
                if progress:
                    progress(done, len(units), f"{results[i].name}: {results[i].status}")  # type: ignore[union-attr]
    finally:
        for db in dbs.values():
            db.dispose()
    final = [r for r in results if r is not None]
    _unique_names(final)
    failed = sum(r.status == "fail" and r.severity == "error" for r in final)
    errored = sum(r.status == "error" for r in final)
    return ValidationRun(
        ok=failed == 0 and errored == 0,
        passed=sum(r.status == "pass" for r in final),
        failed=failed,
        warnings=sum(r.status == "fail" and r.severity == "warning" for r in final),
        errored=errored,
        seconds=round(time.perf_counter() - started, 3),
        source=dbs["source"].shown_url if "source" in dbs else None,
        target=dbs["target"].shown_url if "target" in dbs else None,
        checks=final,
    )
