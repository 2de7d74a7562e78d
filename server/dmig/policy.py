"""The project's database policy: which databases the agent may touch, and how.

An agent with a production URL must be held to what the project owner wrote down, not to what
the chat asks for. ``docs/00-meta/dmig-policy.yaml`` names the databases by alias, each with the
environment variable that holds its URL (the URL itself never lives in the file), whether it may
be written, and whether it is production (destructive steps then need a verified backup younger
than ``max_backup_age``). A URL that is not in the policy is refused unless ``allow_ad_hoc_urls``
is true. Without a policy file every URL is allowed (a developer's laptop); the file is the
opt-in to being strict, and once it exists anything wrong with it fails closed: unknown keys, bad
YAML, YAML anchors/aliases, more than ``MAX_POLICY_BYTES``, a symlink leaving the project, a
directory or device in its place, an unreadable file. Each of these answers ``E_CORRUPT_FILE``
within milliseconds, before any database is connected.

Enforcement has ONE entry point, :func:`admit`: every database URL passes through it before a
connection is opened, whatever its source (a tool argument, a migration spec's ``database:``, a
validation rules file, the target stored in a plan, the URL a backup manifest recorded). It maps
the URL to the policy entries it names (by alias, by ``env:`` variable name, and by comparing the
database it reaches with every entry's: host, port and database, password and options ignored, so
a literal production URL or an innocently named variable that now points at production is
treated as production), applies the strictest of them, and for destructive steps on production
demands a recent verified backup. ``registry.run_tool`` opens a :func:`gate` around each tool call
so the policy is read once per call and every admit in it sees the same file.

Example::

    version: 1
    allow_ad_hoc_urls: false
    databases:
      app:  {env: APP_DATABASE_URL, writable: true}
      prod: {env: PROD_DATABASE_URL, writable: false, production: true, max_backup_age: 24h}
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dmig import safeload
from dmig.errors import CorruptFile, DmigError, InvalidInput

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

POLICY_PATH = Path("docs") / "00-meta" / "dmig-policy.yaml"
# A real policy is a few hundred bytes; the limits only have to stop a hostile file from costing time.
KIND = safeload.KINDS["policy"]
MAX_POLICY_BYTES = KIND.max_bytes
MAX_POLICY_EVENTS = KIND.max_nodes
MAX_POLICY_DEPTH = KIND.max_depth
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")
_ALIAS = re.compile(r"^(?:db:)?(?P<alias>[A-Za-z][A-Za-z0-9_-]{0,62})$")
_ENV_REF = re.compile(r"^(?:env:|\$)\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}?$")
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306}

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
    model_config = ConfigDict(extra="forbid", strict=True)

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
    model_config = ConfigDict(extra="forbid", strict=True)

    version: Literal[1] = 1
    allow_ad_hoc_urls: bool = False
    databases: dict[str, DatabaseEntry] = Field(default_factory=dict)

    @field_validator("databases")
    @classmethod
    def _aliases(cls, v: dict[str, DatabaseEntry]) -> dict[str, DatabaseEntry]:
        bad = [name for name in v if not _ALIAS.match(name) or name.startswith("db:")]
        if bad:
            raise ValueError(f"database aliases must be letters, digits, _ or -, starting with a letter: {bad[:5]}")
        return v


class Resolved(BaseModel):
    """What a URL turned out to be under the policy (the strictest of the entries it names)."""

    value: str  # what the service should receive (an env: reference for aliases)
    aliases: list[str] = Field(default_factory=list)
    production: bool = False
    max_backup_age: str | None = None

    @property
    def alias(self) -> str | None:
        return self.aliases[0] if self.aliases else None


# ------------------------------------------------------------------------------------------- loading


def _corrupt(problem: str) -> CorruptFile:
    return CorruptFile(
        f"{POLICY_PATH} is not a valid policy ({problem}); every database tool is refused until it is fixed",
        path=str(POLICY_PATH),
        problem=problem[:300],
    )


def _read_bounded(root: Path, path: Path) -> bytes | None:
    """The policy file's bytes, or None when there is none; refuse anything that is not a small file here.

    The symlink check is the policy's own (it must not be pointed outside the project); opening,
    the file-type and size checks before reading and the bounded read are :mod:`dmig.safeload`'s.
    """
    try:
        os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise _corrupt(f"cannot stat it: {exc.strerror}") from None
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        raise _corrupt("it is a dangling or looping symlink") from None
    if real != root and root not in real.parents:
        raise _corrupt("it is a symlink to a file outside the project")
    try:
        return safeload.read_bytes(real, KIND, shown=str(POLICY_PATH), follow_symlinks=False)
    except FileNotFoundError:
        raise _corrupt("it disappeared while being read") from None
    except DmigError as exc:
        raise _refused(exc) from None


def _refused(exc: DmigError) -> CorruptFile:
    """A safeload refusal, answered the policy's fail-closed way (E_CORRUPT_FILE) with its details kept."""
    prefix = f"{POLICY_PATH} "
    problem = "it " + exc.message[len(prefix) :] if exc.message.startswith(prefix) else exc.message
    err = _corrupt(problem)
    err.details.update({k: v for k, v in exc.details.items() if k in ("limit", "size", "reason", "file_type")})
    return err


