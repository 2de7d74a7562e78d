"""Big tables split into key ranges, and the worker processes that copy them.

A table whose single-column integer key spans more than ``partition_rows`` rows is cut into
equal key ranges ``(lo, hi]`` (the last one open-ended, so rows inserted during the copy are not
missed). The ranges are stored in the checkpoint table when first planned, so a resumed run uses
exactly the same ones whatever ``workers`` says this time. Other keys (text, composite) are one
range: their boundaries would need a full index scan to find.

Processes, not threads: row conversion is Python code and the GIL would serialise it. ``workers``
counts the coordinator: it copies partitions itself between looking after ``workers - 1`` worker
processes, because every Python process costs its ~50 MB of imports again (the issue 4 budget is
200 MB for the whole tree). Workers are fresh interpreters started with ``subprocess`` (never
forked: the MCP server runs threads) that take jobs and send progress and results back over a
socket; not through ``multiprocessing``, whose spawn and forkserver starters also start a resource
tracker process (~12 MB) that nothing here needs. A worker asks the kernel to kill it when the
coordinator dies (``PR_SET_PDEATHSIG``), checks it was not orphaned before that, and every batch
checks the parent is still there, so a ``kill -9`` of ``dmig copy`` leaves no orphan still writing.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import socket
import subprocess
import sys
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from dmig.move.checkpoints import encode_key
from dmig.move.plan import TablePlan
from dmig.move.readers import Reader
from dmig.move.worker import Engines, PartitionJob, PartitionResult, copy_partition

ProgressSink = Callable[[str, int, int], None]
ResultFn = Callable[[PartitionResult], None]
MAX_PARTITIONS_PER_WORKER = 4
WAIT_S = 0.25  # how often the coordinator ticks progress while it only waits for the workers
STOP_S = 10.0  # how long a worker may take to exit once its socket is closed before it is killed

# What a worker process runs: import the same dmig as the coordinator, then serve jobs.
_BOOT = "import sys; sys.path.insert(0, sys.argv[1]); from dmig.move.partitions import serve; serve()"


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


def _warm_up() -> None:
    """Load what the first job will need (driver, fast paths) while the coordinator is still planning."""
    with contextlib.suppress(Exception):
        import psycopg  # noqa: F401

        from dmig import native
        from dmig.move import nativepath, passthrough  # noqa: F401

        native.lib()


def serve() -> None:
    """A worker process: run the jobs the coordinator sends until it closes the socket.

    Ctrl-C reaches the whole process group; the coordinator handles it (and stops the workers),
    so a worker ignores it rather than print a traceback of its own.
    """
    fd, parent = int(sys.argv[2]), int(sys.argv[3])
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _set_parent_death_signal()
    if os.getppid() != parent:  # the parent died before we armed the signal
        os._exit(1)
    conn = Connection(fd)
    _warm_up()

    def report(table: str, rows: int, rejects: int) -> None:
        conn.send((table, rows, rejects))

    engines = Engines()  # this process serves one run: its partitions share pooled connections
    with contextlib.suppress(EOFError, OSError):  # EOF: no more jobs; OSError: the coordinator is gone
        while True:
            conn.send(copy_partition(conn.recv(), report, engines))
    engines.dispose()


class _Worker:
    """One worker process and our end of its socket; ``job`` is what it is copying now."""

    def __init__(self, parent: int) -> None:
        ours, theirs = socket.socketpair()
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the dmig package
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", _BOOT, root, str(theirs.fileno()), str(parent)],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,  # stdout may be the MCP stdio channel or the --json output
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.conn = Connection(ours.detach())
        self.job: PartitionJob | None = None

    def stop(self, kill: bool) -> int | None:
        self.conn.close()  # the worker reads EOF and exits (or fails its next progress message)
        if kill:
            self.proc.kill()
        try:
            return self.proc.wait(STOP_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class Prestarted:
    """Worker processes started before the jobs are known, so that their start-up (a Python interpreter
    importing the copy engine, ~0.4 s of CPU) overlaps the coordinator's planning instead of delaying
    the load. ``run_jobs`` takes them first; ``close`` stops those nobody took."""

    def __init__(self, count: int) -> None:
        self.idle = [_Worker(os.getpid()) for _ in range(max(0, count))]

    def take(self) -> _Worker | None:
        while self.idle:
            w = self.idle.pop(0)
            if w.proc.poll() is None:
                return w
            w.stop(kill=True)
        return None

    def close(self) -> None:
        for w in self.idle:  # never given a job: nothing to finish, and no need to wait for its imports
            w.stop(kill=True)
        self.idle.clear()


class _Pool:
    """Worker processes fed from one queue of jobs that the coordinator also takes from."""

    def __init__(self, jobs: list[PartitionJob], sink: ProgressSink, on_result: ResultFn) -> None:
        self.todo = deque(jobs)
        self.sink = sink
        self.on_result = on_result
        self.results: list[PartitionResult] = []
        self.parent = os.getpid()
        self.workers: list[_Worker] = []

    def start(self, size: int, ready: Prestarted | None = None) -> None:
        while ready is not None and len(self.workers) < size and (w := ready.take()) is not None:
            self.workers.append(w)
        while len(self.workers) < size:
            self.workers.append(_Worker(self.parent))

    def take(self) -> PartitionJob | None:
        return self.todo.popleft() if self.todo else None

    @property
    def busy(self) -> bool:
        return any(w.job is not None for w in self.workers)

    def pump(self, timeout: float) -> None:
        """Hand idle workers the next jobs, then take in what the busy ones sent (waiting up to ``timeout``)."""
        for w in list(self.workers):
            if w.job is None and self.todo:
                job = self.todo.popleft()
                try:
                    w.conn.send(dataclasses.replace(job, parent_pid=self.parent))
                    w.job = job
                except OSError:  # it died while idle: the job goes back, the others (or we) will run it
                    self.todo.appendleft(job)
                    self._drop(w)
        busy = {w.conn: w for w in self.workers if w.job is not None}
        ready = wait(list(busy), timeout) if busy else []
        for w in [busy[c] for c in ready if isinstance(c, Connection)]:
            self._receive(w)

    def _receive(self, w: _Worker) -> None:
        try:
            while w.conn.poll():
                msg = w.conn.recv()
                if isinstance(msg, PartitionResult):
                    w.job = None
                    self.add(msg)
                else:
                    self.sink(*msg)
        except (EOFError, OSError):  # the process died (e.g. killed): report its job, keep the others going
            job = w.job
            code = self._drop(w)
            if job is not None:
                self.add(
                    PartitionResult(
                        table=job.plan.source_table,
                        part=job.part,
                        error=f"worker failed: its process exited with code {code}",
                        error_code="E_INTERNAL",
                    )
                )

    def add(self, result: PartitionResult) -> None:
        self.results.append(result)
        self.on_result(result)

    def _drop(self, w: _Worker) -> int | None:
        self.workers.remove(w)
        return w.stop(kill=True)

    def close(self, kill: bool) -> None:
        for w in self.workers:
            w.stop(kill)
        self.workers.clear()


def run_jobs(
    jobs: list[PartitionJob],
    workers: int,
    sink: ProgressSink,
    tick: Callable[[], None],
    on_result: ResultFn = lambda _r: None,
    ready: Prestarted | None = None,
) -> list[PartitionResult]:
    """Run the jobs, this process being one of ``workers``, and return their results.

    ``on_result`` sees each result as it arrives, in this thread, so the caller can start a table's
    next step (its index builds) while other tables are still loading. Workers come from ``ready``
    first.
    """
    if not jobs:
        return []
    size = min(workers, len(jobs)) - 1
    engines = Engines()  # this process's partitions share pooled connections; closed when the jobs are done
    if size <= 0:
        results = []
        try:
            for job in jobs:
                results.append(copy_partition(job, lambda t, r, j: (sink(t, r, j), tick()), engines))
                on_result(results[-1])
        finally:
            engines.dispose()
        return results
    pool = _Pool(jobs, sink, on_result)
    finished = False
    try:
        pool.start(size, ready)

        def report(table: str, rows: int, rejects: int) -> None:
            sink(table, rows, rejects)
            pool.pump(0)
            tick()

        while True:
            pool.pump(0)
            job = pool.take()
            if job is None:
                break
            pool.add(copy_partition(job, report, engines))
        while pool.busy:
            pool.pump(WAIT_S)
            tick()
        finished = True
    finally:
        pool.close(kill=not finished)
        engines.dispose()
    return pool.results
