"""The linter's rules: one id, severity, message and safe alternative each, with their dialects.

Ids are stable (CI configs and ignore comments name them). ``error`` means the statement takes a
lock or rewrite that stalls production traffic, or loses data in one step; ``warning`` means it is
risky without care; ``info`` is advice.
"""

from __future__ import annotations

from dataclasses import dataclass

from dmig.spec.steps import Severity

ALL = ("postgresql", "mysql", "sqlite")


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    message: str
    safe_alternative: str
    dialects: tuple[str, ...] = ALL
    since: str = ""  # which server versions the rule's reasoning depends on


_RULES = [
    # ---------------------------------------------------------------- indexes
    Rule(
        "pg-create-index-non-concurrent",
        "error",
        "CREATE INDEX without CONCURRENTLY holds a SHARE lock: all writes to the table wait until the index is built",
        "CREATE INDEX CONCURRENTLY IF NOT EXISTS ... outside a transaction (add_index does this)",
        ("postgresql",),
    ),
    Rule(
        "pg-drop-index-non-concurrent",
        "warning",
        "DROP INDEX without CONCURRENTLY takes ACCESS EXCLUSIVE on the table: reads and writes wait",
        "DROP INDEX CONCURRENTLY IF EXISTS ... outside a transaction",
        ("postgresql",),
    ),
    Rule(
        "pg-reindex-non-concurrent",
        "error",
        "REINDEX without CONCURRENTLY blocks writes (and reads using the index) for the whole rebuild",
        "REINDEX ... CONCURRENTLY (PostgreSQL 12+)",
        ("postgresql",),
    ),
    Rule(
        "pg-concurrently-in-transaction",
        "error",
        "CONCURRENTLY cannot run inside a transaction block: the statement fails",
        "run it as its own non-transactional step (Step.transactional = false)",
        ("postgresql",),
    ),
    # ---------------------------------------------------------------- constraints
    Rule(
        "pg-constraint-not-valid",
        "error",
        "adding a FOREIGN KEY or CHECK constraint validates every row while holding a lock that blocks writes",
        "ADD CONSTRAINT ... NOT VALID, then ALTER TABLE ... VALIDATE CONSTRAINT in a separate transaction",
        ("postgresql",),
    ),
    Rule(
        "pg-set-not-null-without-check",
        "error",
        "SET NOT NULL scans the whole table under ACCESS EXCLUSIVE unless a validated CHECK (col IS NOT NULL) exists",
        "ADD CONSTRAINT c CHECK (col IS NOT NULL) NOT VALID; VALIDATE CONSTRAINT c; then SET NOT NULL (uses the check "
        "on PostgreSQL 12+); DROP CONSTRAINT c (set_not_null does this)",
        ("postgresql",),
        ">=12 uses the check",
    ),
    Rule(
        "pg-unique-constraint-exclusive",
        "error",
        "ADD UNIQUE/PRIMARY KEY builds its index under ACCESS EXCLUSIVE: reads and writes wait for the whole build",
        "CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT ... UNIQUE USING INDEX (add_unique does this)",
        ("postgresql",),
    ),
    Rule(
        "mysql-constraint-copy",
        "error",
        "adding a CHECK (or a FOREIGN KEY with foreign_key_checks=1) copies the table (ALGORITHM=COPY): writes block",
        "validate the data first, then add the FOREIGN KEY with foreign_key_checks=0, ALGORITHM=INPLACE; for CHECK, "
        "enforce in the application or use a trigger",
        ("mysql",),
    ),
    # ---------------------------------------------------------------- columns
    Rule(
        "adding-required-column",
        "error",
        "adding a NOT NULL column without a default fails on a non-empty table and breaks old writers",
        "add it nullable (or with a constant default), backfill, then set_not_null",
    ),
    Rule(
        "pg-volatile-default",
        "error",
        "ADD COLUMN with a volatile default (random(), gen_random_uuid(), clock_timestamp(), nextval, serial) "
        "rewrites the whole table under ACCESS EXCLUSIVE",
        "add the column without a default, SET DEFAULT for new rows, backfill existing rows in batches",
        ("postgresql",),
    ),
    Rule(
        "pg-default-rewrite-pre-11",
        "error",
        "before PostgreSQL 11 ADD COLUMN with any DEFAULT rewrites the whole table under ACCESS EXCLUSIVE",
        "add the column without a default, SET DEFAULT, backfill in batches",
        ("postgresql",),
        "<11",
    ),
    Rule(
        "pg-stored-generated-rewrite",
        "error",
        "adding a STORED generated column rewrites the table under ACCESS EXCLUSIVE",
        "a compat view (pgroll style), or a VIRTUAL generated column on PostgreSQL 18+",
        ("postgresql",),
    ),
    Rule(
        "column-type-change",
        "error",
        "changing a column's type rewrites (PostgreSQL) or copies (MySQL) the table while blocking writes",
        "change_column_type: a new column, sync triggers, batched backfill, then swap",
    ),
    Rule(
        "rename-column",
        "error",
        "renaming a column in one step breaks every running reader and writer that uses the old name",
        "rename_column (expand/contract): a new column kept in sync by triggers, switch the app, then drop the old",
    ),
    Rule(
        "rename-table",
        "error",
        "renaming a table in one step breaks every running query that names it",
        "create the new table (or a view under the new name), dual-write/sync, switch the app, then drop the old",
    ),
    Rule(
        "drop-column",
        "warning",
        "dropping a column breaks readers and writers that still use it (ORMs often select every column)",
        "first deploy code that no longer reads or writes it (ORM 'ignored columns'), then drop_column in contract",
    ),
    Rule(
        "drop-table",
        "warning",
        "dropping a table loses its data and breaks every query that still names it",
        "stop using it in code first; keep a verified backup; drop in a later release",
    ),
    Rule(
        "truncate-cascade",
        "error",
        "TRUNCATE ... CASCADE silently empties every table that references this one",
        "delete the dependent rows explicitly, in batches, knowing which tables they are in",
        ("postgresql",),
    ),
    Rule(
        "pg-table-rewrite",
        "error",
        "VACUUM FULL / CLUSTER / ALTER TABLE SET TABLESPACE rewrite the table under ACCESS EXCLUSIVE",
        "pg_repack, or a copy to a new table with move_table",
        ("postgresql",),
    ),
    # ---------------------------------------------------------------- MySQL online DDL
    Rule(
        "mysql-algorithm-copy",
        "error",
        "ALGORITHM=COPY copies the whole table and blocks writes for the duration",
        "ALGORITHM=INSTANT or INPLACE with LOCK=NONE; for changes that need a copy use gh-ost/pt-online-schema-change "
        "style (change_column_type)",
        ("mysql",),
    ),
    Rule(
        "mysql-lock-not-none",
        "error",
        "LOCK=SHARED blocks writes and LOCK=EXCLUSIVE blocks reads and writes for the whole ALTER",
        "LOCK=NONE (with ALGORITHM=INPLACE) so the ALTER fails instead of blocking if it cannot be online",
        ("mysql",),
    ),
    Rule(
        "mysql-table-copy",
        "error",
        "this change cannot be done in place on this server: MySQL/MariaDB copies the table and blocks writes",
        "an expand/contract operation (new column + triggers + backfill + swap) or gh-ost",
        ("mysql",),
    ),
    Rule(
        "mysql-missing-algorithm",
        "warning",
        "ALTER TABLE without ALGORITHM/LOCK silently falls back to a blocking table copy when it cannot be online",
        "state ALGORITHM=INSTANT (or INPLACE) and LOCK=NONE so the server refuses instead of blocking",
        ("mysql",),
    ),
    # ---------------------------------------------------------------- SQLite
    Rule(
        "sqlite-table-rebuild",
        "warning",
        "SQLite cannot alter this in place: the table is rebuilt (12-step procedure) inside one write transaction",
        "run it off-peak; the write lock is held for the whole copy",
        ("sqlite",),
    ),
    Rule(
        "sqlite-trigger-not-null",
        "warning",
        "SQLite sync triggers run AFTER the NOT NULL check: new code writing only the new shape fails while the old "
        "column is NOT NULL",
        "have new code write both shapes until contract, or drop the NOT NULL first",
        ("sqlite",),
    ),
    Rule(
        "sqlite-version",
        "error",
        "this SQLite version lacks a feature the operation needs",
        "upgrade SQLite (3.35+ for DROP COLUMN, 3.25+ for RENAME COLUMN)",
        ("sqlite",),
    ),
    # ---------------------------------------------------------------- timeouts, transactions
    Rule(
        "missing-lock-timeout",
        "warning",
        "no lock timeout: a DDL statement queued behind a long transaction blocks every query queued after it",
        "set options.lock_timeout_ms (spec) or SET lock_timeout / lock_wait_timeout first, and retry on timeout",
    ),
    Rule(
        "missing-statement-timeout",
        "warning",
        "no statement timeout: a runaway statement can hold its locks indefinitely",
        "set options.statement_timeout_ms (spec) or SET statement_timeout / max_statement_time first",
    ),
    Rule(
        "raised-lock-timeout",
        "warning",
        "the spec raises the lock timeout above the 500 ms default: a session queued behind a step waiting for its "
        "lock waits as long, on every attempt",
        "leave options.lock_timeout_ms unset (500 ms, retried with backoff) unless the table is quiet",
    ),
    # ---------------------------------------------------------------- types
    Rule(
        "pg-prefer-jsonb",
        "warning",
        "json stores text and cannot be indexed or compared; jsonb is what you want",
        "use jsonb",
        ("postgresql",),
    ),
    Rule(
        "prefer-bigint-keys",
        "warning",
        "32-bit integer keys overflow at 2^31 rows; changing the type later rewrites the table",
        "use bigint (bigserial / BIGINT AUTO_INCREMENT / identity) for keys",
    ),
    Rule(
        "pg-prefer-timestamptz",
        "info",
        "timestamp without time zone loses the offset; comparisons across zones lie",
        "use timestamptz",
        ("postgresql",),
    ),
    # ---------------------------------------------------------------- spec-level
    Rule(
        "raw-sql",
        "warning",
        "raw SQL is outside the linter's guarantees: its locks and rollback are your job",
        "use a typed operation; if you must, give rollback_sql and review the statement findings",
    ),
    Rule("app-cooperation", "info", "the application must take part in this migration", ""),
    Rule(
        "assumed-key",
        "warning",
        "no key columns given: the operation assumes a unique column named id",
        "give key: [...] or let the planner read the primary key from the live database",
    ),
    Rule(
        "move-table",
        "info",
        "the data move runs through the copy engine; the application must switch to the new table before contract",
        "point the application at the target (or a view) before contract",
    ),
    Rule(
        "ignore-without-reason",
        "error",
        "an ignore must say why ignoring the rule is safe",
        "write `-- dmig:ignore <rule> reason: <why>` or give ignore: [{rule, reason}]",
    ),
    Rule(
        "unknown-rule", "warning", "an ignore names a rule that does not exist", "check the rule id (dmig lint --help)"
    ),
    Rule(
        "parse-error",
        "error",
        "the SQL could not be parsed, so it could not be checked",
        "fix the syntax, or split dialect-specific statements into raw_sql operations per dialect",
    ),
]

RULES: dict[str, Rule] = {r.id: r for r in _RULES}
