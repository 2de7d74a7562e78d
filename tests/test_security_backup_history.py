"""A backup's verification history cannot be cut short: removing a later failure does not revive a pass.

Each verification record is sealed to the manifest, but a seal per record cannot tell that the
newest one was deleted. The attack: verify passes, the dump is tampered with so a second verify
fails, then the failure record is removed (or the pass copied after it, or the two swapped) so the
old pass is the newest again. verify_backup keeps the newest record's digest outside the project
(dmig.backup.manifest head); list_backups must then say not verified and restore must refuse, in
process and over MCP, on every dialect.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from backup_helpers import create_tables, flip_bytes, root, table_file, take, truncate, verify
from dmig.backup import service
from dmig.errors import Conflict
from mcp_client import call


def _drop_last(records: list[Any]) -> list[Any]:
    return records[:-1]


def _pass_again(records: list[Any]) -> list[Any]:
    return [*records[:-1], records[0], records[0]]


def _swap(records: list[Any]) -> list[Any]:
    return [records[-1], *records[:-1]]


def _only_pass(records: list[Any]) -> list[Any]:
    return [records[0]]


EDITS: dict[str, Callable[[list[Any]], list[Any]]] = {
    "drop_failure": _drop_last, "pass_appended_again": _pass_again, "swapped": _swap, "only_the_pass": _only_pass,
}  # fmt: skip
TAMPER = {"flipped_bytes": flip_bytes, "truncated": truncate}


def _edit_history(project: Path, backup_id: str, edit: Callable[[list[Any]], list[Any]]) -> None:
    path = root(project) / backup_id / "manifest.json"
    doc = json.loads(path.read_text())
    doc["verifications"] = edit(doc["verifications"])
    path.write_text(json.dumps(doc, indent=2))


def _listed(project: Path, backup_id: str) -> bool:
    return {b.backup_id: b.verified for b in service.list_backups(root(project), project).backups}[backup_id]


def _fail_then_cut(project: Path, url: str, tamper: Callable[[Path], None], edit: Callable[[list[Any]], list[Any]]):
    create_tables(url)
    bid = take(project, url, tables=["nasty"]).manifest.backup_id
    assert verify(project, bid).passed
    assert _listed(project, bid)
    data = table_file(project, bid, "nasty")
    original = data.read_bytes()
    tamper(data)
    assert not verify(project, bid).passed
    assert not _listed(project, bid)
    _edit_history(project, bid, edit)
    return bid, data, original


@pytest.mark.parametrize("tamper", sorted(TAMPER))
@pytest.mark.parametrize("edit", sorted(EDITS))
def test_cut_history_is_not_verified(project: Path, db_url: str, tamper: str, edit: str) -> None:
    bid, _data, _original = _fail_then_cut(project, db_url, TAMPER[tamper], EDITS[edit])
    assert not _listed(project, bid)
    assert service.latest_verified_backup(project, db_url) is None
    with pytest.raises(Conflict) as err:
        service.restore_tables(project, bid, db_url, confirm=None, dry_run=True)
    assert err.value.details.get("reason") == "not_verified"


def test_verifying_again_after_repair_verifies(project: Path, sqlite_url: str) -> None:
    """The head only follows verify_backup: a real new verification of the repaired files passes again."""
    bid, data, original = _fail_then_cut(project, sqlite_url, flip_bytes, _drop_last)
    data.write_bytes(original)
    assert not _listed(project, bid)
    assert verify(project, bid).passed
    assert _listed(project, bid)
    assert service.restore_tables(project, bid, sqlite_url, confirm=None, dry_run=True).confirm_token


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_cut_history_over_mcp(project: Path, sqlite_url: str, edit: str) -> None:
    bid, _data, _original = _fail_then_cut(project, sqlite_url, flip_bytes, EDITS[edit])
    listed, dry, real = call(
        project,
        [
            ("list_backups", {}),
            ("restore_backup", {"backup_id": bid, "url": sqlite_url, "dry_run": True}),
            ("restore_backup", {"backup_id": bid, "url": sqlite_url, "confirm": "x"}),
        ],
    )
    assert [b["verified"] for b in listed["backups"] if b["backup_id"] == bid] == [False]
    for answer in (dry, real):
        assert answer["error"]["code"] == "E_CONFLICT", answer
