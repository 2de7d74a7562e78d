"""The executor's bridge to ``dmig.backup`` (verified backups), imported lazily.

Contract destroys the old shape, so it first needs a backup of the affected tables that a test
restore has proven. When the backup module is missing (or its API is not the one this bridge
knows), contract is refused unless the plan waived the backup, which the planner never allows
for a production database.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType
from typing import Any

from dmig import safeload
from dmig.errors import Conflict, CorruptFile, DmigError

SERVICE = "dmig.backup.service"


def _service() -> ModuleType | None:
    try:
        return importlib.import_module(SERVICE)
    except ImportError:
        return None


def unavailable_reason() -> str | None:
    svc = _service()
    if svc is None:
        return f"{SERVICE} is not installed"
    missing = [f for f in ("latest_verified_backup", "backup_tables") if not hasattr(svc, f)]
    return f"{SERVICE} lacks {', '.join(missing)}" if missing else None


def backup_state(project_dir: Path, ref: str | None, tables: list[str]) -> tuple[bool | None, str]:
    """(satisfied, detail) for the planner's checklist."""
    why = unavailable_reason()
    if why:
        return False, f"no verified backup can be taken: {why}; contract will refuse unless the plan waives it"
    if ref is None:
        return None, "the plan stores no URL reference, so existing backups cannot be looked up; contract takes one"
    try:
        found = _service().latest_verified_backup(project_dir=project_dir, url=ref, tables=tables)  # type: ignore[union-attr]
    except (DmigError, TypeError) as exc:
        return None, f"could not look up backups: {exc}"
    if not found:
        return False, "no verified backup of the affected tables yet; contract takes one before dropping anything"
    return True, f"verified backup present: {_describe(found)}"


def take_verified_backup(
    project_dir: Path,
    url: str,
    tables: list[str],
    label: str,
    *,
    schema: str | None = None,
    phase: str = "contract",
) -> dict[str, Any]:
    """Back up ``tables`` (of ``schema``) and verify the backup by a test restore; raise Conflict when impossible.

    ``phase`` names what the backup guards ("contract", or the run's in-place backfill) so a refusal says where
    it happened; the refusal names the verification's own problems (the real cause), not only "did not verify".
    """
    refused = f"{phase} refused"
    why = unavailable_reason()
    if why:
        raise Conflict(
            f"{refused}: it needs a verified backup of {', '.join(tables)} and {why}. Install/enable the "
            "backup module, or (not for production) re-plan with waive_backup and a reason",
            reason="backup_unavailable",
            phase=phase,
        )
    svc = _service()
    try:
        extra = {"schema": schema} if schema else {}
        result = svc.backup_tables(project_dir=project_dir, url=url, tables=tables, label=label, verify=True, **extra)  # type: ignore[union-attr]
    except TypeError as exc:
        raise Conflict(f"{refused}: {SERVICE}.backup_tables has an unexpected interface ({exc})") from None
    info = (
        result
        if isinstance(result, dict)
        else getattr(result, "model_dump", lambda **_: {"result": str(result)})(mode="json")
    )
    verified = info.get("verified")
    if verified is False or (isinstance(verified, dict) and not verified.get("ok", True)):
        problems = [str(p) for p in info.get("problems") or []]
        cause = "; ".join(problems[:3]) + (f" (and {len(problems) - 3} more)" if len(problems) > 3 else "")
        raise Conflict(
            f"{refused}: the backup of {', '.join(tables)} taken before {phase} did not verify (its test restore "
            f"into a scratch database failed): {cause or 'no problem was reported'}. Nothing was changed by "
            f"{phase}; fix the cause and run again",
            reason="backup_not_verified",
            phase=phase,
            problems=problems,
            backup=info,
        )
    return info


def _describe(found: Any) -> str:
    if isinstance(found, dict):
        return str(found.get("id") or found.get("backup_id") or found.get("path") or found)
    ident = getattr(found, "backup_id", None) or getattr(found, "id", None)
    when = getattr(found, "created_at", None)
    return f"{ident} ({when})" if ident and when else str(ident or found)[:200]


RECORD = "backups.json"


def record_backup(project_dir: Path, migration_id: str, info: dict[str, Any]) -> None:
    """Remember in the project which backup a contract relies on (dmig.backup's prune keeps it)."""
    import json

    from dmig.fsutil import atomic_write_text, locked

    path = Path(project_dir) / "docs" / "migrations" / migration_id / RECORD
    with locked(path):
        try:
            entries = safeload.load_json(path, "record")
        except (FileNotFoundError, ValueError):
            entries = []
        entries.append({k: info.get(k) for k in ("id", "path", "label", "tables", "verified", "manifest_sha256")})
        atomic_write_text(path, json.dumps(entries, indent=2) + "\n")


def recorded_backup_ids(project_dir: Path) -> set[str]:
    out: set[str] = set()
    for path in (Path(project_dir) / "docs" / "migrations").glob(f"*/{RECORD}"):
        try:
            out |= {str(e["id"]) for e in safeload.load_json(path, "record") if e.get("id")}
        except (OSError, ValueError, TypeError, KeyError, AttributeError, CorruptFile):
            continue
    return out


def recorded_entries(project_dir: Path, migration_id: str) -> list[dict[str, Any]]:
    """The backups this migration recorded (oldest first); an unreadable record counts as none."""
    path = Path(project_dir) / "docs" / "migrations" / migration_id / RECORD
    try:
        entries = safeload.load_json(path, "record")
    except (OSError, ValueError, CorruptFile):
        return []
    return [e for e in entries if isinstance(e, dict) and e.get("id")] if isinstance(entries, list) else []


class RestoreSource:
    """A verified backup a rollback may restore: its manifest, folder and how it was found."""

    def __init__(self, manifest: Any, folder: Path, found_by: str) -> None:
        self.manifest, self.folder, self.found_by = manifest, folder, found_by


def find_restore_backup(
    project_dir: Path, migration_id: str, label: str, ids: list[str], url: str, tables: list[str],
    schema: str | None, *, fallback: bool,
) -> tuple[RestoreSource | None, list[str]]:  # fmt: skip
    """The newest VERIFIED backup recorded for this migration under ``label`` (or listed in ``ids``), else
    (``fallback``) the newest verified backup of these tables in the project. Returns (source, notes)."""
    from dmig.backup.service import backups_root, latest_verified_backup
    from dmig.backup.store import backup_dir, read_manifest

    root = backups_root(project_dir)
    notes: list[str] = []
    recorded = [e["id"] for e in recorded_entries(project_dir, migration_id) if e.get("label") == label]
    for bid in reversed(list(dict.fromkeys([*ids, *recorded]))):
        try:
            folder = backup_dir(root, str(bid))
            manifest, _sha = read_manifest(folder)
        except DmigError as exc:
            notes.append(f"recorded backup {bid} is unusable: {exc.message}")
            continue
        if not manifest.verified:
            notes.append(f"recorded backup {bid} has no passing verification: not used")
            continue
        if not set(tables) <= {t.name for t in manifest.tables}:
            notes.append(f"recorded backup {bid} lacks some of {', '.join(tables)}: not used")
            continue
        return RestoreSource(manifest, folder, f"recorded for {migration_id} ({label})"), notes
    if not fallback:
        return None, notes
    found = latest_verified_backup(project_dir, url, tables, schema=schema)
    if found is None:
        return None, notes
    notes.append(f"no usable backup recorded for {migration_id}: using the newest verified backup of the tables")
    return RestoreSource(found, backup_dir(root, found.backup_id), "latest verified backup of the tables"), notes
