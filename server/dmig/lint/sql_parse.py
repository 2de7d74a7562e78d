"""Turn SQL text into statements and dialect-neutral facts the lint rules look at.

PostgreSQL is parsed with pglast (the server's own parser); MySQL/MariaDB and SQLite with
sqlglot, reading the tokens for what its tree leaves as an opaque command (CREATE INDEX ...
ALGORITHM=, RENAME TABLE, CONVERT TO CHARACTER SET). A statement that does not parse yields a
``parse_error`` fact instead of aborting the whole file.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import pglast
import sqlglot
from pglast import ast as pg
from pglast.enums import AlterTableType as AT
from pglast.enums import ConstrType as CT
from sqlglot import exp

from dmig import fields
from dmig.lint import pgsafe

logging.getLogger("sqlglot").setLevel(logging.ERROR)

Fact = dict[str, Any]
PG_VOLATILE = {
    "random",
    "gen_random_uuid",
    "uuid_generate_v4",
    "uuid_generate_v1",
    "clock_timestamp",
    "nextval",
    "timeofday",
    "txid_current",
}
PG_SERIAL = {"serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"}
PG_INT32 = {"int4", "int", "integer", "serial", "serial4", "int2", "smallint", "smallserial"}


@dataclass
class Statement:
    text: str
    line: int
    facts: list[Fact] = field(default_factory=list)

    @property
    def excerpt(self) -> str:
        one = " ".join(self.text.split())
        return one if len(one) <= 200 else one[:197] + "..."


def _line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _strip_leading_comments(chunk: str) -> tuple[str, int]:
    """Drop leading blank lines/comments; return (statement text, lines skipped)."""
    skipped = 0
    lines = chunk.split("\n")
    while lines and (not lines[0].strip() or lines[0].strip().startswith("--")):
        lines.pop(0)
        skipped += 1
    return "\n".join(lines).strip(), skipped


def split_statements(text: str, dialect: str) -> list[Statement]:
    """Statements with their 1-based starting line (comments and blank lines before them skipped)."""
    out: list[Statement] = []
    if dialect == "postgresql":
        try:
            slices = list(pglast.split(text, with_parser=False, only_slices=True))
        except pglast.parser.ParseError:
            slices = [slice(0, len(text))]
        for sl in slices:
            chunk, skipped = _strip_leading_comments(text[sl])
            if chunk:
                out.append(Statement(chunk, _line_of(text, sl.start) + skipped))
        return out
    read = "mysql" if dialect == "mysql" else "sqlite"
    try:
        tokens = sqlglot.Dialect.get_or_raise(read).tokenize(text)
    except sqlglot.errors.TokenError:
        tokens = []
    start = 0
    bounds = _statement_ends(tokens)
    for end in [*bounds, len(text)]:
        raw = text[start:end]
        chunk, skipped = _strip_leading_comments(raw.rstrip().rstrip(";"))
        lead = len(raw) - len(raw.lstrip("\n"))
        if chunk:
            out.append(Statement(chunk, _line_of(text, start) + skipped + (0 if skipped else raw[:lead].count("\n"))))
        start = end
    return out


_ROUTINES = {"TRIGGER", "PROCEDURE", "FUNCTION", "EVENT"}
_STATEMENT_BLOCKS = {"IF", "LOOP", "WHILE", "REPEAT"}  # END IF etc. close blocks that opened without BEGIN


def is_routine(words: list[str]) -> bool:
    """CREATE [OR REPLACE] [DEFINER=...] TRIGGER/PROCEDURE/FUNCTION/EVENT: a compound body with its own ';'s."""
    head = [w.upper() for w in words[:12]]
    return head[:1] == ["CREATE"] and any(w in _ROUTINES for w in head)


def _statement_ends(tokens: list) -> list[int]:
    """Offsets just after the semicolons that end statements; those inside a routine's BEGIN ... END do not."""
    ends: list[int] = []
    head: list[str] = []
    depth, after_end = 0, False
    for i, t in enumerate(tokens):
        word = t.text.upper()
        if t.token_type == sqlglot.TokenType.SEMICOLON:
            if depth <= 0:
                ends.append(t.end + 1)
                head, depth = [], 0
            after_end = False
            continue
        head.append(word)
        if is_routine(head):
            nxt = tokens[i + 1].text.upper() if i + 1 < len(tokens) else ""
            if word == "BEGIN" or (word == "CASE" and not after_end):
                depth += 1
            elif word == "END" and nxt not in _STATEMENT_BLOCKS:
                depth -= 1  # END of BEGIN, of a CASE expression, or END CASE
        after_end = word == "END"
    return ends


