"""The project policy holds for every database URL, whatever its source (issues 12.8 and 20.3).

A policy with ``prod`` (read-only production), ``live`` (writable production) and ``app`` pointing at
real PostgreSQL and MariaDB databases through environment variables, ``allow_ad_hoc_urls: false``;
then every way a URL can reach a tool: an argument, a validation rules file, a migration spec's
``database:``, the target stored in a plan (made while a variable pointed elsewhere), a backup
manifest. The effect is checked independently: the production schema is read straight from the
catalog before and after each refused call.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig import policy
from dmig.context import RunContext
from dmig.db import engine
from dmig.tools.migrate import ConfirmedPlanInput, RunMigrationInput, abort_tool, run_tool
from execute_helpers import split_spec, users_table
from policy_helpers import (
    LENIENT,
    STRICT,
    databases,
    refused,
    respelled,
    schema,
    tool,
    write_policy,
    write_yaml,
)

SERVERS = ["postgresql", "mariadb"]
CHECKS = [{"type": "not_null", "table": "users", "columns": ["id"]}]


@pytest.fixture(params=SERVERS)
def env(request: pytest.FixtureRequest, project: Path, monkeypatch: pytest.MonkeyPatch):
    """{prod, live, app, adhoc}: four databases with the seed's users table; the strict policy in place."""
    with databases(request.param, 4) as urls:
        named = dict(zip(("prod", "live", "app", "adhoc"), urls, strict=True))
        for url in urls:
            users_table(url)
        monkeypatch.setenv("PROD_URL", named["prod"])
        monkeypatch.setenv("LIVE_URL", named["live"])
        monkeypatch.setenv("APP_URL", named["app"])
        monkeypatch.setenv("ADHOC_URL", named["adhoc"])
        write_policy(project, STRICT)
        yield named


def _plan(project: Path, database: str, url: str | None = None) -> tuple[str, str]:
    spec = write_yaml(project, "specs/split.yaml", {**split_spec(), "database": database})
    args = {"spec": spec, "sample": False, "environment": "production"}
    if url is not None:
        args["url"] = url
    out = tool(project, "plan_migration", args)
    return out.plan_path, out.checksum


# ------------------------------------------------------------------------------------------- rules files


@pytest.mark.parametrize(
    "sides",
    [
        {"target": "LITERAL_ADHOC"},
        {"target": "env:ADHOC_URL"},
        {"source": "LITERAL_ADHOC", "target": "env:PROD_URL"},
        {"source": "env:PROD_URL", "target": "env:ADHOC_URL"},
    ],
    ids=["literal-target", "env-target", "literal-source", "env-target-with-prod-source"],
)
@pytest.mark.parametrize("how", ["rules-file", "inline"])
def test_a_rules_file_naming_an_ad_hoc_url_is_refused(env: dict, project: Path, sides: dict, how: str) -> None:
    sides = {k: env["adhoc"] if v == "LITERAL_ADHOC" else v for k, v in sides.items()}
    checks = [{"type": "row_count", "tables": ["users"]}] if "source" in sides else CHECKS
    rules = {**sides, "checks": checks}
    args = {"rules": write_yaml(project, "rules/adhoc.yaml", rules)} if how == "rules-file" else {"spec": rules}
    code, message, _ = refused(lambda: tool(project, "validate", args))
    assert code == "E_POLICY", message
    assert "ad-hoc" in message


@pytest.mark.parametrize("target", ["env:PROD_URL", "prod", "LITERAL", "RESPELLED"])
def test_a_rules_file_may_read_production(env: dict, project: Path, target: str) -> None:
    target = {"LITERAL": env["prod"], "RESPELLED": respelled(env["prod"])}.get(target, target)
    rules = write_yaml(project, "rules/prod.yaml", {"target": target, "checks": CHECKS})
    out = tool(project, "validate", {"rules": rules})
    assert out.ok and out.passed == 1


# ------------------------------------------------------------------------------------------- spec files


@pytest.mark.parametrize("database", ["env:PROD_URL", "prod", "LITERAL", "RESPELLED"])
def test_a_spec_naming_production_is_planned_but_never_run(env: dict, project: Path, database: str) -> None:
    database = {"LITERAL": env["prod"], "RESPELLED": respelled(env["prod"])}.get(database, database)
    before = schema(env["prod"])
    plan, checksum = _plan(project, database)  # planning only reads: allowed
    # A plan made from a URL with a password stores no way back to it: the caller passes it again.
    extra = {"url": database} if ":not-checked" in database else {}
    for name in ("run_migration", "complete_migration", "abort_migration", "rollback"):
        call = {"plan": plan, "confirm": checksum, **extra}
        code, message, _ = refused(lambda n=name, c=call: tool(project, n, c))
        assert code == "E_POLICY" and "read-only by policy" in message, (name, message)
    assert schema(env["prod"]) == before


