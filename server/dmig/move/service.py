"""``copy_database``: plan, prepare the target, load in parallel, build indexes and keys, verify, summarise.

The order matters for the guarantees:

1. Everything that can be refused is refused before the first change (unknown tables, bad
   mappings, a non-empty target in create mode, a missing truncate confirmation).
2. A run has an id derived from what it copies (source, target, tables, mapping, mode), and
   all of its progress lives in the target (``dmig_checkpoints``), so running the same command
   again after any failure (``kill -9`` included) resumes exactly; ``restart`` forgets it. Once the
   run is complete and verified its checkpoints move to a record file in the project and the empty
   ``dmig_`` tables are dropped: the user's schema keeps nothing of the copy but rejected rows.
3. Rows are loaded with secondary indexes and foreign keys absent; they are built afterwards
   and their time is part of the measured time.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import time
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine

from dmig import seal
from dmig.context import RunContext
from dmig.db.engine import open_engine
from dmig.db.urls import dialect_of, display_url, parse_url
from dmig.errors import ConfirmationRequired, Conflict, DatabaseError, InvalidInput, UnreadableFile
from dmig.move import extras, postload, primarykey
from dmig.move import schema as S
from dmig.move.checkpoints import TABLE_PART, PartState, Store, decode_key, encode_key
from dmig.move.expressions import ExprCompiler
from dmig.move.models import (
    CopyRequest,
    CopySummary,
    IndexReport,
    Omission,
    TableCheck,
    TableMapping,
    TableSummary,
    Totals,
    Verification,
)
from dmig.move.pages import fast_path_expected
from dmig.move.partitions import Prestarted, plan_bounds, run_jobs
from dmig.move.plan import TablePlan, reflect_plans
from dmig.move.progress import Tracker
from dmig.move.rawconn import execute_plain, table_sql
from dmig.move.readers import Reader
from dmig.move.rejects import write_reject_file
from dmig.move.streamhash import HashSpec
from dmig.move.transforms import TargetSpec, plan_target
from dmig.move.values import jsonable
from dmig.move.verify import VERIFY_THREADS, VerifyItem, check, stream_spec, summarize, verify
from dmig.move.worker import PartitionJob, PartitionResult
from dmig.redact import redact

REJECTS_DIR = "docs/migrations/rejects"
RECORDS_DIR = "docs/migrations/copies"  # finished runs' checkpoints, once out of the target (checkpoints.Store)
STREAM_MIN_ROWS = 1_000  # smaller tables are verified by one checksum query per side instead


@dataclass
class Entry:
    """One table through the whole run."""

    plan: TablePlan
    spec: TargetSpec
    target: S.TargetTable
    created: bool = False
    since_column: str | None = None
    since_value: Any = None
    results: list[PartitionResult] = field(default_factory=list)
    reports: list[IndexReport] = field(default_factory=list)
    index_seconds: float = 0.0
    fk_seconds: float = 0.0
    error: str | None = None
    started: float | None = None
    finished: float | None = None

    @property
    def name(self) -> str:
        return self.plan.source_table


def _normalise_url(url: URL) -> URL:
    """SQLite paths are made absolute so the run id does not depend on the working folder."""
    if dialect_of(url) == "sqlite" and url.database and url.database != ":memory:":
        return url.set(database=str(Path(url.database).resolve()))
    return url


def run_identity(src: URL, tgt: URL, req: CopyRequest, tables: list[str]) -> str:
    ident = {
        "v": 1,
        "source": display_url(src),
        "target": display_url(tgt),
        "source_schema": req.source_schema,
        "target_schema": req.target_schema,
        "tables": tables,
        "mapping": {k: req.mapping[k].model_dump(mode="json") for k in sorted(req.mapping)},
        "mode": req.mode,
        "since": [req.since_key, req.since_column, req.since_value],
    }
    return hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:16]


def truncate_token(tgt: URL, tables: list[str]) -> str:
    """The truncate confirmation: an HMAC (dmig.seal, key outside the project) over the target database and
    the exact table set, so it cannot be worked out offline and does not carry over to another database."""
    db = Path(tgt.database or "db").name if dialect_of(tgt) == "sqlite" else (tgt.database or "db")
    safe = "".join(ch if ch.isalnum() or ch in "_-." else "_" for ch in db)[:40]
    return seal.token(f"truncate-{safe}", "copy-truncate", seal.database_identity(tgt), "\n".join(sorted(tables)))


def copy_database(req: CopyRequest, rc: RunContext) -> CopySummary:
    """Copy tables between any two of SQLite, PostgreSQL and MySQL/MariaDB; see the module docstring."""
    rc.require_writable("copy")
    src_url = _normalise_url(parse_url(req.source_url))
    tgt_url = _normalise_url(parse_url(req.target_url))
    src = open_engine(src_url)
    try:
        tgt = open_engine(tgt_url, must_exist=False)
    except BaseException:
        src.dispose()
        raise
    try:
        return _Copy(req, rc, src_url, tgt_url, src, tgt).run()
    except sa.exc.DBAPIError as exc:
        raise DatabaseError(redact(str(exc.orig or exc).strip().splitlines()[0])[:500]) from None
    finally:
        src.dispose()
        tgt.dispose()


class _Copy:
    def __init__(self, req: CopyRequest, rc: RunContext, src_url: URL, tgt_url: URL, src: Engine, tgt: Engine):
        self.req, self.rc = req, rc
        self.src_url, self.tgt_url, self.src, self.tgt = src_url, tgt_url, src, tgt
        self.sd, self.td = dialect_of(src_url), dialect_of(tgt_url)
        self.workers = req.workers or os.cpu_count() or 1
        # With their passwords, for the workers' and the diff's own engines; never shown.
        self._source = src_url.render_as_string(hide_password=False)
        self._target = tgt_url.render_as_string(hide_password=False)
        self._early_checks: dict[str, Future[TableCheck]] = {}
        self.started = time.monotonic()
        self.tracker = Tracker(rc.progress)

    # --- the steps ---

    def run(self) -> CopySummary:
        # Start the worker processes now: their interpreter start-up overlaps the planning below.
        self.ready = Prestarted(self.workers - 1 if self.td != "sqlite" else 0)
        try:
            return self._run()
        finally:
            self.ready.close()

    def _run(self) -> CopySummary:
        entries = self._plan()
        names = [e.name for e in entries]
        self.run_id = run_identity(self.src_url, self.tgt_url, self.req, names)
        self.reject_path = self.rc.project_path(self.req.reject_file, default=f"{REJECTS_DIR}/{self.run_id}.jsonl")
        if self.reject_path.is_dir():  # refused before any row moves, not when the rejects are written
            raise UnreadableFile("reject_file names a folder: give a file path", reason="not_a_file")
        record = self.rc.project_path(None, default=f"{RECORDS_DIR}/{self.run_id}.json")
        self.store = Store(self.tgt, self.run_id, self.req.target_schema, record)
        self.store.ensure()
        if self.req.restart:
            self.store.forget()
        state = self.store.load()
        if state and not self.store.in_target() and not self._targets_exist(entries):
            self.store.forget()  # finished once, but its tables are gone from the target: copy afresh
            state = {}
        complete = bool(state) and all(state.get(n, {}).get(TABLE_PART, _NONE).state == "done" for n in names)
        if complete and self.req.mode == "incremental":
            self.store.forget()  # a finished catch-up pass: the same command runs the next pass
            state, complete = {}, False
        resumed = bool(state) and not complete
        checking: Future[Verification] | None = None
        # Checks started early (PostgreSQL, a table once indexed) run on their own threads, so a slow one
        # (a full diff) never holds up the index and key builds.
        self.checker = ThreadPoolExecutor(max_workers=VERIFY_THREADS, thread_name_prefix="dmig-check")
        with (
            self.checker,
            ThreadPoolExecutor(max_workers=self._threads(len(entries)), thread_name_prefix="dmig-post-load") as pool,
        ):
            if not complete:
                self._confirm_truncate(entries, state)
                self._prepare(entries, state)
                self._load(entries, pool)
                self._wait_indexes(entries)
                if self.td == "postgresql":  # reads take no lock that ADD FOREIGN KEY waits for
                    self._announce_verify()
                    checking = pool.submit(self._verify_timed, entries)
                self._post_load(entries)
                self._views(entries)
            self.copy_seconds = time.monotonic() - self.started
            if checking is None:
                self._announce_verify()
            verification = checking.result() if checking is not None else self._verify_timed(entries)
        state = self.store.load()
        wrote = write_reject_file(self.reject_path, self.run_id, self.store.all_rejects())
        summary = self._summary(entries, state, resumed, complete, wrote, verification)
        if summary.ok:
            self.store.finish(display_url(self.tgt_url))
        left = self.store.tidy()
        summary.bookkeeping = self._bookkeeping(summary.ok, left)
        return summary

    def _targets_exist(self, entries: list[Entry]) -> bool:
        insp = sa.inspect(self.tgt)
        return all(insp.has_table(e.plan.target_table, schema=e.plan.target_schema) for e in entries)

    def _bookkeeping(self, ok: bool, left: list[str]) -> str:
        """Where this run's state is now, for the summary (the user's schema keeps nothing of a finished run
        but rejected rows)."""
        record = self.store.record
        shown = str(record.relative_to(self.rc.project_dir.resolve())) if record is not None else "?"
        if ok:
            text = f"run recorded in {shown}; "
            kept = [f"{n} (rejected rows)" if "rejects" in n else f"{n} (other runs' checkpoints)" for n in left]
            return text + (f"the target keeps {', '.join(kept)}" if kept else "no bookkeeping table left in the target")
        return f"checkpoints kept in the target ({', '.join(left) or 'none'}): run the same command again to resume"

    def _threads(self, tables: int) -> int:
        """Tables side by side after the load (the target database does the work, each table on its own
        connection); one at a time on SQLite, which has a single writer."""
        return 1 if self.td == "sqlite" else max(1, min(self.workers, tables))

    def _announce_verify(self) -> None:
        """From this thread: the MCP progress channel is reachable only from the tool's own thread."""
        if self.req.verify:
            done, total = float(self.tracker.done), float(self.tracker.total or 1)
            self.rc.progress(done, total, "verifying row counts and checksums")

    def _verify_timed(self, entries: list[Entry]) -> Verification:
        """The checks not started early, from the checkpoints as the load left them, with the early ones'
        results. On PostgreSQL this runs beside the foreign key validations (one serial query each)."""
        started = time.monotonic()
        verification = self._verify(entries, self.store.load())
        verification.seconds = round(time.monotonic() - started, 3)
        return verification

    def _plan(self) -> list[Entry]:
        plans = reflect_plans(self.src, self.req, self.td)
        self._refuse_self_copy(plans)
        schema = self.req.source_schema or None
        self.omitted: list[Omission] = extras.never_copied(self.src, self.sd, schema, [p.source_table for p in plans])
        metadata = sa.MetaData()
        entries = []
        for plan in plans:
            generated = extras.plan_generated(self.src, self.tgt, plan)
            spec, _ops = plan_target(plan)
            compiler = ExprCompiler(plan.source_table, set(plan.all_columns), self.sd)
            for _into, expr, _kind in spec.exprs:
                compiler.compile(expr)
            for cond in plan.mapping.filter:
                compiler.condition(cond)
            entry = Entry(plan=plan, spec=spec, target=S.build_table(plan, spec, metadata))
            for o in generated:
                entry.target.omit(o.kind, o.name, o.reason)
            entries.append(entry)
        targets = [e.plan.target_table for e in entries]
        dupes = sorted({t for t in targets if targets.count(t) > 1})
        if dupes:
            raise InvalidInput(f"several source tables map to the same target table: {', '.join(dupes)}")
        used: set[str] = set()
        later = sa.MetaData()
        for e in entries:
            S.attach_indexes(e.target, used, later)
        S.attach_foreign_keys({e.name: e.target for e in entries}, later)
        return entries

    def _refuse_self_copy(self, plans: list[TablePlan]) -> None:
        if display_url(self.src_url) != display_url(self.tgt_url):
            return
        for p in plans:
            if p.target_table == p.source_table and (p.target_schema or None) == (p.source_schema or None):
                raise InvalidInput(f"source and target are the same table ({p.source_table}) in the same database")

    def _confirm_truncate(self, entries: list[Entry], state: dict[str, dict[int, PartState]]) -> None:
        if self.req.mode != "truncate":
            return
        tables = sorted(e.plan.target_table for e in entries)
        token = truncate_token(self.tgt_url, tables)
        if not hmac.compare_digest((self.req.confirm or "").strip(), token):
            shown = ", ".join(tables[:10]) + (f" and {len(tables) - 10} more" if len(tables) > 10 else "")
            raise ConfirmationRequired(
                f"truncate mode deletes every row of {len(tables)} target table(s) in {display_url(self.tgt_url)} "
                f"({shown}) before loading; to proceed, call again with confirm={token!r}",
                confirm=token,
                tables=tables,
            )

    def _prepare(self, entries: list[Entry], state: dict[str, dict[int, PartState]]) -> None:
        fresh = [e for e in entries if not [p for p in state.get(e.name, {}) if p >= 0]]
        insp = sa.inspect(self.tgt)
        exists = {e.name: insp.has_table(e.plan.target_table, schema=e.plan.target_schema) for e in entries}
        previous = {e.name: state.get(e.name, {}).get(TABLE_PART) for e in entries}
        conflicts = []
        for e in fresh:
            ours = previous[e.name] is not None and previous[e.name].info.get("created")
            if self.req.mode == "create" and exists[e.name] and not ours:
                with self.tgt.connect() as conn:
                    if not S.is_empty(conn, e.target.table):
                        conflicts.append(e.plan.target_table)
        self._check_existing_columns([e for e in entries if exists[e.name]], insp)
        if conflicts:
            raise Conflict(
                f"create mode: target table(s) {', '.join(conflicts)} already exist and are not empty; "
                "use mode=truncate (replaces their rows, asks for confirmation) or mode=append",
                tables=conflicts,
            )
        if self.req.mode == "truncate":
            self._truncate([e for e in fresh if exists[e.name]])
        S.match_existing_parents({e.name: e.target for e in entries}, insp, {n for n, there in exists.items() if there})
        for e in entries:
            prev = previous[e.name]
            e.created = bool(prev.info.get("created")) if prev is not None else not exists[e.name]
            info = dict(prev.info) if prev is not None else {"created": e.created, "target": e.plan.target_table}
            if prev is None:
                self.store.set_table_state(e.name, "created" if e.created else "existing", info)
            if e.created:
                S.create_table(self.tgt, e.target)
                if e in fresh and primarykey.applies(e.target, self.req.mode):
                    primarykey.defer(self.tgt, e.target)
            elif not exists[e.name]:
                raise Conflict(f"target table {e.plan.target_table} disappeared during the run; use restart=true")
            if e in fresh:
                start = self._resolve_since(e, info, exists[e.name])
                self._plan_partitions(e, start)
                self.store.set_table_state(e.name, "loading", info)
            e.since_column, e.since_value = info.get("since_column"), info.get("since_value")

    def _check_existing_columns(self, entries: list[Entry], insp: sa.Inspector) -> None:
        """Loading into an existing table needs every mapped column there; say which are missing."""
        for e in entries:
            have = {c["name"] for c in insp.get_columns(e.plan.target_table, schema=e.plan.target_schema)}
            missing = [c.name for c in e.spec.columns if c.name not in have]
            if missing:
                raise Conflict(
                    f"target table {e.plan.target_table} exists without column(s) {', '.join(missing)}; "
                    "add them, exclude them (mapping.exclude_columns) or copy into a new table",
                    table=e.plan.target_table,
                    missing=missing,
                )

    def _truncate(self, entries: list[Entry]) -> None:
        if not entries:
            return
        names = {e.plan.target_table for e in entries}
        insp = sa.inspect(self.tgt)
        schema = self.req.target_schema
        for other in insp.get_table_names(schema=schema):
            if other in names:
                continue
            for fk in insp.get_foreign_keys(other, schema=schema):
                if fk["referred_table"] in names:
                    raise Conflict(
                        f"cannot truncate {fk['referred_table']}: table {other} (not being copied) references it",
                        table=fk["referred_table"],
                        referenced_by=other,
                    )
        tables = [e.target.table for e in entries]
        with self.tgt.begin() as conn:
            if self.td == "postgresql":
                execute_plain(conn, "TRUNCATE " + ", ".join(table_sql(conn.dialect, t) for t in tables))
            elif self.td == "mysql":
                conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
                try:
                    for t in tables:
                        execute_plain(conn, f"TRUNCATE TABLE {table_sql(conn.dialect, t)}")
                finally:
                    conn.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
            else:
                conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
                for t in tables:
                    conn.execute(sa.delete(t))
        if self.td == "sqlite":
            with self.tgt.connect() as conn:
                conn.exec_driver_sql("PRAGMA foreign_keys = ON")

    def _resolve_since(self, e: Entry, info: dict[str, Any], exists: bool) -> tuple[Any, ...] | None:
        """Incremental mode's lower bound, stored in the table's checkpoint so a resume uses the same one."""
        m, req, plan = e.plan.mapping, self.req, e.plan
        key = m.since_key if m.since_key is not None else req.since_key
        column = m.since_column or req.since_column
        value = m.since_value if m.since_column else req.since_value
        if req.mode != "incremental":
            if key is not None or column:
                raise InvalidInput("since_key / since_column only apply to mode=incremental")
            return None
        if key is not None:
            if len(plan.key) != 1:
                raise InvalidInput(f"since_key needs a one-column key; {plan.source_table} has {plan.key or 'none'}")
            start = decode_key(encode_key((key,)), plan.key_kinds)
            info["start"] = encode_key(start)
            return start
        if not plan.key or not e.spec.key:
            raise InvalidInput(
                f"incremental mode needs a key on {plan.source_table} (source and target) to update rows in place"
            )
        if column:
            if column not in plan.all_columns:
                raise InvalidInput(f"since_column: {plan.source_table} has no column {column!r}")
            if value is None and exists:
                target_col = e.spec.by_origin(column) or column
                with self.tgt.connect() as conn:
                    value = conn.execute(sa.select(sa.func.max(e.target.table.c[target_col]))).scalar()
            info["since_column"], info["since_value"] = column, self._bindable(value)
            return None
        start = None
        if exists:
            cols = [e.target.table.c[k] for k in e.spec.key]
            with self.tgt.connect() as conn:
                row = conn.execute(sa.select(*cols).order_by(*[c.desc() for c in cols]).limit(1)).first()
            if row is not None:
                start = decode_key(encode_key(tuple(row)), plan.key_kinds)
        info["start"] = encode_key(start)
        return start

    def _bindable(self, value: Any) -> Any:
        if isinstance(value, dt.datetime):
            if value.tzinfo is not None and self.sd != "postgresql":
                value = value.astimezone(dt.UTC).replace(tzinfo=None)
            return value.isoformat(sep=" ")
        return jsonable(value)

    def _plan_partitions(self, e: Entry, start: tuple[Any, ...] | None) -> None:
        reader = Reader(self.src, e.plan, e.spec, e.plan.all_columns)
        try:
            bounds = plan_bounds(reader, e.plan, start, self.req.partition_rows, self.workers)
        finally:
            reader.close()
        self.store.create_partitions(e.name, bounds, {})

    def _levels(self, entries: list[Entry]) -> list[list[Entry]]:
        """Parents before children when the target already has its foreign keys during the load."""
        if self.td == "sqlite" or all(e.created for e in entries):
            return [entries]
        by_name = {e.name: e for e in entries}
        deps = {
            e.name: {fk.ref_table for fk in e.plan.foreign_keys if fk.ref_table in by_name} - {e.name} for e in entries
        }
        levels, placed = [], set()
        while len(placed) < len(entries):
            ready = [n for n in deps if n not in placed and deps[n] <= placed]
            if not ready:  # a cycle: load the rest together
                ready = [n for n in deps if n not in placed]
            levels.append([by_name[n] for n in ready])
            placed.update(ready)
        return levels

    def _load(self, entries: list[Entry], pool: ThreadPoolExecutor) -> None:
        """Run every partition; a table whose last partition is in gets its indexes built on ``pool``
        right away (not on SQLite), beside the tables still loading, as pgcopydb does."""
        state = self.store.load()
        self._index_builds: list[Future[None]] = []
        self.builds: postload.Builds | None = None
        if self.td == "postgresql":
            created = [e for e in entries if e.created]
            keyed = {e.name for e in created if primarykey.applies(e.target, self.req.mode)}
            self.builds = postload.Builds(self.tgt, created, pool, keyed, self._check_early)  # type: ignore[arg-type]
        for e in entries:
            parts = [p for n, p in state.get(e.name, {}).items() if n >= 0]
            self.tracker.add_table(e.name, max(e.plan.estimate, 0), sum(p.rows for p in parts))
        self.tracker.start()
        workers = 1 if self.td == "sqlite" else self.workers
        for level in self._levels(entries):
            jobs = []
            for e in level:
                hash_spec = self._stream_spec(e)
                for n, part in sorted(state.get(e.name, {}).items()):
                    if n >= 0 and not part.done:
                        jobs.append(
                            PartitionJob(
                                source_url=self._source,
                                target_url=self._target,
                                plan=e.plan,
                                part=n,
                                run_id=self.run_id,
                                mode=self.req.mode,
                                batch_size=self.req.batch_size,
                                reject_limit=self.req.reject_limit,
                                checkpoint_schema=self.req.target_schema,
                                since_column=e.since_column,
                                since_value=e.since_value,
                                all_columns=e.plan.all_columns,
                                hash_spec=hash_spec,
                            )
                        )
                e.started = time.monotonic()
            # Largest tables first: their indexes and keys take longest after the load, so they should
            # start while the small tables still load (longest-processing-time-first scheduling).
            jobs.sort(key=lambda job: -max(job.plan.estimate, 0))
            remaining = Counter(job.plan.source_table for job in jobs)

            def finished(result: PartitionResult, level: list[Entry] = level, remaining: Counter = remaining) -> None:
                entry = next(x for x in level if x.name == result.table)
                entry.results.append(result)
                if result.error and not entry.error:
                    entry.error = f"partition {result.part}: {result.error}"
                remaining[entry.name] -= 1
                if not remaining[entry.name]:
                    self._loaded(entry, pool)

            for e in level:
                if not remaining[e.name]:  # nothing left to copy (a resumed run)
                    self._loaded(e, pool)
            run_jobs(jobs, workers, self.tracker.rows, self.tracker.report, finished, self.ready)

    def _loaded(self, e: Entry, pool: ThreadPoolExecutor) -> None:
        e.finished = time.monotonic()
        self.tracker.set_state(e.name, "failed" if e.error else "indexing")
        if self.builds is not None and e.created and not e.error:
            self.builds.loaded(e)  # type: ignore[arg-type]
        elif self.td != "sqlite" and e.created and not e.error:
            self._index_builds.append(pool.submit(self._build_indexes, e))

    def _check_early(self, e: Entry) -> None:
        """PostgreSQL: a table is checked as soon as its indexes are built (on the checker threads), while
        the other tables still load: its read-back then does not compete with the last foreign key
        validation, which PostgreSQL runs as one serial query at the very end."""
        if not self.req.verify or self.req.mode not in ("create", "truncate"):
            return
        item = self._verify_item(e, self.store.load())
        args = (item, self.src, self.tgt, self._source, self._target, self.req.mode)
        self._early_checks[e.name] = self.checker.submit(check, *args)

    def _wait_indexes(self, entries: list[Entry]) -> None:
        """The index builds started during the load; on SQLite they run now, one table at a time."""
        if self.builds is not None:
            self.builds.wait_indexes()
        for build in self._index_builds:
            build.result()
        if self.td == "sqlite":
            for e in entries:
                if e.created and not e.error:
                    self._build_indexes(e)

    def _stream_spec(self, e: Entry) -> HashSpec | None:
        """Have the workers hash the source rows for verification when the target will hold exactly those rows.

        Planning it reflects both tables (~45 ms): for a table of a few hundred rows one checksum query per
        side afterwards is cheaper, and a copy of a hundred small tables was a third slower for it.
        """
        if not self.req.verify or self.req.mode not in ("create", "truncate") or e.plan.estimate < STREAM_MIN_ROWS:
            return None
        if fast_path_expected(e.plan, e.spec, self.req.mode):
            return None
        return stream_spec(self._source, self._target, e.plan, e.spec)

    def _post_load(self, entries: list[Entry]) -> None:
        if self.builds is not None:
            self.builds.wait_keys()
        ok = [e for e in entries if not e.error]
        for e in ok:  # one at a time: two tables' keys may reference each other (lock order)
            if e.created or self.td == "sqlite":
                self._build_foreign_keys(e)
        for e in ok:
            if e.created:
                self._add_checks(e)
            S.reset_counters(self.tgt, e.target)
            failed = [r for r in e.reports if not r.ok]
            if failed:
                e.error = "; ".join(f"{r.kind} {r.name}: {r.error}" for r in failed)
            state = self.store.load().get(e.name, {}).get(TABLE_PART)
            info = dict(state.info) if state else {}
            info.update(index_seconds=e.index_seconds, fk_seconds=e.fk_seconds)
            self.store.set_table_state(e.name, "loaded" if failed else "done", info)
            self.tracker.set_state(e.name, "failed" if failed else "done")
            if e.finished is not None:
                e.finished += e.index_seconds + e.fk_seconds

    def _add_checks(self, e: Entry) -> None:
        """The source's CHECK constraints, once the rows are in (SQLite's are part of its CREATE TABLE)."""
        for name, sql in e.target.checks:
            error = extras.add_check(self.tgt, e.target.table, name, sql)
            if error is not None:
                e.target.omit("check", name, f"{sql}: not kept, the target refused it or the rows break it ({error})")

    def _views(self, entries: list[Entry]) -> None:
        """The source's views whose tables this run created and copied unchanged under their own names (never
        on tables of the user's: append and incremental modes load into those)."""
        copied = {
            e.name
            for e in entries
            if e.created and not e.error and e.plan.target_table == e.name and e.plan.mapping == TableMapping()
        }
        _done, omitted = extras.copy_views(
            self.src, self.tgt, self.sd, self.td, self.req.source_schema or None, copied, self.req.target_schema
        )
        self.omitted += omitted

    def _build_indexes(self, e: Entry) -> None:
        """MySQL/MariaDB and SQLite targets (PostgreSQL's go through ``postload.Builds``)."""
        start = time.perf_counter()
        e.reports += S.build_indexes(self.tgt, e.target)
        e.index_seconds = time.perf_counter() - start

    def _build_foreign_keys(self, e: Entry) -> None:
        start = time.perf_counter()
        skip = self.builds.handled if self.builds is not None else set()
        e.reports += S.build_foreign_keys(self.tgt, e.target, skip)
        e.fk_seconds += time.perf_counter() - start

    def _verify(self, entries: list[Entry], state: dict[str, dict[int, PartState]]) -> Verification:
        if not self.req.verify:
            return Verification(ran=False, ok=None, note="verification disabled (verify=false)")
        failed = {e.name for e in entries if e.error}
        early = {name: f.result() for name, f in self._early_checks.items() if name not in failed}
        items = [self._verify_item(e, state) for e in entries if not e.error and e.name not in early]
        rest = verify(self.src, self.tgt, self._source, self._target, self.req.mode, items).tables
        later = iter(rest)
        return summarize([early[e.name] if e.name in early else next(later) for e in entries if not e.error])

    def _verify_item(self, e: Entry, state: dict[str, dict[int, PartState]]) -> VerifyItem:
        parts = [p for n, p in state.get(e.name, {}).items() if n >= 0]
        warnings = sum(sum((p.info.get("warnings") or {}).values()) for p in parts)
        item = VerifyItem(e.plan, e.spec, e.plan.all_columns, sum(p.rejects for p in parts), warnings)
        item.stream = [p.info for p in parts]
        return item

    def _summary(
        self,
        entries: list[Entry],
        state: dict[str, dict[int, PartState]],
        resumed: bool,
        complete: bool,
        wrote_rejects: bool,
        verification: Verification,
    ) -> CopySummary:
        tables = [self._table_summary(e, state.get(e.name, {})) for e in entries]
        seconds = self.copy_seconds
        this_call = sum(t.rows_this_call for t in tables)
        totals = Totals(
            rows=sum(t.rows for t in tables),
            rows_this_call=this_call,
            bytes=sum(t.bytes for t in tables),
            seconds=round(seconds, 3),
            rows_per_s=round(this_call / seconds, 1) if seconds > 0 else 0.0,
            wall_seconds=round(time.monotonic() - self.started, 3),
            rejects=sum(t.rejects for t in tables),
            tables_done=sum(1 for t in tables if t.state == "done"),
            tables_failed=sum(1 for t in tables if t.state == "failed"),
        )
        over_budget = totals.rejects > self.req.max_rejects
        ok = totals.tables_failed == 0 and verification.ok is not False and not over_budget
        not_carried = [*[o for e in entries for o in e.target.omitted], *self.omitted]
        reject_file = None
        if wrote_rejects:
            try:
                reject_file = str(self.reject_path.relative_to(self.rc.project_dir.resolve()))
            except ValueError:
                reject_file = str(self.reject_path)
        self.tracker.report(force=True)
        return CopySummary(
            ok=ok,
            run_id=self.run_id,
            resumed=resumed,
            already_complete=complete,
            mode=self.req.mode,
            source=display_url(self.src_url),
            target=display_url(self.tgt_url),
            source_dialect=self.sd,
            target_dialect=self.td,
            workers=1 if self.td == "sqlite" else self.workers,
            batch_size=self.req.batch_size,
            tables=tables,
            totals=totals,
            reject_file=reject_file,
            max_rejects=self.req.max_rejects,
            not_carried=not_carried,
            verification=verification,
            message=_message(totals, verification, complete, resumed, reject_file, self.req.max_rejects, not_carried),
        )

    def _table_summary(self, e: Entry, parts: dict[int, PartState]) -> TableSummary:
        data = [p for n, p in parts.items() if n >= 0]
        table_state = parts.get(TABLE_PART)
        info = table_state.info if table_state else {}
        warnings: dict[str, int] = {}
        for p in data:
            for col, n in (p.info.get("warnings") or {}).items():
                warnings[col] = warnings.get(col, 0) + int(n)
        this_call = sum(r.rows for r in e.results)
        seconds = (e.finished - e.started) if e.started is not None and e.finished is not None else 0.0
        done = table_state is not None and table_state.state == "done" and not e.error
        return TableSummary(
            table=e.name,
            target_table=e.plan.target_table,
            state="done" if done else "failed",
            rows=sum(p.rows for p in data),
            rows_this_call=this_call,
            bytes=sum(p.bytes for p in data),
            seconds=round(seconds, 3),
            rows_per_s=round(this_call / seconds, 1) if seconds > 0 else 0.0,
            rejects=sum(p.rejects for p in data),
            partitions=len(data),
            index_seconds=round(e.index_seconds or float(info.get("index_seconds") or 0.0), 3),
            fk_seconds=round(e.fk_seconds or float(info.get("fk_seconds") or 0.0), 3),
            created=bool(info.get("created", e.created)),
            warnings=warnings,
            notes=list(dict.fromkeys([*e.plan.notes, *e.target.notes])),
            constraints=e.reports,
            error=redact(e.error) if e.error else None,
        )