# ------------------------------------------------------------------------------------------ PostgreSQL


def _pg_name(node) -> str:
    return getattr(node, "relname", "") or ""


def _type_name(tn) -> str:
    if tn is None:
        return ""
    names = [n.sval for n in tn.names or ()]
    return names[-1].lower() if names else ""


def _func_names(node) -> set[str]:
    found: set[str] = set()

    def visit(n) -> None:
        if isinstance(n, pg.FuncCall):
            found.add(n.funcname[-1].sval.lower())
        if isinstance(n, pg.Node):
            for attr in n:  # a pglast node iterates over its attribute names
                visit(getattr(n, attr, None))
        elif isinstance(n, tuple | list):
            for v in n:
                visit(v)

    visit(node)
    return found


def _pg_column_def(cd: pg.ColumnDef, table: str) -> Fact:
    typ = _type_name(cd.typeName)
    fact: Fact = {
        "kind": "add_column",
        "table": table,
        "column": cd.colname,
        "type": typ,
        "not_null": bool(cd.is_not_null),
        "has_default": False,
        "volatile_default": typ in PG_SERIAL,
        "stored_generated": False,
        "identity": False,
        "primary_key": False,
    }
    for c in cd.constraints or ():
        if c.contype == CT.CONSTR_NOTNULL:
            fact["not_null"] = True
        elif c.contype == CT.CONSTR_PRIMARY:
            fact["primary_key"] = fact["not_null"] = True
        elif c.contype == CT.CONSTR_DEFAULT:
            fact["has_default"] = True
            if _func_names(c.raw_expr) & PG_VOLATILE:
                fact["volatile_default"] = True
        elif c.contype == CT.CONSTR_GENERATED:
            fact["stored_generated"] = True
        elif c.contype == CT.CONSTR_IDENTITY:
            fact["identity"] = True
    return fact


def _pg_check_not_null_column(c: pg.Constraint) -> str | None:
    e = c.raw_expr
    if isinstance(e, pg.NullTest) and e.nulltesttype == 1 and isinstance(e.arg, pg.ColumnRef):  # IS_NOT_NULL
        return e.arg.fields[-1].sval
    return None


def _pg_alter(stmt: pg.AlterTableStmt) -> list[Fact]:
    table = _pg_name(stmt.relation)
    facts: list[Fact] = []
    for cmd in stmt.cmds or ():
        st = cmd.subtype
        if st == AT.AT_AddColumn:
            facts.append(_pg_column_def(cmd.def_, table))
        elif st == AT.AT_AlterColumnType:
            facts.append(
                {"kind": "alter_type", "table": table, "column": cmd.name, "type": _type_name(cmd.def_.typeName)}
            )
        elif st == AT.AT_SetNotNull:
            facts.append({"kind": "set_not_null", "table": table, "column": cmd.name})
        elif st == AT.AT_DropColumn:
            facts.append({"kind": "drop_column", "table": table, "column": cmd.name})
        elif st == AT.AT_AddConstraint:
            c = cmd.def_
            ctype = {
                CT.CONSTR_CHECK: "check",
                CT.CONSTR_FOREIGN: "foreign",
                CT.CONSTR_UNIQUE: "unique",
                CT.CONSTR_PRIMARY: "primary",
                CT.CONSTR_EXCLUSION: "exclusion",
            }.get(c.contype, "other")
            facts.append(
                {
                    "kind": "add_constraint",
                    "table": table,
                    "ctype": ctype,
                    "name": c.conname,
                    "not_valid": bool(c.skip_validation),
                    "using_index": bool(c.indexname),
                    "not_null_column": _pg_check_not_null_column(c) if ctype == "check" else None,
                }
            )
        elif st == AT.AT_ValidateConstraint:
            facts.append({"kind": "validate_constraint", "table": table, "name": cmd.name})
        elif st == AT.AT_SetTableSpace:
            facts.append({"kind": "rewrite", "what": "ALTER TABLE SET TABLESPACE", "table": table})
    return facts