def _parse_yaml(text: str) -> Any:
    """YAML with a bounded number of nodes and depth, and no anchors or aliases (no billion laughs)."""
    try:
        return safeload.parse_yaml(text, KIND, shown=str(POLICY_PATH))
    except safeload.DocumentTooComplex as exc:
        raise _refused(exc) from None


def load(project_dir: Path) -> Policy | None:
    """The project's policy; None when there is no policy file; CorruptFile when it cannot be trusted."""
    root = Path(project_dir).resolve()
    raw = _read_bounded(root, root / POLICY_PATH)
    if raw is None:
        return None
    try:
        data = _parse_yaml(raw.decode("utf-8"))
        return Policy.model_validate({} if data is None else data)
    except CorruptFile:
        raise
    except UnicodeDecodeError:
        raise _corrupt("it is not UTF-8 text") from None
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise _corrupt(f"{where}: {first['msg']}") from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        raise _corrupt(str(exc).splitlines()[0] if str(exc) else type(exc).__name__) from None


# ------------------------------------------------------------------------------------------- identity


def identity(url: URL) -> tuple[str, str | None, int | str | None, str]:
    """Which database a URL reaches, whatever its spelling: (dialect, host, port, database).

    The password, user, driver and options other than host/port/database overrides do not change
    the database, so they are ignored; localhost spellings are one host; SQLite is its real path.
    """
    from dmig.db.urls import dialect_of

    dialect = dialect_of(url)
    query = dict(url.query)

    def q(key: str) -> str | None:
        value = query.get(key)
        return str(value[0] if isinstance(value, tuple) and value else value) if value else None

    if dialect == "sqlite":
        db = url.database or ""
        if db.startswith("file:"):
            db = db[5:].split("?", 1)[0]
        return ("sqlite", None, None, os.path.realpath(db) if db and db != ":memory:" else ":memory:")
    host = (q("host") or q("unix_socket") or url.host or "").lower().rstrip(".")
    if not host or host == "localhost" or host.startswith(("127.", "/")) or host in ("::1", "[::1]"):
        host = "loopback"
    port = q("port") or url.port or _DEFAULT_PORTS[dialect]
    database = q("dbname") or q("database") or url.database or (url.username or "" if dialect == "postgresql" else "")
    return (dialect, host, int(port) if str(port).isdigit() else str(port), database)


def _identity_of(text: str) -> tuple[Any, ...] | None:
    from dmig.db.urls import parse_url

    try:
        return identity(parse_url(text))
    except DmigError:
        return None


def _matching_entries(policy: Policy, reached: tuple[Any, ...] | None) -> list[str]:
    """Every entry whose environment variable currently names the database ``reached``."""
    if reached is None:
        return []
    names = []
    for name, entry in policy.databases.items():
        value = os.environ.get(entry.env)
        if value and _identity_of(value) == reached:
            names.append(name)
    return names


# ------------------------------------------------------------------------------------------- decisions


def resolve(policy: Policy | None, raw: str, access: Access, *, field: str) -> Resolved:
    """Map an alias to its env reference and enforce the policy for one URL (see the module docstring)."""
    if policy is None:
        return Resolved(value=raw)
    text = raw.strip()
    value = raw
    names: list[str] = []
    m_alias = _ALIAS.match(text)
    m_env = _ENV_REF.match(text)
    if m_alias and m_alias["alias"] in policy.databases:
        alias = m_alias["alias"]
        names.append(alias)
        value = f"env:{policy.databases[alias].env}"
        reached = _identity_of(value)
    elif m_env is not None:
        names += [n for n, e in policy.databases.items() if e.env == m_env["name"]]
        reached = _identity_of(text)
    elif "://" in text:
        reached = _identity_of(text)
    elif m_alias:
        raise InvalidInput(
            f"{field}: no database named {text!r} in {POLICY_PATH}", field=field, known=sorted(policy.databases)
        )
    else:
        reached = None
    names += [n for n in _matching_entries(policy, reached) if n not in names]
    if not names:
        if policy.allow_ad_hoc_urls:
            return Resolved(value=raw)
        raise PolicyDenied(
            f"{field}: this database is not in {POLICY_PATH} and the policy does not allow ad-hoc URLs; "
            "use one of the aliases",
            field=field,
            known=sorted(policy.databases),
        )
    entries = [policy.databases[n] for n in names]
    if access == "write":
        locked = [n for n, e in zip(names, entries, strict=True) if not e.writable]
        if locked:
            raise PolicyDenied(f"{field}: database {locked[0]!r} is read-only by policy", field=field, alias=locked[0])
    prod = [e for e in entries if e.production]
    age = min((e.max_backup_age for e in prod), key=parse_duration) if prod else None
    return Resolved(value=value, aliases=names, production=bool(prod), max_backup_age=age)


