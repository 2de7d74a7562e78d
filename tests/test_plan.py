"""The planner on real databases: plan files, checksum, estimates, downtime, checklist, refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dmig.context import RunContext
from dmig.errors import CorruptFile, InvalidInput
from dmig.harness.expertise import Improvement, MeasuredFact, self_improve
from dmig.plan import load_plan, plan_migration
from dmig.plan.model import compute_checksum
from dmig.spec.models import parse_spec
from dmig.tools.migrate import PlanMigrationInput, plan_tool
from dmig.validate.spec import ValidationSpec
from execute_helpers import dialect, make_plan, split_spec, tables, users_table, write_spec


def test_plan_files_checksum_and_content(db_url: str, project: Path) -> None:
    users_table(db_url, n=3000)
    rel = write_spec(project, split_spec())
    rc = RunContext(project_dir=project)
    out = plan_tool(PlanMigrationInput(spec=rel, url=db_url, environment="staging", waive_backup="scratch"), rc)
    assert out.plan_path == "docs/migrations/split-user-name/plan.yaml"
    plan_file, runbook = project / out.plan_path, project / out.runbook_path
    assert plan_file.is_file() and runbook.is_file()
    plan = load_plan(plan_file)
    assert plan.checksum == out.checksum == compute_checksum(plan)
    # What the plan must say.
    assert plan.target.dialect == dialect(db_url)
    assert plan.target.server_version
    assert plan.steps[0].phase == "expand" and plan.steps[-1].phase == "contract"
    for step in plan.steps:
        assert step.sql and step.lock and step.estimate.detail and step.blocks
    assert any(s.destructive for s in plan.phase_steps("contract"))
    [backfill] = plan.backfills
    assert backfill.rows == 3010 and backfill.estimate.source == "sampled" and backfill.estimate.seconds > 0
    assert "temporary copy" in backfill.estimate.detail
    assert plan.downtime.expected_blocking_seconds < 1 and "zero downtime" in plan.downtime.verdict
    assert plan.downtime.reasoning
    assert plan.rollback and all(s.phase == "rollback" for s in plan.rollback)
    assert {c.id for c in plan.validation.checks} == {"op0.validate.unsplit", "op0.validate.roundtrip"}
    ValidationSpec.model_validate(plan.validation.rules)
    assert plan.monitoring["error_rate"]["action"] == "rollback"
    assert any(t.action == "abort" for t in plan.rollback_triggers)
    items = {c.id: c for c in plan.checklist}
    assert items["lint_clean"].satisfied is True
    assert items["row_counts_known"].satisfied is True
    assert items["no_run_in_progress"].satisfied is True
    assert items["app_ready"].satisfied is None
    assert {"dual_write", "shadow_traffic", "feature_flag"} <= set(plan.pattern.techniques)
    text = runbook.read_text()
    assert plan.checksum in text and "## Phase 1: expand" in text and "```sql" in text
    # Planning changed nothing in the database (the sample used a temporary table).
    assert tables(db_url) == {"users"}


def test_hand_edited_plan_is_refused(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url)
    _plan, path = make_plan(project, sqlite_url)
    doc = yaml.safe_load(path.read_text())
    doc["backfills"][0]["backfill"]["batch_size"] = 100000
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    with pytest.raises(CorruptFile) as err:
        load_plan(path)
    assert err.value.details["reason"] == "checksum_mismatch"
    path.write_text("steps: [this is not a plan\n")
    with pytest.raises(CorruptFile):
        load_plan(path)


def test_expertise_rate_preferred_over_sampling(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url, n=100)
    fact = MeasuredFact(dialect="sqlite", operation="backfill", rows=500_000, seconds=20, table="users")
    self_improve(project, Improvement(insight="sqlite backfill speed on the CI box", measured=[fact]))
    plan, _ = make_plan(project, sqlite_url)
    est = plan.backfills[0].estimate
    assert est.source == "expertise" and est.rows_per_s == 25_000
    assert "expertise.yaml" in est.detail


def test_target_never_stores_a_password(pg_url: str, project: Path) -> None:
    users_table(pg_url)
    with_password = pg_url.replace("postgres@", "postgres:s3cret-pw@")  # trust auth ignores it
    plan, path = make_plan(project, with_password)
    assert plan.target.ref is None and "s3cret-pw" not in plan.target.url
    assert "s3cret-pw" not in path.read_text() and "s3cret-pw" not in path.with_name("runbook.md").read_text()


def test_env_reference_is_kept_as_the_way_back(sqlite_url: str, project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users_table(sqlite_url)
    monkeypatch.setenv("DMIG_TEST_TARGET", sqlite_url)
    plan, _ = make_plan(project, "env:DMIG_TEST_TARGET")
    assert plan.target.ref == "env:DMIG_TEST_TARGET"


def test_production_backup_cannot_be_waived(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url)
    with pytest.raises(InvalidInput) as err:
        plan_migration(parse_spec(split_spec()), url=sqlite_url, project_dir=project, waive_backup="hurry")
    assert "production" in err.value.message


def test_missing_target_and_lint_findings(sqlite_url: str, project: Path) -> None:
    with pytest.raises(InvalidInput):
        plan_migration(parse_spec(split_spec()), project_dir=project)
    users_table(sqlite_url)
    spec = split_spec()
    del spec["options"]["lock_timeout_ms"]
    plan, _ = make_plan(project, sqlite_url, spec)
    items = {c.id: c for c in plan.checklist}
    # issue 13: an unset lock timeout is the 500 ms default, stated, not a missing one
    assert items["timeouts_set"].satisfied is True and "500 (default)" in items["timeouts_set"].detail
    assert "raised-lock-timeout" not in {f["rule"] for f in plan.lint["spec_findings"]}
    raised, _ = make_plan(project, sqlite_url, {**split_spec(lock_timeout_ms=3000), "id": "raised"})
    assert raised.lint["counts"]["warning"] >= 1
    assert "raised-lock-timeout" in {f["rule"] for f in raised.lint["spec_findings"]}


def test_spec_monitoring_thresholds_reach_the_plan(sqlite_url: str, project: Path) -> None:
    """A migration may set its own thresholds; what it leaves out keeps the defaults."""
    users_table(sqlite_url)
    spec = split_spec()
    spec["monitoring"] = {"error_rate": {"max_ratio": 0.05, "action": "pause"}, "breaches_to_trigger": 2}

    plan, path = make_plan(project, sqlite_url, spec)

    assert plan.monitoring["error_rate"]["max_ratio"] == 0.05 and plan.monitoring["error_rate"]["action"] == "pause"
    assert plan.monitoring["breaches_to_trigger"] == 2
    assert plan.monitoring["latency"]["factor"] == 2.0  # a default
    assert any(t.trigger == "monitor: error_rate breached" and t.action == "pause" for t in plan.rollback_triggers)
    assert load_plan(path).monitoring == plan.monitoring

    spec["monitoring"] = {"error_rate": {"max_ratio": 5}}
    with pytest.raises(InvalidInput) as err:
        parse_spec(spec)
    assert "monitoring" in str(err.value.details)
