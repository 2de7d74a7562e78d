"""The rendering context: which dialect and server version an operation renders for.

Everything dialect-specific an operation needs (identifier quoting, compiling SQLAlchemy
constructs with literal values, version gates, the live table definition when known) lives here,
so operation modules only decide *what* to do and never concatenate user text into SQL.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.engine import Dialect as SADialect

from dmig.errors import InvalidInput

if TYPE_CHECKING:
    from dmig.spec.models import SpecOptions

DialectName = Literal["sqlite", "postgresql", "mysql"]
Flavor = Literal["mysql", "mariadb"]

# Identifier length limits (PostgreSQL truncates silently at 63 bytes; we refuse instead).
MAX_IDENT = {"postgresql": 63, "mysql": 64, "sqlite": 128}
DEFAULT_VERSIONS: dict[str, tuple[int, ...]] = {"postgresql": (16,), "mysql": (10, 11), "sqlite": (3, 45)}


def parse_version(text: str | None, dialect: DialectName) -> tuple[tuple[int, ...], Flavor | None]:
    """'15.4', 'PostgreSQL 15.4 on ...', '10.11.6-MariaDB', 'mariadb-10.11', 'mysql-8.0.36' -> ((..), flavor)."""
    flavor: Flavor | None = None
    if dialect == "mysql":
        low = (text or "").lower()
        flavor = "mariadb" if "maria" in low or not text else "mysql"
    if not text:
        return DEFAULT_VERSIONS[dialect], flavor
    m = re.search(r"(\d+)(?:\.(\d+))?(?:\.(\d+))?", text)
    if not m:
        raise InvalidInput(f"cannot read a server version from {text!r}; give e.g. 15.4, 10.11 or mysql-8.0.36")
    version = tuple(int(g) for g in m.groups() if g is not None)
    if dialect == "mysql" and "maria" not in text.lower():
        # MySQL versions are 5.x/8.x/9.x; MariaDB's are 10.x/11.x. A bare number decides.
        flavor = "mariadb" if version[0] >= 10 else "mysql"
    return version, flavor


def sa_dialect(name: DialectName, version: tuple[int, ...], flavor: Flavor | None) -> SADialect:
    """A compile-only dialect with the 'named' paramstyle: no %-doubling, binds render as :name."""
    if name == "postgresql":
        d: SADialect = postgresql.psycopg.dialect(paramstyle="named")
    elif name == "mysql":
        d = mysql.pymysql.dialect(paramstyle="named")
        d.is_mariadb = flavor == "mariadb"
    else:
        d = sqlite.pysqlite.dialect(paramstyle="named")
    d.server_version_info = version
    return d


@dataclass
class OpContext:
    """Where and how one operation renders. Build with ``OpContext.offline`` or ``dmig.spec.live``."""

    dialect: DialectName
    version: tuple[int, ...]
    flavor: Flavor | None
    options: SpecOptions
    index: int = 0
    default_schema: str | None = None
    tables: dict[tuple[str | None, str], sa.Table] = field(default_factory=dict)
    sqlite_schema_sql: dict[str, list[tuple[str, str, str]]] = field(default_factory=dict)
    _sa: SADialect | None = None

    @classmethod
    def offline(
        cls, dialect: DialectName, server_version: str | None, options: SpecOptions, index: int = 0
    ) -> OpContext:
        version, flavor = parse_version(server_version, dialect)
        return cls(dialect=dialect, version=version, flavor=flavor, options=options, index=index)

    def for_op(self, index: int) -> OpContext:
        return OpContext(
            dialect=self.dialect,
            version=self.version,
            flavor=self.flavor,
            options=self.options,
            index=index,
            default_schema=self.default_schema,
            tables=self.tables,
            sqlite_schema_sql=self.sqlite_schema_sql,
            _sa=self._sa,
        )

    # ------------------------------------------------------------------ dialect facts
    @property
    def sa(self) -> SADialect:
        if self._sa is None:
            self._sa = sa_dialect(self.dialect, self.version, self.flavor)
        return self._sa

    @property
    def pg(self) -> bool:
        return self.dialect == "postgresql"

    @property
    def my(self) -> bool:
        return self.dialect == "mysql"

    @property
    def lite(self) -> bool:
        return self.dialect == "sqlite"

    @property
    def mariadb(self) -> bool:
        return self.dialect == "mysql" and self.flavor == "mariadb"

    def at_least(self, *version: int) -> bool:
        return self.version >= version

    def mysql_at_least(self, mariadb: tuple[int, ...] | None, mysql_: tuple[int, ...] | None) -> bool:
        """Version gate that differs between MariaDB and Oracle MySQL (None = never)."""
        wanted = mariadb if self.mariadb else mysql_
        return wanted is not None and self.version >= wanted

    @property
    def version_text(self) -> str:
        name = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}.get(self.dialect) or (
            "MariaDB" if self.mariadb else "MySQL"
        )
        return f"{name} {'.'.join(map(str, self.version))}"

    # ------------------------------------------------------------------ quoting and compiling
    def q(self, name: str) -> str:
        """Quote one identifier with the dialect's preparer (always quoted: no reserved-word surprises)."""
        check_identifier(name, self.dialect)
        return self.sa.identifier_preparer.quote_identifier(name)

    def qt(self, table: str, schema: str | None = None) -> str:
        """Qualified, quoted table name."""
        return f"{self.q(schema)}.{self.q(table)}" if schema else self.q(table)

    def lit(self, value: str) -> str:
        """A string literal, escaped by the dialect's own literal processor."""
        return self.sql(sa.literal(value, sa.String()))

    def sql(self, construct: sa.ClauseElement) -> str:
        """Compile a Core construct for this dialect with literal values inlined (DDL needs them)."""
        return str(construct.compile(dialect=self.sa, compile_kwargs={"literal_binds": True})).strip()

    def sql_binds(self, construct: sa.ClauseElement) -> str:
        """Compile keeping :named bind parameters (key ranges); run it with ``sa.text(sql)`` and a dict."""
        return str(construct.compile(dialect=self.sa)).strip()

    def name(self, *parts: str, prefix: str = "dmig") -> str:
        """A generated object name (trigger, function, constraint) that fits the dialect's length limit."""
        raw = "_".join([prefix, *parts])
        cleaned = re.sub(r"[^A-Za-z0-9_]", "_", raw)
        limit = MAX_IDENT[self.dialect]
        if cleaned == raw and len(raw) <= limit:
            return raw
        digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
        return f"{cleaned[: limit - 9]}_{digest}"

    # ------------------------------------------------------------------ live schema
    def table(self, name: str, schema: str | None = None) -> sa.Table | None:
        return self.tables.get((schema, name))

    def key_columns(self, table: str, schema: str | None, given: list[str] | None) -> list[str]:
        if given:
            return list(given)
        live = self.table(table, schema)
        if live is not None and live.primary_key.columns:
            return [c.name for c in live.primary_key.columns]
        return ["id"]


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def check_identifier(name: str, dialect: DialectName | None = None) -> str:
    """Refuse identifiers no dialect can carry safely; everything else is quoted, never interpolated raw."""
    if not isinstance(name, str) or not name:
        raise InvalidInput("an identifier must be a non-empty string")
    if _CONTROL.search(name):
        raise InvalidInput(f"identifier {name!r} contains a control character", identifier=name)
    if name != name.strip():
        raise InvalidInput(f"identifier {name!r} starts or ends with whitespace", identifier=name)
    limit = MAX_IDENT[dialect] if dialect else min(MAX_IDENT.values())
    if len(name.encode()) > limit:
        raise InvalidInput(f"identifier {name!r} is longer than {limit} bytes", identifier=name)
    return name


