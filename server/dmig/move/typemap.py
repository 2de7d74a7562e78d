"""Type mapping between SQLite, PostgreSQL and MySQL/MariaDB for ``copy``.

A reflected source column is first reduced to a dialect-neutral :class:`Kind`; the target
column type is then chosen from the kind. Same-dialect copies keep the reflected type exactly
(PostgreSQL arrays, intervals, native enums; MySQL unsigned integers, SET, YEAR, BIT ...; types
SQLAlchemy does not know, such as geometry, INET6 or PostgreSQL's point and circle, as the catalog's
own type text, see :class:`NativeType`; MySQL character sets and collations per column), so only
cross-dialect copies go through the table below. The full table with the reasons lives in
``docs/copy-type-mapping.md``; this is the authoritative summary the code implements:

==========================  =========================  ==========================  ======================
kind (source examples)      PostgreSQL target          MySQL/MariaDB target        SQLite target
==========================  =========================  ==========================  ======================
bool (boolean, tinyint(1))  BOOLEAN                    BOOL (tinyint(1))           BOOLEAN (0/1)
int 8/16 bit                SMALLINT                   TINYINT/SMALLINT            INTEGER
int 24/32 bit               INTEGER                    MEDIUMINT/INT               INTEGER
int 64 bit, all SQLite int  BIGINT                     BIGINT                      INTEGER
unsigned tinyint/smallint   SMALLINT/INTEGER           same unsigned type          INTEGER
unsigned mediumint/int      INTEGER/BIGINT             same unsigned type          INTEGER
unsigned bigint             NUMERIC(20,0)              BIGINT UNSIGNED             TEXT (decimal digits)
decimal(p,s)                NUMERIC(p,s)               DECIMAL(p,s) (p<=65)        NUMERIC(p,s) p<=15, else TEXT
decimal (unbounded)         NUMERIC                    DECIMAL(65,30)              TEXT
float 32 / 64               REAL / DOUBLE PRECISION    FLOAT / DOUBLE              REAL
varchar(n) / char(n)        VARCHAR(n) / CHAR(n)       VARCHAR(n) / CHAR(n) [1]    VARCHAR(n) / CHAR(n)
text (any size)             TEXT                       LONGTEXT (VARCHAR(255) if   TEXT
                                                       part of a key or index) [1]
enum(values)                TEXT + CHECK (IN values)   ENUM(values) (native) [1]   TEXT + CHECK (IN values)
bits (MySQL BIT(n),         BOOLEAN if n = 1 (as       BIT(n)                      INTEGER (TEXT of the
  PostgreSQL bit(n<=64))      pgloader), else BIT(n)                                 bits, for n = 64)
json / jsonb                JSONB                      JSON                        TEXT
blob / bytea / varbinary    BYTEA                      LONGBLOB (VARBINARY(255)    BLOB
                                                       if part of a key/index)
date                        DATE                       DATE                        DATE (ISO text)
time(p)                     TIME(p)                    TIME(p) [2]                 TIME (ISO text)
timetz(p) (PostgreSQL)      TIMETZ(p)                  VARCHAR(40): text with      TEXT: text with offset
                                                       offset (12:00:00+02:00)     (12:00:00+02:00)
naive timestamp/datetime(p) TIMESTAMP(p)               DATETIME(p) [2]             DATETIME (ISO text)
aware timestamptz / MySQL   TIMESTAMPTZ(p)             DATETIME(p) holding UTC     DATETIME (ISO text, UTC)
  TIMESTAMP(p)
uuid                        UUID                       CHAR(36)                    CHAR(36)
geometry (MariaDB POINT,    TEXT: WKT (ST_AsText),     same type (native binary,   TEXT: WKT, SRID not kept
  LINESTRING, GEOMETRY ...)   SRID not kept              SRID kept)
other (interval, arrays,    TEXT (PostgreSQL's text    LONGTEXT [1]                TEXT
  inet, SET, YEAR, varbit,    form of the value: point
  point, circle, INET6 ...)   (1,2), circle <(0,0),1>)
==========================  =========================  ==========================  ======================

[1] Text columns created on MariaDB from another dialect use ``utf8mb4_nopad_bin`` (see
    ``MYSQL_TEXT_COLLATION``): they compare as PostgreSQL and SQLite do, so 'a', 'A', 'ä' and 'b '
    stay distinct keys.
[2] The precision is the source's: MySQL's default is 0, PostgreSQL's and SQLite's (none) are 6.

Values, not only types, are mapped (see ``dmig.move.values``): MySQL zero dates
(``0000-00-00``) copied to another dialect become NULL and are counted per column as warnings (a
NOT NULL column's row is rejected, naming the zero date); MySQL to MySQL keeps them as they are;
NaN/Infinity doubles are rejected per row where the target cannot hold them (MariaDB: none of
them, SQLite: NaN); PostgreSQL values Python cannot hold (time 24:00:00, infinity, BC, year
10000+) travel as PostgreSQL's text; a key 0 stays 0 on MariaDB; sessions run in UTC so
``timestamptz`` and MySQL ``TIMESTAMP`` values are converted to and from UTC; ``tinyint(1)``
values other than 0/1 become true; a MySQL ``TIME`` outside 00:00..24:00 is rejected when the
target is not MySQL. Auto-increment / identity / serial primary keys become an identity column
(PostgreSQL ``GENERATED BY DEFAULT AS IDENTITY``), ``AUTO_INCREMENT`` (MySQL) or a rowid alias
``INTEGER PRIMARY KEY`` (SQLite), and the counters are reset to max(id)+1 after the load.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from dmig.db import dialects
from dmig.errors import InvalidInput

# SQLite stores NUMERIC values as REAL (15 significant digits); beyond that TEXT keeps them exact.
SQLITE_EXACT_DIGITS = 15
MYSQL_MAX_DECIMAL = (65, 30)
MYSQL_VARCHAR_MAX = 16383  # utf8mb4 characters in a VARCHAR
MYSQL_KEY_TEXT_LENGTH = 255  # unbounded text/blob columns that are part of a key or an index


@dataclass(frozen=True)
class Kind:
    """The dialect-neutral nature of a column: enough to choose a target type and convert values."""

    name: str  # bool int decimal float string text enum json bytes date time datetime uuid other
    bits: int | None = None
    unsigned: bool = False
    precision: int | None = None
    scale: int | None = None
    length: int | None = None
    fixed: bool = False
    tz: bool = False
    values: tuple[str, ...] = field(default=())
    native: str | None = None  # the catalog's type text of a type SQLAlchemy does not know (see NativeType)
    spatial: bool = False  # MySQL/MariaDB geometry: WKT text across dialects (``ST_AsText``)

    def describe(self) -> str:
        if self.name == "int":
            return f"{'unsigned ' if self.unsigned else ''}int{self.bits}"
        if self.name == "decimal":
            return f"decimal({self.precision},{self.scale})" if self.precision else "decimal"
        if self.name == "string":
            return f"{'char' if self.fixed else 'varchar'}({self.length})"
        if self.name == "datetime":
            return "timestamptz" if self.tz else "timestamp"
        if self.name == "bits":
            return f"bit({self.length})"
        if self.name == "time" and self.tz:
            return "timetz"
        if self.name == "other" and self.native:
            return self.native
        return self.name


class NativeType(sa.types.UserDefinedType):  # type: ignore[type-arg]
    """A column type SQLAlchemy reflects as ``NullType`` (MariaDB geometry and INET6, PostgreSQL point, box,
    circle, ...), rendered in DDL as the text the source's own catalog gives for it (``COLUMN_TYPE``,
    ``format_type``), so that a copy within the dialect creates the very same type instead of failing
    with "Can't generate DDL for NullType()"."""

    cache_ok = True

    def __init__(self, text: str) -> None:
        self.text = text

    def get_col_spec(self, **_kw: object) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"NativeType({self.text!r})"


TEXT = Kind("text")
_INT_BITS = {
    "TINYINT": 8,
    "SMALLINT": 16,
    "MEDIUMINT": 24,
    "INTEGER": 32,
    "INT": 32,
    "BIGINT": 64,
    "SERIAL": 32,
    "BIGSERIAL": 64,
    "SMALLSERIAL": 16,
}


def _int_bits(t: sa.types.TypeEngine) -> int:
    for cls in type(t).__mro__:
        bits = _INT_BITS.get(cls.__name__.upper())
        if bits:
            return bits
    return 64  # SQLite INTEGER is 64-bit; generic Integer too.


MAX_BITS = 64  # bit strings up to this width are numbers (MySQL BIT's limit); longer ones travel as text


def _fsp(t: sa.types.TypeEngine, dialect: str) -> int | None:
    """Fractional-second digits of a time or timestamp type; None where the dialect has no such limit.

    MySQL's default is 0 (``DATETIME`` = ``DATETIME(0)``), PostgreSQL's 6 (kept as None: its default)."""
    if dialect == "mysql":
        return getattr(t, "fsp", None) or 0
    if dialect == "postgresql":
        return getattr(t, "precision", None)
    return None


def kind_of(t: sa.types.TypeEngine, dialect: str, *, json_column: bool = False) -> Kind:
    """Reduce a reflected column type to its kind (the first half of every cross-dialect mapping)."""
    if json_column or isinstance(t, sa.JSON):
        return Kind("json")
    if isinstance(t, NativeType):
        base = t.text.split("(")[0].strip().lower()
        return Kind("other", native=t.text, spatial=dialect == "mysql" and base in dialects.MYSQL_SPATIAL_TYPES)
    if isinstance(t, sa.Boolean):
        return Kind("bool")
    if dialect == "mysql" and isinstance(t, mysql.TINYINT) and getattr(t, "display_width", None) == 1:
        return Kind("bool")
    if isinstance(t, mysql.BIT):
        return Kind("bits", length=t.length or 1)
    if isinstance(t, postgresql.BIT) and not t.varying and (t.length or 1) <= MAX_BITS:
        return Kind("bits", length=t.length or 1)
    if isinstance(t, mysql.YEAR | mysql.SET | postgresql.BIT):
        return Kind("other")
    if isinstance(t, sa.Integer):
        # SQLite stores every integer in up to 64 bits whatever the declared name (INTEGER PRIMARY KEY is
        # the 64-bit rowid), so its columns map to 64-bit targets, as pgloader maps them.
        bits = 64 if dialect == "sqlite" else _int_bits(t)
        return Kind("int", bits=bits, unsigned=bool(getattr(t, "unsigned", False)))
    if isinstance(t, sa.Float):
        bits = 32 if type(t).__name__.upper() in ("REAL", "FLOAT") and dialect != "sqlite" else 64
        return Kind("float", bits=bits)
    if isinstance(t, sa.Numeric):
        return Kind("decimal", precision=t.precision, scale=t.scale if t.precision else None)
    if isinstance(t, sa.Enum):
        return Kind("enum", values=tuple(str(v) for v in t.enums))
    if isinstance(t, sa.Uuid) or type(t).__name__ == "UUID":
        return Kind("uuid")
    if isinstance(t, sa.String):
        if isinstance(t, sa.Text | sa.UnicodeText) or not t.length or type(t).__name__.endswith("TEXT"):
            return TEXT
        return Kind("string", length=t.length, fixed=isinstance(t, sa.CHAR | sa.NCHAR))
    if isinstance(t, sa.types._Binary):
        return Kind("bytes", length=getattr(t, "length", None))
    if isinstance(t, sa.DateTime):
        tz = bool(getattr(t, "timezone", False)) or (dialect == "mysql" and isinstance(t, mysql.TIMESTAMP))
        return Kind("datetime", tz=tz, precision=_fsp(t, dialect))
    if isinstance(t, sa.Date):
        return Kind("date")
    if isinstance(t, sa.Time):
        return Kind("time", tz=bool(getattr(t, "timezone", False)), precision=_fsp(t, dialect))
    return Kind("other")


def target_type(kind: Kind, dialect: str, *, in_key: bool = False) -> sa.types.TypeEngine:
    """The target column type for a kind (the second half of the mapping; see the module table)."""
    return _BUILDERS[dialect](kind, in_key)


def _pg_type(k: Kind, in_key: bool) -> sa.types.TypeEngine:
    n = k.name
    if n == "bool":
        return sa.Boolean()
    if n == "int":
        bits = k.bits or 64
        if k.unsigned:
            if bits >= 64:
                return sa.Numeric(20, 0)
            bits = {8: 16, 16: 32, 24: 32, 32: 64}[bits]
        return sa.SmallInteger() if bits <= 16 else sa.Integer() if bits <= 32 else sa.BigInteger()
    if n == "decimal":
        return sa.Numeric(k.precision, k.scale) if k.precision else sa.Numeric()
    if n == "float":
        return postgresql.REAL() if k.bits == 32 else postgresql.DOUBLE_PRECISION()
    if n == "string":
        return sa.CHAR(k.length) if k.fixed else sa.VARCHAR(k.length)
    if n in ("text", "enum", "other"):
        return sa.Text()
    if n == "json":
        return postgresql.JSONB()
    if n == "bytes":
        return postgresql.BYTEA()
    if n == "datetime":
        return postgresql.TIMESTAMP(timezone=k.tz, precision=k.precision)
    if n == "date":
        return sa.Date()
    if n == "time":
        return postgresql.TIME(timezone=k.tz, precision=k.precision)
    if n == "uuid":
        return postgresql.UUID(as_uuid=False)
    if n == "bits":  # BIT(1) is MySQL's boolean (pgloader maps it so); wider ones keep their width
        return sa.Boolean() if k.length == 1 else postgresql.BIT(k.length)
    raise AssertionError(n)


# Text columns created on MariaDB from another dialect compare like the source does: byte for byte.
# PostgreSQL (deterministic collations) and SQLite (BINARY) tell 'a', 'A', 'ä' and 'b ' from 'b'; MariaDB's
# default utf8mb4_general_ci does not, so a key or unique index would reject those rows as duplicates and
# WHERE/GROUP BY would merge them. Every text column, not only keys: equality must mean what it meant.
# NO PAD: utf8mb4_bin still ignores trailing spaces ('b' = 'b '), utf8mb4_nopad_bin does not (MariaDB 10.2+).
MYSQL_TEXT_COLLATION = "utf8mb4_nopad_bin"


def _mysql_type(k: Kind, in_key: bool) -> sa.types.TypeEngine:
    n = k.name
    if n == "time" and k.tz:  # no zoned time of day on MariaDB: the text with its offset (12:00:00+02:00)
        return mysql.VARCHAR(40, collation=MYSQL_TEXT_COLLATION)
    if n == "bool":
        return mysql.TINYINT(display_width=1)
    if n == "int":
        cls = {8: mysql.TINYINT, 16: mysql.SMALLINT, 24: mysql.MEDIUMINT, 32: mysql.INTEGER}.get(k.bits or 64)
        return (cls or mysql.BIGINT)(unsigned=k.unsigned)
    if n == "decimal":
        if not k.precision or k.precision > MYSQL_MAX_DECIMAL[0]:
            return mysql.DECIMAL(*MYSQL_MAX_DECIMAL)
        return mysql.DECIMAL(k.precision, min(k.scale or 0, MYSQL_MAX_DECIMAL[1]))
    if n == "float":
        return mysql.FLOAT() if k.bits == 32 else mysql.DOUBLE()
    coll = MYSQL_TEXT_COLLATION
    if n == "string" and k.length and k.length <= MYSQL_VARCHAR_MAX:
        if k.fixed and k.length <= 255:
            return mysql.CHAR(k.length, collation=coll)
        return mysql.VARCHAR(k.length, collation=coll)
    if n in ("string", "text", "other"):
        return mysql.VARCHAR(MYSQL_KEY_TEXT_LENGTH, collation=coll) if in_key else mysql.LONGTEXT(collation=coll)
    if n == "enum":
        return mysql.ENUM(*k.values, collation=coll) if k.values else mysql.LONGTEXT(collation=coll)
    if n == "json":
        return mysql.JSON()
    if n == "bytes":
        if in_key:
            return mysql.VARBINARY(k.length if k.length and k.length <= 3072 else MYSQL_KEY_TEXT_LENGTH)
        return mysql.LONGBLOB()
    if n == "datetime":
        return mysql.DATETIME(fsp=6 if k.precision is None else k.precision)
    if n == "date":
        return mysql.DATE()
    if n == "time":
        return mysql.TIME(fsp=6 if k.precision is None else k.precision)
    if n == "uuid":
        return mysql.CHAR(36)
    if n == "bits":
        return mysql.BIT(k.length)
    raise AssertionError(n)


def _sqlite_type(k: Kind, in_key: bool) -> sa.types.TypeEngine:
    n = k.name
    if n == "bool":
        return sqlite.BOOLEAN()
    if n == "int":
        # SQLite integers are signed 64-bit: unsigned 64-bit values are kept exactly as decimal text.
        return sqlite.TEXT() if k.unsigned and (k.bits or 64) >= 64 else sqlite.INTEGER()
    if n == "decimal":
        if k.precision and k.precision <= SQLITE_EXACT_DIGITS:
            return sqlite.NUMERIC(k.precision, k.scale)
        return sqlite.TEXT()
    if n == "float":
        return sqlite.REAL()
    if n == "string":
        return sqlite.CHAR(k.length) if k.fixed else sqlite.VARCHAR(k.length)
    if n in ("text", "json", "other", "enum"):
        return sqlite.TEXT()
    if n == "bytes":
        return sqlite.BLOB()
    if n == "datetime":
        return sqlite.DATETIME()
    if n == "date":
        return sqlite.DATE()
    if n == "time":
        return sqlite.TEXT() if k.tz else sqlite.TIME()  # timetz: the text with its offset
    if n == "uuid":
        return sqlite.CHAR(36)
    if n == "bits":  # the number the bits stand for; 64 of them may exceed SQLite's signed 64-bit INTEGER
        return sqlite.TEXT() if (k.length or 1) >= MAX_BITS else sqlite.INTEGER()
    raise AssertionError(n)


_BUILDERS = {"postgresql": _pg_type, "mysql": _mysql_type, "sqlite": _sqlite_type}


def sqlite_decimal_as_text(kind: Kind) -> bool:
    """SQLite stores a decimal as TEXT when REAL could not hold it exactly (see the table)."""
    return kind.name == "decimal" and not (kind.precision and kind.precision <= SQLITE_EXACT_DIGITS)


_TYPE_NAME = re.compile(r"^\s*(?P<base>[a-z_]+)\s*(?:\(\s*(?P<a>\d+)\s*(?:,\s*(?P<b>\d+)\s*)?\))?\s*$")
_NAMED_KINDS: dict[str, Kind] = {
    "text": TEXT,
    "string": TEXT,
    "boolean": Kind("bool"),
    "bool": Kind("bool"),
    "smallint": Kind("int", bits=16),
    "integer": Kind("int", bits=32),
    "int": Kind("int", bits=32),
    "bigint": Kind("int", bits=64),
    "float": Kind("float", bits=64),
    "double": Kind("float", bits=64),
    "real": Kind("float", bits=32),
    "date": Kind("date"),
    "time": Kind("time"),
    "datetime": Kind("datetime"),
    "timestamp": Kind("datetime"),
    "timestamptz": Kind("datetime", tz=True),
    "json": Kind("json"),
    "bytes": Kind("bytes"),
    "blob": Kind("bytes"),
    "uuid": Kind("uuid"),
}
TYPE_NAMES_HELP = (
    "text, varchar(n), char(n), boolean, smallint, integer, bigint, real, float, decimal(p,s), "
    "date, time, datetime, timestamptz, json, bytes, uuid"
)


def parse_type_name(name: str) -> Kind:
    """A user-facing type name (in cast/constant/expr transforms) to its kind."""
    m = _TYPE_NAME.match(name.lower()) if isinstance(name, str) else None
    if not m:
        raise InvalidInput(f"unknown type {name!r}; use one of: {TYPE_NAMES_HELP}", type=name)
    base, a, b = m["base"], m["a"], m["b"]
    if base in ("varchar", "char") and a:
        return Kind("string", length=int(a), fixed=base == "char")
    if base in ("decimal", "numeric"):
        if a and int(a) < int(b or 0):
            raise InvalidInput(f"decimal scale exceeds precision in {name!r}")
        return Kind("decimal", precision=int(a), scale=int(b or 0)) if a else Kind("decimal")
    if base in _NAMED_KINDS and not a:
        return _NAMED_KINDS[base]
    raise InvalidInput(f"unknown type {name!r}; use one of: {TYPE_NAMES_HELP}", type=name)


def with_length(kind: Kind, length: int | None) -> Kind:
    return replace(kind, length=length) if kind.name == "string" else kind
