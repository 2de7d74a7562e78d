"""inspect: the shape, size and row counts of a database, read-only (the first step of every plan)."""

from __future__ import annotations

import warnings

from pydantic import Field, field_validator

from dmig.context import RunContext
from dmig.db.introspect import INCLUDE_ALL, InspectOptions, SchemaReport, TableInfo, inspect_url, normalise_include
from dmig.fields import Few, Identifier, Names, Url, Word
from dmig.models import Input
from dmig.registry import ToolSpec

with warnings.catch_warnings():  # a field named "schema" shadows pydantic's deprecated BaseModel.schema()
    warnings.filterwarnings("ignore", message=r'Field name "schema"', category=UserWarning)

    class InspectInput(Input):
        url: Url = Field(
            description="Database URL (postgresql://user@host:5432/db, mysql://user@host/db, sqlite:///file.db) "
            "or env:VARNAME naming an environment variable that holds it (keeps the password out of the chat).",
        )
        schema: Identifier | None = Field(
            None,
            description="PostgreSQL schema or MySQL database to inspect; default: the connection's current one "
            "(public / the URL's database; SQLite: main).",
        )
        tables: Names | None = Field(
            None,
            description="Only these tables: exact names or glob patterns (orders_*, user?); each must match at "
            "least one table. Default: every table.",
        )
        exact_counts: bool | None = Field(
            None,
            description="true: count(*) every table; false: catalog estimates only; default: exact for tables the "
            "catalog puts at up to 1,000,000 rows and 256 MiB, estimated above (each table says which).",
        )
        max_tables: int = Field(200, ge=1, le=10_000, description="At most this many tables (by name); see truncated.")
        include: Few[Word] | None = Field(
            None,
            description=f"Parts to report (default all): {', '.join(INCLUDE_ALL)}. 'keys' = primary key and "
            "unique constraints.",
        )
        timeout_seconds: float = Field(
            30.0, gt=0, le=3600, description="Bound on every statement; a count that runs past it falls back."
        )

        @field_validator("include")
        @classmethod
        def _known_parts(cls, value: list[str] | None) -> list[str] | None:
            return None if value is None else normalise_include(value)


def inspect_tool(inp: InspectInput, rc: RunContext) -> SchemaReport:
    options = InspectOptions(
        schema=inp.schema,
        tables=inp.tables,
        exact_counts=inp.exact_counts,
        max_tables=inp.max_tables,
        include=inp.include,
        timeout_s=inp.timeout_seconds,
    )
    return inspect_url(inp.url, options, progress=rc.progress)


# --- CLI rendering ---------------------------------------------------------------------------------


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _table_header(t: TableInfo) -> str:
    parts = [t.name]
    if t.row_count_exact is not None:
        rows = "?" if t.row_count is None else f"{t.row_count:,}"
        parts.append(f"{rows} rows ({'exact' if t.row_count_exact else 'estimate'})")
    if t.size_bytes is not None:
        parts.append(_size(t.size_bytes))
    return " · ".join(parts)


def _column_lines(t: TableInfo) -> list[str]:
    if not t.columns:
        return []
    pk = set(t.primary_key or [])
    rows = [("column", "type", "generic", "null", "default / notes")]
    for c in t.columns:
        notes = [x for x in (c.default, "PK" if c.name in pk else None) if x]
        if c.identity:
            notes.append(f"identity {c.identity}")
        elif c.autoincrement:
            notes.append("auto")
        if c.generated:
            notes.append(f"generated {c.generated}")
        rows.append((c.name, c.type, c.generic_type, "yes" if c.nullable else "no", ", ".join(notes)))
    widths = [min(32, max(len(r[i]) for r in rows)) for i in range(4)]
    return [
        ("  " + "  ".join(v.ljust(w) for v, w in zip(r[:4], widths, strict=True)) + "  " + r[4]).rstrip() for r in rows
    ]


def _constraint_lines(t: TableInfo) -> list[str]:
    lines = []
    if t.primary_key and not t.columns:
        lines.append(f"  primary key: ({', '.join(t.primary_key)})")
    lines += [f"  unique  {u.name or ''} ({', '.join(u.columns)})" for u in t.unique_constraints or []]
    for ix in t.indexes or []:
        where = f" where {ix.where}" if ix.where else ""
        lines.append(f"  {'unique index' if ix.unique else 'index'}  {ix.name or ''} ({', '.join(ix.columns)}){where}")
    for fk in t.foreign_keys or []:
        target = f"{fk.referred_schema + '.' if fk.referred_schema else ''}{fk.referred_table}"
        rules = "".join(f" on {k} {v.lower()}" for k, v in (("delete", fk.on_delete), ("update", fk.on_update)) if v)
        lines.append(
            f"  fk  {fk.name or ''} ({', '.join(fk.columns)}) -> {target}({', '.join(fk.referred_columns)}){rules}"
        )
    lines += [f"  check  {c.name or ''} {c.sqltext}" for c in t.check_constraints or []]
    return lines


def render(out: SchemaReport) -> str:
    head = (
        f"{out.flavor} {out.server_version} · {out.url} · schema {out.schema_name} · "
        f"{len(out.tables)} of {out.table_count} table(s)"
    )
    if out.database_size_bytes is not None:
        head += f" · {_size(out.database_size_bytes)} in all"
    lines = [head]
    if out.truncated:
        lines.append(f"TRUNCATED: showing {len(out.tables)} of {out.table_count} tables (raise --max-tables)")
    for t in out.tables:
        lines += ["", _table_header(t), *_column_lines(t), *_constraint_lines(t)]
    if out.views or out.materialized_views:
        lines += ["", "views: " + ", ".join([*out.views, *(f"{m} (materialized)" for m in out.materialized_views)])]
    lines += ["", f"counts: {out.count_policy}"]
    lines += [f"warning: {w}" for w in out.warnings]
    return "\n".join(lines)


TOOLS = [
    ToolSpec(
        name="inspect",
        func=inspect_tool,
        input_model=InspectInput,
        output_model=SchemaReport,
        title="Inspect a database",
        description=(
            "Read-only picture of a database: server version; per table its columns (dialect and generic types, "
            "nullability, defaults, identity), primary key, unique constraints, foreign keys, indexes, check "
            "constraints, row count (exact or catalog estimate, labelled) and size. Runs in a read-only, "
            "time-bounded transaction and returns no row data. Use it before planning a migration."
        ),
        read_only=True,
        destructive=False,
        idempotent=True,
        open_world=True,
        cli_positional=("url",),
        cli_render=render,
        tags=("db",),
    )
]
