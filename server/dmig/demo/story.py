"""``dmig demo``: the product's story, driven through ``dmig serve`` with the official MCP client.

The application's users and orders move to a new database with the copy engine (``copy``, then
``diff``), and users.user_name is split into first_name/last_name there with the seed's example
spec: lint, plan, verified backup, expand and backfill under the monitor, validation, contract
with the plan's checksum, diff and validation after contract, the project's tests, the story to
in-review, a bus message and a self_improve with the measured figures. Then the rollback drill:
the pre-migration backup is restored into a scratch database, the same migration is planned there
(its estimate now from the first run's learning), run and measured, contracted, and rolled back
with ``rollback``; diffs prove the scratch copy equals the source again.

The move uses the ``copy`` tool rather than a ``move_table`` operation in the spec: the executor
does not yet run the copy steps move_table plans, while the copy tool is complete (parallel,
checkpointed, verified).

Sizes: 100,000 users and 150,000 orders; ``DMIG_DEMO_SCALE`` (e.g. 0.2) scales both.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from contextlib import AsyncExitStack
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from dmig.db.urls import display_url
from dmig.demo import steps
from dmig.demo.databases import Databases, databases
from dmig.demo.facts import Estimates
from dmig.demo.help import HELP  # noqa: F401  (re-exported for callers of story)
from dmig.demo.project import SPEC, make_project
from dmig.demo.sample import generate, sample_sizes
from dmig.demo.session import Account, Session, StoryError
from dmig.errors import DmigError
from dmig.redact import redact


def _seal_env() -> dict[str, str]:
    """Where the seal key lives (dmig.seal), passed on so the server signs with the user's own key."""
    return {k: os.environ[k] for k in ("DMIG_DATA_DIR", "XDG_DATA_HOME") if os.environ.get(k)}


async def _story(project: Path, dbs: Databases, account: Account, log: Path) -> tuple[steps.Story, Estimates]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "dmig", "serve"],
        env={"DMIG_PROJECT_DIR": str(project), "PATH": os.environ.get("PATH", ""), **_seal_env(), **dbs.env()},
        cwd=str(project),
    )
    async with AsyncExitStack() as stack:
        errlog = stack.enter_context(log.open("a", encoding="utf-8"))
        client = await stack.enter_async_context(Client(stdio_client(params, errlog=errlog), read_timeout_seconds=900))
        st = steps.Story(Session(client, account), project, dbs)
        await steps.prepare(st)
        await steps.move(st)
        planned = await steps.plan(st, SPEC)
        await steps.protect(st)
        st.out["run"] = await steps.execute(st, planned, monitor=True)
        await steps.validate(st, "validate (before contract)", "validation report (before contract)")
        await steps.contract(st, planned)
        await steps.close_story(st, planned)
        estimates = await steps.drill(st, planned)
        await steps.served_resources(st)
        st.files = {"plan": planned["plan_path"], "runbook": planned["runbook_path"], **st.files}
        return st, estimates


def _closing(st: steps.Story, estimates: Estimates, account: Account) -> None:
    print()
    print(redact(f"Estimates: {estimates.line()}."))
    verdict = "closer to" if estimates.improved else "NOT closer to"
    print(f"The estimate from the first run's learning is {verdict} the measured time than the first estimate.")
    print(f"\nAll {len(account.lines)} steps passed in {account.elapsed:.1f}s ({redact(st.dbs.describe())}).")
    print(f"Project: {st.project}")
    for label, path in st.files.items():
        if path:
            print(f"  {label + ':':<36} {path}")
    backup = st.out["backup"]["backup"]["backup_id"]
    taken = (st.out["complete"].get("backup") or {}).get("backup_id", "-")
    print(f"  {'backup id:':<36} {backup} (verified; contract took {taken})")
    print(f"  {'story, bus:':<36} docs/09-agents/status.json, docs/09-agents/bus/log.jsonl")
    print(f"  {'expertise:':<36} .agileflow/experts/datamigration/expertise.yaml")
    print(f"Total time: {account.elapsed:.1f}s")


def run_demo(workdir: str | None = None, source: str | None = None, target: str | None = None) -> int:
    """The whole story; any failure is one line on stderr and exit code 1."""
    root = Path(workdir).resolve() if workdir else Path(tempfile.mkdtemp(prefix="dmig-demo-"))
    log = root / "dmig-serve.log"
    try:
        return _run(root, log, source, target)
    except KeyboardInterrupt:
        _stopped("interrupted")
        return 1


def _run(root: Path, log: Path, source: str | None, target: str | None) -> int:
    account = Account()
    try:
        root.mkdir(parents=True, exist_ok=True)
        print(f"dmig demo: working in {root} (server log: {log.name})")
        project = make_project(root)
        with databases(project / "data", source, target) as dbs:
            if dbs.generated_source:
                _generate(dbs, account)
            st, estimates = anyio.run(_story, project, dbs, account, log)
        _closing(st, estimates, account)
        return 0
    except Exception as exc:  # the demo must never end in a traceback: one line, exit 1
        _stopped(_describe(exc, log))
    return 1


def _generate(dbs: Databases, account: Account) -> None:
    users, orders = sample_sizes()
    t0 = time.perf_counter()
    counts = generate(Path(dbs.source.database or ""), users=users, orders=orders)
    detail = f"users {counts['users']:,}, orders {counts['orders']:,} (SQLite {display_url(dbs.source)})"
    account.step("generate sample app db", detail, time.perf_counter() - t0)


def _describe(exc: BaseException, log: Path) -> str:
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, StoryError):
        return str(exc)
    if isinstance(exc, DmigError):
        return exc.info().message
    return f"{type(exc).__name__}: {exc} (server log: {log})"


def _stopped(reason: str) -> None:
    first = reason.strip().splitlines()[0] if reason.strip() else "unknown error"
    print(redact(f"\ndemo stopped: {first}"), file=sys.stderr, flush=True)