def require_recent_verified_backup(project_dir: Path, resolved: Resolved) -> None:
    """Production databases: a destructive step needs a verified backup younger than max_backup_age."""
    age = resolved.max_backup_age or "24h"
    try:
        from dmig.backup.service import latest_verified_backup
    except ImportError:
        raise PolicyDenied(
            f"database {resolved.alias!r} is production: destructive steps need a verified backup, and this "
            "installation has no backup module",
            alias=resolved.alias,
        ) from None
    backup = latest_verified_backup(Path(project_dir), resolved.value, max_age=parse_duration(age))
    if backup is None:
        raise PolicyDenied(
            f"database {resolved.alias!r} is production: run backup and verify_backup first "
            f"(a verified backup younger than {age} is required)",
            alias=resolved.alias,
            max_backup_age=age,
        )


# ------------------------------------------------------------------------------------------- the gate


@dataclass
class Gate:
    """The policy of one tool call: read once when the call starts, consulted by every admit in it.

    ``admitted``: the databases admitted (or created by dmig) so far in this call, for the
    connect-time backstop :func:`check_connect`.
    """

    project_dir: Path
    policy: Policy | None
    admitted: set[tuple[Any, ...]] = field(default_factory=set)

    def remember(self, value: str) -> None:
        reached = _identity_of(value)
        if reached is not None:
            self.admitted.add(reached)


_GATE: contextvars.ContextVar[Gate | None] = contextvars.ContextVar("dmig_policy_gate", default=None)


@contextlib.contextmanager
def gate(project_dir: Path) -> Iterator[Gate]:
    """Read the policy (a corrupt one raises here, before anything else runs) for the calls inside."""
    current = Gate(Path(project_dir), load(project_dir))
    token = _GATE.set(current)
    try:
        yield current
    finally:
        _GATE.reset(token)


def admit(raw: str, access: Access, *, field: str, destructive: bool = False, project_dir: Path | None = None) -> str:
    """THE enforcement point: call it with every database URL, whatever its source, before connecting.

    Returns the value to connect with (an alias becomes its ``env:`` reference). Inside a tool call
    the call's gate decides; outside one (a library caller) the policy of ``project_dir`` does, and
    with neither there is no project and so no policy.
    """
    current = _GATE.get()
    if current is None:
        if project_dir is None:
            return raw
        current = Gate(Path(project_dir), load(project_dir))
    resolved = resolve(current.policy, raw, access, field=field)
    if destructive and access == "write" and resolved.production:
        require_recent_verified_backup(current.project_dir, resolved)
    if current.policy is not None:
        current.remember(resolved.value)
    return resolved.value


def check_connect(url: URL) -> None:
    """The backstop under :func:`admit`, called by ``dmig.db.engine.create`` for every engine.

    Inside a tool call under a policy, a database the policy names can only be reached once
    :func:`admit` let it in during this call, and any other database only if ad-hoc URLs are
    allowed or dmig created it in this call (:func:`created_here`: verify_backup's scratch). A URL
    source that forgot to call admit is thus refused here, before the connection, instead of
    silently bypassing the policy. Outside a tool call (library use; the copy's worker threads,
    which only reach what the call admitted) it is a no-op.
    """
    current = _GATE.get()
    if current is None or current.policy is None:
        return
    try:
        reached = identity(url)
    except DmigError:
        return  # not a URL we could connect with either; the engine reports it
    if reached in current.admitted:
        return
    named = _matching_entries(current.policy, reached)
    if named:
        raise PolicyDenied(
            f"a connection to database {named[0]!r} was not admitted by {POLICY_PATH} in this call; refused",
            alias=named[0],
            reason="not_admitted",
        )
    if current.policy.allow_ad_hoc_urls:
        return
    raise PolicyDenied(
        f"a connection to a database that is not in {POLICY_PATH} was attempted and the policy does not allow "
        "ad-hoc URLs; refused",
        reason="not_admitted",
    )


def created_here(url: URL) -> None:
    """A throw-away database dmig itself just created for this call (a scratch): connections to it are admitted."""
    current = _GATE.get()
    if current is not None:
        with contextlib.suppress(DmigError):
            current.admitted.add(identity(url))
