"""verify_backup: prove a backup restores, by restoring it and comparing checksums with the manifest.

Files are checked first (sha256 of every file against the manifest: a flipped or truncated byte
is pinned to its table without touching a database), then every table whose files are intact is
restored into a scratch database through the same code a real restore runs, its checksum is
computed by the diff's machinery and compared with the manifest's, the restore time is measured,
and the result is appended to the manifest, sealed over the manifest as it is then (see
manifest.py). The scratch is dropped whatever happens.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig import policy
from dmig.backup import crypto
from dmig.backup.checksum import table_checksum
from dmig.backup.manifest import Manifest, Verification, record_head, same_content
from dmig.backup.restore import Target, effective_schema, restore
from dmig.backup.scratch import scratch
from dmig.backup.session import connection, db_error
from dmig.backup.store import manifest_lock, read_manifest, sha256_file, write_manifest
from dmig.db.urls import parse_url
from dmig.errors import DmigError, InvalidInput

ProgressFn = Callable[[str], None]


@dataclass
class VerifyOutcome:
    manifest: Manifest
    manifest_sha256: str
    verification: Verification


def check_files(folder: Path, manifest: Manifest) -> tuple[dict[str, str], list[str]]:
    """Per-table file problems, and problems with files every table needs."""
    per_table: dict[str, str] = {}
    shared: list[str] = []
    cache: dict[str, str | None] = {}

    def digest(rel: str) -> str | None:
        if rel not in cache:
            path = folder / rel
            cache[rel] = sha256_file(path) if path.is_file() else None
        return cache[rel]

    for t in manifest.tables:
        got = digest(t.file)
        if got is None:
            per_table[t.name] = f"table {t.name}: its backup file {t.file} is missing"
        elif got != t.sha256:
            per_table[t.name] = (
                f"table {t.name}: its backup file {t.file} is corrupt (sha256 differs from the manifest)"
            )
    for rel, want in {**manifest.schema_files, **manifest.native_files}.items():
        got = digest(rel)
        if got != want:
            shared.append(f"{rel} is {'missing' if got is None else 'corrupt (sha256 differs from the manifest)'}")
    return per_table, shared


def resolve_url(manifest: Manifest, url: str | None) -> URL | None:
    if manifest.source.dialect == "sqlite":  # no server to name; the backed-up file still passes the policy
        policy.admit(manifest.source.url, "read", field=f"backup {manifest.backup_id} source")
        return None
    # A source URL without a password was stored in full (nothing to mask): it can be reused as is.
    reusable = manifest.source.url if "***" not in manifest.source.url else None
    raw = url or manifest.source.url_ref or reusable
    if not raw:
        raise InvalidInput(
            f"pass `url` (a {manifest.source.dialect} server where a scratch database may be created; env:NAME works): "
            "the manifest keeps only a masked URL",
            reason="url_required",
        )
    # The manifest is a URL source like any argument (the scratch database is created beside it).
    return parse_url(policy.admit(raw, "read", field="url" if url else f"backup {manifest.backup_id} source"))


def verify_backup(folder: Path, url: str | None = None, progress: ProgressFn | None = None) -> VerifyOutcome:
    manifest, _ = read_manifest(folder)
    key = crypto.load_key(manifest.encryption.key_env or "") if manifest.encryption.scheme != "none" else None
    server = resolve_url(manifest, url)
    per_table, shared = check_files(folder, manifest)
    problems = list(per_table.values()) + shared
    statuses = {t.name: per_table.get(t.name, "ok") for t in manifest.tables}
    intact = [t.name for t in manifest.tables if t.name not in per_table] if not shared else []
    counts_ok = checksums_ok = not per_table and not shared
    started = time.monotonic()
    restore_seconds = 0.0
    description = "none (files failed their checks)"
    if intact:
        with scratch(
            manifest.source.dialect, server, manifest.backup_id, need_database=manifest.format == "native"
        ) as (
            target,
            description,
        ):
            try:
                outcomes = restore(folder, manifest, target, intact, key, progress)
            except DmigError as exc:
                outcomes = None
                problems.append(f"restore failed: {exc.message}")
                counts_ok = checksums_ok = False
            restore_seconds = round(time.monotonic() - started, 3)
            if outcomes is not None:
                failed = {t: o.error for t, o in outcomes.items() if o.error}
                for t, err in failed.items():
                    statuses[t] = f"restore failed: {err}"
                    problems.append(f"table {t}: restore failed: {err}")
                    counts_ok = checksums_ok = False
                ok_tables = [t for t in intact if t not in failed]
                c_ok, k_ok = _compare(manifest, target, ok_tables, statuses, problems)
                counts_ok &= c_ok
                checksums_ok &= k_ok
    record = Verification(
        verified_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        scratch_target=description,
        restore_seconds=restore_seconds,
        counts_ok=counts_ok,
        checksums_ok=checksums_ok,
        files_ok=not per_table and not shared,
        problems=problems,
        tables=statuses,
    )
    with manifest_lock(folder):
        current, _ = read_manifest(folder)
        if same_content(current, manifest):
            record = current.sealed_record(record)
        else:  # edited while we restored: what we verified is not what the manifest now says
            record.problems.append("the manifest changed during verification: verify again")
        current.verifications.append(record)
        sha = write_manifest(folder, current)
        record_head(current, record)
    return VerifyOutcome(current, sha, record)


def _compare(
    manifest: Manifest, target: Target, tables: list[str], statuses: dict[str, str], problems: list[str]
) -> tuple[bool, bool]:
    counts_ok = checksums_ok = True
    raw_url = target.url.render_as_string(hide_password=False)
    with connection(target.url) as conn:
        for t in tables:
            entry = manifest.table(t)
            assert entry is not None
            try:
                got = table_checksum(conn, raw_url, t, effective_schema(manifest, target))
            except sa.exc.SQLAlchemyError as exc:
                got = None
                msg = db_error(exc, f"checksum of {t} failed").message
            except DmigError as exc:
                got = None
                msg = exc.message
            if got is None:
                statuses[t] = msg
                problems.append(f"table {t}: {msg}")
                counts_ok = checksums_ok = False
                continue
            if got.rows != entry.rows:
                counts_ok = False
                statuses[t] = f"row count {got.rows} after restore, {entry.rows} in the manifest"
                problems.append(f"table {t}: {statuses[t]}")
            if got.token != entry.checksum.token:
                checksums_ok = False
                if got.rows == entry.rows:
                    statuses[t] = "checksum after restore differs from the manifest"
                    problems.append(f"table {t}: {statuses[t]}")
    return counts_ok, checksums_ok