def _pg_facts(stmt) -> list[Fact]:
    if isinstance(stmt, pg.TransactionStmt):
        kind = {0: "begin", 1: "begin", 2: "commit", 3: "rollback"}.get(int(stmt.kind), "other")
        return [{"kind": kind}]
    if isinstance(stmt, pg.VariableSetStmt):
        value = None
        if stmt.args:
            arg = stmt.args[0]
            value = getattr(getattr(arg, "val", None), "sval", None) or getattr(getattr(arg, "val", None), "ival", None)
        return [{"kind": "set", "name": (stmt.name or "").lower(), "value": value}]
    if isinstance(stmt, pg.IndexStmt):
        return [
            {
                "kind": "create_index",
                "table": _pg_name(stmt.relation),
                "concurrently": bool(stmt.concurrent),
                "unique": bool(stmt.unique),
            }
        ]
    if isinstance(stmt, pg.DropStmt):
        obj = int(stmt.removeType)
        from pglast.enums import ObjectType as OT

        if obj == OT.OBJECT_INDEX:
            return [{"kind": "drop_index", "concurrently": bool(stmt.concurrent)}]
        if obj == OT.OBJECT_TABLE:
            return [{"kind": "drop_table"}]
        return []
    if isinstance(stmt, pg.ReindexStmt):
        concurrently = any(getattr(p, "defname", "") == "concurrently" for p in stmt.params or ())
        return [{"kind": "reindex", "concurrently": concurrently}]
    if isinstance(stmt, pg.VacuumStmt):
        if any(getattr(o, "defname", "") == "full" for o in stmt.options or ()):
            return [{"kind": "rewrite", "what": "VACUUM FULL"}]
        return []
    if isinstance(stmt, pg.ClusterStmt):
        return [{"kind": "rewrite", "what": "CLUSTER"}]
    if isinstance(stmt, pg.TruncateStmt):
        return [{"kind": "truncate", "cascade": int(stmt.behavior) == 1}]
    if isinstance(stmt, pg.RenameStmt):
        from pglast.enums import ObjectType as OT

        rt = int(stmt.renameType)
        if rt == OT.OBJECT_COLUMN:
            return [{"kind": "rename_column", "table": _pg_name(stmt.relation)}]
        if rt == OT.OBJECT_TABLE:
            return [{"kind": "rename_table", "table": _pg_name(stmt.relation)}]
        return []
    if isinstance(stmt, pg.CreateStmt):
        table = _pg_name(stmt.relation)
        cols = [_pg_column_def(e, table) for e in stmt.tableElts or () if isinstance(e, pg.ColumnDef)]
        pk: set[str] = {c["column"] for c in cols if c["primary_key"]}
        for e in stmt.tableElts or ():
            if isinstance(e, pg.Constraint) and e.contype == CT.CONSTR_PRIMARY:
                pk |= {k.sval for k in e.keys or ()}
        return [{"kind": "create_table", "table": table, "columns": cols, "primary_key": sorted(pk)}]
    if isinstance(stmt, pg.AlterTableStmt):
        return _pg_alter(stmt)
    return []


