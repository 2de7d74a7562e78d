"""Where backups live, and the rules that keep them private, whole and never wrongly deleted.

A backup is a folder ``<root>/<backup-id>/`` (root: ``docs/migrations/backups`` in the project,
or a configured folder inside it). It is built in a hidden staging folder and renamed into place
only once complete, so a crash never leaves a half backup that looks real. Folders are 0700 and
files 0600: table data is often personal data. The manifest is rewritten (verification records)
atomically under a lock.

Pruning never deletes: a backup listed in ``protect``, one the migration ledger reports as the
restore point of a running migration (``dmig.execute.ledger.protected_backup_ids(project_dir)``
when that module exists), or the newest verified backup of each source database.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from filelock import FileLock, Timeout
from pydantic import ValidationError

from dmig import safeload
from dmig.backup.manifest import Manifest, dump_manifest, manifest_sha256
from dmig.context import RunContext
from dmig.errors import Conflict, CorruptFile, InvalidInput, NotFound, UnreadableFile
from dmig.fsutil import atomic_write_text

DEFAULT_ROOT = "docs/migrations/backups"
MANIFEST = "manifest.json"
FILE_MODE = 0o600
DIR_MODE = 0o700
_ID = re.compile(r"^[0-9]{8}T[0-9]{9}Z-[0-9a-f]{8}$")
LEDGER_MODULE = "dmig.execute.ledger"


def new_backup_id(now: dt.datetime | None = None) -> str:
    """UTC time to the millisecond first, so ids sort in creation order; random tail against collisions."""
    now = now or dt.datetime.now(dt.UTC)
    return f"{now.strftime('%Y%m%dT%H%M%S')}{now.microsecond // 1000:03d}Z-{secrets.token_hex(4)}"


def check_id(backup_id: str) -> str:
    if not _ID.match(backup_id or ""):
        raise InvalidInput(f"{backup_id!r} is not a backup id (e.g. 20250101T120000123Z-1a2b3c4d)", reason="bad_id")
    return backup_id


def root_dir(rc: RunContext, folder: str | None) -> Path:
    """The backups folder, inside the project (refused otherwise); created 0700 when first written."""
    return rc.project_path(folder, default=DEFAULT_ROOT)


def _not_a_folder(path: Path) -> UnreadableFile:
    return UnreadableFile(f"{path.name} is a file, not a backups folder: give a folder", reason="not_a_folder")


def ensure_private_dir(path: Path) -> None:
    try:
        path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    except (FileExistsError, NotADirectoryError):  # the folder, or one above it, is a file
        raise _not_a_folder(path) from None
    os.chmod(path, DIR_MODE)


def open_private(path: Path) -> BinaryIO:
    """A new file only the owner can read (created 0600, never widened by the umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    return os.fdopen(fd, "wb")


def make_private(tree: Path) -> None:
    """Tighten whatever an external tool (pg_dump) created under ``tree``."""
    for dirpath, dirnames, filenames in os.walk(tree):
        os.chmod(dirpath, DIR_MODE)
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), FILE_MODE)
        for name in dirnames:
            os.chmod(os.path.join(dirpath, name), DIR_MODE)


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1024 * 1024):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def staging(root: Path, backup_id: str) -> Iterator[Path]:
    """A private folder that becomes ``root/backup_id`` only if the block completes."""
    ensure_private_dir(root)
    final = root / backup_id
    if final.exists():
        raise Conflict(f"backup {backup_id} already exists", backup_id=backup_id)
    tmp = root / f".staging-{backup_id}-{secrets.token_hex(3)}"
    tmp.mkdir(mode=DIR_MODE)
    try:
        yield tmp
        make_private(tmp)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def manifest_lock(folder: Path) -> Iterator[None]:
    lock = FileLock(str(folder / f".{MANIFEST}.lock"), timeout=30, mode=FILE_MODE)
    try:
        with lock:
            yield
    except Timeout:
        raise Conflict(f"timed out waiting for the lock on {folder.name}/{MANIFEST}") from None


def write_manifest(folder: Path, manifest: Manifest) -> str:
    """Write atomically; returns the manifest's sha256 (the restore confirm token)."""
    text = dump_manifest(manifest)
    atomic_write_text(folder / MANIFEST, text, mode=FILE_MODE)
    return manifest_sha256(text)


