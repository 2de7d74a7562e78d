"""Wall time and peak memory of a command and every process it starts, sampled from ``/proc``.

``/usr/bin/time -v`` reports the largest single process, not the sum: ``dmig copy`` runs a
coordinator plus worker processes, pgcopydb runs pg_dump/pg_restore and its own sub-processes,
so a fair figure is the peak of the SUM over the whole tree at one instant. That is what is
sampled here every ``interval`` seconds (RSS, and PSS which counts shared library pages once);
the largest per-process high-water mark (``VmHWM``, exact, not sampled) is kept too. A sampling
interval of 50 ms can miss a peak shorter than that; loaders hold their buffers for seconds.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


@dataclass
class Measured:
    """One run of one command."""

    argv: list[str]
    returncode: int
    wall_s: float
    peak_rss_mb: float  # max over samples of the sum of VmRSS of the tree
    peak_pss_mb: float  # same with PSS (shared pages divided between the processes sharing them)
    max_hwm_mb: float  # largest VmHWM of any single process of the tree
    processes: int  # distinct processes seen
    stdout: str = ""
    stderr: str = ""
    samples: int = 0
    extra: dict[str, float] = field(default_factory=dict)


def _children(pid: int) -> list[int]:
    kids: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    try:
        tasks = list(task_dir.iterdir())
    except OSError:
        return kids
    for task in tasks:
        try:
            kids += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return kids


def tree(root: int) -> list[int]:
    """The root and all its descendants alive now."""
    seen, todo = [], [root]
    while todo:
        pid = todo.pop()
        seen.append(pid)
        todo += _children(pid)
    return seen


def _status_kb(pid: int) -> tuple[int, int]:
    rss = hwm = 0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except (OSError, ValueError):
        pass
    return rss, hwm


def _pss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeSampler:
    """Polls a process tree in a thread until stopped; keeps the peaks."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        self.root, self.interval = root, interval
        self.peak_rss = self.peak_pss = self.max_hwm = 0
        self.samples = 0
        self.pids: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def sample(self) -> None:
        rss_sum = pss_sum = 0
        for pid in tree(self.root):
            rss, hwm = _status_kb(pid)
            if rss == 0:
                continue
            self.pids.add(pid)
            rss_sum += rss
            pss_sum += _pss_kb(pid)
            self.max_hwm = max(self.max_hwm, hwm)
        self.peak_rss = max(self.peak_rss, rss_sum)
        self.peak_pss = max(self.peak_pss, pss_sum)
        self.samples += 1

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)


def run_measured(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    stdin_text: str | None = None,
    timeout: float | None = None,
) -> Measured:
    """Run ``argv`` to completion, sampling its process tree; output is captured, never shown."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE if stdin_text is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sampler = TreeSampler(proc.pid)
    sampler.start()
    try:
        out, err = proc.communicate(stdin_text, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    finally:
        sampler.stop()
    wall = time.monotonic() - started
    return Measured(
        argv=list(argv),
        returncode=proc.returncode,
        wall_s=round(wall, 2),
        peak_rss_mb=round(sampler.peak_rss / 1024, 1),
        peak_pss_mb=round(sampler.peak_pss / 1024, 1),
        max_hwm_mb=round(sampler.max_hwm / 1024, 1),
        processes=len(sampler.pids),
        stdout=out,
        stderr=err,
        samples=sampler.samples,
    )