def parse_postgresql(text: str) -> list[Statement]:
    out = []
    statements = split_statements(text, "postgresql")
    for st, parsed in zip(statements, pgsafe.parse_each([st.text for st in statements]), strict=True):
        if isinstance(parsed, pglast.parser.ParseError):
            st.facts = [{"kind": "parse_error", "error": str(parsed)}]
            out.append(st)
            continue
        for raw in parsed:
            st.facts.extend(_pg_facts(raw.stmt))
        out.append(st)
    return out


# ------------------------------------------------------------------------------------------ MySQL / SQLite

_MY_OPT = re.compile(r"\b(ALGORITHM|LOCK)\s*=?\s*(\w+)", re.I)
_INT32 = {"INT", "INTEGER", "MEDIUMINT", "SMALLINT", "TINYINT", "UINT", "UMEDIUMINT", "USMALLINT", "UTINYINT"}


def _glot_coldef(cd: exp.ColumnDef, table: str, dialect: str) -> Fact:
    kinds = [type(c.args.get("kind")).__name__ for c in cd.args.get("constraints") or []]
    default = next(
        (
            c.args["kind"]
            for c in cd.args.get("constraints") or []
            if isinstance(c.args.get("kind"), exp.DefaultColumnConstraint)
        ),
        None,
    )
    volatile = False
    if default is not None:
        names = {
            (n.name if isinstance(n, exp.Anonymous) else n.sql_name()).lower()
            for n in default.walk()
            if isinstance(n, exp.Func)
        }
        volatile = bool(names & {"rand", "random", "uuid", "randomblob"})
    dtype = cd.args.get("kind")
    type_name = dtype.this.name if isinstance(dtype, exp.DataType) else ""
    return {
        "kind": "add_column",
        "table": table,
        "column": cd.name,
        "type": type_name.lower(),
        "int32": type_name.upper() in _INT32,
        "json": type_name.upper() == "JSON",
        "not_null": "NotNullColumnConstraint" in kinds or "PrimaryKeyColumnConstraint" in kinds,
        "has_default": default is not None,
        "volatile_default": volatile,
        "primary_key": "PrimaryKeyColumnConstraint" in kinds,
        "auto_increment": "AutoIncrementColumnConstraint" in kinds,
        "stored_generated": any(
            isinstance(c.args.get("kind"), exp.ComputedColumnConstraint) and c.args["kind"].args.get("persisted")
            for c in cd.args.get("constraints") or []
        ),  # MySQL's default (and VIRTUAL) is computed on read: no copy
        "identity": False,
    }


def _glot_alter(node: exp.Alter, text: str, dialect: str) -> list[Fact]:
    table = node.this.name if node.this else ""
    facts: list[Fact] = []
    opts = {m.group(1).upper(): m.group(2).upper() for m in _MY_OPT.finditer(text)}
    actions = node.args.get("actions") or []
    summary = {
        "kind": "mysql_alter",
        "table": table,
        "algorithm": opts.get("ALGORITHM"),
        "lock": opts.get("LOCK"),
        "copy_reasons": [],
    }
    for a in actions:
        if isinstance(a, exp.ColumnDef):
            facts.append(_glot_coldef(a, table, dialect))
        elif isinstance(a, exp.ModifyColumn) or (isinstance(a, exp.AlterColumn) and a.args.get("dtype")):
            summary["copy_reasons"].append("changing a column's definition (MODIFY/CHANGE) copies the table")
            facts.append({"kind": "alter_type", "table": table, "column": a.this.name if a.this else ""})
            if isinstance(a, exp.ModifyColumn) and a.args.get("rename_from") is not None:
                facts.append({"kind": "rename_column", "table": table})
        elif isinstance(a, exp.RenameColumn):
            facts.append({"kind": "rename_column", "table": table})
        elif isinstance(a, exp.AlterRename):
            facts.append({"kind": "rename_table", "table": table})
        elif isinstance(a, exp.Drop) and (a.args.get("kind") or "").upper() == "COLUMN":
            facts.append({"kind": "drop_column", "table": table})
        elif isinstance(a, exp.AddConstraint):
            for c in a.expressions:
                inner = c.expressions[0] if isinstance(c, exp.Constraint) and c.expressions else c
                if isinstance(inner, exp.ForeignKey):
                    summary["copy_reasons"].append("ADD FOREIGN KEY with foreign_key_checks=1 copies the table")
                elif isinstance(inner, exp.CheckColumnConstraint | exp.Check):
                    summary["copy_reasons"].append("ADD CHECK copies the table")
                elif isinstance(inner, exp.PrimaryKey):
                    summary["copy_reasons"].append("ADD PRIMARY KEY rebuilds the table")
    for d in facts:
        if d["kind"] == "add_column" and d.get("stored_generated"):
            summary["copy_reasons"].append("adding a STORED generated column copies the table")
        if d["kind"] == "add_column" and d.get("auto_increment"):
            summary["copy_reasons"].append("adding an AUTO_INCREMENT column copies the table")
    if dialect == "mysql":
        facts.insert(0, summary)
    return facts


