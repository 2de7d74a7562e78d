"""Copy one partition (a key range of one table): read a page, convert, commit with its checkpoint, repeat.

This is the unit that runs in a worker process. It starts from the partition's checkpoint as
stored in the target (never from what the coordinator remembers), so a re-run after ``kill -9``
continues exactly after the last committed key.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from dmig.db.engine import create
from dmig.errors import DmigError
from dmig.move.checkpoints import PartState, Store, decode_key
from dmig.move.expressions import untyped
from dmig.move.pages import PageContext
from dmig.move.plan import TablePlan
from dmig.move.readers import Reader
from dmig.move.rejects import Batch, Committer, PartitionLost, error_text
from dmig.move.streamhash import Accumulator, HashSpec
from dmig.move.transforms import RowFn, build_row_fn, plan_target
from dmig.move.values import ValueRejected
from dmig.move.writers import Writer, is_data_error

ReportFn = Callable[[str, int, int], None]
_ROW_ERRORS = (ValueError, TypeError, OverflowError, ArithmeticError)


@dataclass
class PartitionJob:
    source_url: str
    target_url: str
    plan: TablePlan
    part: int
    run_id: str
    mode: str
    batch_size: int
    reject_limit: int
    checkpoint_schema: str | None
    since_column: str | None = None
    since_value: Any = None
    parent_pid: int | None = None
    all_columns: list[str] = field(default_factory=list)
    hash_spec: HashSpec | None = None  # hash source rows as they stream (verification reads the source once)


@dataclass
class PartitionResult:
    table: str
    part: int
    rows: int = 0
    rejects: int = 0
    started: float = 0.0
    finished: float = 0.0
    error: str | None = None
    error_code: str | None = None
    lost: bool = False


def _convert(src_rows: list[tuple[Any, ...]], row_fn: RowFn, pending: list[str]) -> Batch:
    bad: dict[int, str] = getattr(src_rows, "bad", None) or {}  # rows the reader could not read faithfully
    try:
        if not bad:
            rows: list[tuple[Any, ...] | None] = [row_fn(r) for r in src_rows]
            if not pending:
                return Batch(src=src_rows, rows=rows)
    except _ROW_ERRORS:
        pass
    pending.clear()
    batch = Batch(src=src_rows, rows=[])
    for i, r in enumerate(src_rows):
        if i in bad:
            batch.rows.append(None)
            batch.errors[i] = bad[i]
            continue
        try:
            batch.rows.append(row_fn(r))
        except _ROW_ERRORS as exc:
            batch.rows.append(None)
            batch.errors[i] = str(exc) if isinstance(exc, ValueRejected) else f"{type(exc).__name__}: {exc}"
        if pending:
            batch.warns[i] = list(pending)
            pending.clear()
    return batch


def _load_part(store: Store, table: str, part: int) -> PartState:
    state = store.load().get(table, {}).get(part)
    if state is None:
        raise DmigError(f"no checkpoint for {table} partition {part}", code="E_CONFLICT")
    return state


class Engines:
    """The engines one process uses for the partitions of one run, so that each partition takes pooled
    connections instead of opening its own: connecting, the session settings and the first checkpoint
    read cost ~0.25 s a partition, during which both cores sat idle (a 13-partition copy of 3M rows
    spent over a second of each worker's time that way)."""

    def __init__(self) -> None:
        self._engines: dict[tuple[str, bool, bool], Engine] = {}

    def get(self, url: str, must_exist: bool = True, *, bulk_load: bool = False) -> Engine:
        """``bulk_load``: the copy's target, the only engine whose connections may use LOAD DATA LOCAL."""
        engine = self._engines.get((url, must_exist, bulk_load))
        if engine is None:
            engine = create(url, must_exist=must_exist, local_infile=bulk_load)
            self._engines[(url, must_exist, bulk_load)] = engine
        return engine

    def dispose(self) -> None:
        for engine in self._engines.values():
            engine.dispose()
        self._engines.clear()


def copy_partition(job: PartitionJob, report: ReportFn, engines: Engines | None = None) -> PartitionResult:
    """Run one partition to completion; failures come back in the result (never as a raised exception).

    ``engines``: the run's engines in this process (kept open for the next partition); without them the
    partition opens and disposes its own."""
    plan = job.plan
    result = PartitionResult(table=plan.source_table, part=job.part, started=time.time())
    own = engines is None
    engines = engines or Engines()
    src_engine = engines.get(job.source_url)
    tgt_engine = engines.get(job.target_url, must_exist=False, bulk_load=True)
    reader = writer = None
    try:
        store = Store(tgt_engine, job.run_id, job.checkpoint_schema)
        part = _load_part(store, plan.source_table, job.part)
        if part.done:
            return result
        spec, ops = plan_target(plan)
        pending: list[str] = []
        row_fn = build_row_fn(plan, spec, ops, pending.append)
        reader = Reader(src_engine, plan, spec, job.all_columns or [c.name for c in plan.columns])
        if job.since_column is not None and job.since_value is not None:
            reader.add_condition(sa.column(job.since_column) >= untyped(job.since_value))
        writer = Writer(
            tgt_engine,
            plan.target_table,
            plan.target_schema,
            [c.name for c in spec.columns],
            [c.kind for c in spec.columns],
            spec.key,
            upsert=job.mode == "incremental",
            source_dialect=plan.source_dialect,
        )
        hashing = Accumulator(job.hash_spec) if job.hash_spec is not None else None
        committer = Committer(
            writer, store, part, reader.key_of, [c.name for c in plan.columns], job.reject_limit, hashing
        )
        from dmig.move import nativepath, passthrough  # the fast paths, for the pairs and types they handle

        ctx = PageContext(
            job, reader, committer, lambda rows: _convert(rows, row_fn, pending), report, lambda: _check_parent(job)
        )
        if plan.key and passthrough.usable(job, spec, reader, writer):
            passthrough.PassThrough(ctx).run()
        elif plan.key and (codes := nativepath.usable(job, spec, reader, writer)) is not None:
            nativepath.NativePages(ctx, codes).run()
        elif plan.key:
            _keyed_loop(job, reader, committer, row_fn, pending, part, report)
        else:
            _stream_all(job, reader, committer, row_fn, pending, report)
        result.rows, result.rejects = committer.rows_written, committer.rejected
    except PartitionLost as exc:
        result.lost, result.error, result.error_code = True, exc.message, exc.code
    except DmigError as exc:
        result.error, result.error_code = exc.message, exc.code
    except Exception as exc:  # reported per table in the summary; the other tables go on
        result.error, result.error_code = error_text(exc), "E_DATABASE"
    finally:
        for closer in (reader, writer):
            if closer is not None:
                closer.close()
        if own:
            engines.dispose()
        result.finished = time.time()
    return result


def _check_parent(job: PartitionJob) -> None:
    if job.parent_pid is not None and os.getppid() != job.parent_pid:
        raise DmigError("the coordinating process is gone; stopping", code="E_INTERRUPTED")


def _keyed_loop(
    job: PartitionJob,
    reader: Reader,
    committer: Committer,
    row_fn: RowFn,
    pending: list[str],
    part: PartState,
    report: ReportFn,
) -> None:
    kinds = job.plan.key_kinds
    after = decode_key(part.last_key, kinds)
    upto = decode_key(part.hi_key, kinds)
    while True:
        _check_parent(job)
        src_rows = reader.page(after, upto, job.batch_size)
        final = len(src_rows) < job.batch_size
        before_rows, before_rejects = committer.rows_written, committer.rejected
        committer.commit(_convert(src_rows, row_fn, pending), final)
        report(job.plan.source_table, committer.rows_written - before_rows, committer.rejected - before_rejects)
        if final:
            return
        after = reader.key_of(src_rows[-1])


def _stream_all(
    job: PartitionJob, reader: Reader, committer: Committer, row_fn: RowFn, pending: list[str], report: ReportFn
) -> None:
    """No key: the whole table in one transaction (atomic, restarts from zero; rejects cannot be isolated)."""
    writer, store, part = committer.writer, committer.store, committer.part
    writer.begin()
    try:
        if not store.advance(writer.raw, part, None, 0, 0, 0, False):
            raise PartitionLost(f"{part.table} is being copied by another process")
        part.version += 1
        total = 0
        for chunk in reader.stream(job.batch_size):
            _check_parent(job)
            batch = _convert(chunk, row_fn, pending)
            if batch.errors:
                first = next(iter(batch.errors.values()))
                raise DmigError(
                    f"table {part.table} has no key, so bad rows cannot be set aside: {first}", code="E_DATABASE"
                )
            try:
                writer.write(batch.rows)  # type: ignore[arg-type]
            except Exception as exc:
                if is_data_error(exc, writer.raw.name):
                    raise DmigError(
                        f"table {part.table} has no key, so bad rows cannot be set aside: {error_text(exc)}",
                        code="E_DATABASE",
                    ) from None
                raise
            total += len(batch.rows)
            report(job.plan.source_table, len(batch.rows), 0)
        if not store.advance(writer.raw, part, None, total, 0, 0, True):
            raise PartitionLost(f"{part.table} is being copied by another process")
        writer.commit()
    except BaseException:
        writer.rollback()
        raise
    committer.rows_written = total
