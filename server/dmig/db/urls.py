"""Database URLs: driver normalisation, ``env:NAME`` references and masking.

Users paste URLs in many spellings (``postgres://``, ``mysql://``, ``mariadb://``, or with the
driver their application uses, ``postgresql+asyncpg://``); we pin the drivers we test (psycopg 3,
PyMySQL, sqlite3) and accept any spelling of the same database family. A URL may be a reference
to an environment variable (``env:SOURCE_DB_URL``, ``$SOURCE_DB_URL`` or ``${SOURCE_DB_URL}``) so
the password never passes through the chat; whatever the source, the password is remembered for
redaction before the URL is even parsed, so a URL that fails to parse cannot leak it either.
"""

from __future__ import annotations

import os
import re
from typing import Literal
from urllib.parse import unquote

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from dmig import envrefs
from dmig.db.urlpolicy import check_url
from dmig.errors import InvalidInput, NotFound
from dmig.redact import redact, remember_secret

Dialect = Literal["sqlite", "postgresql", "mysql"]

# Database family (the part before "+driver") -> our dialect and the one driver we run it with.
_FAMILIES: dict[str, tuple[Dialect, str]] = {
    "sqlite": ("sqlite", "sqlite"),
    "postgres": ("postgresql", "postgresql+psycopg"),
    "postgresql": ("postgresql", "postgresql+psycopg"),
    "pgsql": ("postgresql", "postgresql+psycopg"),
    "mysql": ("mysql", "mysql+pymysql"),
    "mariadb": ("mysql", "mysql+pymysql"),
}
_PINNED: dict[str, Dialect] = {driver: dialect for dialect, driver in _FAMILIES.values()}
_ENV_REF = re.compile(r"^(?:env:|\$)(?P<open>\{)?(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?(open)\})$")
_EXAMPLES = "expected e.g. postgresql://user@host:5432/db, mysql://user@host:3306/db or sqlite:///path/to/file.db"


def _expand_reference(raw: str) -> tuple[str, str | None]:
    m = _ENV_REF.match(raw.strip())
    if not m:
        return raw.strip(), None
    name = m["name"]
    envrefs.remember(name)  # the test command will not inherit it (dmig.harness.testenv)
    value = os.environ.get(name)
    if value is None or not value.strip():
        raise NotFound(
            f"environment variable {name} is not set (the URL was given as a reference to it); "
            f"export {name} in the environment that starts dmig",
            variable=name,
            reason="env_var_missing",
        )
    return value.strip(), name


def _split_userinfo(text: str) -> tuple[str, str, str | None, str]:
    """(scheme://, user, password or None, rest after the LAST '@') as typed, before any parser reads it.

    Splitting at the last '@' errs towards masking too much: an unencoded '@' in a password must
    not leave half of it looking like a host name.
    """
    head, at, tail = text.rpartition("@")
    if not at:
        return "", "", None, text
    scheme, sep, userinfo = head.partition("://")
    prefix, userinfo = (scheme + sep, userinfo) if sep else ("", head)
    user, colon, password = userinfo.partition(":")
    return prefix, user, (password if colon else None), tail


def _remember_raw_password(text: str) -> None:
    password = _split_userinfo(text)[2]
    if password:
        remember_secret(password)
        remember_secret(unquote(password))


def _masked(text: str) -> str:
    prefix, user, password, tail = _split_userinfo(text)
    return redact(text if password is None else f"{prefix}{user}:***@{tail}")


def _malformed(text: str, ref: str | None, why: str) -> InvalidInput:
    shown = f"the value of ${ref}" if ref else _masked(text)
    return InvalidInput(f"not a valid database URL ({why}): {shown}; {_EXAMPLES}", reason="malformed_url")


def _make(text: str, ref: str | None) -> URL:
    try:
        url = sa.make_url(text)
    except ArgumentError:
        raise _malformed(text, ref, "unrecognised format") from None
    except ValueError:  # SQLAlchemy's int() of a non-numeric port
        raise _malformed(text, ref, "the port is not a number") from None
    if url.host and "@" in url.host:
        raise _malformed(text, ref, "the user name or password contains an unencoded '@'; write it as %40")
    if url.port is not None and not 0 < url.port < 65536:
        raise _malformed(text, ref, f"port {url.port} is out of range")
    return url


def parse_url(raw: str) -> URL:
    """Resolve a URL or reference into a SQLAlchemy URL with a pinned, tested driver."""
    if not raw or not isinstance(raw, str) or not raw.strip():
        raise InvalidInput("a database URL is required", reason="missing_url")
    text, ref = _expand_reference(raw)
    _remember_raw_password(text)
    url = _make(text, ref)
    if url.password:
        remember_secret(str(url.password))
    for key in ("password", "sslpassword", "ssl_key_password"):
        if key in url.query:
            value = url.query[key]
            for item in value if isinstance(value, tuple) else (value,):
                remember_secret(str(item))
    family = url.drivername.split("+", 1)[0].lower()
    known = _FAMILIES.get(family)
    if known is None:
        raise InvalidInput(
            f"unsupported database scheme {url.drivername!r}: use sqlite, postgresql or mysql/mariadb",
            scheme=url.drivername,
            reason="unsupported_scheme",
        )
    if known[0] == "sqlite" and (url.host or url.username or url.password):
        raise _malformed(
            text, ref, "a SQLite URL names a file, not a host: use sqlite:///relative.db or sqlite:////abs"
        )
    url = url.set(drivername=known[1])
    check_url(url, known[0], display_url(url))
    return url


def dialect_of(url: URL) -> Dialect:
    """Our dialect for a URL returned by parse_url (any spelling of a supported family is accepted)."""
    pinned = _PINNED.get(url.drivername)
    if pinned is not None:
        return pinned
    family = _FAMILIES.get(url.drivername.split("+", 1)[0].lower())
    if family is None:
        raise InvalidInput(f"unsupported database scheme {url.drivername!r}", reason="unsupported_scheme")
    return family[0]


def display_url(url: URL | str) -> str:
    """A URL safe to show anywhere (password masked)."""
    if isinstance(url, str):
        return redact(url)
    return redact(url.render_as_string(hide_password=True))
