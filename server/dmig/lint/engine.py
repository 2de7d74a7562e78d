"""Lint a migration spec or raw SQL for one dialect and server version.

Suppressing a finding needs a reason, in SQL as a comment on or just above the statement::

    -- dmig:ignore pg-create-index-non-concurrent reason: the table is created empty in this release

and in a spec as ``ignore: [{rule: ..., reason: ...}]`` on the operation. An ignore without a
reason is itself an error finding and suppresses nothing; one naming an unknown rule is a warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from dmig.lint.rules import RULES
from dmig.lint.sql_parse import Fact, Statement, parse
from dmig.spec.context import OpContext
from dmig.spec.models import DEFAULT_LOCK_TIMEOUT_MS
from dmig.spec.steps import Finding

_IGNORE = re.compile(r"--\s*dmig:ignore\s+(?P<rules>[A-Za-z0-9_,\- ]+?)\s*(?:reason:\s*(?P<reason>.*?))?\s*$")
_LOCKING = {
    "create_index",
    "drop_index",
    "reindex",
    "add_column",
    "alter_type",
    "set_not_null",
    "add_constraint",
    "rename_column",
    "rename_table",
    "drop_column",
    "drop_table",
    "truncate",
    "rewrite",
    "mysql_alter",
    "validate_constraint",
}


class LintResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[Finding] = Field(default_factory=list)

    def counts(self) -> dict[str, int]:
        out = {"error": 0, "warning": 0, "info": 0, "ignored": 0}
        for f in self.findings:
            out["ignored" if f.ignored else f.severity] += 1
        return out

    @property
    def has_errors(self) -> bool:
        return any(f.severity == "error" and not f.ignored for f in self.findings)


def _finding(rule_id: str, st: Statement | None, message: str | None = None, **kw) -> Finding:
    rule = RULES[rule_id]
    return Finding(
        rule=rule_id,
        severity=kw.pop("severity", rule.severity),
        message=message or rule.message,
        safe_alternative=kw.pop("safe_alternative", rule.safe_alternative),
        line=st.line if st else None,
        statement=st.excerpt if st else None,
        **kw,
    )


@dataclass
class _State:
    dialect: str
    version: tuple[int, ...]
    flavor: str | None
    in_spec: bool
    in_tx: bool = False
    created: set[str] = field(default_factory=set)
    nn_checks: dict[str, tuple[str, str]] = field(default_factory=dict)  # constraint -> (table, column)
    validated_nn: set[tuple[str, str]] = field(default_factory=set)
    lock_timeout: bool = False
    statement_timeout: bool = False
    timeouts_reported: bool = False
    out: list[Finding] = field(default_factory=list)


def _set(s: _State, f: Fact) -> None:
    name = f["name"]
    if name in ("lock_timeout", "lock_wait_timeout", "innodb_lock_wait_timeout", "busy_timeout"):
        s.lock_timeout = True
    if name in ("statement_timeout", "max_statement_time", "max_execution_time"):
        s.statement_timeout = True


def _timeouts(s: _State, st: Statement) -> None:
    if s.in_spec or s.timeouts_reported or s.dialect == "sqlite":
        return
    s.timeouts_reported = True
    if not s.lock_timeout:
        s.out.append(_finding("missing-lock-timeout", st))
    if not s.statement_timeout:
        s.out.append(_finding("missing-statement-timeout", st))


def _pg(s: _State, st: Statement, f: Fact) -> None:
    k = f["kind"]
    new_table = f.get("table") in s.created
    if k in ("create_index", "drop_index", "reindex"):
        if f.get("concurrently") and s.in_tx:
            s.out.append(_finding("pg-concurrently-in-transaction", st))
        elif not f.get("concurrently") and not new_table:
            s.out.append(
                _finding(
                    {
                        "create_index": "pg-create-index-non-concurrent",
                        "drop_index": "pg-drop-index-non-concurrent",
                        "reindex": "pg-reindex-non-concurrent",
                    }[k],
                    st,
                )
            )
    elif k == "add_constraint" and not new_table:
        if f["ctype"] in ("foreign", "check") and not f["not_valid"]:
            s.out.append(_finding("pg-constraint-not-valid", st))
        if f["ctype"] in ("unique", "primary") and not f["using_index"]:
            s.out.append(_finding("pg-unique-constraint-exclusive", st))
        if f["ctype"] == "check" and f.get("not_null_column"):
            s.nn_checks[f["name"] or ""] = (f["table"], f["not_null_column"])
            if not f["not_valid"]:
                s.validated_nn.add((f["table"], f["not_null_column"]))
    elif k == "validate_constraint" and f["name"] in s.nn_checks:
        s.validated_nn.add(s.nn_checks[f["name"]])
    elif k == "set_not_null" and not new_table:
        if s.version < (12,):
            s.out.append(
                _finding(
                    "pg-set-not-null-without-check",
                    st,
                    "before PostgreSQL 12 SET NOT NULL always scans the table under ACCESS EXCLUSIVE",
                    safe_alternative="keep a validated CHECK "
                    "(col IS NOT NULL) NOT VALID + VALIDATE as the enforcement instead",
                )
            )
        elif (f["table"], f["column"]) not in s.validated_nn:
            s.out.append(_finding("pg-set-not-null-without-check", st))
    elif k == "add_column" and not new_table:
        if f["stored_generated"]:
            s.out.append(_finding("pg-stored-generated-rewrite", st))
        elif f["volatile_default"]:
            s.out.append(_finding("pg-volatile-default", st))
        elif f["has_default"] and s.version < (11,):
            s.out.append(_finding("pg-default-rewrite-pre-11", st))
        _types(s, st, f)
    elif k == "alter_type":
        s.out.append(_finding("column-type-change", st))
    elif k == "truncate" and f["cascade"]:
        s.out.append(_finding("truncate-cascade", st))
    elif k == "rewrite":
        s.out.append(_finding("pg-table-rewrite", st, f"{f['what']} rewrites the table under ACCESS EXCLUSIVE"))


def _types(s: _State, st: Statement, f: Fact, keys: set[str] | None = None) -> None:
    t = f.get("type", "")
    if s.dialect == "postgresql":
        if t == "json":
            s.out.append(_finding("pg-prefer-jsonb", st, f"column {f['column']} is json"))
        if t == "timestamp":
            s.out.append(_finding("pg-prefer-timestamptz", st, f"column {f['column']} is timestamp"))
    is_key = f.get("primary_key") or (keys is not None and f["column"] in keys)
    int32 = t in {"int4", "int", "integer", "serial", "serial4", "int2", "smallint"} or f.get("int32")
    if is_key and int32 and s.dialect != "sqlite":
        s.out.append(_finding("prefer-bigint-keys", st, f"key column {f['column']} is a 32-bit integer"))


def _mysql(s: _State, st: Statement, f: Fact) -> None:
    k = f["kind"]
    if k in ("mysql_alter", "create_index") and (k == "mysql_alter" or f.get("mysql_index")):
        algo, lock = f.get("algorithm"), f.get("lock")
        if algo == "COPY":
            s.out.append(_finding("mysql-algorithm-copy", st))
        if lock in ("SHARED", "EXCLUSIVE"):
            s.out.append(
                _finding(
                    "mysql-lock-not-none",
                    st,
                    f"LOCK={lock} "
                    + ("blocks writes" if lock == "SHARED" else "blocks reads and writes")
                    + " for the whole ALTER",
                )
            )
        if algo != "COPY":
            for reason in f.get("copy_reasons", []):
                s.out.append(_finding("mysql-table-copy", st, f"{reason}: writes block for the whole copy"))
        if algo is None and lock is None and f.get("table") not in s.created:
            s.out.append(_finding("mysql-missing-algorithm", st))
    elif k == "alter_type":
        s.out.append(_finding("column-type-change", st))
    elif k == "add_column":
        _types(s, st, f)


def _common(s: _State, st: Statement, f: Fact) -> None:
    k = f["kind"]
    new_table = f.get("table") in s.created
    if (
        k == "add_column"
        and not new_table
        and f["not_null"]
        and not f["has_default"]
        and not f.get("identity")
        and f.get("type") not in ("serial", "bigserial", "smallserial")
        and not f.get("auto_increment")
    ):
        s.out.append(_finding("adding-required-column", st, f"adding NOT NULL column {f['column']} without a default"))
    elif k == "rename_column":
        s.out.append(_finding("rename-column", st))
    elif k == "rename_table":
        s.out.append(_finding("rename-table", st))
    elif k == "drop_column" and not new_table:
        s.out.append(_finding("drop-column", st))
    elif k == "drop_table":
        s.out.append(_finding("drop-table", st))
    elif k == "create_table":
        s.created.add(f["table"])
        keys = set(f["primary_key"])
        for col in f["columns"]:
            _types(s, st, col, keys)
    elif k == "parse_error":
        s.out.append(_finding("parse-error", st, f"could not parse: {f['error'][:300]}"))


def lint_statements(
    stmts: list[Statement], dialect: str, version: tuple[int, ...], flavor: str | None, in_spec: bool
) -> list[Finding]:
    s = _State(dialect, version, flavor, in_spec)
    for st in stmts:
        for f in st.facts:
            k = f["kind"]
            if k == "begin":
                s.in_tx = True
            elif k in ("commit", "rollback"):
                s.in_tx = False
            elif k == "set":
                _set(s, f)
            if k in _LOCKING and f.get("table") not in s.created:
                _timeouts(s, st)
            _common(s, st, f)
            if dialect == "postgresql":
                _pg(s, st, f)
            elif dialect == "mysql":
                _mysql(s, st, f)
    return s.out


@dataclass
class _Ignore:
    line: int
    rules: list[str]
    reason: str | None


def _ignores(text: str) -> list[_Ignore]:
    out = []
    for n, line in enumerate(text.splitlines(), start=1):
        pos = line.find("--")
        if pos < 0:
            continue
        m = _IGNORE.search(line[pos:])
        if m:
            rules = [r for r in re.split(r"[,\s]+", m["rules"].strip()) if r]
            reason = (m["reason"] or "").strip() or None
            out.append(_Ignore(n, rules, reason))
    return out


def _target_statement(stmts: list[Statement], line: int) -> Statement | None:
    for st in stmts:
        if st.line <= line <= st.line + st.text.count("\n"):
            return st
    return next((st for st in stmts if st.line > line), None)


def _apply_ignores(
    findings: list[Finding], ignores: list[tuple[int | None, list[str], str | None]], match
) -> list[Finding]:
    """ignores: (anchor, rules, reason); match(finding, anchor) says whether an ignore covers a finding."""
    out = list(findings)
    extra: list[Finding] = []
    for anchor, rules, reason in ignores:
        for rule in rules:
            if rule not in RULES:
                extra.append(
                    Finding(
                        rule="unknown-rule",
                        severity="warning",
                        message=f"ignore names unknown rule {rule!r}",
                        safe_alternative=RULES["unknown-rule"].safe_alternative,
                    )
                )
                continue
            if not reason:
                extra.append(
                    Finding(
                        rule="ignore-without-reason",
                        severity="error",
                        message=f"ignore of {rule} has no reason, so it suppresses nothing",
                        safe_alternative=RULES["ignore-without-reason"].safe_alternative,
                    )
                )
                continue
            out = [
                f.model_copy(update={"ignored": True, "ignore_reason": reason})
                if f.rule == rule and match(f, anchor)
                else f
                for f in out
            ]
    return out + extra


def lint_sql(
    text: str, dialect: str, version: tuple[int, ...], flavor: str | None = None, *, in_spec: bool = False
) -> LintResult:
    stmts = parse(text, dialect)
    findings = lint_statements(stmts, dialect, version, flavor, in_spec)
    ignores = []
    for ig in _ignores(text):
        st = _target_statement(stmts, ig.line)
        ignores.append((st.line if st else ig.line, ig.rules, ig.reason, ig.line))
    result = _apply_ignores(findings, [(a, r, why) for a, r, why, _ in ignores], lambda f, anchor: f.line == anchor)
    # Findings about the ignores themselves point at the comment's line.
    lines = iter([ln for _a, rules, _w, ln in ignores for _ in rules])
    fixed = []
    for f in result:
        if f.rule in ("ignore-without-reason", "unknown-rule") and f.line is None:
            f = f.model_copy(update={"line": next(lines, None)})
        fixed.append(f)
    return LintResult(findings=fixed)


def lint_spec(spec, ctx: OpContext) -> LintResult:
    """Spec-level rules, then every operation's own lint with its ignores applied."""
    findings: list[Finding] = []
    # Unset timeouts are not a finding any more: the executor applies safe defaults (DEFAULT_LOCK_TIMEOUT_MS).
    lock_ms = spec.options.lock_timeout_ms
    if lock_ms is not None and lock_ms > DEFAULT_LOCK_TIMEOUT_MS:
        findings.append(_finding("raised-lock-timeout", None, f"options.lock_timeout_ms is {lock_ms}"))
    for i, op in enumerate(spec.operations):
        own = op.lint(ctx.for_op(i))
        ignores = [(i, [e.rule], e.reason) for e in op.ignore]
        checked = _apply_ignores(own, ignores, lambda f, anchor: f.op_index == anchor)
        findings += [f if f.op_index is not None else f.model_copy(update={"op_index": i}) for f in checked]
    return LintResult(findings=findings)
