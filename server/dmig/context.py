"""What a service function may know about the call it serves.

The same service function runs under the MCP server and the CLI; ``RunContext`` carries the
front end's answers (project folder, read-only mode, how to report progress) so the service
itself stays independent of either.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dmig.errors import PathOutsideProject, ReadOnlyMode

ProgressFn = Callable[[float, float | None, str | None], None]


def _no_progress(done: float, total: float | None = None, message: str | None = None) -> None:
    return None


def default_project_dir() -> Path:
    """Claude Code sets CLAUDE_PROJECT_DIR; DMIG_PROJECT_DIR overrides; else the working folder."""
    raw = os.environ.get("DMIG_PROJECT_DIR") or os.environ.get("CLAUDE_PROJECT_DIR") or os.getcwd()
    return Path(raw).resolve()


@dataclass
class RunContext:
    project_dir: Path = field(default_factory=default_project_dir)
    read_only: bool = False
    progress: ProgressFn = _no_progress
    actor: str = "AG-DATAMIGRATION"
    front_end: str = "cli"

    def __post_init__(self) -> None:
        # Every file written under this folder is confined to it (dmig.fsutil resolves each target).
        from dmig import fsutil

        fsutil.register_root(self.project_dir)

    def project_path(self, value: str | os.PathLike[str] | None, *, default: str | None = None) -> Path:
        """Resolve a user-given path and refuse anything outside the project (symlinks included)."""
        raw = value if value not in (None, "") else default
        if raw is None:
            raise PathOutsideProject("no path given")
        from dmig.safeload import check_path

        check_path(raw)  # NUL bytes, names longer than the OS allows: E_INVALID_PATH, not a traceback
        path = Path(raw)
        if not path.is_absolute():
            path = self.project_dir / path
        resolved = path.resolve()
        root = self.project_dir.resolve()
        if resolved != root and root not in resolved.parents:
            raise PathOutsideProject(f"path {value!s} resolves outside the project folder {root}", path=str(value))
        return resolved

    def require_writable(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyMode(f"{what} changes state and is not allowed in read-only mode")
