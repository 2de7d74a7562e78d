"""Shared machinery of the check families: sessions per side and the count-plus-sample pattern.

Most rules reduce to "how many rows in scope break this condition, and show me a few": one
aggregate query counts the rows in scope and the offending ones in a single scan, and a second,
LIMITed query fetches a sample ordered by primary key (so the sample is reproducible).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.validate.db import Database, Session, column, order_by_key, sample_columns, session, where_clause
from dmig.validate.result import Outcome, Query
from dmig.validate.spec import Defaults
from dmig.validate.values import shown_row


@dataclass
class CheckEnv:
    """What one check may use: the open databases, the spec defaults, and a log of its queries."""

    defaults: Defaults
    dbs: dict[str, Database]
    log: list[tuple[str, str]] = field(default_factory=list)

    def db(self, side: str) -> Database:
        if side not in self.dbs:
            raise InvalidInput(f"this check needs the {side} database but the spec gives no {side!r} URL")
        return self.dbs[side]

    @contextlib.contextmanager
    def session(self, side: str) -> Iterator[Session]:
        with session(self.db(side), self.defaults.statement_timeout_s, self.log) as sess:
            yield sess

    @property
    def queries(self) -> list[Query]:
        return [Query(on=on, sql=sql) for on, sql in self.log]

    def schema(self, side: str, explicit: str | None) -> str | None:
        if explicit:
            return explicit
        return self.defaults.source_schema if side == "source" else self.defaults.target_schema

    def shown(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [shown_row(r, self.defaults.max_value_chars) for r in rows]

    def sample(
        self, s: Session, table: sa.Table, conds: list[Any], cols: list[sa.Column[Any]], source: Any = None
    ) -> list[dict[str, Any]]:
        """Up to sample_size matching rows (key + ``cols``, raw values), ordered by primary key."""
        if not self.defaults.sample_size:
            return []
        stmt = sa.select(*sample_columns(table, cols))
        if source is not None:
            stmt = stmt.select_from(source)
        stmt = stmt.where(*conds).order_by(*order_by_key(table, cols)).limit(self.defaults.sample_size)
        return self.shown(s.rows(stmt))


def count_offending(
    env: CheckEnv,
    check: Any,
    condition: Callable[[sa.Table, Session], sa.ColumnElement[bool]],
    columns: Callable[[sa.Table], list[sa.Column[Any]]],
    describe: Callable[[int, int], str],
) -> Outcome:
    """Count rows in scope and rows matching ``condition``; sample the offending ones."""
    with env.session(check.on) as s:
        table = s.table(check.table, env.schema(check.on, check.schema_))
        scope = where_clause(table, check.where)
        bad = condition(table, s)
        total, offending = count_where(s, table, scope, bad)
        sample = env.sample(s, table, [*scope, bad], columns(table)) if offending else []
    return Outcome(
        passed=offending == 0,
        summary=describe(offending, total),
        figures={"offending": offending, "rows_in_scope": total},
        sample=sample,
        sample_truncated=offending > len(sample),
    )


def count_where(
    s: Session, table: sa.Table, scope: list[sa.ColumnElement[bool]], bad: sa.ColumnElement[bool]
) -> tuple[int, int]:
    """Rows in scope and offending rows, in one scan."""
    stmt = sa.select(
        sa.func.count().label("rows_in_scope"),
        sa.func.coalesce(sa.func.sum(sa.case((bad, 1), else_=0)), 0).label("offending"),
    ).select_from(table)
    row = s.execute(stmt.where(*scope)).one()
    return int(row.rows_in_scope), int(row.offending)


def where_text(check: Any) -> str:
    return " (filtered)" if getattr(check, "where", None) else ""


def column_rule(
    env: CheckEnv,
    check: Any,
    offending: Callable[[sa.Column[Any], Session], sa.ColumnElement[bool]],
    what: str,
) -> Outcome:
    """A rule on one column (``check.column``): count, sample and describe its offending values."""
    return count_offending(
        env,
        check,
        lambda table, s: offending(column(table, check.column), s),
        lambda table: [column(table, check.column)],
        lambda bad, total: f"{bad} of {total} value(s) of {check.table}.{check.column} {what}{where_text(check)}",
    )
