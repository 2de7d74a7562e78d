"""The backup capability's entry points (tools, rollback and the executor call these).

- ``take_backup``: snapshot tables (portable or native) with per-table checksums, atomically.
- ``verify_backup``: restore into a scratch database and compare (see ``verify``).
- ``list_backups`` / ``prune_backups``: with a dry-run token, never deleting protected ones.
- ``restore_tables``: the destructive restore, only from a verified backup and with confirmation.
- ``latest_verified_backup``: what a rollback restores from.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

import dmig
from dmig import seal
from dmig.backup import clients, crypto, native, portable
from dmig.backup.checksum import table_checksum
from dmig.backup.manifest import (
    Checksum,
    Encryption,
    Manifest,
    SourceInfo,
    TableEntry,
    ToolVersions,
)
from dmig.backup.restore import Target, effective_schema, restore
from dmig.backup.results import (
    BackupResult,
    BackupSummary,
    ListResult,
    PruneResult,
    RestoreResult,
    TableRestore,
    VerifyResult,
)
from dmig.backup.schema import NEUTRAL_NAME, SCRIPT_NAMES, capture
from dmig.backup.session import begin_snapshot, connection, db_error, end_snapshot
from dmig.backup.store import (
    DEFAULT_ROOT,
    Entry,
    backup_dir,
    delete_backup,
    ledger_protected,
    new_backup_id,
    open_private,
    plan_prune,
    read_manifest,
    scan,
    sha256_file,
    source_key,
    staging,
    write_manifest,
)
from dmig.backup.verify import verify_backup as _verify
from dmig.context import RunContext
from dmig.db import dialects
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.errors import ConfirmationRequired, Conflict, DmigError, InvalidInput, NotFound, database_error

ProgressFn = Callable[[float, float | None, str | None], None]
INTERNAL_PREFIX = "dmig_"
_ENV_REF = re.compile(r"^(?:env:|\$)\{?([A-Za-z_][A-Za-z0-9_]*)\}?$")


def _quiet(done: float, total: float | None = None, message: str | None = None) -> None:
    return None


def _url_ref(raw: str) -> str | None:
    m = _ENV_REF.match(raw.strip())
    return f"env:{m.group(1)}" if m else None


def _relative(path: Path, project_dir: Path) -> str:
    try:
        return str(path.relative_to(project_dir.resolve()))
    except ValueError:
        return str(path)


# --- taking a backup ---------------------------------------------------------------------------


def _choose_tables(conn: sa.Connection, schema: str | None, wanted: list[str] | None) -> tuple[list[str], list[str]]:
    names = sorted(sa.inspect(conn).get_table_names(schema=schema))
    internal = [n for n in names if n.startswith(INTERNAL_PREFIX)]
    if not wanted:
        chosen = [n for n in names if n not in internal]
        if not chosen:
            raise NotFound("the database has no table to back up", schema=schema)
        return chosen, internal
    missing = [t for t in wanted if t not in names]
    if missing:
        raise NotFound(f"no table {', '.join(missing)} in the database", tables=missing, available=names[:50])
    return list(dict.fromkeys(wanted)), []


def _with_referenced(
    conn: sa.Connection, schema: str | None, current: str | None, chosen: list[str]
) -> tuple[list[str], list[str]]:
    """The chosen tables plus every table their foreign keys reference (transitively, same schema), and what was
    added and why. A child's backup alone cannot be restored anywhere its parent is not: recreating the foreign
    key fails (PostgreSQL ``relation ... does not exist``, MariaDB errno 150), so the scratch restore that
    verifies the backup would always fail. Keys into another schema cannot come along: they are stated."""
    insp = sa.inspect(conn)
    out, notes, todo = list(chosen), [], list(chosen)
    while todo:
        table = todo.pop(0)
        for fk in insp.get_foreign_keys(table, schema=schema):
            parent, where = fk.get("referred_table"), fk.get("referred_schema")
            if not parent or parent in out:
                continue
            if where and where not in (schema, current):
                notes.append(
                    f"{table} references {where}.{parent} in another schema: that table is not in this backup, so a "
                    "restore needs it to exist already"
                )
                continue
            out.append(parent)
            todo.append(parent)
            notes.append(f"{parent} added: {table}'s foreign key references it, and a restore needs it")
    return out, notes


def _data_name(index: int, table: str, suffix: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", table)[:60] or "table"
    return f"data/{index:04d}.{safe}{suffix}"


def _write_schema(conn: sa.Connection, tables: list[str], schema: str | None, folder: Path) -> dict[str, str]:
    captured = capture(conn, tables, schema)
    texts = {NEUTRAL_NAME: captured.neutral_json()}
    texts.update({SCRIPT_NAMES[d]: captured.script(d) for d in SCRIPT_NAMES})
    out = {}
    for name, text in texts.items():
        with open_private(folder / name) as fh:
            fh.write(text.encode("utf-8"))
        out[name] = sha256_file(folder / name)
    return out


def _encrypt_in_place(folder: Path, rels: list[str], key: bytes) -> None:
    for rel in dict.fromkeys(rels):
        path = folder / rel
        tmp = path.with_name(path.name + ".enc")
        crypto.encrypt_file(path, tmp, key)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)


class _Backup:
    """One backup run: the connection in its snapshot, the staging folder, what has been written."""

    def __init__(self, conn: sa.Connection, url: URL, schema: str | None, folder: Path, key: bytes | None) -> None:
        self.conn = conn
        self.url = url
        self.raw_url = url.render_as_string(hide_password=False)
        self.schema = schema
        self.folder = folder
        self.key = key
        self.warnings: list[str] = []

    def checksums(self, tables: list[str]) -> dict[str, tuple[Checksum, float]]:
        out = {}
        for t in tables:
            started = time.monotonic()
            out[t] = (table_checksum(self.conn, self.raw_url, t, self.schema), time.monotonic() - started)
        return out

    def portable(self, tables: list[str], progress: ProgressFn) -> list[TableEntry]:
        (self.folder / "data").mkdir(mode=0o700)
        entries = []
        for i, t in enumerate(tables):
            started = time.monotonic()
            rel = _data_name(i, t, ".jsonl.gz")
            written = portable.write_table(self.conn, t, self.schema, self.folder / rel, self.key)
            checksum = table_checksum(self.conn, self.raw_url, t, self.schema)
            if checksum.rows != written.rows:
                raise Conflict(
                    f"table {t}: {written.rows} rows written but {checksum.rows} counted in the same snapshot"
                )
            entries.append(
                self._entry(t, checksum, portable.FORMAT, rel, written.bytes_raw, time.monotonic() - started)
            )
            progress(i + 1, len(tables), f"backed up {t}")
        return entries

    def _entry(self, t: str, ck: Checksum, fmt: str, rel: str, raw: int | None, seconds: float, shared: bool = False):
        path = self.folder / rel
        return TableEntry(
            name=t,
            rows=ck.rows,
            checksum=ck,
            format=fmt,
            file=rel,
            sha256=sha256_file(path),
            bytes_stored=path.stat().st_size,
            bytes_raw=raw,
            seconds=round(seconds, 3),
            shared_file=shared,
        )

    def native(self, dialect: str, tables: list[str], snapshot: str | None, resolved_schema: str) -> tuple:
        if dialect == "postgresql":
            dump = native.dump_pg(self.conn, self.url, tables, resolved_schema, snapshot, self.folder)
            sums = self.checksums(tables)
            consistency = "pg_dump --snapshot of the transaction the checksums ran in (one snapshot)"
        elif dialect == "mysql":
            sums = self.checksums(tables)
            end_snapshot(self.conn)
            dump = native.dump_mariadb(self.url, tables, resolved_schema, self.folder)
            begin_snapshot(self.conn)
            after = self.checksums(tables)
            changed = [t for t in tables if after[t][0].token != sums[t][0].token]
            for t in changed:
                self.warnings.append(
                    f"table {t} changed while it was being dumped: the dump may not match its checksum; "
                    "take the backup again when writes are paused"
                )
            consistency = (
                "checksums taken in consistent snapshots before and after mariadb-dump --single-transaction; "
                + ("equal for every table" if not changed else f"DIFFERENT for {', '.join(changed)}")
            )
        else:
            sums = self.checksums(tables)
            dump = native.dump_sqlite(self.conn, tables, self.folder)
            consistency = "SQLite online backup from the read transaction the checksums ran in (one snapshot)"
        if self.key:
            _encrypt_in_place(self.folder, [*dump.table_files.values(), *dump.extra_files], self.key)
        entries = [
            self._entry(t, sums[t][0], dump.format, dump.table_files[t], dump.raw_bytes.get(t), sums[t][1], dump.shared)
            for t in tables
        ]
        extra = {rel: sha256_file(self.folder / rel) for rel in dump.extra_files}
        return entries, extra, consistency


def _tool_versions(dialect: str, fmt: str) -> ToolVersions:
    tv = ToolVersions(dmig=dmig.__version__)
    if dialect == "sqlite":
        import sqlite3

        tv.sqlite = sqlite3.sqlite_version
    elif fmt == "native" and dialect == "postgresql":
        tv.pg_dump = clients.version(("pg_dump",))
        tv.pg_restore = clients.version(("pg_restore",))
    elif fmt == "native":
        tv.mariadb_dump = clients.version(clients.MARIADB_DUMP)
    return tv


def take_backup(
    root: Path,
    url: str,
    *,
    tables: list[str] | None = None,
    schema: str | None = None,
    fmt: str = "portable",
    encrypt_key_env: str | None = None,
    label: str | None = None,
    progress: ProgressFn | None = None,
    project_dir: Path | None = None,
) -> BackupResult:
    progress = progress or _quiet
    if fmt not in ("portable", "native"):
        raise InvalidInput("format must be portable or native")
    parsed = parse_url(url)
    dialect = dialect_of(parsed)
    if fmt == "native" and dialect == "postgresql":
        clients.require(("pg_dump",))
        clients.require(("pg_restore",))
    elif fmt == "native" and dialect == "mysql":
        clients.require(clients.MARIADB_DUMP)
        clients.require(clients.MARIADB_CLIENT)
    key = crypto.load_key(encrypt_key_env) if encrypt_key_env else None
    started = time.monotonic()
    backup_id = new_backup_id()
    with connection(parsed) as conn:
        try:
            version = dialects.server_version(conn)
            resolved_schema = schema or dialects.current_schema(conn)
            database = dialects.database_name(conn)
            conn.commit()
            chosen, internal = _choose_tables(conn, schema, tables)
            added: list[str] = []
            if tables:
                chosen, added = _with_referenced(conn, schema, resolved_schema, chosen)
        except sa.exc.SQLAlchemyError as exc:  # an unknown schema, a name the server cannot take, not a database
            where = f"schema {schema}" if schema else display_url(parsed)
            raise database_error(exc, f"backup: cannot list the tables of {where}") from None
        try:
            snapshot = begin_snapshot(conn)
            with staging(root, backup_id) as tmp:
                run = _Backup(conn, parsed, schema, tmp, key)
                run.warnings += added
                schema_files = _write_schema(conn, chosen, schema, tmp)
                if fmt == "portable":
                    entries = run.portable(chosen, progress)
                    extra: dict[str, str] = {}
                    consistency = "every table read and checksummed in one read transaction (one snapshot)"
                else:
                    entries, extra, consistency = run.native(dialect, chosen, snapshot, resolved_schema or "")
                manifest = Manifest(
                    backup_id=backup_id,
                    label=label,
                    created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                    format=fmt,  # type: ignore[arg-type]
                    source=SourceInfo(
                        url=display_url(parsed),
                        url_ref=_url_ref(url),
                        dialect=dialect,
                        flavor=version.flavor,
                        server_version=version.text,
                        database=Path(database).name if dialect == "sqlite" and database else database,
                        schema_name=None if dialect == "sqlite" else resolved_schema,
                    ),
                    scope="tables" if tables else "database",
                    tables=entries,
                    excluded_tables=internal,
                    schema_files=schema_files,
                    native_files=extra,
                    consistency=consistency,
                    tools=_tool_versions(dialect, fmt),
                    seconds_total=round(time.monotonic() - started, 3),
                    encryption=Encryption(scheme=crypto.SCHEME, key_env=encrypt_key_env) if key else Encryption(),
                    warnings=run.warnings,
                )
                sha = write_manifest(tmp, manifest)
        except sa.exc.SQLAlchemyError as exc:
            raise db_error(exc, "backup failed (nothing was kept)") from None
        finally:
            end_snapshot(conn)
    folder = root / backup_id
    summary = summarize(Entry(folder, manifest, sha, None), project_dir or root)
    return BackupResult(
        backup=summary,
        manifest=manifest,
        seconds=manifest.seconds_total,
        warnings=manifest.warnings,
        next_step=f"run verify_backup with backup_id={backup_id} before relying on it (a backup is unproven until "
        "a test restore passes)",
    )


# --- listing, verifying, pruning ---------------------------------------------------------------


def summarize(entry: Entry, project_dir: Path) -> BackupSummary:
    m = entry.manifest
    if m is None:
        return BackupSummary(backup_id=entry.backup_id, folder=_relative(entry.folder, project_dir), error=entry.error)
    last = m.last_verification
    stored = {t.file: t.bytes_stored for t in m.tables}
    return BackupSummary(
        backup_id=m.backup_id,
        folder=_relative(entry.folder, project_dir),
        created_at=m.created_at,
        format=m.format,
        source=m.source.url,
        dialect=m.source.dialect,
        tables=[t.name for t in m.tables],
        rows=sum(t.rows for t in m.tables),
        bytes_stored=sum(stored.values()),
        encrypted=m.encryption.scheme != "none",
        verified=m.verified,
        last_verified_at=last.verified_at if last else None,
        last_restore_seconds=last.restore_seconds if last else None,
        manifest_sha256=entry.sha256,
    )


def list_backups(root: Path, project_dir: Path) -> ListResult:
    return ListResult(folder=_relative(root, project_dir), backups=[summarize(e, project_dir) for e in scan(root)])


def verify_backup(
    root: Path, backup_id: str, url: str | None = None, progress: ProgressFn | None = None
) -> VerifyResult:
    folder = backup_dir(root, backup_id)
    report = progress or _quiet
    outcome = _verify(folder, url, lambda msg: report(0, None, msg))
    v = outcome.verification
    return VerifyResult(
        backup_id=backup_id,
        passed=v.passed,
        verification=v,
        manifest_sha256=outcome.manifest_sha256,
        problems=v.problems,
    )


def prune_backups(
    root: Path,
    project_dir: Path,
    *,
    keep_last: int | None = None,
    older_than_days: float | None = None,
    protect: list[str] | None = None,
    confirm: str | None = None,
) -> PruneResult:
    entries = scan(root)
    ledger_ids, ledger_note = ledger_protected(project_dir)
    plan = plan_prune(
        entries, keep_last=keep_last, older_than_days=older_than_days, protect=set(protect or []), ledger_ids=ledger_ids
    )
    notes = [ledger_note]
    if confirm is None:
        return PruneResult(
            dry_run=True, would_delete=plan.delete, kept=plan.keep, confirm_token=plan.token, notes=notes
        )
    if not plan.delete:
        return PruneResult(dry_run=False, kept=plan.keep, notes=[*notes, "nothing to delete"])
    if confirm != plan.token:
        raise ConfirmationRequired(
            "confirm does not match the current prune plan (the set of backups to delete changed, or the token is "
            "wrong): call prune_backups without confirm to see the plan and its token",
            would_delete=plan.delete,
        )
    for bid in plan.delete:
        delete_backup(root, bid)
    return PruneResult(dry_run=False, deleted=plan.delete, kept=plan.keep, notes=notes)


# --- restoring ---------------------------------------------------------------------------------


def backups_root(project_dir: Path, folder: str | None = None) -> Path:
    """The backups folder of a project (``docs/migrations/backups`` unless configured), inside it."""
    return RunContext(project_dir=Path(project_dir)).project_path(folder, default=DEFAULT_ROOT)


RESTORE_PURPOSE = "restore"


def restore_token(backup_id: str, manifest_sha: str, url: URL, tables: list[str], target_schema: str | None) -> str:
    """The confirm value of one restore: this backup as it is now, into this database, these tables.

    An HMAC under the user's key (dmig.seal), so it cannot be worked out from the files in the
    project, and a token previewed for one database does not restore into another.
    """
    return seal.token("restore", RESTORE_PURPOSE, *_restore_parts(backup_id, manifest_sha, url, tables, target_schema))


def _restore_parts(
    backup_id: str, manifest_sha: str, url: URL, tables: list[str], target_schema: str | None
) -> tuple[str, ...]:
    return (backup_id, manifest_sha, seal.database_identity(url), target_schema or "", "\n".join(sorted(tables)))


def restore_tables(
    project_dir: Path,
    backup_id: str,
    url: str,
    *,
    confirm: str | None,
    tables: list[str] | None = None,
    target_schema: str | None = None,
    folder: str | None = None,
    progress: ProgressFn | None = None,
    dry_run: bool = False,
) -> RestoreResult:
    """Replace the rows of ``tables`` (default: all in the backup) with the backup's; destructive.

    Refused unless the backup's newest verification passed (sealed, see manifest.py) and ``confirm``
    is the token a dry run (``dry_run=True``: what would be replaced, touching nothing) gave for this
    backup, database and tables. A refusal never carries the token. One transaction: on failure the
    tables are unchanged (``Conflict`` names the table).
    """
    folder_path = backup_dir(backups_root(project_dir, folder), backup_id)
    manifest, sha = read_manifest(folder_path)
    if not manifest.verified:
        raise Conflict(
            f"backup {backup_id} has no passing verification: run verify_backup first (a restore is only allowed "
            "from a backup whose test restore succeeded)",
            backup_id=backup_id,
            reason="not_verified",
        )
    parsed = parse_url(url)
    chosen = list(dict.fromkeys(tables)) if tables else [t.name for t in manifest.tables]
    unknown = [t for t in chosen if manifest.table(t) is None]
    if unknown:
        raise InvalidInput(f"backup {backup_id} holds no table {', '.join(unknown)}", tables=unknown)
    if dry_run:
        return _restore_preview(manifest, sha, parsed, chosen, target_schema)
    if not seal.check_token(confirm, "restore", RESTORE_PURPOSE,
                            *_restore_parts(backup_id, sha, parsed, chosen, target_schema)):  # fmt: skip
        raise ConfirmationRequired(
            f"restoring {backup_id} replaces the rows of {', '.join(chosen)} in {display_url(parsed)}: "
            + (
                "confirm does not match this backup, database and tables (or the manifest changed since). "
                if confirm
                else ""
            )
            + "Call restore_backup with dry_run=true to see what it replaces and get its confirm token",
            backup_id=backup_id,
            reason="confirm_mismatch" if confirm else "confirm_required",
        )
    dialect = dialect_of(parsed)
    key = crypto.load_key(manifest.encryption.key_env or "") if manifest.encryption.scheme != "none" else None
    target = Target(parsed, dialect, target_schema, scratch=False)
    report = progress or _quiet
    started = time.monotonic()
    outcomes = restore(folder_path, manifest, target, chosen, key, lambda msg: report(0, None, msg))
    seconds = round(time.monotonic() - started, 3)
    warnings: list[str] = []
    same_dialect = dialect == manifest.source.dialect
    if not same_dialect:
        warnings.append("restored into another dialect: checksums are compared but some types render differently")
    rows: list[TableRestore] = []
    raw_url = parsed.render_as_string(hide_password=False)
    with connection(parsed) as conn:
        for t in chosen:
            entry = manifest.table(t)
            assert entry is not None
            try:
                got = table_checksum(conn, raw_url, t, effective_schema(manifest, target))
                ok = got.token == entry.checksum.token
                detail = None if ok else f"{got.rows} rows after restore, {entry.rows} in the backup; checksum differs"
            except DmigError as exc:
                ok, detail, got = False, exc.message, None
            rows.append(
                TableRestore(
                    table=t,
                    rows=got.rows if got else outcomes[t].rows,
                    seconds=outcomes[t].seconds,
                    checksum_ok=ok,
                    detail=detail,
                )
            )
    return RestoreResult(
        backup_id=backup_id,
        target=display_url(parsed),
        tables=rows,
        all_checksums_ok=all(r.checksum_ok for r in rows),
        seconds=seconds,
        warnings=warnings,
    )


def _restore_preview(
    manifest: Manifest, sha: str, parsed: URL, chosen: list[str], target_schema: str | None
) -> RestoreResult:
    rows = []
    for t in chosen:
        entry = manifest.table(t)
        assert entry is not None
        rows.append(TableRestore(table=t, rows=entry.rows, detail="its rows would be replaced by the backup's"))
    return RestoreResult(
        backup_id=manifest.backup_id,
        target=display_url(parsed),
        tables=rows,
        all_checksums_ok=None,
        seconds=0.0,
        dry_run=True,
        confirm_token=restore_token(manifest.backup_id, sha, parsed, chosen, target_schema),
    )


def latest_verified_backup(
    project_dir: Path,
    url: str,
    tables: list[str] | None = None,
    max_age: dt.timedelta | None = None,
    *,
    schema: str | None = None,
    folder: str | None = None,
) -> Manifest | None:
    """The newest backup of this database whose newest verification passed and that holds ``tables``.

    The database is matched by its masked URL (so ``env:NAME`` and the literal URL agree) and
    dialect; ``max_age`` bounds how old the backup may be (a policy's max_backup_age).
    """
    root = backups_root(project_dir, folder)
    parsed = parse_url(url)
    masked = display_url(parsed)
    dialect = dialect_of(parsed)
    now = dt.datetime.now(dt.UTC)
    for e in scan(root):  # newest first
        m = e.manifest
        if m is None or not m.verified or m.source.url != masked or m.source.dialect != dialect:
            continue
        if schema and m.source.schema_name != schema:
            continue
        if tables and not set(tables) <= {t.name for t in m.tables}:
            continue
        if max_age is not None and now - dt.datetime.fromisoformat(m.created_at) > max_age:
            continue
        return m
    return None


def backup_tables(
    project_dir: Path,
    url: str,
    tables: list[str] | None = None,
    *,
    label: str | None = None,
    verify: bool = True,
    fmt: str = "portable",
    folder: str | None = None,
) -> dict[str, object]:
    """Take a backup and (by default) verify it: the executor's one call before a destructive step.

    Returns a JSON-able summary: ``id``/``backup_id``, ``path`` (relative to the project),
    ``verified`` (bool), ``manifest_sha256`` (restore's confirm), ``problems``, ``restore_seconds``.
    """
    root = backups_root(project_dir, folder)
    taken = take_backup(root, url, tables=tables, fmt=fmt, label=label, project_dir=Path(project_dir))
    info: dict[str, object] = {
        "id": taken.backup.backup_id,
        "backup_id": taken.backup.backup_id,
        "path": taken.backup.folder,
        "label": label,
        "tables": taken.backup.tables,
        "rows": taken.backup.rows,
        "verified": None,
        "manifest_sha256": taken.backup.manifest_sha256,
        "problems": [],
        "restore_seconds": None,
        "warnings": taken.warnings,
    }
    if verify:
        result = verify_backup(root, taken.backup.backup_id, url)
        info.update(
            verified=result.passed,
            manifest_sha256=result.manifest_sha256,
            problems=result.problems,
            restore_seconds=result.verification.restore_seconds,
        )
    return info


__all__ = [
    "backup_tables",
    "backups_root",
    "latest_verified_backup",
    "list_backups",
    "prune_backups",
    "restore_tables",
    "source_key",
    "take_backup",
    "verify_backup",
]
