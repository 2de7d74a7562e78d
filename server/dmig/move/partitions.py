"""Big tables split into key ranges, and the pool of worker processes that copies them.

A table whose single-column integer key spans more than ``partition_rows`` rows is cut into
equal key ranges ``(lo, hi]`` (the last one open-ended, so rows inserted during the copy are not
missed). The ranges are stored in the checkpoint table when first planned, so a resumed run uses
exactly the same ones whatever ``workers`` says this time. Other keys (text, composite) are one
range: their boundaries would need a full index scan to find.

Processes, not threads: row conversion is Python code and the GIL would serialise it. Workers
are spawned (not forked: the MCP server runs threads) and ask the kernel to kill them when the
coordinator dies (``PR_SET_PDEATHSIG``), and every batch also checks the parent is still there,
so a ``kill -9`` of ``dmig copy`` leaves no orphan still writing.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing as mp
import os
import queue
import signal
import sys
from collections.abc import Callable, Iterator
from typing import Any

import sqlalchemy as sa

from dmig.move.checkpoints import encode_key
from dmig.move.plan import TablePlan
from dmig.move.readers import Reader
from dmig.move.worker import PartitionJob, PartitionResult, copy_partition

ProgressSink = Callable[[str, int, int], None]
MAX_PARTITIONS_PER_WORKER = 4

_queue: Any = None


def plan_bounds(
    reader: Reader, plan: TablePlan, start: tuple[Any, ...] | None, partition_rows: int, workers: int
) -> list[tuple[str | None, str | None]]:
    """Encoded (lo, hi] key ranges for a table; one open range unless it is big with an integer key."""
    single = [(encode_key(start), None)]
    if len(plan.key) != 1 or plan.key_kinds[0].name != "int" or plan.estimate <= partition_rows or workers <= 1:
        return single
    key = sa.column(plan.key[0])
    where = list(reader.conditions)
    if start is not None:
        where.append(key > start[0])
    query = sa.select(sa.func.min(key), sa.func.max(key)).select_from(reader.table).where(*where)
    lo, hi = reader.raw.all(query)[0]
    reader.raw.rollback()
    if lo is None or hi is None:
        return single
    lo, hi = int(lo), int(hi)
    n = min(max(1, -(-plan.estimate // partition_rows)), workers * MAX_PARTITIONS_PER_WORKER, max(1, hi - lo + 1))
    if n <= 1:
        return single
    step = -(-(hi - lo + 1) // n)
    cuts = [lo - 1 + step * i for i in range(1, n)]
    lows = [start] + [(c,) for c in cuts]
    highs = [(c,) for c in cuts] + [None]
    return [(encode_key(a), encode_key(b)) for a, b in zip(lows, highs, strict=True)]


def _set_parent_death_signal() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _init_worker(q: Any, parent: int) -> None:
    global _queue
    _queue = q
    _set_parent_death_signal()
    if os.getppid() != parent:  # the parent died before we armed the signal
        os._exit(1)


def _report_to_queue(table: str, rows: int, rejects: int) -> None:
    _queue.put((table, rows, rejects))


def _run_in_worker(job: PartitionJob) -> PartitionResult:
    return copy_partition(job, _report_to_queue)


def run_jobs(
    jobs: list[PartitionJob], workers: int, sink: ProgressSink, tick: Callable[[], None]
) -> list[PartitionResult]:
    """Run the jobs (in-process when one worker or one job is enough) and return their results."""
    if not jobs:
        return []
    if workers <= 1 or len(jobs) == 1:
        results = []
        for job in jobs:
            results.append(copy_partition(job, lambda t, r, j: (sink(t, r, j), tick())))
        return results
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    parent = os.getpid()
    for job in jobs:
        job.parent_pid = parent
    results: list[PartitionResult] = []
    with cf.ProcessPoolExecutor(
        max_workers=min(workers, len(jobs)), mp_context=ctx, initializer=_init_worker, initargs=(q, parent)
    ) as pool:
        with _lean_children():
            pending = {pool.submit(_run_in_worker, job): job for job in jobs}
        while pending:
            done, _ = cf.wait(pending, timeout=0.25, return_when=cf.FIRST_COMPLETED)
            _drain(q, sink)
            tick()
            for fut in done:
                job = pending.pop(fut)
                try:
                    results.append(fut.result())
                except Exception as exc:  # a worker process died (e.g. killed): report, keep the others going
                    results.append(
                        PartitionResult(
                            table=job.plan.source_table,
                            part=job.part,
                            error=f"worker failed: {exc}",
                            error_code="E_INTERNAL",
                        )
                    )
        _drain(q, sink)
    return results


@contextlib.contextmanager
def _lean_children() -> Iterator[None]:
    """Spawned workers re-import the parent's ``__main__`` (the ``dmig`` script, hence the CLI, the MCP
    SDK and every tool: ~25 MB each). They need none of it, so hide it while the pool starts them."""
    main = sys.modules.get("__main__")
    saved = {k: getattr(main, k) for k in ("__file__", "__spec__") if main is not None and hasattr(main, k)}
    try:
        for k in saved:
            setattr(main, k, None) if k == "__spec__" else delattr(main, k)
        yield
    finally:
        for k, v in saved.items():
            setattr(main, k, v)


def _drain(q: Any, sink: ProgressSink) -> None:
    while True:
        try:
            table, rows, rejects = q.get_nowait()
        except queue.Empty:
            return
        sink(table, rows, rejects)