def mysql_lock_wait_s(lock_ms: int) -> int:
    """MariaDB/MySQL lock waits are whole seconds: round up (500 ms -> 1 s), never to 0 (= do not wait at all)."""
    return max(1, -(-int(lock_ms) // 1000))


def statement_timeout_sql(dialect: str, flavor: str | None, stmt_ms: int) -> list[str]:
    """The session statement that bounds one statement's run time (Oracle MySQL: SELECTs only, it has no DDL one)."""
    if dialect == "postgresql":
        return [f"SET statement_timeout = {int(stmt_ms)}"]
    if dialect == "mysql":
        if flavor == "mariadb":
            return [f"SET SESSION max_statement_time = {int(stmt_ms) / 1000:g}"]
        return [f"SET SESSION max_execution_time = {int(stmt_ms)}"]
    return []  # SQLite has no statement timeout; its steps are bounded by busy_timeout and table size


def timeout_settings(dialect: str, flavor: str | None, lock_ms: int, stmt_ms: int) -> list[str]:
    """Lock and statement timeouts for one connection, in the database's own terms.

    MariaDB/MySQL get innodb_lock_wait_timeout as well: lock_wait_timeout bounds the metadata lock a DDL
    statement waits for, innodb_lock_wait_timeout the row locks a backfill batch waits for.
    """
    if dialect == "postgresql":
        return [f"SET lock_timeout = {int(lock_ms)}", *statement_timeout_sql(dialect, flavor, stmt_ms)]
    if dialect == "mysql":
        wait = mysql_lock_wait_s(lock_ms)
        return [
            f"SET SESSION lock_wait_timeout = {wait}",
            f"SET SESSION innodb_lock_wait_timeout = {wait}",
            *statement_timeout_sql(dialect, flavor, stmt_ms),
        ]
    return [f"PRAGMA busy_timeout = {int(lock_ms)}"]


def session_settings(ctx: OpContext) -> list[str]:
    """Statements the executor runs on each connection before a step: the effective lock/statement timeouts
    (the spec's, else the safe defaults: no step ever waits for a lock without a bound)."""
    opts = ctx.options
    flavor = ctx.flavor if ctx.my else None
    return timeout_settings(ctx.dialect, flavor, opts.effective_lock_timeout_ms, opts.effective_statement_timeout_ms)
