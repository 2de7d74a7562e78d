"""The safe executor: runs a reviewed plan with a ledger, a migration lock, lock-timeout retries,
a checkpointed backfill, validation gates, a guarded contract and a proven abort.

Python API (each call verifies the plan's checksum and demands it back as ``confirm``)::

    from dmig.execute import run_plan, complete, abort, migration_status

    out = run_plan(plan, confirm=plan.checksum)              # expand + backfill + validate; stops before contract
    out = run_plan(plan, confirm=plan.checksum, dry_run=True)  # every statement, database untouched
    run_plan(plan, confirm=..., monitor=Monitor(...))        # pauses while unhealthy, stops on "rollback"
    complete(plan, confirm=plan.checksum, project_dir=root)  # re-validates, verified backup, contract
    abort(plan, confirm=plan.checksum)                       # before contract: rollback + checksum proof
    migration_status(parse_url(url), plan.id)                # ledger, backfill checkpoints, lock holder

``url=`` overrides the plan's stored reference (it must name the same database). State lives in
the target database: ``dmig_migrations`` (ledger), ``dmig_backfill_checkpoints`` and
``dmig_backfill_batches`` (backfill progress), ``dmig_lock`` (SQLite only). Modules: ``runner``,
``contract``, ``abort``, ``status``, ``steps`` (phase runner), ``retry``, ``backfill``, ``lock``,
``ledger``, ``checks``, ``fingerprint`` (abort's proof), ``backups`` (bridge to dmig.backup),
``target`` (checksum, confirm and URL checks).
"""

from dmig.execute.abort import AbortOutcome, abort
from dmig.execute.contract import CompleteOutcome, complete
from dmig.execute.runner import RunOutcome, run_plan
from dmig.execute.status import MigrationStatus, migration_status

__all__ = [
    "AbortOutcome",
    "CompleteOutcome",
    "MigrationStatus",
    "RunOutcome",
    "abort",
    "complete",
    "migration_status",
    "run_plan",
]