def _glot_command(text: str, dialect: str) -> list[Fact]:
    words = text.split()
    head = " ".join(w.upper() for w in words[:3])
    opts = {m.group(1).upper(): m.group(2).upper() for m in _MY_OPT.finditer(text)}
    if head.startswith("RENAME TABLE"):
        return [{"kind": "rename_table"}]
    if re.match(r"CREATE (UNIQUE )?INDEX", head):
        return [
            {
                "kind": "create_index",
                "concurrently": dialect == "mysql",
                "unique": "UNIQUE" in head,
                "algorithm": opts.get("ALGORITHM"),
                "lock": opts.get("LOCK"),
                "mysql_index": True,
            }
        ]
    if head.startswith("ALTER TABLE"):
        reasons = []
        if re.search(r"\bCONVERT\s+TO\s+CHARACTER\s+SET\b", text, re.I):
            reasons.append("CONVERT TO CHARACTER SET copies the table")
        if re.search(r"\bFORCE\b|\bENGINE\s*=", text, re.I):
            reasons.append("FORCE/ENGINE= rebuilds the table")
        if re.search(r"\bAS\s*\(.*\)\s*(STORED|PERSISTENT)\b", text, re.I | re.S):
            reasons.append("adding a STORED generated column copies the table")
        return [
            {
                "kind": "mysql_alter",
                "table": words[2] if len(words) > 2 else "",
                "algorithm": opts.get("ALGORITHM"),
                "lock": opts.get("LOCK"),
                "copy_reasons": reasons,
            }
        ]
    if head.startswith("OPTIMIZE TABLE"):
        return [
            {
                "kind": "mysql_alter",
                "table": "",
                "algorithm": None,
                "lock": None,
                "copy_reasons": ["OPTIMIZE TABLE rebuilds the table"],
            }
        ]
    return []


def _glot_facts(node: exp.Expression, text: str, dialect: str) -> list[Fact]:
    if isinstance(node, exp.Command):
        return _glot_command(text, dialect)
    if isinstance(node, exp.Transaction):
        return [{"kind": "begin"}]
    if isinstance(node, exp.Commit):
        return [{"kind": "commit"}]
    if isinstance(node, exp.Rollback):
        return [{"kind": "rollback"}]
    if isinstance(node, exp.Set):
        facts = []
        for item in node.expressions:
            eq = item.this if isinstance(item, exp.SetItem) else item
            if isinstance(eq, exp.EQ):
                facts.append({"kind": "set", "name": eq.this.name.lower(), "value": eq.expression.name})
        return facts
    if isinstance(node, exp.Alter):
        return _glot_alter(node, text, dialect)
    if isinstance(node, exp.Create):
        kind = (node.args.get("kind") or "").upper()
        if kind == "INDEX":
            opts = {m.group(1).upper(): m.group(2).upper() for m in _MY_OPT.finditer(text)}
            return [
                {
                    "kind": "create_index",
                    "concurrently": dialect == "mysql",
                    "unique": bool(node.args.get("unique")),
                    "algorithm": opts.get("ALGORITHM"),
                    "lock": opts.get("LOCK"),
                    "mysql_index": dialect == "mysql",
                }
            ]
        if kind == "TABLE" and isinstance(node.this, exp.Schema):
            table = node.this.this.name
            cols = [_glot_coldef(c, table, dialect) for c in node.this.expressions if isinstance(c, exp.ColumnDef)]
            pk = {c["column"] for c in cols if c["primary_key"]}
            for c in node.this.expressions:
                if isinstance(c, exp.PrimaryKey):
                    pk |= {e.name for e in c.expressions}
            return [{"kind": "create_table", "table": table, "columns": cols, "primary_key": sorted(pk)}]
        return []
    if isinstance(node, exp.Drop):
        kind = (node.args.get("kind") or "").upper()
        if kind == "TABLE":
            return [{"kind": "drop_table"}]
        if kind == "INDEX":
            return [{"kind": "drop_index", "concurrently": dialect == "mysql"}]
        return []
    if isinstance(node, exp.TruncateTable):
        return [{"kind": "truncate", "cascade": bool(node.args.get("cascade"))}]
    return []


