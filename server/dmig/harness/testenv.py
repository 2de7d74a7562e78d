"""The environment the test command gets: the server's own, minus everything that holds or names a credential.

The server runs with the database URLs (and their passwords) its ``env:`` references point at. A test
command that prints ``env`` must not hand them back through ``output_summary``, so it does not inherit:

* variables whose name looks like a credential (PASS, SECRET, TOKEN, KEY, AUTH, DATABASE_URL, ...);
* variables whose value is a URL with a password, or a database URL at all (postgres://, mysql://, ...);
* every variable an ``env:`` reference names: the ones this process expanded (``dmig.envrefs``, filled
  by ``dmig.db.urls``) and the ones named in the project's specs, plans, policy and audit log (the
  YAML/JSON files under ``docs/``, bounded), so a CLI ``dmig verify`` in a fresh process drops them too.

The user can let named variables through when approving the command (``dmig approve-test-command
--pass-env NAME``: a suite that needs its database URL). Every value held back, and every value let
through that would have been held back, is registered with the redactor, so output that still carries
one (read from a file, say) is masked.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

from dmig import envrefs, safeload
from dmig.errors import DmigError
from dmig.redact import remember_secret

# Names of variables that hold, or name, credentials: the test command does not inherit them.
_SECRET_NAME = re.compile(r"PASS|SECRET|TOKEN|KEY|CREDENTIAL|AUTH|DATABASE_URL|DB_URL|PRIVATE", re.I)
_URL_WITH_PASSWORD = re.compile(r"://[^/@\s]*:[^@\s]*@")
_DATABASE_URL = re.compile(r"^\s*(?:postgres|postgresql|pgsql|mysql|mariadb|sqlite)(?:\+\w+)?://", re.I)
# `env:NAME` anywhere (spec values, the policy's `env: NAME`, JSON strings in the audit log), and a value
# that is exactly `$NAME` / `${NAME}` (the other spelling dmig.db.urls accepts).
_ENV_REFERENCE = re.compile(r"\benv:[ \t]*[\"']?([A-Za-z_][A-Za-z0-9_]*)")
_DOLLAR_VALUE = re.compile(r"""(?:^|[:\s"'\[,])\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?["']?[ \t]*(?=$|[,}\]\r\n])""", re.M)
SCAN_FOLDER = "docs"
SCAN_SUFFIXES = (".yaml", ".yml", ".json", ".jsonl")
SCAN_MAX_FILES = 5000
SCAN_MAX_TOTAL_BYTES = 32 << 20


def _read_bounded(path: str) -> str:
    """The end of ``path`` (an append-only log's newest lines), at most the ``env_scan`` kind's bytes; never
    through a symlink, and nothing from a FIFO, device or unreadable file (it names no variable)."""
    budget = safeload.KINDS["env_scan"].max_bytes
    try:
        with safeload.open_regular(path, "env_scan", follow_symlinks=False, check_size=False) as (fh, size):
            fh.seek(max(0, size - budget))
            return fh.read(budget).decode("utf-8", errors="replace")
    except (DmigError, OSError):
        return ""


def referenced_in_project(project_dir: Path) -> set[str]:
    """Variable names that ``env:`` (or ``$NAME``) references in the project's YAML/JSON files under docs/ name."""
    found: set[str] = set()
    top = Path(project_dir) / SCAN_FOLDER
    if top.is_symlink() or not top.is_dir():
        return found
    files = total = 0
    for folder, dirs, names in os.walk(top, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".git"))
        for name in sorted(names):
            if not name.endswith(SCAN_SUFFIXES):
                continue
            files += 1
            if files > SCAN_MAX_FILES or total > SCAN_MAX_TOTAL_BYTES:
                return found
            text = _read_bounded(os.path.join(folder, name))
            total += len(text)
            found.update(_ENV_REFERENCE.findall(text))
            found.update(_DOLLAR_VALUE.findall(text))
    return found


def _held_back(name: str, value: str, referenced: set[str] | frozenset[str]) -> bool:
    return (
        name in referenced
        or bool(_SECRET_NAME.search(name))
        or bool(_URL_WITH_PASSWORD.search(value))
        or bool(_DATABASE_URL.match(value))
    )


def clean_env(
    environ: dict[str, str] | None = None,
    *,
    project_dir: Path | None = None,
    pass_env: Iterable[str] = (),
) -> dict[str, str]:
    """``environ`` (default: this process's) without the variables above; ``pass_env`` names stay."""
    environ = dict(os.environ if environ is None else environ)
    referenced = set(envrefs.names())
    if project_dir is not None:
        referenced |= referenced_in_project(project_dir)
    allowed = set(pass_env)
    kept: dict[str, str] = {}
    for name, value in environ.items():
        if _held_back(name, value, referenced):
            remember_secret(value)
            if name not in allowed:
                continue
        kept[name] = value
    return kept
