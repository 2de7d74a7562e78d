"""Which driver options a database URL may carry: an allow-list per driver, everything else refused.

A URL is input the agent controls, and the drivers treat the part after ``?`` as trusted
configuration: PyMySQL runs ``init_command`` (``DROP TABLE`` from a "read-only" inspect), reads
``read_default_file`` (its first line came back in the error), turns on ``local_infile`` (a
hostile server then reads any local file); libpq's ``options=-c ...`` sets any server setting
(``default_transaction_read_only=off``), ``service``/``passfile`` read other files,
``sslkeylogfile`` writes one, ``replication`` opens a replication session; SQLite's ``file:``
URIs with ``mode=rwc`` create databases anywhere. So nothing passes unless it is on the list
below, each value is checked for its shape, and the error names the option and what is allowed.

SQLite URLs take no options at all: they are plain file paths (or ``:memory:``). When dmig needs
a read-only SQLite connection it builds the ``file:...?mode=ro`` URI itself (``dmig.db.engine``).

Paths in TLS options must name an existing regular file (a directory for ``sslcrldir`` and
``ssl_capath``): never a FIFO or device that could block the connect, and never a value with
control characters. They are not confined to the project (certificates live in ``~/.postgresql``
or ``/etc/ssl``); a driver reading a wrong file only fails the TLS handshake, it never echoes it.
Unix sockets are allowed (``host=/run/postgresql``, ``unix_socket=/run/mysqld/mysqld.sock``:
the usual way to reach a local server with peer authentication) when the path is absolute and is
a directory (PostgreSQL) or a socket (MySQL/MariaDB).
"""

from __future__ import annotations

import re
import stat
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import URL

from dmig.errors import InvalidInput
from dmig.redact import remember_secret

Check = Callable[[str], str | None]  # value -> None when fine, else why not

_WORD = re.compile(r"^[A-Za-z0-9_.+-]{1,64}$")
_HOSTNAME = re.compile(r"^[A-Za-z0-9_.:\[\]-]{1,253}$")


def _choice(*values: str) -> Check:
    def check(v: str) -> str | None:
        return None if v in values else f"must be one of {', '.join(values)}"

    return check


def _int_range(lo: int, hi: int) -> Check:
    def check(v: str) -> str | None:
        return None if v.isdigit() and lo <= int(v) <= hi else f"must be a whole number from {lo} to {hi}"

    return check


def _word(v: str) -> str | None:
    return None if _WORD.match(v) else "must be a short name of letters, digits and _.+-"


def _text(v: str) -> str | None:
    return None if len(v) <= 64 and v.isprintable() else "must be printable text of at most 64 characters"


def _bool(v: str) -> str | None:
    return None if v.lower() in ("true", "false", "1", "0", "yes", "no", "on", "off") else "must be true or false"


def _file(kind: str) -> Check:
    """An existing regular file (kind 'file') or directory (kind 'dir'), never a device or FIFO."""

    def check(v: str) -> str | None:
        if not v or not v.isprintable() or len(v) > 4096:
            return f"must be the path of an existing {kind}"
        try:
            mode = Path(v).expanduser().stat().st_mode
        except (OSError, ValueError):
            return f"must be the path of an existing {kind}"
        ok = stat.S_ISDIR(mode) if kind == "directory" else stat.S_ISREG(mode)
        return None if ok else f"must be the path of an existing {kind}"

    return check


def _pg_root_cert(v: str) -> str | None:
    return None if v == "system" else _file("file")(v)


def _socket(v: str) -> str | None:
    try:
        ok = v.startswith("/") and v.isprintable() and stat.S_ISSOCK(Path(v).stat().st_mode)
    except (OSError, ValueError):
        ok = False
    return None if ok else "must be the absolute path of an existing Unix socket"


def _pg_host(v: str) -> str | None:
    """host=... in the query: a host name (optionally :port) or a Unix socket directory."""
    if v.startswith("/"):
        return _file("directory")(v)
    return None if _HOSTNAME.match(v) else "must be a host name, host:port or an absolute socket directory"


def _secret(v: str) -> str | None:
    remember_secret(v)
    return None


_PG_SSLMODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_TLS_VERSIONS = ("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")

