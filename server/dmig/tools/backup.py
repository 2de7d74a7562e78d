"""backup, verify_backup, list_backups, prune_backups, restore_backup: thin adapters over dmig.backup.

Backups are files in the project (``docs/migrations/backups`` by default), so writing one is not
destructive to any database; restoring one is, and needs a passing (sealed) verification plus
the confirm token of a dry run for that backup, database and tables. Pruning deletes files, so it
answers a dry run with a token first. None of these tools exists in read-only mode except ``list_backups``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from dmig.backup import service
from dmig.backup.results import BackupResult, ListResult, PruneResult, RestoreResult, VerifyResult
from dmig.backup.store import root_dir
from dmig.context import RunContext
from dmig.fields import Identifier, Items, Names, Path, Token, Url
from dmig.models import Input
from dmig.registry import ToolSpec

_FOLDER = Field(default=None, description="Backups folder inside the project (default docs/migrations/backups).")


class BackupInput(Input):
    url: Url = Field(
        description="Database URL to back up, or env:VARNAME holding it (preferred: keeps the password out)."
    )
    tables: Names | None = Field(
        default=None, description="Tables to back up (default: every table of the schema except dmig_* tables)."
    )
    schema_name: Identifier | None = Field(
        default=None, description="PostgreSQL schema / MySQL database (default: the URL's)."
    )
    format: Literal["portable", "native"] = Field(
        default="portable",
        description="portable: dmig's gzip JSON Lines, restorable on any dialect; native: pg_dump -Fd, mariadb-dump, "
        "or SQLite's backup API (same manifest and checksums).",
    )
    encrypt_key_env: Identifier | None = Field(
        default=None,
        description="Encrypt the files with AES-256-GCM using the 32-byte key (base64/hex) held in this environment "
        "variable; the manifest records the variable's name, never the key.",
    )
    folder: Path | None = _FOLDER


class VerifyInput(Input):
    backup_id: Token = Field(description="The backup to verify (from backup or list_backups).")
    url: Url | None = Field(
        default=None,
        description="Server on which a scratch database dmig_verify_* may be created (PostgreSQL/MySQL; env:VARNAME "
        "works). Default: the env: reference the backup was taken with. Not needed for SQLite.",
    )
    folder: Path | None = _FOLDER


class ListInput(Input):
    folder: Path | None = _FOLDER


class PruneInput(Input):
    keep_last: int | None = Field(default=None, ge=0, description="Keep the newest N backups.")
    older_than_days: float | None = Field(default=None, ge=0, description="Delete only backups older than this.")
    protect: Items[Token] | None = Field(
        default=None, description="Backup ids never to delete (e.g. the restore point of a running migration)."
    )
    confirm: Token | None = Field(
        default=None, description="The confirm_token of a dry run: without it nothing is deleted (dry run)."
    )
    folder: Path | None = _FOLDER


class RestoreInput(Input):
    backup_id: Token = Field(description="The backup to restore (it must have a passing verification).")
    url: Url = Field(description="Database to restore into (env:VARNAME works). Its tables' rows are REPLACED.")
    confirm: Token | None = Field(
        default=None,
        description="The confirm_token of a dry run with the same backup, url and tables (run dry_run=true first).",
    )
    tables: Names | None = Field(default=None, description="Tables to restore (default: all in the backup).")
    target_schema: Identifier | None = Field(default=None, description="PostgreSQL schema to restore into.")
    dry_run: bool = Field(
        default=False, description="Show what would be replaced and the confirm token for it; touch nothing."
    )
    folder: Path | None = _FOLDER


def backup(inp: BackupInput, rc: RunContext) -> BackupResult:
    rc.require_writable("taking a backup")
    return service.take_backup(
        root_dir(rc, inp.folder),
        inp.url,
        tables=inp.tables,
        schema=inp.schema_name,
        fmt=inp.format,
        encrypt_key_env=inp.encrypt_key_env,
        progress=rc.progress,
        project_dir=rc.project_dir,
    )


def verify_backup(inp: VerifyInput, rc: RunContext) -> VerifyResult:
    rc.require_writable("verifying a backup (it records the result in the manifest)")
    return service.verify_backup(root_dir(rc, inp.folder), inp.backup_id, inp.url, rc.progress)


def list_backups(inp: ListInput, rc: RunContext) -> ListResult:
    return service.list_backups(root_dir(rc, inp.folder), rc.project_dir)


def prune_backups(inp: PruneInput, rc: RunContext) -> PruneResult:
    rc.require_writable("pruning backups")
    return service.prune_backups(
        root_dir(rc, inp.folder),
        rc.project_dir,
        keep_last=inp.keep_last,
        older_than_days=inp.older_than_days,
        protect=inp.protect,
        confirm=inp.confirm,
    )


def restore_backup(inp: RestoreInput, rc: RunContext) -> RestoreResult:
    rc.require_writable("restoring a backup")
    return service.restore_tables(
        rc.project_dir,
        inp.backup_id,
        inp.url,
        confirm=inp.confirm,
        tables=inp.tables,
        target_schema=inp.target_schema,
        folder=inp.folder,
        progress=rc.progress,
        dry_run=inp.dry_run,
    )


def _render_backup(out: BackupResult) -> str:
    b = out.backup
    lines = [
        f"backup {b.backup_id} ({b.format}, {b.dialect}) in {b.folder}: {len(b.tables)} tables, {b.rows} rows, "
        f"{b.bytes_stored} bytes, {out.seconds:.2f}s"
    ]
    lines += [f"  {t.name}: {t.rows} rows, checksum {t.checksum.token}" for t in out.manifest.tables]
    lines += [f"warning: {w}" for w in out.warnings]
    lines.append(out.next_step)
    return "\n".join(lines)


def _render_verify(out: VerifyResult) -> str:
    v = out.verification
    head = "PASSED" if out.passed else "FAILED"
    lines = [f"verify {out.backup_id}: {head} (restore {v.restore_seconds:.2f}s into {v.scratch_target})"]
    lines += [f"  {t}: {s}" for t, s in v.tables.items()]
    lines += [f"problem: {p}" for p in out.problems]
    lines.append(f"manifest_sha256: {out.manifest_sha256} (restore: run restore-backup --dry-run for its token)")
    return "\n".join(lines)


def _render_list(out: ListResult) -> str:
    if not out.backups:
        return f"no backups in {out.folder}"
    rows = []
    for b in out.backups:
        state = "verified" if b.verified else ("UNREADABLE" if b.error else "unverified")
        rows.append(
            f"{b.backup_id}  {b.format or '-':8}  {b.dialect or '-':10}  {state:10}  {b.rows:>10} rows  "
            f"{', '.join(b.tables)[:60]}"
        )
    return "\n".join(rows)


def _render_prune(out: PruneResult) -> str:
    if out.dry_run:
        lines = [f"would delete: {', '.join(out.would_delete) or 'nothing'}"]
        if out.confirm_token:
            lines.append(f"confirm with: --confirm {out.confirm_token}")
    else:
        lines = [f"deleted: {', '.join(out.deleted) or 'nothing'}"]
    lines += [f"kept {k}: {why}" for k, why in out.kept.items()]
    return "\n".join(lines)


def _render_restore(out: RestoreResult) -> str:
    if out.dry_run:
        lines = [f"dry run: restoring {out.backup_id} into {out.target} would replace the rows of:"]
        lines += [f"  {t.table}: {t.rows} rows in the backup" for t in out.tables]
        return "\n".join([*lines, f"confirm token (pass as --confirm to restore exactly this): {out.confirm_token}"])
    lines = [f"restored {out.backup_id} into {out.target} in {out.seconds:.2f}s"]
    for t in out.tables:
        detail = f": {t.detail}" if t.detail else ""
        lines.append(f"  {t.table}: {t.rows} rows, checksum {'ok' if t.checksum_ok else 'DIFFERS'}{detail}")
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="backup",
        url_fields={"url": "read"},  # a backup reads the database it names
        func=backup,
        input_model=BackupInput,
        output_model=BackupResult,
        title="Back up tables",
        description=(
            "Snapshot a database's tables (or the listed ones) into the project's backups folder, with a manifest of "
            "per-table row counts and checksums (the same checksums `diff` computes), sizes, timings and tool "
            "versions. Files are private (0600) and written atomically. format=portable (any dialect can restore it) "
            "or native (pg_dump / mariadb-dump / SQLite backup API). Reads the database in one snapshot; changes "
            "nothing in it. Run verify_backup next: a backup is unproven until a test restore passes."
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
        open_world=True,
        cli_positional=("url",),
        cli_render=_render_backup,
        tags=("backup",),
    ),
    ToolSpec(
        name="verify_backup",
        url_fields={"url": "read"},  # the named database is only read; the scratch is a new one
        func=verify_backup,
        input_model=VerifyInput,
        output_model=VerifyResult,
        title="Verify a backup by restoring it",
        description=(
            "Check every file's sha256, restore the backup into a scratch database created for the purpose "
            "(dmig_verify_*, dropped afterwards; a temp file for SQLite), compare row counts and checksums with the "
            "manifest, measure the restore time and record the verification in the manifest. Names every table "
            "whose file is corrupt or truncated. The record is sealed with the user's dmig key: only a sealed, "
            "passing verification of the manifest as it is makes a backup verified. Does not touch user data."
        ),
        read_only=False,
        destructive=False,
        idempotent=False,
        open_world=True,
        cli_positional=("backup_id",),
        cli_exit_code=lambda out: 0 if out.passed else 1,
        cli_render=_render_verify,
        tags=("backup",),
    ),
    ToolSpec(
        name="list_backups",
        func=list_backups,
        input_model=ListInput,
        output_model=ListResult,
        title="List backups",
        description=(
            "List the backups in the project (newest first): source (masked), tables, rows, size, whether the newest "
            "verification passed (and is sealed for this manifest), and each manifest_sha256."
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=False,
        cli_render=_render_list,
        tags=("backup",),
    ),
    ToolSpec(
        name="prune_backups",
        func=prune_backups,
        input_model=PruneInput,
        output_model=PruneResult,
        title="Prune old backups",
        description=(
            "Delete old backups by count (keep_last) and/or age (older_than_days). Without confirm it is a dry run "
            "that lists what would be deleted and a confirm_token; call again with confirm=<token> to delete exactly "
            "that. Never deletes a backup in `protect`, one a running migration's ledger relies on, or the newest "
            "verified backup of each source database."
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=False,
        cli_render=_render_prune,
        tags=("backup",),
    ),
    ToolSpec(
        name="restore_backup",
        func=restore_backup,
        input_model=RestoreInput,
        output_model=RestoreResult,
        title="Restore tables from a verified backup",
        description=(
            "DESTRUCTIVE: replace the rows of the backup's tables (or the listed ones) in the target database with "
            "the backup's, in one transaction (missing tables are created first), then compare checksums with the "
            "manifest. Refused unless the backup's newest verification passed and confirm is the confirm_token of a "
            "dry run (dry_run=true: lists what would be replaced) for this backup, database and tables. Not "
            "available in read-only mode."
        ),
        read_only=False,
        destructive=True,
        idempotent=False,
        open_world=True,
        cli_positional=("backup_id", "url"),
        cli_exit_code=lambda out: 0 if out.dry_run or out.all_checksums_ok else 1,
        cli_render=_render_restore,
        tags=("backup",),
    ),
]