class _Missing:
    state = "missing"


_NONE: Any = _Missing()


def _message(
    totals: Totals,
    v: Verification,
    complete: bool,
    resumed: bool,
    reject_file: str | None,
    max_rejects: int,
    not_carried: list[Omission],
) -> str:
    if complete:
        head = (
            f"already complete: {totals.rows:,} rows in {totals.tables_done} table(s); pass restart=true to copy again"
        )
    else:
        head = (
            f"{'resumed and ' if resumed else ''}copied {totals.rows_this_call:,} rows into "
            f"{totals.tables_done} table(s) in {totals.seconds:.1f}s ({totals.rows_per_s:,.0f} rows/s)"
        )
    parts = [head]
    if totals.tables_failed:
        parts.append(f"{totals.tables_failed} table(s) FAILED (see tables[].error)")
    if totals.rejects > max_rejects:
        budget = f"more than max_rejects={max_rejects}" if max_rejects else "and no reject budget was set (max_rejects)"
        parts.append(f"{totals.rejects} row(s) rejected {budget}: the copy is NOT complete, see {reject_file}")
    elif totals.rejects:
        parts.append(f"{totals.rejects} row(s) rejected (within max_rejects={max_rejects}), see {reject_file}")
    if not_carried:
        parts.append(f"{len(not_carried)} schema object(s) not carried over (each named with the reason: not_carried)")
    if v.ran:
        if v.ok and v.not_compared:
            left_out = ", ".join(v.not_compared)
            parts.append(f"verification matched on the compared columns only; NOT compared: {left_out}")
        else:
            parts.append(
                "verification passed" if v.ok else "verification FAILED" if v.ok is False else "nothing to verify"
            )
        if v.ok is False and v.not_compared:
            parts.append("NOT compared: " + ", ".join(v.not_compared))
    return "; ".join(parts)
