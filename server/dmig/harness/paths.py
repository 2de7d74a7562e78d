"""Where AgileFlow keeps its shared files inside a project.

Every harness path goes through ``rc.project_path`` so that a repository whose ``docs/``
folders are symlinks to somewhere else cannot make us read or write outside the project.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dmig.context import RunContext

STATUS = "docs/09-agents/status.json"
BUS = "docs/09-agents/bus/log.jsonl"
SESSION_STATE = "docs/09-agents/session-state.json"
ENVIRONMENT = "docs/00-meta/environment.json"


@dataclass(frozen=True)
class ProjectFiles:
    root: Path
    status: Path
    bus: Path
    session_state: Path
    environment: Path

    def relative(self, path: Path) -> str:
        """Paths in results are shown relative to the project (shorter, and no home folder leaks)."""
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return str(path)

    def lock_files(self) -> set[str]:
        """The inter-process lock siblings we create; transient, never part of a commit's content."""
        return {self.relative(p) + ".lock" for p in (self.status, self.bus, self.session_state, self.environment)}


def project_files(rc: RunContext) -> ProjectFiles:
    return ProjectFiles(
        root=rc.project_dir.resolve(),
        status=rc.project_path(STATUS),
        bus=rc.project_path(BUS),
        session_state=rc.project_path(SESSION_STATE),
        environment=rc.project_path(ENVIRONMENT),
    )
