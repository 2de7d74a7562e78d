"""backup, verify_backup, list_backups, restore_backup over the real stdio path (and the generated CLI)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import sqlalchemy as sa

from backup_helpers import create_tables, run_sql
from mcp_client import call, dmig_executable, list_tools


def test_backup_verify_restore_over_stdio_with_env_reference(pg_url, project: Path) -> None:
    create_tables(pg_url)
    env = {"DMIG_BK_URL": pg_url}
    backup, listed = call(
        project, [("backup", {"url": "env:DMIG_BK_URL", "format": "native"}), ("list_backups", {})], env=env
    )
    assert "error" not in backup, backup
    backup_id = backup["backup"]["backup_id"]
    assert backup["manifest"]["source"]["url_ref"] == "env:DMIG_BK_URL"
    assert listed["backups"][0]["backup_id"] == backup_id and not listed["backups"][0]["verified"]

    # verify reuses the env: reference recorded in the manifest; restore needs the new manifest sha256
    verified, refused, _ = call(
        project,
        [
            ("verify_backup", {"backup_id": backup_id}),
            ("restore_backup", {"backup_id": backup_id, "url": "env:DMIG_BK_URL"}),
            ("list_backups", {}),
        ],
        env=env,
    )
    assert verified["passed"], verified
    assert verified["verification"]["restore_seconds"] > 0
    assert refused["error"]["code"] == "E_CONFIRMATION_REQUIRED"

    run_sql(pg_url, "DELETE FROM child")
    target = {"backup_id": backup_id, "url": "env:DMIG_BK_URL"}
    [preview] = call(project, [("restore_backup", {**target, "dry_run": True})], env=env)
    assert preview["dry_run"] and preview["confirm_token"] not in json.dumps(refused), preview
    [restored] = call(project, [("restore_backup", {**target, "confirm": preview["confirm_token"]})], env=env)
    assert restored["all_checksums_ok"], restored
    engine = sa.create_engine(pg_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM child").scalar_one() == 10
    engine.dispose()


def test_corrupt_backup_over_stdio_names_the_table(sqlite_url, project: Path) -> None:
    create_tables(sqlite_url)
    [backup] = call(project, [("backup", {"url": sqlite_url, "tables": ["nasty", "child"]})])
    folder = project / backup["backup"]["folder"]
    entry = next(t for t in backup["manifest"]["tables"] if t["name"] == "child")
    (folder / entry["file"]).write_bytes(b"not gzip at all")
    [result] = call(project, [("verify_backup", {"backup_id": backup["backup"]["backup_id"]})])
    assert result["passed"] is False
    assert result["verification"]["tables"]["nasty"] == "ok"
    assert "child" in result["verification"]["tables"]["child"]


def test_read_only_server_lists_but_cannot_back_up_or_restore(project: Path) -> None:
    names = {t.name for t in list_tools(project, "--read-only")}
    assert "list_backups" in names
    assert not {"backup", "verify_backup", "restore_backup", "prune_backups"} & names
    tools = {t.name: t for t in list_tools(project)}
    assert tools["restore_backup"].annotations.destructive_hint is True
    assert tools["prune_backups"].annotations.destructive_hint is True
    assert tools["backup"].annotations.destructive_hint is False
    assert tools["backup"].annotations.open_world_hint is True


def test_cli_backup_and_verify(sqlite_url, project: Path) -> None:
    create_tables(sqlite_url)
    run = lambda *a: subprocess.run(  # noqa: E731
        [dmig_executable(), "--project-dir", str(project), *a], capture_output=True, text=True, timeout=120
    )
    out = run("backup", sqlite_url, "--tables", "nasty", "--json")
    assert out.returncode == 0, out.stderr
    backup_id = json.loads(out.stdout)["backup"]["backup_id"]
    ver = run("verify-backup", backup_id)
    assert ver.returncode == 0, ver.stdout + ver.stderr
    assert "PASSED" in ver.stdout
    listing = run("list-backups")
    assert backup_id in listing.stdout and "verified" in listing.stdout
