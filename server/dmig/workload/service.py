"""One bounded rehearsal run: the workload plus the lock-wait sampler, with progress every second.

What the ``workload`` tool calls; a rehearsal script calls ``Workload`` directly when it needs to
mark segments or retire old writers around its own migration steps.
"""

from __future__ import annotations

import time
from typing import Any

from dmig.context import ProgressFn
from dmig.workload.locks import LockWaits, LockWaitSampler
from dmig.workload.report import WorkloadReport
from dmig.workload.runner import Workload

PROGRESS_EVERY_S = 1.0


def rehearse(
    url: str, table: str, *, seconds: float, sample_locks: bool = True, progress: ProgressFn | None = None,
    **options: Any,
) -> tuple[WorkloadReport, LockWaits | None]:  # fmt: skip
    wl = Workload(url, table, duration_s=seconds, **options)
    sampler = LockWaitSampler(url) if sample_locks else None
    if sampler is not None:
        sampler.start()
    try:
        wl.start()
        started = time.monotonic()
        while not wl.should_stop() and wl.alive():
            time.sleep(min(PROGRESS_EVERY_S, max(0.0, seconds - (time.monotonic() - started))) or 0.05)
            if progress is not None:
                done = min(seconds, time.monotonic() - started)
                progress(done, seconds, f"workload on {table}: {done:.0f}/{seconds:g} s, phase {wl.watcher.phase}")
        report = wl.stop()
    finally:
        locks = sampler.stop() if sampler is not None else None
    return report, locks
