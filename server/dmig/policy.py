"""The project's database policy: which databases the agent may touch, and how.

An agent with a production URL must be held to what the project owner wrote down, not to what
the chat asks for. ``docs/00-meta/dmig-policy.yaml`` names the databases by alias, each with the
environment variable that holds its URL (the URL itself never lives in the file), whether it may
be written, and whether it is production (destructive steps then need a verified backup younger
than ``max_backup_age``). A URL that is not in the policy is refused unless ``allow_ad_hoc_urls``
is true. Without a policy file every URL is allowed (a developer's laptop); the file is the
opt-in to being strict, and once it exists unknown keys or a malformed file fail closed.

Example::

    version: 1
    allow_ad_hoc_urls: false
    databases:
      app:  {env: APP_DATABASE_URL, writable: true}
      prod: {env: PROD_DATABASE_URL, writable: false, production: true, max_backup_age: 24h}
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dmig.errors import CorruptFile, DmigError, InvalidInput

POLICY_PATH = Path("docs") / "00-meta" / "dmig-policy.yaml"
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_ALIAS = re.compile(r"^(?:db:)?(?P<alias>[A-Za-z][A-Za-z0-9_-]{0,62})$")
_ENV_REF = re.compile(r"^(?:env:|\$)\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}?$")

Access = Literal["read", "write"]


class PolicyDenied(DmigError):
    code = "E_POLICY"


def parse_duration(text: str) -> timedelta:
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        raise ValueError(f"not a duration like 24h, 7d or 30m: {text!r}")
    days, hours, minutes = (int(g or 0) for g in m.groups())
    return timedelta(days=days, hours=hours, minutes=minutes)


class DatabaseEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    env: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable holding the URL.")
    writable: bool = False
    production: bool = False
    max_backup_age: str = "24h"
    description: str | None = None

    @field_validator("max_backup_age")
    @classmethod
    def _duration(cls, v: str) -> str:
        parse_duration(v)
        return v


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1] = 1
    allow_ad_hoc_urls: bool = False
    databases: dict[str, DatabaseEntry] = Field(default_factory=dict)


class Resolved(BaseModel):
    """What a URL argument turned out to be under the policy."""

    value: str  # what the service should receive (an env: reference for aliases)
    alias: str | None = None
    entry: DatabaseEntry | None = None


def load(project_dir: Path) -> Policy | None:
    path = project_dir / POLICY_PATH
    if not path.exists():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return Policy.model_validate(data)
    except (yaml.YAMLError, ValidationError, UnicodeDecodeError) as exc:
        raise CorruptFile(
            f"{POLICY_PATH} is not a valid policy; every database tool is refused until it is fixed",
            path=str(POLICY_PATH),
            problem=str(exc).splitlines()[0][:300],
        ) from None


def _normalized(url_text: str) -> str | None:
    """A URL without its password, for comparing a literal URL with a policy entry's."""
    from dmig.db.urls import parse_url

    try:
        return parse_url(url_text).set(password=None).render_as_string(hide_password=False)
    except DmigError:
        return None


def resolve(policy: Policy | None, raw: str, access: Access, *, field: str) -> Resolved:
    """Map an alias to its env reference and enforce the policy for one URL argument."""
    if policy is None:
        return Resolved(value=raw)
    text = raw.strip()
    entry_name: str | None = None
    m_alias = _ALIAS.match(text)
    if m_alias and m_alias["alias"] in policy.databases:
        entry_name = m_alias["alias"]
    elif (m_env := _ENV_REF.match(text)) is not None:
        entry_name = next((n for n, e in policy.databases.items() if e.env == m_env["name"]), None)
    elif "://" in text:
        wanted = _normalized(text)
        for name, entry in policy.databases.items():
            value = os.environ.get(entry.env)
            if wanted and value and _normalized(value) == wanted:
                entry_name = name
                break
    elif m_alias:
        raise InvalidInput(
            f"{field}: no database named {text!r} in {POLICY_PATH}",
            field=field,
            known=sorted(policy.databases),
        )
    if entry_name is None:
        if policy.allow_ad_hoc_urls:
            return Resolved(value=raw)
        raise PolicyDenied(
            f"{field}: this database is not in {POLICY_PATH} and the policy does not allow ad-hoc URLs; "
            "use one of the aliases",
            field=field,
            known=sorted(policy.databases),
        )
    entry = policy.databases[entry_name]
    if access == "write" and not entry.writable:
        raise PolicyDenied(f"{field}: database {entry_name!r} is read-only by policy", alias=entry_name)
    return Resolved(value=f"env:{entry.env}", alias=entry_name, entry=entry)


def require_recent_verified_backup(rc: object, resolved: Resolved) -> None:
    """Production databases: a destructive step needs a verified backup younger than max_backup_age."""
    assert resolved.entry is not None
    max_age = parse_duration(resolved.entry.max_backup_age)
    try:
        from dmig.backup.service import latest_verified_backup
    except ImportError:
        raise PolicyDenied(
            f"database {resolved.alias!r} is production: destructive steps need a verified backup, and this "
            "installation has no backup module",
            alias=resolved.alias,
        ) from None
    backup = latest_verified_backup(rc.project_dir, resolved.value, max_age=max_age)  # type: ignore[attr-defined]
    if backup is None:
        raise PolicyDenied(
            f"database {resolved.alias!r} is production: run backup and verify_backup first "
            f"(a verified backup younger than {resolved.entry.max_backup_age} is required)",
            alias=resolved.alias,
            max_backup_age=resolved.entry.max_backup_age,
        )
