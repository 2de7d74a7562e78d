"""The size limit of every tool input, as shared annotated types (one place for every number).

Every string, list and object an agent can send to a tool has an upper bound in the input model,
so that an oversized value is refused by ``dmig.bounds`` in milliseconds instead of reaching
policy resolution, redaction, a parser or the database (issue 12.9: a 10 MB story id or SQL text
made the server stop answering). The numbers are generous for real use and small next to the
2-million-character budget ``dmig.bounds`` puts on each argument; the MCP transport refuses a
request line over 4 MiB before any of this runs (``dmig.mcp_stdio``).

Use the type that says what the value is (``Url``, ``Identifier``, ``FreeText``...) rather than a
bare ``str``; tests/test_security_limits.py fails on any string, list or object in a tool's input
schema that has no bound.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from pydantic import Field, WithJsonSchema
from typing_extensions import TypeAliasType

T = TypeVar("T")

# --- strings (characters)
WORD_MAX = 64  # one keyword: a status, a message type, a server version, a separator
LABEL_MAX = 200  # a story id, an agent id, a pattern name
NAME_MAX = 256  # a database object name or glob pattern; PostgreSQL stops at 63 bytes, MySQL at 64 characters
TOKEN_MAX = 256  # a checksum, a confirm token, a backup / migration / run id
COMMAND_MAX = 1_000  # a shell command line (test command, init script)
TEXT_MAX = 2_000  # a reason, a commit message, an insight
MESSAGE_MAX = 4_000  # a bus message (dmig.harness.bus.MAX_TEXT is this)
URL_MAX = 4_096  # a database URL or env:VARNAME (browsers and proxies stop near 8 KiB)
PATH_MAX = 4_096  # a file path inside the project (Linux PATH_MAX)
QUERY_MAX = 10_000  # one hand-written probe SELECT
VALUE_MAX = 65_536  # one value written into or compared with a row (a constant, a since bound)
SQL_MAX = 1_000_000  # SQL text to lint (dmig.lint.sql_parse's pre-scan limit is this), and any text in an inline spec

# --- collections (items / properties)
FEW_MAX = 32  # short lists an agent writes out: report parts, probes
ITEMS_MAX = 1_000  # lists of things written by hand: transforms, filters, files, conventions
NAMES_MAX = 10_000  # lists of database object names (inspect reports at most 10,000 tables)
KEYS_MAX = 1_000  # properties of one free-form JSON object

Word = Annotated[str, Field(max_length=WORD_MAX)]
Label = Annotated[str, Field(max_length=LABEL_MAX)]
StoryId = Annotated[str, Field(max_length=LABEL_MAX)]
Identifier = Annotated[str, Field(max_length=NAME_MAX)]
TypeName = Annotated[str, Field(max_length=NAME_MAX)]  # a SQL type: integer, varchar(80), decimal(12,2)
Token = Annotated[str, Field(max_length=TOKEN_MAX)]
Command = Annotated[str, Field(max_length=COMMAND_MAX)]
FreeText = Annotated[str, Field(max_length=TEXT_MAX)]
Message = Annotated[str, Field(max_length=MESSAGE_MAX)]
Url = Annotated[str, Field(max_length=URL_MAX)]
Path = Annotated[str, Field(max_length=PATH_MAX)]
SqlQuery = Annotated[str, Field(max_length=QUERY_MAX)]
SqlText = Annotated[str, Field(max_length=SQL_MAX)]
ValueText = Annotated[str, Field(max_length=VALUE_MAX)]
JsonText = Annotated[str, Field(max_length=SQL_MAX)]

Few = Annotated[list[T], Field(max_length=FEW_MAX)]
Items = Annotated[list[T], Field(max_length=ITEMS_MAX)]
Names = Annotated[list[Identifier], Field(max_length=NAMES_MAX)]
ByName = Annotated[dict[Identifier, T], Field(max_length=NAMES_MAX)]

# A value a row is compared with or filled from.
Scalar = ValueText | int | float | bool | None

# Free-form JSON (inline specs and rules, thresholds, expression trees, filter values): every string,
# list and object in it bounded, at any depth; dmig.bounds caps the depth (32) and the total size.
# The validators are recursive; the schema clients see is not: Claude Code's MCP client has failed to
# list a server's tools whose schema holds a $ref cycle (anthropics/claude-code#77106, #76881), so the
# published schema is one flat hint carrying the marker below, and tests/test_security_limits.py
# generates over-limit JSON at depth for every field that carries it.
BOUNDED_JSON = "x-dmig-bounded-json"
_JSON_HINT = {
    "description": (
        f"Any JSON value, bounded by the server at every depth: strings up to {SQL_MAX:,} characters, "
        f"lists up to {ITEMS_MAX:,} items, objects up to {KEYS_MAX:,} keys of up to {NAME_MAX} characters, "
        "nesting up to 32."
    ),
    BOUNDED_JSON: True,
}
JsonTree = TypeAliasType(
    "JsonTree",
    "JsonText | int | float | bool | Annotated[list[JsonTree], Field(max_length=ITEMS_MAX)] | JsonObjectTree | None",
)
JsonObjectTree = TypeAliasType("JsonObjectTree", Annotated[dict[Identifier, JsonTree], Field(max_length=KEYS_MAX)])
JsonData = Annotated[JsonTree, WithJsonSchema(_JSON_HINT)]
JsonObject = Annotated[
    JsonObjectTree,
    WithJsonSchema(
        {
            "type": "object",
            "maxProperties": KEYS_MAX,
            "propertyNames": {"maxLength": NAME_MAX},
            "additionalProperties": _JSON_HINT,
            BOUNDED_JSON: True,
        }
    ),
]