def read_manifest(folder: Path) -> tuple[Manifest, str]:
    path = folder / MANIFEST
    try:
        text = safeload.read_text(path, "manifest", shown=f"{folder.name}/{MANIFEST}")
    except FileNotFoundError:
        raise NotFound(f"backup {folder.name} not found (no {MANIFEST} in {folder})", backup_id=folder.name) from None
    try:
        manifest = Manifest.model_validate(safeload.parse_json(text, "manifest", shown=f"{folder.name}/{MANIFEST}"))
    except (json.JSONDecodeError, ValidationError) as exc:
        raise CorruptFile(f"the manifest of backup {folder.name} is not valid: {str(exc)[:300]}") from None
    return manifest, manifest_sha256(text)


def backup_dir(root: Path, backup_id: str) -> Path:
    folder = root / check_id(backup_id)
    if not (folder / MANIFEST).exists():
        raise NotFound(f"backup {backup_id} not found in {root}", backup_id=backup_id)
    return folder


@dataclass(frozen=True)
class Entry:
    folder: Path
    manifest: Manifest | None
    sha256: str | None
    error: str | None

    @property
    def backup_id(self) -> str:
        return self.folder.name


def scan(root: Path) -> list[Entry]:
    """Every backup folder, newest first; an unreadable manifest is listed with its error, not hidden."""
    if not root.exists():
        return []
    if not root.is_dir():
        raise _not_a_folder(root)
    out = []
    for folder in sorted((p for p in root.iterdir() if p.is_dir() and _ID.match(p.name)), reverse=True):
        try:
            manifest, sha = read_manifest(folder)
            out.append(Entry(folder, manifest, sha, None))
        except (NotFound, CorruptFile) as exc:
            out.append(Entry(folder, None, None, exc.message))
    return out


def source_key(manifest: Manifest) -> str:
    src = manifest.source
    return f"{src.dialect}|{src.url}|{src.schema_name or ''}"


def ledger_protected(project_dir: Path) -> tuple[set[str], str]:
    """Backup ids the migration ledger needs kept; the hook is optional until the executor lands."""
    try:
        module = importlib.import_module(LEDGER_MODULE)
    except ImportError:
        return set(), "no migration ledger module yet: pass `protect` for backups a running migration relies on"
    hook = getattr(module, "protected_backup_ids", None)
    if hook is None:
        return set(), f"{LEDGER_MODULE} has no protected_backup_ids(project_dir) hook: pass `protect`"
    return set(hook(project_dir)), f"ledger: {LEDGER_MODULE}.protected_backup_ids"


@dataclass
class PrunePlan:
    delete: list[str]
    keep: dict[str, str]
    token: str | None
    notes: list[str]


def plan_prune(
    entries: list[Entry],
    *,
    keep_last: int | None,
    older_than_days: float | None,
    protect: set[str],
    ledger_ids: set[str],
    now: dt.datetime | None = None,
) -> PrunePlan:
    if keep_last is None and older_than_days is None:
        raise InvalidInput("say what to prune: keep_last and/or older_than_days")
    now = now or dt.datetime.now(dt.UTC)
    keep: dict[str, str] = {}
    newest_verified: dict[str, str] = {}
    for e in entries:  # newest first
        if e.manifest is not None and e.manifest.verified:
            newest_verified.setdefault(source_key(e.manifest), e.backup_id)
    candidates = []
    for rank, e in enumerate(entries):
        bid = e.backup_id
        if bid in protect:
            keep[bid] = "protected (protect list)"
        elif bid in ledger_ids:
            keep[bid] = "protected (restore point of a running migration)"
        elif bid in newest_verified.values():
            keep[bid] = "newest verified backup of its source database"
        elif keep_last is not None and rank < keep_last:
            keep[bid] = f"among the newest {keep_last}"
        elif older_than_days is not None and _age_days(e, now) < older_than_days:
            keep[bid] = f"younger than {older_than_days:g} days"
        else:
            candidates.append(bid)
    token = hashlib.sha256(("\n".join(sorted(candidates))).encode()).hexdigest()[:16] if candidates else None
    return PrunePlan(delete=candidates, keep=keep, token=token, notes=[])


def _age_days(e: Entry, now: dt.datetime) -> float:
    stamp = e.backup_id[:15]
    created = dt.datetime.strptime(stamp, "%Y%m%dT%H%M%S").replace(tzinfo=dt.UTC)
    return (now - created).total_seconds() / 86400


def delete_backup(root: Path, backup_id: str) -> None:
    """Rename first (atomic disappearance from listings), then remove the files."""
    folder = root / check_id(backup_id)
    trash = root / f".deleting-{backup_id}-{secrets.token_hex(3)}"
    os.replace(folder, trash)
    shutil.rmtree(trash)
