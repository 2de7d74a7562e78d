"""The source schema beyond tables, keys and plain indexes: generated columns, CHECK constraints, views,
and the objects a copy never carries (triggers, procedures, functions, events).

What the target can hold is carried: within a dialect verbatim; across dialects the SQL is translated with
sqlglot and only kept once the target has run it (a generated column must give the source's values on a
sample of rows, a check must be accepted by the target and hold on the copied rows, a view must be created
and return the source's row count). Everything else is named, with the reason, in the copy's
``not_carried`` list, which the CLI prints: nothing is dropped without a word.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.db.dialects import mariadb_check_constraints
from dmig.move.models import Omission
from dmig.move.plan import CheckSpec, SourceColumn, TablePlan
from dmig.move.rawconn import execute_plain, name_sql, table_sql
from dmig.move.typemap import target_type

SQLGLOT = {"sqlite": "sqlite", "postgresql": "postgres", "mysql": "mysql"}
PROBE_ROWS = 200  # source rows a translated generated column is tried on before the copy relies on it
NOT_COPIED = "not copied: dmig copies tables, their keys, indexes, checks and views; re-create it from the source"


class Untranslatable(Exception):
    """sqlglot could not carry the SQL to the target dialect."""


def translate(sql: str, source: str, target: str) -> str:
    """``sql`` (an expression or a SELECT) in the target's dialect; the text itself within one dialect."""
    import sqlglot  # imported when needed: `dmig copy --help` loads no SQL parser

    if source == target:
        return sql
    try:
        out = sqlglot.transpile(sql, read=SQLGLOT[source], write=SQLGLOT[target], unsupported_level="raise")
    except Exception as exc:  # sqlglot raises ParseError, UnsupportedError, TokenError, ValueError...
        raise Untranslatable(str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__) from None
    if len(out) != 1 or not out[0].strip():
        raise Untranslatable("not a single statement")
    return out[0]


def referenced_columns(sql: str, dialect: str) -> set[str]:
    """The column names an expression reads (empty when it does not parse)."""
    import sqlglot  # imported when needed: `dmig copy --help` loads no SQL parser
    from sqlglot import exp

    try:
        tree = sqlglot.parse_one(sql, read=SQLGLOT[dialect])
    except Exception:
        return set()
    return {c.name for c in tree.find_all(exp.Column)}


# --- reflection (called by plan.py while it reflects a table) ---


def sqlite_generated(conn: sa.Connection, table: str) -> dict[str, tuple[str, bool]]:
    """SQLite's generated columns from the table's own CREATE statement (SQLAlchemy misreads several of
    them in one table: its pattern runs from the first ``AS (`` to the last ``)``)."""
    import sqlglot  # imported when needed: `dmig copy --help` loads no SQL parser
    from sqlglot import exp

    sql = conn.execute(
        sa.select(sa.column("sql")).select_from(sa.table("sqlite_master")).where(sa.column("name") == table)
    ).scalar()
    if not sql or not re.search(r"\bAS\s*\(", sql, re.IGNORECASE):
        return {}
    try:
        tree = sqlglot.parse_one(sql, read="sqlite")
    except Exception:
        return {}
    out = {}
    for col in tree.find_all(exp.ColumnDef):
        for c in col.constraints:
            if isinstance(c.kind, exp.ComputedColumnConstraint):
                out[col.name] = (c.kind.this.sql("sqlite"), bool(c.kind.args.get("persisted")))
    return out


def computed_of(
    conn: sa.Connection, dialect: str, table: str, raw: list[dict[str, Any]]
) -> dict[str, tuple[str, bool]]:
    """Per generated column: (expression, stored)."""
    if dialect == "sqlite":
        return sqlite_generated(conn, table)
    out = {}
    for c in raw:
        computed = c.get("computed")
        if computed and computed.get("sqltext"):
            out[c["name"]] = (str(computed["sqltext"]), bool(computed.get("persisted")))
    return out


