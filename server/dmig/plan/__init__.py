"""The planner: a migration spec plus the live database in, a reviewed-and-sealed Plan out.

Python API (what the tools and the zero-downtime benchmark use)::

    from dmig.plan import plan_migration, save_plan, load_plan
    from dmig.spec.models import load_spec

    plan = plan_migration(load_spec(path), url="env:DMIG_TARGET_URL", project_dir=root)
    plan.checksum            # sha256 of the canonical JSON of the plan: the executor's confirm value
    plan.steps               # expand + contract steps: exact SQL, lock, blocking time, lint findings, estimate
    plan.backfills           # batched data work with row counts and measured-throughput estimates
    plan.downtime            # blocking seconds (expected / worst case) and the reasoning
    plan.validation          # executor checks (SQL) + the same intent as validate-tool rules
    plan.monitoring          # monitor thresholds; plan.rollback_triggers, plan.checklist, plan.backup
    save_plan(rc, plan)      # docs/migrations/<id>/plan.yaml + runbook.md, atomically
    load_plan(path)          # parses and re-verifies the checksum (a hand-edited plan is refused)

Modules: ``model`` (the Plan and its checksum), ``planner`` (reads the database, builds the plan),
``estimate`` (throughput: expertise, else a live sample), ``impact`` (locks and downtime),
``advice`` (pattern, app steps, triggers, checklist), ``rules`` (validate-tool rules),
``runbook`` (runbook.md), ``store`` (files).
"""

from dmig.plan.model import Plan, compute_checksum, verify_plan
from dmig.plan.planner import plan_migration
from dmig.plan.store import load_plan, resolve_plan, save_plan

__all__ = ["Plan", "compute_checksum", "load_plan", "plan_migration", "resolve_plan", "save_plan", "verify_plan"]
