"""The server-side seal: an HMAC-SHA256 key that lives outside the project, so what dmig signed can be told
apart from what someone (an agent with file tools, a prompt injection) wrote into the project later.

A checksum over a file proves nothing when whoever edits the file can recompute it. Plans, backup
verification records, restore tokens and the copy's truncate token are therefore signed with a key
the agent's tools cannot read or write: they work inside the project, the key lives in the user's
data folder (``$DMIG_DATA_DIR``, else ``$XDG_DATA_HOME/dmig``, else ``~/.local/share/dmig``).
``CLAUDE_PLUGIN_DATA`` is deliberately not used: the human's ``dmig`` command line must find the same
key as the plugin's server, or a plan made through one could not be run through the other.

The key (32 random bytes, file mode 0600 in a 0700 folder) is created on first use by ``sign``;
``check`` never creates it (no key: nothing was ever signed, so nothing verifies). Creation is
atomic (written to a temporary file, then hard-linked into place), so two processes starting at
once agree on one key. Every MAC covers a purpose name and length-prefixed parts, so a seal made
for one purpose (or one split of fields) never verifies for another.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
from pathlib import Path

from sqlalchemy.engine import URL

from dmig.errors import CorruptFile, InvalidInput

KEY_FILE = "seal.key"
KEY_BYTES = 32
DIR_MODE = 0o700
FILE_MODE = 0o600

__all__ = ["check", "check_token", "data_dir", "database_identity", "ensure_outside", "key_path", "sign", "token"]


def data_dir() -> Path:
    """The user's dmig data folder (never inside the project unless the user points it there)."""
    if explicit := os.environ.get("DMIG_DATA_DIR"):
        return Path(explicit).expanduser()
    if xdg := os.environ.get("XDG_DATA_HOME"):
        return Path(xdg).expanduser() / "dmig"
    return Path.home() / ".local" / "share" / "dmig"


def key_path() -> Path:
    return data_dir() / KEY_FILE


def ensure_outside(project_dir: Path) -> None:
    """Refuse a key the project's own tools could read: it would let them forge every seal."""
    folder = data_dir().resolve()
    project = Path(project_dir).resolve()
    if folder == project or project in folder.parents:
        raise InvalidInput(
            "the dmig data folder (DMIG_DATA_DIR / XDG_DATA_HOME) is inside the project, where the agent's tools "
            "can read the seal key: point it outside the project",
            reason="seal_key_in_project",
        )


def _read(path: Path) -> bytes | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise CorruptFile(f"cannot read the dmig seal key ({exc.strerror})", reason="seal_key_unreadable") from None
    if len(data) != KEY_BYTES:
        raise CorruptFile(
            "the dmig seal key file is damaged (wrong size): remove it to start over (everything it sealed must "
            "then be planned or verified again)",
            reason="seal_key_damaged",
        )
    return data


def _create(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    tmp = path.with_name(f".{KEY_FILE}.{secrets.token_hex(6)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(secrets.token_bytes(KEY_BYTES))
            fh.flush()
            os.fsync(fh.fileno())
        with contextlib.suppress(FileExistsError):  # another process created the key first: theirs wins
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    data = _read(path)
    assert data is not None
    return data


def _key(create: bool) -> bytes | None:
    path = key_path()
    data = _read(path)
    if data is None and create:
        data = _create(path)
    return data


def _mac(key: bytes, purpose: str, parts: tuple[str, ...]) -> str:
    mac = hmac.new(key, digestmod=hashlib.sha256)
    for piece in (f"dmig-seal-v1:{purpose}", *parts):
        raw = piece.encode("utf-8")
        mac.update(len(raw).to_bytes(8, "big") + raw)
    return mac.hexdigest()


def project_identity(project_dir: str | os.PathLike[str]) -> str:
    """The project a seal is bound to: its real path, so two spellings (or a symlink) are one project."""
    return os.path.realpath(os.fspath(project_dir))


def sign(purpose: str, *parts: str) -> str:
    """The seal of ``parts`` for ``purpose`` (hex HMAC-SHA256); creates the key on first use."""
    key = _key(create=True)
    assert key is not None
    return _mac(key, purpose, parts)


def check(seal: str | None, purpose: str, *parts: str) -> bool:
    """True only if ``seal`` is what ``sign(purpose, *parts)`` gives with this user's key."""
    if not seal or not isinstance(seal, str):
        return False
    key = _key(create=False)
    if key is None:
        return False
    return hmac.compare_digest(_mac(key, purpose, parts), seal.strip().lower())


def token(prefix: str, purpose: str, *parts: str, length: int = 24) -> str:
    """A short confirmation token (``prefix-<hex>``) bound to ``parts``; only this key can make it."""
    return f"{prefix}-{sign(purpose, *parts)[:length]}"


def check_token(given: str | None, prefix: str, purpose: str, *parts: str, length: int = 24) -> bool:
    """True only if ``given`` is the token ``token(prefix, purpose, *parts)`` this key makes."""
    if not given or not isinstance(given, str):
        return False
    key = _key(create=False)
    if key is None:
        return False
    expected = f"{prefix}-{_mac(key, purpose, parts)[:length]}"
    return hmac.compare_digest(expected, given.strip())


def database_identity(url: URL) -> str:
    """Which database a URL names, for binding a token to it: never the user or password.

    SQLite: the resolved file path (two spellings of one file are one database). Servers: dialect,
    host (lower case), port and database name.
    """
    from dmig.db.urls import dialect_of

    dialect = dialect_of(url)
    if dialect == "sqlite":
        db = url.database or ""
        return f"sqlite|{Path(db).expanduser().resolve() if db and db != ':memory:' else db}"
    return f"{dialect}|{(url.host or '').lower()}|{url.port or ''}|{url.database or ''}"
