"""The supervisor verify runs the test command under: when the command ends, nothing it started survives.

A process group is not enough: ``setsid``, ``nohup cmd &`` after ``setsid`` or a double fork leave the
group, and a detached sleeper that writes a file (or keeps a port, or reads the environment) an hour
later would outlive verify. Without cgroups (not available to an unprivileged user everywhere) the
reliable Linux tool is ``PR_SET_CHILD_SUBREAPER``: this small process marks itself a subreaper and
starts ``/bin/sh -c COMMAND``; every descendant that loses its parent (a daemon's intermediate fork
exiting, ``setsid`` children of a finished shell) is re-parented to this process instead of init, so
every process the command started stays in this process's tree, whatever session or group it moved to.

When the shell exits, or this process gets SIGTERM/SIGINT/SIGHUP (verify's timeout, an error, the
server going away: ``PR_SET_PDEATHSIG`` delivers SIGTERM if verify's process dies), it walks the tree
from ``/proc/*/stat`` (parent links), stops every descendant with SIGSTOP (a stopped process cannot fork
or write), kills them with SIGKILL, reaps what is re-parented to it, and repeats until no descendant is
left. Signals go through a pidfd opened while the process was seen in the tree, so a recycled pid is
never hit. The exit code is the shell's (128+N if a signal N ended it).

Stray processes get no SIGTERM grace: a graceful stop would let a process trapping SIGTERM run on
(``sleep 60; touch file`` proceeds to ``touch`` once ``sleep`` is terminated). A suite that wants its
background servers shut down cleanly stops them itself before exiting.

Run as ``python -I -S reaper.py PARENT_PID -- /bin/sh -c COMMAND``: standard library only and no site
packages, so it starts in a few milliseconds and nothing from the project's Python environment loads.
Known limits (documented in the README): a command that kills this supervisor with SIGKILL and also
scrubs its environment escapes (verify also sweeps by an environment marker, which catches the first
alone); on systems without ``/proc`` or prctl only the process group is killed.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
SWEEP_DEADLINE_S = 10.0
EXIT_SUPERVISOR_FAILED = 125


class _Stop(Exception):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


def _prctl(option: int, arg: int) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, arg, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _table() -> dict[int, tuple[int, bytes]]:
    """pid -> (parent pid, state letter) for every process in /proc."""
    out: dict[int, tuple[int, bytes]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                data = fh.read()
        except OSError:
            continue
        fields = data[data.rfind(b")") + 2 :].split()  # the command name may hold spaces and parentheses
        if len(fields) >= 2:
            out[int(name)] = (int(fields[1]), fields[0])
    return out


def descendants(root: int) -> list[tuple[int, bytes]]:
    """Every process below ``root`` in the parent tree, with its state (b'Z' for a zombie)."""
    table = _table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: list[tuple[int, bytes]] = []
    stack = [root]
    while stack:
        for child in children.get(stack.pop(), ()):
            found.append((child, table[child][1]))
            stack.append(child)
    return found


def parent_of(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rfind(b")") + 2 :].split()
    return int(fields[1]) if len(fields) >= 2 else None


def signal_pid(pid: int, signum: int, still_ours: Callable[[int], bool] | None = None) -> None:
    """Signal ``pid`` through a pidfd: once the pidfd is open the pid cannot be recycled under us, so
    ``still_ours`` (checked after opening it) proves the signal reaches the process we meant."""
    try:
        fd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        if still_ours is None or still_ours(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signum)
        return
    try:
        if still_ours is None or still_ours(pid):
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(fd, signum)
    finally:
        os.close(fd)


def _reap() -> None:
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(root: int, deadline_s: float = SWEEP_DEADLINE_S) -> int:
    """Stop, then kill, every descendant of ``root`` until none is left; returns how many were killed."""
    killed: set[int] = set()
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        _reap()
        tree = descendants(root)
        alive = [pid for pid, state in tree if state != b"Z"]
        if not tree:
            break
        tree_pids = {root, *(pid for pid, _state in tree)}

        def in_tree(pid: int, tree_pids: set[int] = tree_pids) -> bool:
            return parent_of(pid) in tree_pids

        for pid in alive:
            signal_pid(pid, signal.SIGSTOP, in_tree)
        for pid in alive:
            signal_pid(pid, signal.SIGKILL, in_tree)
            killed.add(pid)
        time.sleep(0.005 if alive else 0.02)
    _reap()
    return len(killed)


def _exit_code(status: int) -> int:
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def main(argv: list[str]) -> int:
    if len(argv) < 4 or argv[2] != "--":
        print("usage: reaper.py PARENT_PID -- COMMAND...", file=sys.stderr)
        return EXIT_SUPERVISOR_FAILED
    parent, command = int(argv[1]), argv[3:]
    me = os.getpid()
    _prctl(PR_SET_CHILD_SUBREAPER, 1)
    _prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    def stop(signum: int, _frame: object) -> None:
        raise _Stop(signum)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    code = EXIT_SUPERVISOR_FAILED
    try:
        if os.getppid() != parent:  # verify's process died before the death signal was armed
            return EXIT_SUPERVISOR_FAILED
        try:
            shell = subprocess.Popen(command, close_fds=True)
        except OSError as exc:
            print(f"dmig: could not start the test command: {exc.strerror}", file=sys.stderr)
            return 127
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            if pid == shell.pid:
                code = _exit_code(status)
                shell.returncode = code  # already reaped: keep Popen from waiting on it again
                break
    except _Stop as stopped:
        code = 128 + stopped.signum
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        sys.stdout.flush()
        sweep(me)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv))
