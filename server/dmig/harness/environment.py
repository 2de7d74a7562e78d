"""docs/00-meta/environment.json: the harness configuration, and how we guess it for a new project.

The test command is the one thing verify, resume and baseline all depend on, so detection
prefers what the project itself declares as its entry point (a Makefile ``test`` target, a
package.json script) over what its language would suggest.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dmig import safeload
from dmig.errors import CorruptFile, InvalidInput, NotFound
from dmig.harness import jsonio
from dmig.harness.paths import ProjectFiles

SCHEMA = "environment.schema.json"
LABEL = "docs/00-meta/environment.json"
DEFAULT_TIMEOUT_MS = 300_000
_MAKE_TEST = re.compile(r"^test\s*:(?!=)", re.MULTILINE)
_NPM_PLACEHOLDER = "no test specified"


@dataclass(frozen=True)
class Detection:
    project_type: str | None
    test_command: str | None
    reason: str


def _makefile_has_test(root: Path) -> bool:
    for name in ("GNUmakefile", "makefile", "Makefile"):
        path = root / name
        if path.is_file():
            try:
                text = safeload.read_text(path, "text", errors="replace")
            except (OSError, CorruptFile):  # a huge or special file is no Makefile we can use
                return False
            return bool(_MAKE_TEST.search(text)) or bool(re.search(r"^\.PHONY:.*\btest\b", text, re.MULTILINE))
    return False


def _npm_test_script(root: Path) -> bool:
    path = root / "package.json"
    if not path.is_file():
        return False
    try:
        scripts = safeload.load_json(path, "record").get("scripts") or {}
    except (OSError, json.JSONDecodeError, AttributeError, CorruptFile):
        return False
    test = scripts.get("test") if isinstance(scripts, dict) else None
    return isinstance(test, str) and bool(test.strip()) and _NPM_PLACEHOLDER not in test


def _python_project(root: Path) -> bool:
    if any((root / name).is_file() for name in ("pytest.ini", "setup.py", "setup.cfg", "tox.ini", "conftest.py")):
        return True
    if (root / "pyproject.toml").is_file():
        return True
    return (root / "tests").is_dir() and any((root / "tests").glob("test_*.py"))


def detect(root: Path) -> Detection:
    """Guess the project type and its test command from the files at the project root."""
    language = (
        "node"
        if (root / "package.json").is_file()
        else "rust"
        if (root / "Cargo.toml").is_file()
        else "go"
        if (root / "go.mod").is_file()
        else "python"
        if _python_project(root)
        else None
    )
    if _makefile_has_test(root):
        return Detection(language or "make", "make test", "the Makefile has a test target")
    if _npm_test_script(root):
        return Detection("node", "npm test", "package.json defines scripts.test")
    if (root / "Cargo.toml").is_file():
        return Detection("rust", "cargo test", "Cargo.toml found")
    if (root / "go.mod").is_file():
        return Detection("go", "go test ./...", "go.mod found")
    if _python_project(root):
        return Detection("python", "pytest", "a Python project (pyproject.toml, pytest.ini, setup.py or tests/)")
    return Detection(language, None, "no test entry point found; pass test_command")


def read(files: ProjectFiles) -> dict[str, Any] | None:
    doc = jsonio.load(files.environment, SCHEMA, label=LABEL)
    return doc.data if doc else None


def require(files: ProjectFiles) -> dict[str, Any]:
    """The configuration verify needs; a clear error (and no write anywhere) when it is absent."""
    env = read(files)
    if env is None:
        raise NotFound(
            f"{LABEL} is missing: the harness is not initialized here; run session_init (dmig session-init) first",
            path=LABEL,
        )
    return env


def test_command(env: dict[str, Any]) -> str:
    command = env.get("test_command")
    if not isinstance(command, str) or not command.strip():
        raise InvalidInput(
            f"{LABEL} has no test_command; set one with session_init --test-command '...' --update-environment",
            path=LABEL,
        )
    return command


def timeout_ms(env: dict[str, Any]) -> int:
    value = env.get("test_timeout_ms")
    return value if isinstance(value, int) and value > 0 else DEFAULT_TIMEOUT_MS