# libpq keywords (psycopg 3 passes the query straight to libpq). Deliberately absent: options,
# service, servicefile, passfile, sslkeylogfile, replication, dbname/user/password (they belong in
# the URL itself), hostaddr, requirepeer, krbsrvname, gsslib, client_encoding.
POSTGRESQL: dict[str, Check] = {
    "sslmode": _choice(*_PG_SSLMODES),
    "sslrootcert": _pg_root_cert,
    "sslcert": _file("file"),
    "sslkey": _file("file"),
    "sslcrl": _file("file"),
    "sslcrldir": _file("directory"),
    "sslpassword": _secret,
    "sslsni": _choice("0", "1"),
    "ssl_min_protocol_version": _choice(*_TLS_VERSIONS),
    "ssl_max_protocol_version": _choice(*_TLS_VERSIONS),
    "channel_binding": _choice("disable", "prefer", "require"),
    "gssencmode": _choice("disable", "prefer", "require"),
    "require_auth": _word,
    "connect_timeout": _int_range(1, 300),
    "application_name": _text,
    "target_session_attrs": _choice("any", "read-write", "read-only", "primary", "standby", "prefer-standby"),
    "load_balance_hosts": _choice("disable", "random"),
    "keepalives": _choice("0", "1"),
    "keepalives_idle": _int_range(1, 86400),
    "keepalives_interval": _int_range(1, 86400),
    "keepalives_count": _int_range(1, 1000),
    "tcp_user_timeout": _int_range(0, 86_400_000),
    "host": _pg_host,  # SQLAlchemy's multi-host form, or a socket directory
}
_PG_MULTI = {"host"}

# PyMySQL keywords, as SQLAlchemy hands them over. Deliberately absent: init_command,
# read_default_file, read_default_group, local_infile, client_flag, autocommit, conv, cursorclass,
# sql_mode, defer_connect, auth_plugin_map, server_public_key, bind_address, max_allowed_packet,
# compress, use_unicode, binary_prefix, and the ssl_verify_* flags (PyMySQL reads "false" as true).
MYSQL: dict[str, Check] = {
    "charset": _word,
    "collation": _word,
    "connect_timeout": _int_range(1, 300),
    "read_timeout": _int_range(1, 86400),
    "write_timeout": _int_range(1, 86400),
    "ssl_ca": _file("file"),
    "ssl_cert": _file("file"),
    "ssl_key": _file("file"),
    "ssl_capath": _file("directory"),
    "ssl_cipher": _text,
    "ssl_check_hostname": _bool,
    "ssl_key_password": _secret,
    "unix_socket": _socket,
}

ALLOWED: dict[str, dict[str, Check]] = {"postgresql": POSTGRESQL, "mysql": MYSQL, "sqlite": {}}
_MULTI: dict[str, set[str]] = {"postgresql": _PG_MULTI}
_WHY_SQLITE = "SQLite URLs take no options: give a plain file path, sqlite:///relative.db or sqlite:////absolute.db"


def _refuse(dialect: str, message: str, option: str | None, shown: str) -> InvalidInput:
    allowed = sorted(ALLOWED[dialect])
    details: dict[str, object] = {"reason": "invalid connection option", "url": shown, "allowed": allowed}
    if option is not None:
        details["option"] = option
    return InvalidInput(message, **details)


def check_url(url: URL, dialect: str, shown: str) -> None:
    """Refuse any query option not on the driver's allow-list, any malformed value, any SQLite URI.

    ``shown`` is the URL as it may be displayed (password masked), for the error.
    """
    allowed = ALLOWED[dialect]
    for key, value in url.query.items():
        values = value if isinstance(value, tuple) else (value,)
        if key not in allowed:
            if dialect == "sqlite":
                message = f"connection option {key!r} is not allowed in {shown}: {_WHY_SQLITE}"
                raise _refuse(dialect, message, key, shown)
            raise _refuse(
                dialect,
                f"connection option {key!r} is not allowed in {shown} (it could run SQL, read or write files, "
                f"or change how the server treats this session); allowed for {dialect}: {', '.join(sorted(allowed))}",
                key,
                shown,
            )
        if len(values) > 1 and key not in _MULTI.get(dialect, set()):
            raise _refuse(dialect, f"connection option {key!r} is given more than once in {shown}", key, shown)
        for item in values:
            why = allowed[key](str(item))
            if why is not None:
                raise _refuse(dialect, f"connection option {key!r} in {shown} {why}", key, shown)
    if dialect == "postgresql" and url.host and url.host.startswith("/"):
        why = _pg_host(url.host)
        if why is not None:
            raise _refuse(dialect, f"the host of {shown} {why}", "host", shown)
    if dialect == "sqlite":
        check_sqlite_database(url.database, shown)


def check_sqlite_database(database: str | None, shown: str) -> None:
    """A plain path or :memory:; ``file:`` URIs (which can ask for mode=rwc, vfs=...) are ours alone."""
    db = database or ""
    if db.lower().startswith("file:"):
        message = f"SQLite URI filenames (file:...) are not accepted in {shown}: {_WHY_SQLITE}"
        raise _refuse("sqlite", message, None, shown)
    if "\x00" in db or (db and not db.isprintable()):
        raise _refuse("sqlite", f"the SQLite path in {shown} contains control characters", None, shown)