def test_a_spec_naming_an_ad_hoc_database_is_not_even_planned(env: dict, project: Path) -> None:
    for database in (env["adhoc"], "env:ADHOC_URL", respelled(env["adhoc"])):
        code, _, _ = refused(lambda d=database: _plan(project, d))
        assert code == "E_POLICY"
    assert not (project / "docs" / "migrations" / "split-user-name").exists()


# ------------------------------------------------------------------------------------------- plans


@pytest.mark.parametrize("repoint", ["same-text", "respelled"])
def test_a_plan_made_elsewhere_cannot_run_on_production_later(
    env: dict, project: Path, monkeypatch: pytest.MonkeyPatch, repoint: str
) -> None:
    """The plan is legitimate (checksum intact): made on app; then APP_URL is pointed at production."""
    plan, checksum = _plan(project, "env:APP_URL")
    before = schema(env["prod"])
    monkeypatch.setenv("APP_URL", env["prod"] if repoint == "same-text" else respelled(env["prod"]))
    for name in ("run_migration", "complete_migration", "abort_migration", "rollback"):
        code, message, _ = refused(lambda n=name: tool(project, n, {"plan": plan, "confirm": checksum}))
        assert code == "E_POLICY" and "'prod' is read-only" in message, (name, message)
    # The service functions behind the tools hold too (no front end in between).
    rc_calls = [
        lambda: run_tool(RunMigrationInput(plan=plan, confirm=checksum), RunContext(project_dir=project)),
        lambda: abort_tool(ConfirmedPlanInput(plan=plan, confirm=checksum), RunContext(project_dir=project)),
    ]
    for call in rc_calls:
        assert refused(call)[0] == "E_POLICY"
    assert schema(env["prod"]) == before


def test_a_plan_made_when_ad_hoc_urls_were_allowed_is_held_to_todays_policy(env: dict, project: Path) -> None:
    write_policy(project, LENIENT)
    plan, checksum = _plan(project, env["adhoc"])  # stored target: the literal (password-free) URL
    write_policy(project, STRICT)
    before = schema(env["adhoc"])
    for name in ("run_migration", "abort_migration", "migration_status"):
        args = {"plan": plan} if name == "migration_status" else {"plan": plan, "confirm": checksum}
        code, message, _ = refused(lambda n=name, a=args: tool(project, n, a))
        assert code == "E_POLICY" and "target" in message, (name, message)
    assert schema(env["adhoc"]) == before


def test_destructive_steps_on_production_need_a_recent_verified_backup(env: dict, project: Path) -> None:
    """live is writable production: run is allowed; abort, complete and rollback need a verified backup first."""
    original = schema(env["live"])
    plan, checksum = _plan(project, "env:LIVE_URL")
    out = tool(project, "run_migration", {"plan": plan, "confirm": checksum})
    assert out.state == "validated"
    expanded = schema(env["live"])
    assert ("users", "first_name") in expanded
    for name in ("abort_migration", "complete_migration", "rollback"):
        for args in ({}, {"url": "live"}, {"url": "env:LIVE_URL"}, {"url": env["live"]}):
            code, message, _ = refused(
                lambda n=name, a=args: tool(project, n, {"plan": plan, "confirm": checksum, **a})
            )
            assert code == "E_POLICY" and "verified backup" in message, (name, args, message)
    assert schema(env["live"]) == expanded  # nothing was undone or contracted
    taken = tool(project, "backup", {"url": "live", "tables": ["users"]})
    tool(project, "verify_backup", {"backup_id": taken.backup.backup_id})
    aborted = tool(project, "abort_migration", {"plan": plan, "confirm": checksum})
    assert aborted.state == "aborted"
    assert [c for c in schema(env["live"]) if not c[0].startswith("dmig_")] == original  # (the ledger stays)


# ------------------------------------------------------------------------------------------- arguments


def test_read_only_production_may_be_backed_up_planned_and_inspected(env: dict, project: Path) -> None:
    before = schema(env["prod"])
    assert tool(project, "inspect", {"url": "prod"}).tables
    taken = tool(project, "backup", {"url": "prod", "tables": ["users"]})
    verified = tool(project, "verify_backup", {"backup_id": taken.backup.backup_id})
    assert verified.verification.counts_ok
    spec = write_yaml(project, "specs/split.yaml", split_spec())
    assert tool(project, "plan_migration", {"spec": spec, "url": "prod", "sample": False}).checksum
    assert schema(env["prod"]) == before


