"""The manifest: what a backup holds, how it was taken, and every restore that proved it.

It is the contract between taking, verifying, restoring and pruning a backup, and what an agent
reads to decide whether a rollback is safe. It never holds a credential: the source URL is
masked, an ``env:NAME`` reference is kept by name only, and encryption names the environment
variable that holds the key, never the key.

A verification record is only worth what its signature is: the manifest is a file in the project,
so anyone who can edit it could paste another backup's passing record into it. Each record is
sealed by verify_backup (``dmig.seal``, a key outside the project) over the manifest's content
without its verification list plus the record itself; ``verified`` counts a record only if that
seal holds, so a copied record, or a manifest edited after its verification, is not verified.

A seal per record cannot tell a history that was cut short: deleting the newest (failed) record
would make an older pass the newest again. So verify_backup also keeps, outside the project (the
seal key's folder), the digest of the newest record it appended for each backup (its *head*);
``verified`` needs the newest record in the file to be that one, so a removed, reordered or
replaced record leaves the backup unverified until it is verified again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from dmig import seal as _seal

MANIFEST_VERSION = 1
Format = Literal["portable", "native"]
Dialect = Literal["sqlite", "postgresql", "mysql"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceInfo(_Model):
    url: str = Field(description="The source database URL, password masked.")
    url_ref: str | None = Field(
        default=None, description="The env:NAME reference the URL was given as (so verify can reuse it), if any."
    )
    dialect: Dialect
    flavor: str = Field(description="sqlite, postgresql, mysql or mariadb.")
    server_version: str
    database: str | None = Field(default=None, description="Database (or SQLite file name) backed up.")
    schema_name: str | None = Field(default=None, description="PostgreSQL schema / MySQL database backed up.")


class Checksum(_Model):
    """The diff's table checksum: row count and exact sum of 60-bit row hashes (see dmig.diff.hashing)."""

    rows: int
    sum: str = Field(description="Exact sum of the row hashes, as decimal text.")
    columns: list[str] = Field(description="Columns hashed, in hash order (key columns first), as diff orders them.")
    categories: list[str] = Field(description="The normalisation rule of each hashed column.")

    @property
    def token(self) -> str:
        return f"{self.rows}:{self.sum}"


class TableEntry(_Model):
    name: str
    rows: int
    checksum: Checksum
    format: str = Field(description="portable-jsonl-gzip, pg_dump-directory, mariadb-dump-sql-gzip or sqlite-backup.")
    file: str = Field(description="The file holding this table's data, relative to the backup folder.")
    sha256: str = Field(description="sha256 of that file as stored (after compression and encryption).")
    bytes_stored: int = Field(description="Size of the file as stored.")
    bytes_raw: int | None = Field(default=None, description="Size of the data before compression.")
    seconds: float = Field(description="Time spent dumping and checksumming this table.")
    shared_file: bool = Field(default=False, description="True when the file holds other tables too.")


class ToolVersions(_Model):
    dmig: str
    pg_dump: str | None = None
    pg_restore: str | None = None
    mariadb_dump: str | None = None
    sqlite: str | None = None


class Encryption(_Model):
    scheme: Literal["none", "aes-256-gcm-chunked"] = "none"
    key_env: str | None = Field(default=None, description="Name of the environment variable holding the key.")


class Verification(_Model):
    verified_at: str
    scratch_target: str = Field(description="Where the backup was restored (masked URL, scratch name).")
    restore_seconds: float
    counts_ok: bool
    checksums_ok: bool
    files_ok: bool = True
    problems: list[str] = Field(default_factory=list)
    tables: dict[str, str] = Field(default_factory=dict, description="Per table: ok, or what failed.")
    seal: str | None = Field(
        default=None,
        description="HMAC of this record and of the manifest it verified, under the user's dmig key (verify_backup "
        "makes it; a record without a valid seal does not count).",
    )

    @property
    def passed(self) -> bool:
        return self.counts_ok and self.checksums_ok and self.files_ok and not self.problems