def parse_glot(text: str, dialect: str) -> list[Statement]:
    read = "mysql" if dialect == "mysql" else "sqlite"
    out = []
    for st in split_statements(text, dialect):
        if is_routine(st.text.split()):  # sqlglot has no grammar for routine bodies; no rule looks inside them
            out.append(st)
            continue
        try:
            nodes = sqlglot.parse(st.text, read=read)
        except sqlglot.errors.SqlglotError as exc:
            st.facts = [{"kind": "parse_error", "error": str(exc).splitlines()[0]}]
            out.append(st)
            continue
        for node in nodes:
            if node is not None:
                st.facts.extend(_glot_facts(node, st.text, dialect))
        out.append(st)
    return out


# Untrusted SQL must never crash the server: pglast's C parser recurses once per operator and
# overflows the C stack (SIGSEGV, 30,000 ``+`` terms), sqlglot raises RecursionError. A cheap
# linear pre-scan refuses what no real migration needs before either parser sees it.
MAX_SQL_CHARS = fields.SQL_MAX  # the tool input's own limit: one number
MAX_OPERATORS = 2_000
MAX_NESTING = 100
_OPERATOR = re.compile(r"[-+*/%^|&<>=]+|\b(?:AND|OR|NOT)\b", re.I)


def _refuse_unparsable(text: str) -> None:
    from dmig.errors import InvalidInput

    if len(text) > MAX_SQL_CHARS:
        raise InvalidInput(f"the SQL is {len(text)} characters; the limit is {MAX_SQL_CHARS}", limit=MAX_SQL_CHARS)
    depth = deepest = 0
    for ch in text:
        if ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    if deepest > MAX_NESTING:
        raise InvalidInput(f"the SQL nests parentheses {deepest} deep; the limit is {MAX_NESTING}", limit=MAX_NESTING)


def _refuse_complex_statement(text: str) -> None:
    from dmig.errors import InvalidInput

    count = sum(1 for _ in _OPERATOR.finditer(text))
    if count > MAX_OPERATORS:
        raise InvalidInput(
            f"a statement has {count} operators; the limit is {MAX_OPERATORS} (split the expression)",
            limit=MAX_OPERATORS,
        )


def parse(text: str, dialect: str) -> list[Statement]:
    _refuse_unparsable(text)
    try:
        statements = split_statements(text, dialect)
    except RecursionError:
        from dmig.errors import InvalidInput

        raise InvalidInput("the SQL is too deeply nested to parse") from None
    for st in statements:
        _refuse_complex_statement(st.text)
    try:
        return _parse(text, dialect)
    except RecursionError:
        from dmig.errors import InvalidInput

        raise InvalidInput("the SQL is too deeply nested to parse") from None


def _parse(text: str, dialect: str) -> list[Statement]:
    return parse_postgresql(text) if dialect == "postgresql" else parse_glot(text, dialect)
