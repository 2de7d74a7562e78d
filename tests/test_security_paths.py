"""Writes never leave the project through a symlinked folder, file or lock file."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmig import fsutil
from dmig.errors import PathOutsideProject


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.parametrize("rel", ["docs/00-meta/dmig-audit.jsonl", "docs/migrations/reports/r.md",
                                 "docs/09-agents/status.json", "docs/09-agents/bus/log.jsonl"])  # fmt: skip
@pytest.mark.parametrize("how", ["folder", "file", "lock"])
def test_symlink_out_of_the_project_is_refused(tmp_path: Path, rel: str, how: str) -> None:
    project, outside = tmp_path / "project", tmp_path / "outside"
    project.mkdir()
    outside.mkdir()
    (outside / "keep.txt").write_text("keep")
    fsutil.register_root(project)
    target = project / rel
    target.parent.parent.mkdir(parents=True, exist_ok=True)
    if how == "folder":
        target.parent.symlink_to(outside, target_is_directory=True)
    else:
        target.parent.mkdir(exist_ok=True)
        link = target if how == "file" else Path(str(target) + ".lock")
        link.symlink_to(outside / "keep.txt")
    before = _snapshot(outside)
    with pytest.raises(PathOutsideProject):
        if rel.endswith(".jsonl"):
            fsutil.append_line(target, '{"a": 1}')
        else:
            with fsutil.locked(target):
                fsutil.atomic_write_text(target, "{}\n")
    assert _snapshot(outside) == before