def reflect_checks(
    conn: sa.Connection, insp: sa.Inspector, dialect: str, schema: str | None, table: str
) -> list[CheckSpec]:
    """The table's CHECK constraints but MariaDB's ``json_valid`` (that one is the JSON type itself)."""
    if dialect == "mysql":
        db = schema or conn.execute(sa.text("SELECT DATABASE()")).scalar()
        rows = mariadb_check_constraints(conn, str(db)).get(table, [])
        return [
            CheckSpec(r["name"] if r["level"] != "column" else None, r["sqltext"])
            for r in rows
            if not re.fullmatch(r"\s*json_valid\(`(?:[^`]|``)+`\)\s*", r["sqltext"] or "")
        ]
    try:
        found = insp.get_check_constraints(table, schema=schema)
    except NotImplementedError:
        return []
    return [CheckSpec(c.get("name"), str(c["sqltext"])) for c in found if c.get("sqltext")]


# --- generated columns ---


def plan_generated(engine: Engine, target: Engine, plan: TablePlan) -> list[Omission]:
    """Decide per generated column: kept generated (taken out of the load, ``plan.generated``) or loaded as
    a plain column (named in the returned list). Across dialects the translation is tried on the target
    with a sample of source rows first, and kept only when it gives the source's values."""
    omitted = []
    keep: list[tuple[int, SourceColumn]] = []
    touched = _transformed_columns(plan)
    existing = _existing_generated(target, plan)
    for pos, col in enumerate(plan.columns):
        if col.computed is None:
            continue
        if existing is not None:  # the user's table: load what it stores, never into a column it computes
            if col.name in existing:
                keep.append((pos, col))
            continue
        sql, _stored = col.computed
        if touched & (referenced_columns(sql, plan.source_dialect) | {col.name}):
            reason = "a column it uses is transformed, renamed or excluded"
        else:
            reason = _try_generated(engine, target, plan, col)
        if reason is None:
            keep.append((pos, col))
        else:
            omitted.append(Omission(table=plan.source_table, kind="generated column", name=col.name, reason=reason))
    kept = {c.name for _, c in keep}
    plan.generated = keep
    plan.columns = [c for c in plan.columns if c.name not in kept]
    return omitted


def _existing_generated(target: Engine, plan: TablePlan) -> set[str] | None:
    """The generated columns of the target table when it already exists (None when this run creates it)."""
    insp = sa.inspect(target)
    if not insp.has_table(plan.target_table, schema=plan.target_schema):
        return None
    return {c["name"] for c in insp.get_columns(plan.target_table, schema=plan.target_schema) if c.get("computed")}


def _transformed_columns(plan: TablePlan) -> set[str]:
    names = set(plan.mapping.exclude_columns)
    for t in plan.mapping.transforms:
        for attr in ("column", "columns"):
            v = getattr(t, attr, None)
            names.update([v] if isinstance(v, str) else (v or []))
    return names


def _try_generated(engine: Engine, target: Engine, plan: TablePlan, col: SourceColumn) -> str | None:
    """None when the column can stay generated on the target, else why it is loaded as a plain column."""
    sql, stored = col.computed or ("", False)
    if plan.source_dialect == plan.target_dialect:
        return None
    try:
        expr = translate(sql, plan.source_dialect, plan.target_dialect)
    except Untranslatable as exc:
        return f"carried as a plain column: its expression does not translate to {plan.target_dialect} ({exc})"
    if plan.target_dialect == "postgresql" and not stored:
        stored = True  # PostgreSQL (before 18) has stored generated columns only; the values are the same
    used = [c for c in plan.columns if c.name in referenced_columns(sql, plan.source_dialect) and c.computed is None]
    problem = _probe(engine, target, plan, col, used, expr, stored)
    if problem is not None:
        return f"carried as a plain column: the translated expression {expr} {problem}"
    col.computed = (expr, stored)
    return None


