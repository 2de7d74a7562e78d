"""The reviewed migration plan: everything a human signs off before the executor touches the database.

A plan is data (pydantic), written to ``docs/migrations/<id>/plan.yaml`` and executed as written:
the executor never re-renders SQL, so what was reviewed is what runs. ``checksum`` is the sha256
of the canonical JSON of the plan without ``checksum`` and ``seal``: the value a human reads in the
runbook and the executor demands back as ``confirm``. A checksum alone proves nothing (whoever
edits plan.yaml can recompute it), so ``seal`` is an HMAC of the same canonical content (which
holds the plan's id and target) under the user's key (``dmig.seal``, outside the project): only
plan_migration can make it, and a plan whose seal does not verify is refused, without ever
saying what the expected checksum or seal would have been.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dmig import seal as _seal
from dmig.errors import CorruptFile
from dmig.spec.models import MigrationSpec
from dmig.spec.steps import BackfillPlan, Finding, Step, ValidationCheck

PLAN_VERSION = 1
EstimateSource = Literal["expertise", "sampled", "rule_of_thumb", "none"]
Environment = Literal["development", "staging", "production"]


class _Data(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class Target(_Data):
    """Where the plan runs. Never holds a password: ``ref`` is an env reference or a password-free URL."""

    url: str = Field(description="The database URL with any password masked (for humans).")
    ref: str | None = Field(
        description="How the executor reaches the database without asking: an env:VAR reference or a URL "
        "without a password. None: pass url= at run time (it must name the same database)."
    )
    dialect: Literal["sqlite", "postgresql", "mysql"]
    flavor: str = Field(description="sqlite, postgresql, mysql or mariadb.")
    server_version: str
    database: str | None = Field(default=None, description="Database (or SQLite file) name, for identity checks.")


class Estimate(_Data):
    seconds: float = Field(description="Expected wall-clock seconds.")
    source: EstimateSource = Field(description="Where the figure comes from (expertise, a sample, a rule of thumb).")
    detail: str = Field(description="How the figure was obtained, in words.")
    rows: int | None = None
    rows_per_s: float | None = None


class PlanStep(Step):
    """A rendered step plus what review needs: lint findings, duration and lock impact."""

    findings: list[Finding] = Field(default_factory=list, description="Lint findings on this step's statements.")
    estimate: Estimate
    blocks: str = Field(description="What other sessions cannot do while the step holds its lock.")
    blocking_seconds: float = Field(description="Expected time other sessions wait on this step's lock.")
    worst_case_blocking_seconds: float = Field(
        description="If the lock is contended: each attempt may queue others behind it for up to lock_timeout."
    )
    lock_timeout_ms: int | None = Field(
        default=None, description="Effective lock timeout of each attempt (the spec's, else the 500 ms default)."
    )
    statement_timeout_ms: int | None = Field(
        default=None,
        description="Effective statement timeout of this step's statements (the spec's, else the default or ten "
        "times the step's estimate, whichever is longer).",
    )


class PlanBackfill(_Data):
    backfill: BackfillPlan
    rows: int | None = Field(description="Rows in the table when planned (exact or estimated, see rows_method).")
    rows_method: str | None = None
    estimate: Estimate
    undo: str = Field(description="How the rollback undoes this backfill's writes.")


class TableFacts(_Data):
    schema_: str | None = Field(default=None, alias="schema")
    name: str
    exists: bool
    rows: int | None = None
    rows_exact: bool | None = None
    rows_method: str | None = None
    columns: list[str] = Field(default_factory=list)
    primary_key: list[str] = Field(default_factory=list)


class AppStep(_Data):
    when: Literal["before_expand", "after_expand", "after_validate", "before_contract", "after_contract"]
    technique: Literal["expand_contract", "dual_write", "shadow_traffic", "feature_flag", "compat_view", "sync"]
    action: str


class Pattern(_Data):
    name: Literal["expand_contract"] = "expand_contract"
    techniques: list[str] = Field(description="dual_write, shadow_traffic, feature_flag, compat_view, sync_triggers.")
    summary: str
    needs_app_cooperation: bool
    app_steps: list[AppStep] = Field(default_factory=list)


class Downtime(_Data):
    expected_blocking_seconds: float = Field(description="Sum over steps of the time others wait on our locks.")
    worst_case_blocking_seconds: float = Field(description="If every lock attempt times out and is retried.")
    verdict: str
    reasoning: list[str]


class Validation(_Data):
    checks: list[ValidationCheck] = Field(
        description="Run by the executor after the backfill and again before contract."
    )
    rules: dict[str, Any] | None = Field(
        default=None, description="The same intent in the validate tool's rules format (run with validate spec=...)."
    )
    note: str = ""


class BackupPolicy(_Data):
    environment: Environment
    required: bool = Field(description="Contract takes a verified backup of the affected tables first.")
    waived: bool = False
    waiver_reason: str | None = None
    tables: list[str] = Field(default_factory=list)


class ChecklistItem(_Data):
    id: str
    item: str
    satisfied: bool | None = Field(description="True/False when known at planning time; None: a human must confirm.")
    detail: str = ""


class RollbackTrigger(_Data):
    trigger: str
    action: Literal["pause", "stop", "abort", "restore"]
    detail: str


class Plan(_Data):
    version: Literal[1] = PLAN_VERSION
    id: str = Field(description="The migration id (the spec's id); the ledger keys on it.")
    created_at: str
    spec: MigrationSpec
    target: Target
    pattern: Pattern
    session_settings: list[str]
    timeouts: dict[str, Any] = Field(
        default_factory=dict,
        description="The effective lock and statement timeouts, where each comes from (spec or default) and how "
        "the database applies them (MariaDB/MySQL: whole seconds).",
    )
    tables: list[TableFacts]
    steps: list[PlanStep] = Field(description="Expand then contract steps, in execution order.")
    backfills: list[PlanBackfill]
    rollback: list[PlanStep] = Field(description="Before contract: undo expand and backfill, in execution order.")
    after_contract_rollback: str
    downtime: Downtime
    validation: Validation
    monitoring: dict[str, Any] = Field(description="Monitor thresholds (dmig.monitor.thresholds.Thresholds).")
    rollback_triggers: list[RollbackTrigger]
    backup: BackupPolicy
    checklist: list[ChecklistItem]
    lint: dict[str, Any]
    estimated_seconds: dict[str, float] = Field(description="Per phase and in total.")
    checksum: str = ""
    seal: str = Field(
        default="",
        description="HMAC-SHA256 of the canonical plan under the user's dmig key (made by plan_migration only).",
    )
    project_seal: str = Field(
        default="",
        description="HMAC-SHA256 binding this checksum to the project the plan was saved in (a plan copied from "
        "another project is refused).",
    )

    def phase_steps(self, phase: str) -> list[PlanStep]:
        return [s for s in self.steps if s.phase == phase]

    def backfill_tables(self) -> list[tuple[str | None, str]]:
        return [(b.backfill.schema_, b.backfill.table) for b in self.backfills]


SEAL_PURPOSE = "plan"
UNSEALED = (
    "plan {id} was edited after review: it is not exactly what plan_migration produced (or was not produced by "
    "plan_migration for this user), so it is refused. Plan again with plan_migration and review the new plan"
)


def canonical_json(plan: Plan) -> str:
    """The bytes checksum and seal cover: sorted keys, no whitespace, without the checksum and the two seal fields."""
    data = plan.model_dump(mode="json", by_alias=True, exclude={"checksum", "seal", "project_seal"})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def compute_checksum(plan: Plan) -> str:
    return hashlib.sha256(canonical_json(plan).encode("utf-8")).hexdigest()


def sealed(plan: Plan) -> Plan:
    """The plan with its checksum and server-side seal filled in (plan_migration's last step)."""
    body = canonical_json(plan)
    checksum = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return plan.model_copy(update={"checksum": checksum, "seal": _seal.sign(SEAL_PURPOSE, checksum, body)})


PROJECT_PURPOSE = "plan-project"
OTHER_PROJECT = (
    "plan {id} was not saved in this project (copied from another one, or saved before plans were bound to "
    "their project): run plan_migration here and review the new plan"
)


def bound_to(plan: Plan, project_dir: Path) -> Plan:
    """The plan bound to the project it is saved in (save_plan's step: the seal alone travels with a copy)."""
    identity = _seal.project_identity(project_dir)
    return plan.model_copy(update={"project_seal": _seal.sign(PROJECT_PURPOSE, plan.checksum, identity)})


def verify_project(plan: Plan, project_dir: Path) -> None:
    """Refuse a plan folder copied in from another project: the user reviewed it for that project's database."""
    identity = _seal.project_identity(project_dir)
    if not _seal.check(plan.project_seal, PROJECT_PURPOSE, plan.checksum, identity):
        raise CorruptFile(OTHER_PROJECT.format(id=plan.id), reason="other_project", migration_id=plan.id)


def plan_document(plan: Plan) -> dict[str, Any]:
    return plan.model_dump(mode="json", by_alias=True)


def verify_plan(plan: Plan) -> None:
    """Refuse a plan that is not exactly what plan_migration sealed; never reveal what would have passed.

    The error carries neither the stored nor the recomputed checksum: echoing one would hand an
    agent the value to write back into an edited plan.
    """
    body = canonical_json(plan)
    checksum = hashlib.sha256(body.encode("utf-8")).hexdigest()
    if plan.checksum != checksum or not _seal.check(plan.seal, SEAL_PURPOSE, checksum, body):
        raise CorruptFile(UNSEALED.format(id=plan.id), reason="checksum_mismatch", migration_id=plan.id)
