"""Database URLs: driver normalisation, ``env:NAME`` references and masking.

Users paste URLs in many spellings (``postgres://``, ``mysql://``, ``mariadb://``); we pin the
drivers we test (psycopg 3, PyMySQL, sqlite3). A URL may be a reference to an environment
variable (``env:SOURCE_DB_URL`` or ``$SOURCE_DB_URL``) so the password never passes through the
chat; whatever the source, the password is remembered for redaction the moment we see it.
"""

from __future__ import annotations

import os
import re
from typing import Literal

import sqlalchemy as sa
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from dmig.errors import InvalidInput, NotFound
from dmig.redact import redact, remember_secret

Dialect = Literal["sqlite", "postgresql", "mysql"]

_DRIVERS: dict[str, tuple[Dialect, str]] = {
    "sqlite": ("sqlite", "sqlite"),
    "sqlite+pysqlite": ("sqlite", "sqlite"),
    "postgres": ("postgresql", "postgresql+psycopg"),
    "postgresql": ("postgresql", "postgresql+psycopg"),
    "postgresql+psycopg": ("postgresql", "postgresql+psycopg"),
    "postgresql+psycopg2": ("postgresql", "postgresql+psycopg"),
    "mysql": ("mysql", "mysql+pymysql"),
    "mariadb": ("mysql", "mysql+pymysql"),
    "mysql+pymysql": ("mysql", "mysql+pymysql"),
    "mariadb+pymysql": ("mysql", "mysql+pymysql"),
}
_ENV_REF = re.compile(r"^(?:env:|\$)\{?(?P<name>[A-Za-z_][A-Za-z0-9_]*)\}?$")


def _expand_reference(raw: str) -> tuple[str, str | None]:
    m = _ENV_REF.match(raw.strip())
    if not m:
        return raw.strip(), None
    name = m["name"]
    value = os.environ.get(name)
    if not value:
        raise NotFound(
            f"environment variable {name} is not set (the URL was given as a reference to it)", variable=name
        )
    return value.strip(), name


def parse_url(raw: str) -> URL:
    """Resolve a URL or reference into a SQLAlchemy URL with a pinned, tested driver."""
    if not raw or not isinstance(raw, str):
        raise InvalidInput("a database URL is required")
    text, ref = _expand_reference(raw)
    try:
        url = sa.make_url(text)
    except ArgumentError:
        shown = f"the value of ${ref}" if ref else redact(text)
        raise InvalidInput(
            f"not a database URL: {shown}; expected e.g. postgresql://user@host/db, "
            "mysql://user@host/db or sqlite:///path.db"
        ) from None
    if url.password:
        remember_secret(str(url.password))
    for key in ("password", "sslpassword"):
        if key in url.query:
            remember_secret(str(url.query[key]))
    known = _DRIVERS.get(url.drivername)
    if known is None:
        raise InvalidInput(
            f"unsupported database scheme {url.drivername!r}: use sqlite, postgresql or mysql/mariadb",
            scheme=url.drivername,
        )
    return url.set(drivername=known[1])


def dialect_of(url: URL) -> Dialect:
    return _DRIVERS[url.drivername][0]


def display_url(url: URL | str) -> str:
    """A URL safe to show anywhere (password masked)."""
    if isinstance(url, str):
        return redact(url)
    return redact(url.render_as_string(hide_password=True))