class Manifest(_Model):
    manifest_version: int = MANIFEST_VERSION
    backup_id: str
    label: str | None = Field(default=None, description="Why it was taken (e.g. before-contract-<plan id>).")
    created_at: str
    format: Format
    source: SourceInfo
    scope: Literal["database", "tables"]
    tables: list[TableEntry]
    excluded_tables: list[str] = Field(default_factory=list, description="dmig's own tables, never backed up.")
    schema_files: dict[str, str] = Field(
        default_factory=dict, description="Schema captures (neutral JSON, CREATE script per dialect) -> sha256."
    )
    native_files: dict[str, str] = Field(
        default_factory=dict, description="Other files the native format needs (pg_dump TOC...) -> sha256."
    )
    consistency: str = Field(description="How the checksums and the dump were kept on the same data.")
    tools: ToolVersions
    seconds_total: float
    encryption: Encryption = Field(default_factory=Encryption)
    compression: str = "gzip"
    warnings: list[str] = Field(default_factory=list)
    verifications: list[Verification] = Field(default_factory=list)

    @property
    def id(self) -> str:
        """Callers that describe any backup-like object by its ``id`` (the executor's bridge) get the backup id."""
        return self.backup_id

    def table(self, name: str) -> TableEntry | None:
        return next((t for t in self.tables if t.name == name), None)

    @property
    def last_verification(self) -> Verification | None:
        return self.verifications[-1] if self.verifications else None

    @property
    def verified(self) -> bool:
        """Verified: the newest verification passed and is sealed for exactly this manifest.

        A later failed one revokes an older pass; a record whose seal does not verify (copied from
        another backup, or the manifest edited after it) counts as no verification at all, and so does
        one that is not the newest record verify_backup appended (a later record was removed).
        """
        last = self.last_verification
        return last is not None and last.passed and verification_sealed(self, last) and is_head(self, last)

    def sealed_record(self, record: Verification) -> Verification:
        """``record`` with its seal over this manifest (verify_backup's last step before appending it)."""
        return record.model_copy(update={"seal": _seal.sign(VERIFICATION_PURPOSE, *_verification_parts(self, record))})


VERIFICATION_PURPOSE = "backup-verification"


_BLANK = Verification(verified_at="", scratch_target="", restore_seconds=0, counts_ok=False, checksums_ok=False)


def _canonical(data: object) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _verification_parts(manifest: Manifest, record: Verification) -> tuple[str, str]:
    body = manifest.model_dump(mode="json", exclude={"verifications"})
    return _canonical(body), _canonical(record.model_dump(mode="json", exclude={"seal"}))


def same_content(a: Manifest, b: Manifest) -> bool:
    """The two manifests describe the same backup (their verification lists aside)."""
    return _verification_parts(a, _BLANK)[0] == _verification_parts(b, _BLANK)[0]


def verification_sealed(manifest: Manifest, record: Verification) -> bool:
    """True when ``record`` was sealed by verify_backup for this manifest's current content."""
    return _seal.check(record.seal, VERIFICATION_PURPOSE, *_verification_parts(manifest, record))


HEADS_DIR = "backup-verifications"


def _head_path(manifest: Manifest) -> Path:
    """Where the head of this backup's history lives: keyed by the backup's content, not its folder."""
    body = hashlib.sha256(_verification_parts(manifest, _BLANK)[0].encode("utf-8")).hexdigest()
    return _seal.data_dir() / HEADS_DIR / body[:40]


def _record_digest(record: Verification) -> str:
    return hashlib.sha256(_canonical(record.model_dump(mode="json")).encode("utf-8")).hexdigest()


def is_head(manifest: Manifest, record: Verification) -> bool:
    """True when ``record`` is the newest verification verify_backup appended to this backup."""
    try:
        stored = _head_path(manifest).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return False  # no head (never verified here) or unreadable: fail closed
    return secrets.compare_digest(stored, _record_digest(record))


def record_head(manifest: Manifest, record: Verification) -> None:
    """Make ``record`` this backup's head (verify_backup, right after appending it, under the manifest lock)."""
    path = _head_path(manifest)
    path.parent.mkdir(parents=True, exist_ok=True, mode=_seal.DIR_MODE)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _seal.FILE_MODE)
    try:
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(_record_digest(record) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def dump_manifest(manifest: Manifest) -> str:
    return json.dumps(manifest.model_dump(mode="json"), indent=2, ensure_ascii=False, sort_keys=False) + "\n"


def manifest_sha256(text: str) -> str:
    """The manifest's identity: it changes whenever the manifest does (a new verification too).

    A restore's confirm token is bound to it (and to the target database), see dmig.backup.tokens.
    """
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