def _probe(
    engine: Engine,
    target: Engine,
    plan: TablePlan,
    col: SourceColumn,
    used: list[SourceColumn],
    expr: str,
    stored: bool,
) -> str | None:
    """Create the translated column in a temporary table of the target, insert a sample of the source's
    rows and compare what the target computes with the source's values; None when all are equal."""
    src = sa.table(plan.source_table, *[sa.column(c.name) for c in [*used, col]], schema=plan.source_schema)
    with engine.connect() as conn:
        rows = conn.execute(sa.select(*src.c).limit(PROBE_ROWS)).all()
    md = sa.MetaData()
    probe = sa.Table(
        "dmig_probe_generated",
        md,
        *[sa.Column(c.name, target_type(c.kind, plan.target_dialect)) for c in used],
        sa.Column(col.name, target_type(col.kind, plan.target_dialect), sa.Computed(sa.text(expr), persisted=stored)),
        prefixes=["TEMPORARY"],
    )
    try:
        with target.connect() as conn:
            probe.create(conn)
            try:
                if rows:
                    conn.execute(
                        sa.insert(probe), [dict(zip([c.name for c in used], r[:-1], strict=True)) for r in rows]
                    )
                got = conn.execute(sa.select(probe.c[col.name])).scalars().all() if rows else []
            finally:
                probe.drop(conn)
                conn.commit()  # a temporary table: nothing of the user's; a rollback could undo the DROP
    except sa.exc.SQLAlchemyError as exc:
        orig = getattr(exc, "orig", None) or exc
        return f"was refused by the target ({str(orig).strip().splitlines()[0][:200]})"
    for row, value in zip(rows, got, strict=True):
        if not same_value(row[-1], value):
            return f"gave {value!r} where the source has {row[-1]!r}"
    return None


def same_value(a: Any, b: Any) -> bool:
    """Equal as values: numbers by exact value (1 == 1.0 == Decimal('1.00')), NaN equal to NaN, else ==."""
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, int | float | Decimal) and isinstance(b, int | float | Decimal):
        if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
            return True
        return (
            Decimal(a) == Decimal(b) if not isinstance(a, float) and not isinstance(b, float) else float(a) == float(b)
        )
    return bool(a == b)


# --- CHECK constraints ---


def check_sql(plan: TablePlan, check: CheckSpec, renamed: dict[str, str | None]) -> tuple[str | None, str | None]:
    """The check in the target's SQL, or (None, why it is not carried)."""
    cols = referenced_columns(check.sqltext, plan.source_dialect)
    if any(renamed.get(c) != c for c in cols):
        return None, "a column it uses is transformed, renamed or excluded"
    try:
        return translate(check.sqltext, plan.source_dialect, plan.target_dialect), None
    except Untranslatable as exc:
        return None, f"its expression does not translate to {plan.target_dialect} ({exc})"


def add_check(engine: Engine, table: sa.Table, name: str, sql: str) -> str | None:
    """Add a check to a loaded table (PostgreSQL: NOT VALID, then VALIDATE); None when it holds, else why
    it was not kept. A check of that name already there (a re-run) is validated, not added again."""
    from dmig.move.schema import database_errors

    postgresql = engine.dialect.name == "postgresql"
    with engine.connect() as conn:
        qualified, quoted = table_sql(conn.dialect, table), name_sql(conn.dialect, name)
        present = _has_check(conn, table, name)
    try:
        if not present:
            with engine.begin() as conn:
                suffix = " NOT VALID" if postgresql else ""
                execute_plain(conn, f"ALTER TABLE {qualified} ADD CONSTRAINT {quoted} CHECK ({sql}){suffix}")
        if postgresql:
            with engine.begin() as conn:
                execute_plain(conn, f"ALTER TABLE {qualified} VALIDATE CONSTRAINT {quoted}")
        return None
    except database_errors() as exc:
        orig = getattr(exc, "orig", None) or exc
        error = str(orig).strip().splitlines()[0][:200]
    with engine.connect() as conn:
        present = _has_check(conn, table, name)
    if present:
        with engine.begin() as conn:
            execute_plain(conn, f"ALTER TABLE {qualified} DROP CONSTRAINT {quoted}")
    return error


