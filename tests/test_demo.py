"""The README's first command must run the story end to end on SQLite alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_runs_the_story_through_the_mcp_server(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "dmig", "demo", "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "steps passed" in proc.stdout
    bus = (tmp_path / "app-project" / "docs" / "09-agents" / "bus" / "log.jsonl").read_text()
    assert "ready for review" in bus
