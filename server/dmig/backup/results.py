"""The tools' answers: what an agent needs to decide its next step, never a credential."""

from __future__ import annotations

from pydantic import Field

from dmig.backup.manifest import Manifest, Verification
from dmig.models import Output


class BackupSummary(Output):
    backup_id: str
    folder: str = Field(description="The backup folder, relative to the project.")
    created_at: str | None = None
    format: str | None = None
    source: str | None = Field(default=None, description="Source database (password masked).")
    dialect: str | None = None
    tables: list[str] = Field(default_factory=list)
    rows: int = 0
    bytes_stored: int = 0
    encrypted: bool = False
    verified: bool = Field(default=False, description="True when the newest verification passed.")
    last_verified_at: str | None = None
    last_restore_seconds: float | None = None
    manifest_sha256: str | None = Field(
        default=None, description="Identifies this version of the manifest (it changes with every verification)."
    )
    error: str | None = Field(default=None, description="Why the manifest could not be read, if it could not.")


class BackupResult(Output):
    backup: BackupSummary
    manifest: Manifest
    seconds: float
    warnings: list[str] = Field(default_factory=list)
    next_step: str = Field(description="What to do next (verify the backup before relying on it).")


class VerifyResult(Output):
    backup_id: str
    passed: bool
    verification: Verification
    manifest_sha256: str = Field(description="The manifest's new sha256 (it identifies this version of the manifest).")
    problems: list[str] = Field(default_factory=list)


class ListResult(Output):
    folder: str
    backups: list[BackupSummary]


class PruneResult(Output):
    dry_run: bool
    would_delete: list[str] = Field(default_factory=list)
    deleted: list[str] = Field(default_factory=list)
    kept: dict[str, str] = Field(default_factory=dict, description="Backup id -> why it is kept.")
    confirm_token: str | None = Field(
        default=None, description="Pass as `confirm` to delete exactly `would_delete` (valid while nothing changes)."
    )
    notes: list[str] = Field(default_factory=list)


class TableRestore(Output):
    table: str
    rows: int | None = None
    seconds: float = 0.0
    checksum_ok: bool | None = Field(default=None, description="Restored data's checksum equals the manifest's.")
    detail: str | None = None


class RestoreResult(Output):
    backup_id: str
    target: str = Field(description="Target database (password masked).")
    tables: list[TableRestore]
    all_checksums_ok: bool | None = Field(
        description="Every restored table's checksum equals the backup's (None: dry run)."
    )
    seconds: float
    warnings: list[str] = Field(default_factory=list)
    dry_run: bool = Field(default=False, description="True: nothing was restored; this is the preview.")
    confirm_token: str | None = Field(
        default=None,
        description="Dry run only: pass as `confirm` to restore exactly this backup into this database and these "
        "tables (valid while the manifest is unchanged).",
    )