def _has_check(conn: sa.Connection, table: sa.Table, name: str) -> bool:
    if conn.dialect.name == "postgresql":
        stmt = sa.text("SELECT 1 FROM pg_constraint WHERE conrelid = to_regclass(:t) AND conname = :n")
        found = conn.execute(stmt, {"t": table_sql(conn.dialect, table), "n": name}).first()
    else:
        stmt = sa.text(
            "SELECT 1 FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = COALESCE(:s, DATABASE())"
            " AND TABLE_NAME = :t AND CONSTRAINT_NAME = :n"
        )
        found = conn.execute(stmt, {"s": table.schema, "t": table.name, "n": name}).first()
    conn.rollback()
    return found is not None


# --- views ---


def source_views(engine: Engine, dialect: str, schema: str | None) -> dict[str, str]:
    """Each view of the source schema and its SELECT, in the source's SQL."""
    insp = sa.inspect(engine)
    out = {}
    for name in insp.get_view_names(schema=schema):
        text = str(insp.get_view_definition(name, schema=schema) or "")
        if dialect != "postgresql":  # SQLite and MariaDB give the whole CREATE VIEW statement
            m = re.search(r"\bAS\s+(\(?\s*(SELECT|WITH|VALUES)\b.*)$", text, re.IGNORECASE | re.DOTALL)
            text = m.group(1) if m else ""
        out[name] = text.strip().rstrip(";")
    return out


def view_tables(sql: str, dialect: str) -> set[str]:
    """The tables and views a SELECT reads (CTE names excluded)."""
    import sqlglot  # imported when needed: `dmig copy --help` loads no SQL parser
    from sqlglot import exp

    tree = sqlglot.parse_one(sql, read=SQLGLOT[dialect])
    ctes = {c.alias_or_name for c in tree.find_all(exp.CTE)}
    return {t.name for t in tree.find_all(exp.Table)} - ctes


def copy_views(
    src: Engine, tgt: Engine, source: str, target: str, schema: str | None, copied: set[str], target_schema: str | None
) -> tuple[list[str], list[Omission]]:
    """Create the source's views on the target, dependencies first; a view is kept once the target has
    created it and it returns the source's row count. Returns the views created and the ones not carried."""
    views = source_views(src, source, schema)
    if not views:
        return [], []
    omitted: list[Omission] = []
    todo: dict[str, tuple[str, set[str]]] = {}
    for name, sql in views.items():
        try:
            reads = view_tables(sql, source)
            todo[name] = (translate(sql, source, target), reads)
        except Exception as exc:
            omitted.append(Omission(kind="view", name=name, reason=f"its SQL does not translate to {target} ({exc})"))
    if target_schema is not None or schema is not None:
        omitted += [Omission(kind="view", name=n, reason="views are copied between default schemas only") for n in todo]
        return [], omitted
    done: list[str] = []
    existing = set(sa.inspect(tgt).get_view_names())
    while todo:
        ready = [n for n, (_sql, reads) in todo.items() if reads <= copied | set(done)]
        if not ready:
            break
        for name in sorted(ready):
            sql, _reads = todo.pop(name)
            if name in existing:  # not ours to check or drop (a run resumed after this step lists it too)
                problem = "a view of that name already exists in the target; it was left as it is"
            else:
                problem = _create_view(tgt, name, sql) or _same_count(src, tgt, name)
            if problem is None:
                done.append(name)
            else:
                omitted.append(Omission(kind="view", name=name, reason=problem))
    for name, (_sql, reads) in todo.items():
        missing = ", ".join(sorted(reads - copied - set(done)))
        omitted.append(Omission(kind="view", name=name, reason=f"it reads {missing}, not copied by this run"))
    return done, omitted


