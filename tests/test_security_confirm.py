"""Confirmations bind to what a human reviewed (dmig.seal): tampered plans, forged verifications, moved tokens.

Each attack is checked by its effect (a sentinel table still there, read with plain SQL) and by
what the refusal says (never the expected checksum or token).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from backup_helpers import create_tables, restore_confirm, root, take, verify
from copy_helpers import make_people, run_copy
from dmig.backup import service
from dmig.context import RunContext
from dmig.db.urls import display_url
from dmig.errors import ConfirmationRequired, Conflict, DmigError
from dmig.plan.model import Plan, canonical_json
from dmig.tools.migrate import RunMigrationInput, run_tool
from execute_helpers import make_plan, split_spec, users_table
from mcp_client import call


def _sentinel(url: str) -> None:
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE sentinel (id INTEGER PRIMARY KEY)")
        conn.exec_driver_sql("INSERT INTO sentinel VALUES (1)")
    eng.dispose()


def _sentinel_rows(url: str) -> int:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            return conn.exec_driver_sql("SELECT count(*) FROM sentinel").scalar_one()
    finally:
        eng.dispose()


def _reseal_checksum(doc: dict[str, Any]) -> str:
    """What an attacker can do offline: recompute the sha256 checksum of the edited plan."""
    plan = Plan.model_validate(doc)
    doc["checksum"] = hashlib.sha256(canonical_json(plan).encode()).hexdigest()
    return doc["checksum"]


def _drop(doc: dict[str, Any]) -> None:
    doc["steps"][0]["sql"].append("DROP TABLE sentinel")


def _change_statement(doc: dict[str, Any]) -> None:
    doc["steps"][0]["sql"][0] = "DROP TABLE sentinel"


def _change_target(doc: dict[str, Any]) -> None:
    doc["target"]["database"] = "other.db"


def _change_id(doc: dict[str, Any]) -> None:
    doc["id"] = "another-id"


def _rollback_drop(doc: dict[str, Any]) -> None:
    doc["backfills"][0]["backfill"]["batch_size"] = 7
    doc["steps"][-1]["sql"].insert(0, "DROP TABLE sentinel")


TAMPER = {"append_drop": _drop, "change_statement": _change_statement, "change_target": _change_target,
          "change_id": _change_id, "contract_drop": _rollback_drop}  # fmt: skip


@pytest.mark.parametrize("reseal", ["recomputed_checksum", "stale_checksum", "other_plans_seal", "no_seal"])
@pytest.mark.parametrize("tamper", sorted(TAMPER))
def test_tampered_plan_is_refused_without_echoing_the_checksum(
    tamper: str, reseal: str, sqlite_url: str, project: Path
) -> None:
    users_table(sqlite_url)
    _sentinel(sqlite_url)
    plan, path = make_plan(project, sqlite_url)
    original = plan.checksum
    doc = yaml.safe_load(path.read_text())
    TAMPER[tamper](doc)
    confirm = original
    if reseal == "recomputed_checksum":
        confirm = _reseal_checksum(doc)
    elif reseal == "other_plans_seal":
        other, _ = make_plan(project, sqlite_url, split_spec(), environment="staging")
        doc["seal"] = other.seal
        confirm = _reseal_checksum(doc)
    elif reseal == "no_seal":
        doc["seal"] = ""
        confirm = _reseal_checksum(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    rc = RunContext(project_dir=project)
    rel = str(path.relative_to(project))
    for attempt in (confirm, original, None):
        with pytest.raises(DmigError) as err:
            run_tool(RunMigrationInput(plan=rel, confirm=attempt, url=sqlite_url), rc)
        text = json.dumps(err.value.to_dict() if hasattr(err.value, "to_dict") else err.value.details) + str(err.value)
        assert original not in text and confirm not in text and original[:12] not in text
    assert _sentinel_rows(sqlite_url) == 1


@pytest.mark.parametrize("confirm", [None, "", "f" * 64, "deadbeef"])
def test_missing_or_wrong_confirm_never_reveals_the_checksum(confirm: str | None, sqlite_url: str, project: Path):
    users_table(sqlite_url)
    plan, path = make_plan(project, sqlite_url)
    with pytest.raises(ConfirmationRequired) as err:
        run_tool(RunMigrationInput(plan=str(path.relative_to(project)), confirm=confirm), RunContext(project))
    assert plan.checksum not in str(err.value) + json.dumps(err.value.details)
    assert "runbook" in str(err.value)


def test_tampered_plan_over_stdio(sqlite_url: str, project: Path) -> None:
    users_table(sqlite_url)
    _sentinel(sqlite_url)
    spec = project / "specs" / "split.yaml"
    spec.parent.mkdir(parents=True)
    spec.write_text(yaml.safe_dump(split_spec()))
    args = {"spec": "specs/split.yaml", "url": sqlite_url, "environment": "development", "waive_backup": "test"}
    [planned] = call(project, [("plan_migration", args)])
    path = project / planned["plan_path"]
    doc = yaml.safe_load(path.read_text())
    _drop(doc)
    forged = _reseal_checksum(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    runs = call(project, [("run_migration", {"plan": planned["plan_path"], "confirm": c})
                          for c in (forged, planned["checksum"])])  # fmt: skip
    for r in runs:
        assert r["error"]["code"] == "E_CORRUPT_FILE", r
        text = json.dumps(r)
        assert forged not in text and planned["checksum"] not in text
    assert _sentinel_rows(sqlite_url) == 1


def test_copied_verification_does_not_verify(tmp_path: Path, project: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    create_tables(url)
    good = take(project, url, tables=["nasty"]).manifest.backup_id
    bad = take(project, url, tables=["nasty", "child"]).manifest.backup_id
    assert verify(project, good).passed
    good_doc = json.loads((root(project) / good / "manifest.json").read_text())
    bad_path = root(project) / bad / "manifest.json"
    bad_doc = json.loads(bad_path.read_text())
    bad_doc["verifications"] = good_doc["verifications"]
    bad_path.write_text(json.dumps(bad_doc))
    listed = {b.backup_id: b.verified for b in service.list_backups(root(project), project).backups}
    assert listed == {good: True, bad: False}
    with pytest.raises(Conflict):
        service.restore_tables(project, bad, url, confirm="x", dry_run=True)
    # The verified manifest edited afterwards (a table's checksum changed) loses its status too.
    good_path = root(project) / good / "manifest.json"
    good_doc["tables"][0]["rows"] += 1
    good_path.write_text(json.dumps(good_doc))
    assert not service.list_backups(root(project), project).backups[-1].verified
    assert service.latest_verified_backup(project, url) is None


def test_restore_token_is_bound_to_the_target(tmp_path: Path, project: Path) -> None:
    a, b = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    create_tables(a)
    shutil.copy(tmp_path / "a.db", tmp_path / "b.db")
    bid = take(project, a, tables=["nasty"]).manifest.backup_id
    verify(project, bid)
    token_a = restore_confirm(project, bid, a)
    sha = service.list_backups(root(project), project).backups[0].manifest_sha256
    token_b = restore_confirm(project, bid, b, tables=["nasty"])
    altered = token_b[:-1] + ("1" if token_b[-1] == "0" else "0")  # always a different token
    for given in (token_a, sha, altered):
        with pytest.raises(ConfirmationRequired) as err:
            service.restore_tables(project, bid, b, confirm=given)
        assert restore_confirm(project, bid, b) not in str(err.value) + json.dumps(err.value.details)
    assert service.restore_tables(project, bid, a, confirm=token_a).all_checksums_ok


def test_truncate_token_cannot_be_recomputed_offline(tmp_path: Path, project: Path) -> None:
    src, tgt = f"sqlite:///{tmp_path / 'src.db'}", f"sqlite:///{tmp_path / 'tgt.db'}"
    make_people(src, 20)
    assert run_copy(src, tgt, project).ok
    parsed = sa.make_url(tgt)
    digest = hashlib.sha256((display_url(parsed) + "\n" + "people").encode()).hexdigest()[:8]
    old = f"truncate-tgt.db-{digest}"
    with pytest.raises(ConfirmationRequired) as err:
        run_copy(src, tgt, project, mode="truncate", confirm=old)
    token = err.value.details["confirm"]
    assert token != old and token.startswith("truncate-")
    assert run_copy(src, tgt, project, mode="truncate", confirm=token).ok
