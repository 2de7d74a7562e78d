"""The one way dmig hands untrusted SQL to pglast: a parse that cannot take the server down.

pglast wraps PostgreSQL's own parser (libpg_query). The grammar itself is safe (bison keeps its
stack on the heap and answers "memory exhausted" past 10,000 levels), but turning the parse
tree into Python objects recurses once per tree level on the C stack, and left-associative
chains build a tree as deep as the chain is long: ``SELECT 1+1+...`` with 30,000 terms, 20,000
``UNION`` s or ``AT TIME ZONE`` s, killed the whole MCP server with SIGSEGV (measured: 10,000
levels survive, 20,000-30,000 do not, in the main thread and in the worker threads alike). No
pre-scan of the text can list every construct that nests this way, so the guarantee is made by
isolation instead:

* a text short enough that its tree cannot be deep (at most one level per two characters, so
  :data:`INPROCESS_CHARS` characters stay five times below the shallowest crash) is parsed
  directly;
* a longer one is first parsed in a forked child (same code, same thread stack size, so the
  same outcome) with its output sent to /dev/null, no core dump, a memory and CPU limit and a
  wall-clock timeout. Only if the child survives is it parsed here; a child killed by a signal,
  over its limits or too slow becomes :class:`SqlTooComplex` (``E_SQL_TOO_COMPLEX``). The child
  must run the full ``parse_sql``: the crash is in the conversion to Python objects (the C
  parser's JSON output survives the same input). Cost, only for statements longer than
  :data:`INPROCESS_CHARS` (and all of a text's long statements share one child): a fork (about
  20 ms for a server-sized process) plus parsing the statement twice; tests/test_security_parse.py
  prints it (about 0.25 s for a 6,000-character, 2,000-column SELECT whose parse alone is 0.12 s).
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import resource
import signal
import time
import warnings
from typing import Any

import pglast

from dmig.errors import InvalidInput

INPROCESS_CHARS = 4_000
PROBE_TIMEOUT_S = 10.0
PROBE_MEMORY_BYTES = 1 << 30  # on top of what the process maps already; real SQL needs a few MB
_POLL_S = 0.002


class SqlTooComplex(InvalidInput):
    code = "E_SQL_TOO_COMPLEX"


def parse_sql(text: str) -> Any:
    """``pglast.parse_sql`` for untrusted text; ParseError stays ParseError (the caller reports it)."""
    if len(text) > INPROCESS_CHARS:
        probe([text])
    return pglast.parse_sql(text)


def parse_each(texts: list[str]) -> list[Any]:
    """Each text's parse result, or its ``ParseError``; the long ones are probed together in one child."""
    long = [t for t in texts if len(t) > INPROCESS_CHARS]
    if long:
        probe(long)
    out: list[Any] = []
    for text in texts:
        try:
            out.append(pglast.parse_sql(text))
        except pglast.parser.ParseError as exc:
            out.append(exc)
    return out


def probe(texts: list[str]) -> None:
    """Parse ``texts`` in a throw-away child; raise SqlTooComplex if it does not come back cleanly."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # 3.12+: fork in a threaded process
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        _child(texts)
    deadline = time.monotonic() + PROBE_TIMEOUT_S
    status = None
    while status is None:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = st
        elif time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            raise SqlTooComplex(
                f"the SQL took longer than {PROBE_TIMEOUT_S:g}s to parse; refused (split it into smaller statements)",
                reason="parse_timeout",
                limit_s=PROBE_TIMEOUT_S,
                chars=sum(map(len, texts)),
            )
        else:
            time.sleep(_POLL_S)
    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
        return
    how = f"signal {signal.Signals(os.WTERMSIG(status)).name}" if os.WIFSIGNALED(status) else "an error"
    raise SqlTooComplex(
        f"the SQL is too deeply nested to parse safely (the PostgreSQL parser died of {how} on it); refused: "
        "split long operator chains, UNION lists or nested expressions into smaller statements",
        reason="parser_crashed",
        chars=sum(map(len, texts)),
    )


def _child(texts: list[str]) -> None:  # pragma: no cover - runs in the forked child
    code = 0
    try:  # nothing is imported here: another thread may have held the import lock when we forked
        faulthandler.disable()  # a crash here must not print a Python traceback on the server's stderr
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)  # and never anything on stdout, the MCP channel
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        with open("/proc/self/statm", "rb") as fh:
            mapped = int(fh.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        resource.setrlimit(resource.RLIMIT_AS, (mapped + PROBE_MEMORY_BYTES, mapped + PROBE_MEMORY_BYTES))
        cpu = int(PROBE_TIMEOUT_S) + 1
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        for text in texts:
            with contextlib.suppress(pglast.parser.ParseError):
                pglast.parse_sql(text)
    except BaseException:
        code = 3
    os._exit(code)