def _create_view(tgt: Engine, name: str, sql: str) -> str | None:
    try:
        with tgt.begin() as conn:
            execute_plain(conn, f"CREATE VIEW {name_sql(conn.dialect, name)} AS {sql}")
        return None
    except Exception as exc:
        orig = getattr(exc, "orig", None) or exc
        return f"the target refused its translated SQL ({str(orig).strip().splitlines()[0][:200]})"


def _same_count(src: Engine, tgt: Engine, name: str) -> str | None:
    """The view returns as many rows on the target as on the source; else it is dropped again."""
    counts = []
    for engine in (src, tgt):
        try:
            with engine.connect() as conn:
                counts.append(conn.execute(sa.select(sa.func.count()).select_from(sa.table(name))).scalar())
        except sa.exc.DBAPIError as exc:
            counts.append(f"error {str(exc.orig or exc).strip().splitlines()[0][:200]}")
    if counts[0] == counts[1]:
        return None
    with tgt.begin() as conn:
        execute_plain(conn, f"DROP VIEW {name_sql(conn.dialect, name)}")
    return f"it returned {counts[1]} rows on the target and {counts[0]} on the source, so it was dropped again"


# --- what is never copied ---

_PG_ROUTINES = sa.text(
    "SELECT p.proname, CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END"
    " FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace"
    " WHERE n.nspname = COALESCE(:s, current_schema())"
    " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e') ORDER BY 1"
)
_PG_TRIGGERS = sa.text(
    "SELECT t.tgname, c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE NOT t.tgisinternal"
    " AND n.nspname = COALESCE(:s, current_schema()) ORDER BY 2, 1"
)
_MY_ROUTINES = sa.text(
    "SELECT ROUTINE_NAME, LOWER(ROUTINE_TYPE) FROM information_schema.ROUTINES"
    " WHERE ROUTINE_SCHEMA = COALESCE(:s, DATABASE()) ORDER BY 1"
)
_MY_TRIGGERS = sa.text(
    "SELECT TRIGGER_NAME, EVENT_OBJECT_TABLE FROM information_schema.TRIGGERS"
    " WHERE TRIGGER_SCHEMA = COALESCE(:s, DATABASE()) ORDER BY 2, 1"
)
_MY_EVENTS = sa.text(
    "SELECT EVENT_NAME FROM information_schema.EVENTS WHERE EVENT_SCHEMA = COALESCE(:s, DATABASE()) ORDER BY 1"
)


def never_copied(engine: Engine, dialect: str, schema: str | None, tables: Iterable[str]) -> list[Omission]:
    """Triggers (of the copied tables), procedures, functions and events of the source: named, not copied."""
    wanted = set(tables)
    out: list[Omission] = []
    with engine.connect() as conn:
        if dialect == "sqlite":
            rows = conn.execute(
                sa.text("SELECT name, tbl_name FROM sqlite_master WHERE type = 'trigger' ORDER BY 2, 1")
            )
            triggers = list(rows)
            routines: list[Any] = []
            events: list[Any] = []
        elif dialect == "postgresql":
            triggers = list(conn.execute(_PG_TRIGGERS, {"s": schema}))
            routines = list(conn.execute(_PG_ROUTINES, {"s": schema}))
            events = []
        else:
            triggers = list(conn.execute(_MY_TRIGGERS, {"s": schema}))
            routines = list(conn.execute(_MY_ROUTINES, {"s": schema}))
            events = list(conn.execute(_MY_EVENTS, {"s": schema}))
    out += [Omission(table=t, kind="trigger", name=n, reason=NOT_COPIED) for n, t in triggers if t in wanted]
    out += [Omission(kind=k, name=n, reason=NOT_COPIED) for n, k in routines]
    out += [Omission(kind="event", name=n, reason=NOT_COPIED) for (n,) in events]
    return out
