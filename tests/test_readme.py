"""The README is the user's map: its tool table and test command must match the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

from dmig.registry import all_tools

ROOT = Path(__file__).resolve().parents[1]


def _readme_tools() -> set[str]:
    text = (ROOT / "README.md").read_text()
    table = text.split("<!-- tools-table")[1].split("<!-- /tools-table -->")[0]
    return set(re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.M))


def test_readme_lists_exactly_the_server_tools() -> None:
    listed = _readme_tools()
    served = {t.name for t in all_tools()}
    assert listed == served, f"missing from README: {sorted(served - listed)}; not on server: {sorted(listed - served)}"


def test_readme_kinds_match_annotations() -> None:
    text = (ROOT / "README.md").read_text()
    for spec in all_tools():
        m = re.search(rf"^\| `{spec.name}` \| ([a-z-]+) \|", text, flags=re.M)
        assert m, spec.name
        kind = "read-only" if spec.read_only else ("destructive" if spec.destructive else "writes")
        assert m.group(1) == kind, f"{spec.name}: README says {m.group(1)}, server says {kind}"


def test_ci_and_environment_call_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make test   #" in readme
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test\b", ci, flags=re.M)
    env = json.loads((ROOT / "docs" / "00-meta" / "environment.json").read_text())
    assert env["test_command"] == "make test"