@pytest.mark.parametrize("policy", [STRICT, LENIENT], ids=["strict", "lenient"])
def test_a_respelled_production_url_is_still_production(
    env: dict, project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, policy: str
) -> None:
    """A literal URL reaching prod, however it is written, is prod: ad-hoc leniency does not unlock it."""
    before = schema(env["prod"])
    source = tmp_path / "src.db"
    users_table(f"sqlite:///{source}")
    monkeypatch.setenv("SRC_URL", f"sqlite:///{source}")
    write_policy(project, policy.replace("databases:", "databases:\n  src: {env: SRC_URL}"))
    for target in (env["prod"], respelled(env["prod"]), "env:PROD_URL", "prod"):
        args = {"source_url": "src", "target_url": target, "mode": "truncate", "tables": ["users"]}
        code, message, _ = refused(lambda a=args: tool(project, "copy", a))
        assert code == "E_POLICY" and "read-only" in message, (target, message)
        restore = {"backup_id": "x", "url": target, "confirm": "0" * 64}
        assert refused(lambda r=restore: tool(project, "restore_backup", r))[0] == "E_POLICY"
    assert schema(env["prod"]) == before


def test_a_backup_manifest_is_a_url_source_too(env: dict, project: Path) -> None:
    """A backup taken with a literal ad-hoc URL (then allowed) cannot be verified against it once it is not."""
    write_policy(project, LENIENT)
    taken = tool(project, "backup", {"url": env["adhoc"], "tables": ["users"]})
    write_policy(project, STRICT)
    code, message, _ = refused(lambda: tool(project, "verify_backup", {"backup_id": taken.backup.backup_id}))
    assert code == "E_POLICY" and "source" in message, message
    with_url = {"backup_id": taken.backup.backup_id, "url": env["adhoc"]}
    assert refused(lambda: tool(project, "verify_backup", with_url))[0] == "E_POLICY"
    # the manifest says so: no verification was recorded
    listed = tool(project, "list_backups", {}).backups[0]
    assert not listed.verified and listed.last_verified_at is None


def test_refusals_come_before_any_connection(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unreachable production host is refused as policy within milliseconds, never E_CONNECTION after a wait."""
    monkeypatch.setenv("PROD_URL", "postgresql://u@192.0.2.1:5432/prod")
    monkeypatch.setenv("LIVE_URL", "mysql://u@192.0.2.2:3306/live")
    monkeypatch.setenv("APP_URL", "sqlite:///app.db")
    write_policy(project, STRICT)
    code, _, seconds = refused(lambda: tool(project, "copy", {"source_url": "live", "target_url": "prod"}))
    assert code == "E_POLICY" and seconds < 1
    rules = write_yaml(project, "rules/r.yaml", {"target": "postgresql://u@198.51.100.7/x", "checks": CHECKS})
    code, _, seconds = refused(lambda: tool(project, "validate", {"rules": rules}))
    assert code == "E_POLICY" and seconds < 1


# ------------------------------------------------------------------------------------------- backstop


def test_the_connect_backstop_refuses_what_no_source_admitted(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A URL source that forgot policy.admit cannot open an engine to a database the call did not admit."""
    urls = {}
    for name in ("app", "live", "prod", "other"):
        urls[name] = f"sqlite:///{tmp_path / f'{name}.db'}"
        users_table(urls[name])
        monkeypatch.setenv(f"{name.upper()}_URL", urls[name])
    write_policy(project, STRICT)
    with policy.gate(project):
        for url in (urls["prod"], urls["other"], "env:PROD_URL"):
            with pytest.raises(policy.PolicyDenied):
                engine.create(url)
        assert policy.admit("prod", "read", field="url") == "env:PROD_URL"
        engine.create(urls["prod"]).dispose()  # admitted in this call
        with pytest.raises(policy.PolicyDenied):
            engine.create(urls["other"])
    engine.create(urls["other"]).dispose()  # outside a tool call there is no policy to apply


def test_verify_backup_scratch_passes_the_backstop(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """dmig's own scratch databases (verify_backup) are admitted; the backed-up database is still checked."""
    app = f"sqlite:///{tmp_path / 'app.db'}"
    users_table(app)
    monkeypatch.setenv("APP_URL", app)
    write_policy(project, STRICT)
    taken = tool(project, "backup", {"url": "app"})
    verified = tool(project, "verify_backup", {"backup_id": taken.backup.backup_id})
    assert verified.verification.checksums_ok
    monkeypatch.setenv("APP_URL", f"sqlite:///{tmp_path / 'elsewhere.db'}")  # the backed-up file is now ad hoc
    code, _, _ = refused(lambda: tool(project, "verify_backup", {"backup_id": taken.backup.backup_id}))
    assert code == "E_POLICY"
