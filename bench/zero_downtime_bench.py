"""Zero-downtime benchmark: the seed's split_column (users.user_name -> first_name, last_name) on a 1M-row
table while application traffic runs through both shapes, on PostgreSQL and MariaDB, with the real
planner and executor (plan_migration, run_plan, complete).

Per dialect, in one run:

1. idle: a fresh ``dmig_bench_zd_<d>_idle`` database; run_plan with no other traffic: the backfill
   throughput with nothing competing (the executor's own figure: rows / seconds of the backfill);
   then complete (contract) and the final checks.
2. load: a fresh ``dmig_bench_zd_<d>_load`` database; a baseline: the workload alone for T seconds;
   then the same workload (same threads, rate, mix) while run_plan (expand, backfill, validate) and
   complete (contract) run; old writers retire before contract (the new release is out), old
   readers keep reading through the compat view/column. Lock waits are sampled during both.
3. final checks on both: every original row's parts rebuild its original value (compared with an
   untouched copy of the table taken before the migration, bytewise), no row lost (counts).

    python -m bench.zero_downtime_bench [--rows 1000000] [--dialects postgresql,mariadb] [--seconds 30]
        [--threads 8] [--rate 200] [--batch-size 1000] [--throttle-ms 50] [--idle-batch-size 1000]
        [--profile] [--keep] [--no-results]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.machine import host_facts, load_average, python_version, server_value
from dmig.execute import complete, run_plan
from dmig.plan import plan_migration
from dmig.spec.models import parse_spec
from dmig.workload import Workload
from dmig.workload.locks import LockWaitSampler

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "RESULTS.md"
OUT = HERE / "out"
PG_ADMIN = os.environ.get("DMIG_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
MY_ADMIN = os.environ.get("DMIG_BENCH_MYSQL", "mysql+pymysql://root@127.0.0.1:3306")
START, END = "<!-- zero-downtime-bench:start -->", "<!-- zero-downtime-bench:end -->"
FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Zoë"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Ünïcode"]


# -- databases ------------------------------------------------------------------------------------


def _admin(dialect: str) -> sa.Engine:
    url = f"{PG_ADMIN}/postgres" if dialect == "postgresql" else f"{MY_ADMIN}/mysql"
    return sa.create_engine(url, isolation_level="AUTOCOMMIT")


def create_db(dialect: str, name: str) -> str:
    assert re.fullmatch(r"dmig_bench_zd_\w+", name)
    engine = _admin(dialect)
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    engine.dispose()
    return f"{PG_ADMIN}/{name}" if dialect == "postgresql" else f"{MY_ADMIN}/{name}?charset=utf8mb4"


def drop_db(dialect: str, name: str) -> None:
    engine = _admin(dialect)
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


def _name_sql(dialect: str, g: str) -> str:
    """user_name as a function of the id: NULL, '', no separator, several separators, unicode, edge spaces."""
    if dialect == "postgresql":
        first = "(ARRAY[" + ",".join(f"'{n}'" for n in FIRST) + f"])[1 + mod({g}, 10)]"
        last = "(ARRAY[" + ",".join(f"'{n}'" for n in LAST) + f"])[1 + mod({g} / 10, 10)]"
        cat = lambda *p: " || ".join(p)  # noqa: E731
    else:
        first = "ELT(1 + MOD(" + g + ", 10), " + ",".join(f"'{n}'" for n in FIRST) + ")"
        last = "ELT(1 + MOD(" + g + " DIV 10, 10), " + ",".join(f"'{n}'" for n in LAST) + ")"
        cat = lambda *p: "CONCAT(" + ", ".join(p) + ")"  # noqa: E731
    gid = f"CAST({g} AS CHAR(20))" if dialect != "postgresql" else f"{g}::text"
    sp, ann, dash = "' '", "' Ann '", "'-'"
    return (
        f"CASE WHEN mod({g}, 101) = 0 THEN NULL WHEN mod({g}, 499) = 0 THEN '' "
        f"WHEN mod({g}, 97) = 0 THEN {cat(first, gid)} "
        f"WHEN mod({g}, 89) = 0 THEN {cat(first, ann, last, sp, gid)} "
        f"WHEN mod({g}, 83) = 0 THEN {cat(sp, last, gid)} "
        f"WHEN mod({g}, 79) = 0 THEN {cat(first, sp, last, gid, sp)} "
        f"ELSE {cat(first, sp, last, dash, gid)} END"
    )


def load_users(url: str, dialect: str, rows: int) -> float:
    """users(id bigint pk, user_name varchar(255)) with ``rows`` rows, plus users_orig: an untouched copy."""
    started = time.perf_counter()
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql("CREATE TABLE users (id bigint PRIMARY KEY, user_name varchar(255))")
        if dialect == "postgresql":
            conn.exec_driver_sql(
                f"INSERT INTO users SELECT g, {_name_sql(dialect, 'g')} FROM generate_series(1, {int(rows)}) g"
            )
            conn.exec_driver_sql("CREATE TABLE users_orig AS SELECT * FROM users")
            conn.exec_driver_sql("VACUUM ANALYZE users")
            conn.exec_driver_sql("VACUUM ANALYZE users_orig")
        else:
            conn.exec_driver_sql(f"INSERT INTO users SELECT seq, {_name_sql(dialect, 'seq')} FROM seq_1_to_{int(rows)}")
            conn.exec_driver_sql("CREATE TABLE users_orig (id bigint PRIMARY KEY, user_name varchar(255))")
            conn.exec_driver_sql("INSERT INTO users_orig SELECT * FROM users")
            conn.exec_driver_sql("ANALYZE TABLE users, users_orig")
    engine.dispose()
    return round(time.perf_counter() - started, 2)


# -- the migration ----------------------------------------------------------------------------------


def spec(batch_size: int, throttle_ms: int) -> Any:
    return parse_spec(
        {
            "version": 1,
            "id": "bench-split-user-name",
            "options": {
                "lock_timeout_ms": 2000,
                "statement_timeout_ms": 600000,
                "batch_size": batch_size,
                "throttle_ms": throttle_ms,
                "max_lock_retries": 20,
            },
            "operations": [
                {
                    "op": "split_column",
                    "table": "users",
                    "key": ["id"],
                    "column": "user_name",
                    "into": ["first_name", "last_name"],
                    "separator": " ",
                }
            ],
        }
    )


def migrate(
    url: str,
    project: Path,
    batch_size: int,
    throttle_ms: int,
    on_backfill: Any = None,
    before_contract: Any = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """plan -> run_plan (expand, backfill, validate) -> complete (contract), with timings and lock retries."""
    t0 = time.perf_counter()
    plan = plan_migration(
        spec(batch_size, throttle_ms),
        url=url,
        project_dir=project,
        environment="development",
        waive_backup="throwaway benchmark database",
    )
    t_plan = time.perf_counter()
    seen = {"backfill": False}

    def progress(done: float, total: float | None = None, message: str | None = None) -> None:
        if on_backfill and not seen["backfill"] and message and message.startswith("backfill"):
            seen["backfill"] = True
            on_backfill()

    profiler = None
    if profile is not None:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.001)
        profiler.start()
    out = run_plan(plan, confirm=plan.checksum, url=url, progress=progress)
    if profiler is not None:
        profiler.stop()
        profile.write_text(profiler.output_html())
    t_run = time.perf_counter()
    if before_contract:
        before_contract()
    t_contract0 = time.perf_counter()
    done = complete(plan, confirm=plan.checksum, project_dir=project, url=url)  # retries lock waits/deadlocks itself
    t_end = time.perf_counter()
    [bf] = out.backfills
    steps = out.steps + done.steps
    return {
        "state": done.state,
        "validation_passed": out.validation_passed,
        "plan_s": round(t_plan - t0, 2),
        "run_s": round(t_run - t_plan, 2),
        "contract_s": round(t_end - t_contract0, 2),
        "total_s": round(t_end - t0, 2),
        "backfill": bf.model_dump(mode="json"),
        "steps": [
            {"id": s.id, "seconds": s.seconds, "attempts": s.attempts, "lock_timeouts": len(s.lock_waits)}
            for s in steps
        ],
        "deadlock_retries": sum(1 for s in steps for w in s.lock_waits if "deadlock" in w.lower()),
        "lock_timeouts": sum(len(s.lock_waits) for s in steps) + bf.lock_retries,
    }


def final_checks(url: str, dialect: str, workload_rows: int) -> dict[str, Any]:
    """Every original row's parts rebuild its original value (old readers' view of it), bytewise; no row lost."""
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        if dialect == "postgresql":
            conn.exec_driver_sql("SET search_path = dmig_compat, public")
            mism = (
                "SELECT count(*) FROM users u JOIN public.users_orig o ON o.id = u.id "
                "WHERE u.user_name IS DISTINCT FROM o.user_name"
            )
            unsplit = (
                "SELECT count(*) FROM public.users u JOIN public.users_orig o ON o.id = u.id "
                "WHERE o.user_name IS NOT NULL AND u.first_name IS NULL"
            )
            joined = "SELECT count(*) FROM public.users u JOIN public.users_orig o ON o.id = u.id"
            counts = "SELECT (SELECT count(*) FROM public.users), (SELECT count(*) FROM public.users_orig)"
        else:
            mism = (
                "SELECT count(*) FROM users u JOIN users_orig o ON o.id = u.id "
                "WHERE NOT (BINARY u.user_name <=> BINARY o.user_name)"
            )
            unsplit = (
                "SELECT count(*) FROM users u JOIN users_orig o ON o.id = u.id "
                "WHERE o.user_name IS NOT NULL AND u.first_name IS NULL"
            )
            joined = "SELECT count(*) FROM users u JOIN users_orig o ON o.id = u.id"
            counts = "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM users_orig)"
        users, orig = conn.exec_driver_sql(counts).one()
        out = {
            "rebuild_mismatches": conn.exec_driver_sql(mism).scalar(),
            "unsplit_rows": conn.exec_driver_sql(unsplit).scalar(),
            "original_rows_present": conn.exec_driver_sql(joined).scalar(),
            "original_rows": orig,
            "users_rows": users,
            "workload_rows": workload_rows,
        }
    engine.dispose()
    out["passed"] = (
        out["rebuild_mismatches"] == 0
        and out["unsplit_rows"] == 0
        and out["original_rows_present"] == orig
        and users == orig + workload_rows
    )
    return out


# -- one dialect ------------------------------------------------------------------------------------


def workload(url: str, args: argparse.Namespace, duration: float, *, cleanup: bool) -> Workload:
    """The same clients for the baseline and the migration; the migration run keeps its rows for the count check."""
    return Workload(
        url,
        "users",
        threads=args.threads,
        rate=args.rate,
        duration_s=duration,
        cleanup=cleanup,
        seed=args.seed,
        op_timeout_s=args.op_timeout,
    )


def idle_run(dialect: str, args: argparse.Namespace, made: list[tuple[str, str]], project: Path) -> dict[str, Any]:
    name = f"dmig_bench_zd_{dialect[:2]}_idle"
    url = create_db(dialect, name)
    made.append((dialect, name))
    load_s = load_users(url, dialect, args.rows)
    profile = OUT / f"zd-backfill-{dialect}.html" if args.profile else None
    mig = migrate(url, project, args.idle_batch_size, 0, profile=profile)
    return {
        "load_s": load_s,
        "migration": mig,
        "final": final_checks(url, dialect, 0),
        "profile": str(profile.relative_to(HERE.parent)) if profile else None,
    }


def load_run(dialect: str, args: argparse.Namespace, made: list[tuple[str, str]], project: Path) -> dict[str, Any]:
    name = f"dmig_bench_zd_{dialect[:2]}_load"
    url = create_db(dialect, name)
    made.append((dialect, name))
    load_s = load_users(url, dialect, args.rows)
    print(f"[{dialect}] baseline {args.seconds}s", flush=True)
    sampler = LockWaitSampler(url).start()
    baseline = workload(url, args, args.seconds, cleanup=True).run_for(args.seconds)
    baseline_locks = sampler.stop()
    print(f"[{dialect}] migration under load", flush=True)
    wl = workload(url, args, args.max_minutes * 60, cleanup=False)
    sampler = LockWaitSampler(url).start()
    wl.start()
    time.sleep(args.settle)
    wl.mark("expand")
    t_retire: dict[str, float] = {}

    def before_contract() -> None:
        wl.mark("validated")
        time.sleep(args.settle)
        wl.retire_old_writers()
        t_retire["at"] = time.perf_counter()
        time.sleep(args.settle)
        wl.mark("contract")

    try:
        mig = migrate(
            url,
            project,
            args.batch_size,
            args.throttle_ms,
            on_backfill=lambda: wl.mark("backfill"),
            before_contract=before_contract,
        )
        wl.mark("after_contract")
        time.sleep(args.settle)
    finally:
        report = wl.stop()
        locks = sampler.stop()
    final = final_checks(url, dialect, report.own_rows.inserted)
    return {
        "load_s": load_s,
        "baseline": baseline.model_dump(mode="json"),
        "baseline_locks": baseline_locks.model_dump(mode="json"),
        "migration": mig,
        "during": report.model_dump(mode="json"),
        "during_locks": locks.model_dump(mode="json"),
        "final": final,
    }


# -- report -----------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    return {
        **host_facts(),
        "python": python_version(),
        "postgresql": server_value(_admin("postgresql"), "SHOW server_version"),
        "mariadb": server_value(_admin("mysql"), "SELECT VERSION()"),
        "load": load_average(),
    }


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _ratio(during: float | None, base: float | None) -> str:
    return "-" if not during or not base else f"{during / base:.2f}x"


def _latency_rows(r: dict[str, Any]) -> list[str]:
    base = {s["op"]: s for s in r["baseline"]["by_op"]}
    base["all"] = r["baseline"]["overall"]
    rows = []
    for s in [r["during"]["overall"], *r["during"]["by_op"]]:
        b = base.get(s["op"], {})
        rows.append(
            f"| {s['op']} | {b.get('count', 0)} / {s['count']} | {_ms(b.get('p50_ms'))} / {_ms(s['p50_ms'])} | "
            f"{_ms(b.get('p95_ms'))} / {_ms(s['p95_ms'])} | {_ms(b.get('p99_ms'))} / {_ms(s['p99_ms'])} | "
            f"{_ratio(s['p99_ms'], b.get('p99_ms'))} | {_ms(b.get('service_p99_ms'))} / {_ms(s['service_p99_ms'])} | "
            f"{b.get('failed', 0)} / {s['failed']} |"
        )
    return rows


def _deadlocks(mig: dict[str, Any]) -> int:
    """Deadlock retries inside the executor (reports before it retried them: contract re-runs by the bench)."""
    return mig.get("deadlock_retries", len(mig.get("contract_retries_after_deadlock", [])))


def markdown(report: dict[str, Any], argv: list[str]) -> str:
    m = report["machine"]
    lines = [
        START,
        "## zero-downtime: split_column under load (`bench/zero_downtime_bench.py`)",
        "",
        f"Command: `python -m bench.zero_downtime_bench {' '.join(argv)}`".rstrip() + f" ({m['date']}).",
        f"Machine: {m['nproc']} cores, {m['memory']}, Python {m['python']}, PostgreSQL {m['postgresql']}, "
        f"MariaDB {m['mariadb']}; load average at start {m['load']} (the machine is shared with other work).",
        f"Executor: dmig.plan.plan_migration + dmig.execute.run_plan/complete. Workload: {report['args']['threads']} "
        f"threads, {report['args']['rate']} req/s target, default mix; baseline {report['args']['seconds']} s.",
        "",
    ]
    for dialect, r in report["dialects"].items():
        if "error" in r:
            lines += [f"### {dialect}: failed: {r['error']}", ""]
            continue
        idle, load = r["idle"], r["load"]
        bf_idle, bf_load = idle["migration"]["backfill"], load["migration"]["backfill"]
        d, dl, bl = load["during"], load["during_locks"], load["baseline_locks"]
        lines += [
            f"### {dialect}",
            "",
            f"- Backfill without load: **{bf_idle['rows_per_s'] or 0:,.0f} rows/s** ({bf_idle['rows']:,} rows in "
            f"{bf_idle['seconds']} s, batch {report['args']['idle_batch_size']}, no throttle, {bf_idle['batches']} "
            f"batches, lock retries {bf_idle['lock_retries']}); whole migration {idle['migration']['total_s']} s "
            f"(plan {idle['migration']['plan_s']} s, run {idle['migration']['run_s']} s, contract "
            f"{idle['migration']['contract_s']} s).",
            f"- Backfill under load: {bf_load['rows_per_s'] or 0:,.0f} rows/s ({bf_load['rows']:,} rows in "
            f"{bf_load['seconds']} s, batch {report['args']['batch_size']}, "
            f"throttle {report['args']['throttle_ms']} ms).",
            f"- Requests during the migration: {d['ops']:,} in {d['seconds']} s ({d['ops_per_s']} req/s), "
            f"**failed: {d['failed']}**; baseline failed: {load['baseline']['failed']}.",
            f"- Lock waits during the migration (sampled every {dl['interval_ms']} ms): {dl['waiter_seconds']} "
            f"session-seconds, at most {dl['max_waiters']} sessions waiting at once, waits seen in "
            f"{dl['samples_with_waits']}/{dl['samples']} samples"
            + (
                f"; InnoDB row lock waits {dl['row_lock_waits']} ({dl['row_lock_time_ms']} ms)"
                if dl.get("row_lock_waits") is not None
                else ""
            )
            + f"; baseline {bl['waiter_seconds']} session-seconds. Executor lock waits retried (lock timeouts and "
            f"deadlocks): {load['migration']['lock_timeouts']}, of which deadlocks: {_deadlocks(load['migration'])}.",
            f"- Final validation (every original row's parts rebuild it, bytewise; counts): "
            f"idle {'pass' if idle['final']['passed'] else 'FAIL'}, "
            f"load {'pass' if load['final']['passed'] else 'FAIL'}"
            f" ({load['final']['users_rows']:,} rows = {load['final']['original_rows']:,} original + "
            f"{load['final']['workload_rows']:,} inserted by the workload).",
            "",
            "| request | count base / during | p50 ms | p95 ms | p99 ms | p99 during/base | service p99 ms | failed |",
            "|---|---|---|---|---|---|---|---|",
            *_latency_rows(load),
            "",
        ]
        if d["errors"]:
            lines += ["Failed requests by class:", ""]
            lines += [f"- {e['op']}: {e['error']} x{e['count']}: `{e['sample'][:160]}`" for e in d["errors"]]
            lines.append("")
        seg = " | ".join(
            f"{s['segment']} {s['seconds']} s: p99 {_ms(s['overall']['p99_ms'])} ms, {s['overall']['failed']} failed"
            for s in d["segments"]
        )
        lines += [f"By segment: {seg}.", ""]
    lines += goals(report)
    lines += NOTES
    lines.append(END)
    return "\n".join(lines)


def goals(report: dict[str, Any]) -> list[str]:
    """The issue's goals, judged from the figures (no judgement is hard-coded)."""
    rows = ["Goals:", "", "| goal | " + " | ".join(report["dialects"]) + " |",
            "|---|" + "---|" * len(report["dialects"])]  # fmt: skip

    def p99_ok(r: dict[str, Any]) -> bool:
        during, base = r["load"]["during"]["overall"]["p99_ms"], r["load"]["baseline"]["overall"]["p99_ms"]
        return bool(during and base and during <= 1.5 * base)

    def segments_ok(r: dict[str, Any]) -> bool:
        base = r["load"]["baseline"]["overall"]["p99_ms"]
        segs = [s for s in r["load"]["during"]["segments"] if s["segment"] in MIGRATION_SEGMENTS]
        return bool(base and segs and all((s["overall"]["p99_ms"] or 0) <= 1.5 * base for s in segs))

    checks = [
        ("zero failed requests during the migration", lambda r: r["load"]["during"]["failed"] == 0),
        ("p99 during / baseline p99 <= 1.5 (all requests of the run)", p99_ok),
        ("p99 of each migration segment (expand, backfill, validated, contract) <= 1.5x baseline", segments_ok),
        (
            "backfill without load >= 50k rows/s (a PostgreSQL goal)",
            lambda r: (r["idle"]["migration"]["backfill"]["rows_per_s"] or 0) >= 5e4,
        ),
        ("final validation and counts", lambda r: r["idle"]["final"]["passed"] and r["load"]["final"]["passed"]),
    ]
    for label, ok in checks:
        cells = ["-" if "error" in r else ("met" if ok(r) else "**not met**") for r in report["dialects"].values()]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return [*rows, ""]


MIGRATION_SEGMENTS = ("expand", "backfill", "validated", "contract")
NOTES = [
    "Notes:",
    "",
    "- pgroll, for comparison: its backfill updates rows in batches of 1000 by default (`--backfill-batch-size`,"
    " xataio/pgroll#406) with no delay between batches by default (`--backfill-batch-delay`, xataio/pgroll#410),"
    " and its repository has a `BenchmarkBackfill` (10k/100k/1M rows, reports rows/s; xataio/pgroll#412), but we"
    " found no published rows/s or lock-wait figures to compare with. Its backfill fires the sync trigger on every"
    " row it updates (`UPDATE ... SET <pk> = <pk>` over the next `LIMIT <batch>` keys locked `FOR NO KEY UPDATE`,"
    " pkg/backfill/templates/sql.go), so the trigger computes the new value; ours writes the split itself and the"
    " sync triggers' WHEN clauses skip those rows (no PL/pgSQL frame per backfilled row).",
    "- Fixed since the run of 2026-11-24 07:25 UTC (which had them as known, intermittent contract-step failures):"
    " PostgreSQL: the compat-view contract dropped the triggers (locking the table) before the view, while old"
    " readers lock the view then the table: a deadlock, the victim a request or the contract, after"
    " deadlock_timeout (1 s) with requests queued behind it. It now drops the view (which locks only the view),"
    " then `LOCK TABLE users IN ACCESS EXCLUSIVE MODE`, then the rest, under lock_timeout; the executor retries"
    " deadlocks (40P01, MySQL 1213) like lock timeouts. MariaDB: DROP TRIGGER ran before the ALTER that makes"
    " user_name a generated column, so a new-shape write in between left user_name stale for old readers; the"
    " contract now runs between `LOCK TABLES users WRITE` and `UNLOCK TABLES` (instant ALTER: 0.5 s for the whole"
    " contract step at 1M rows). tests/test_spec_split_concurrency_db.py replays both interleavings"
    " deterministically (the old order deadlocks, the new one does not), and the workload tests now assert zero"
    " failed requests with no xfail.",
    "- Backfill without load, old trigger vs new, same machine, same hour, 1M rows, batch 1000, load average"
    " below 1.2, two runs each: PostgreSQL 116k-117k rows/s before (plpgsql sync trigger on every backfilled row),"
    " 136k-143k after (WHEN clauses); MariaDB 52k-53k before, 63k-69k after (UPDATE trigger body nested so a"
    " backfilled row exits after byte compares and one join instead of a split). The previous section's"
    " 20.7k (PostgreSQL) and 19.6k (MariaDB) were measured at load average 5-8 on this shared 2-core machine:"
    " most of that gap to the 50k goal was the machine, the rest the trigger.",
    "- Latencies are measured from each request's scheduled start on a shared 2-core machine (see the load"
    " average): the service-time p99 column shows the same requests without the wait of a late start. On a quiet"
    " machine the baseline p99 is a few ms, so a ratio above 1.5x can be 3 ms of absolute difference (the"
    " backfill competes with the requests for the 2 cores); the goals table judges the ratio strictly anyway.",
]


def write_section(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--dialects", default="postgresql,mariadb")
    p.add_argument("--seconds", type=float, default=30.0, help="baseline duration")
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--rate", type=float, default=200.0, help="target requests/s over all threads")
    p.add_argument("--batch-size", type=int, default=1000, help="backfill batch under load")
    p.add_argument("--throttle-ms", type=int, default=50, help="pause between batches under load (the seed's 50)")
    p.add_argument("--idle-batch-size", type=int, default=1000, help="backfill batch without load (no throttle)")
    p.add_argument("--settle", type=float, default=3.0, help="seconds between the phases under load")
    p.add_argument("--op-timeout", type=float, default=10.0, help="workload statement timeout (s)")
    p.add_argument("--max-minutes", type=float, default=30.0, help="bound on the workload under migration")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--profile", action="store_true", help="pyinstrument profile of the idle run_plan")
    p.add_argument("--keep", action="store_true", help="keep the dmig_bench_zd_* databases")
    p.add_argument("--no-results", action="store_true", help="do not write bench/RESULTS.md")
    p.add_argument("--render", type=Path, help="re-render the RESULTS.md section from a saved JSON report")
    args, _unknown = p.parse_known_args(argv)
    if args.render:
        report = json.loads(args.render.read_text())
        section = markdown(report, report.get("argv", []))
        print(section)
        if not args.no_results:
            write_section(section)
        return 0
    OUT.mkdir(exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "args": vars(args), "argv": argv, "dialects": {}}
    made: list[tuple[str, str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="dmig-zd-") as tmp:
            for dialect in [d.strip() for d in args.dialects.split(",") if d.strip()]:
                kind = "postgresql" if dialect.startswith("postg") else "mysql"
                try:
                    print(f"[{dialect}] idle backfill", flush=True)
                    idle = idle_run(kind, args, made, Path(tmp))
                    print(f"[{dialect}] idle: {idle['migration']['backfill']['rows_per_s']} rows/s", flush=True)
                    report["dialects"][dialect] = {"idle": idle, "load": load_run(kind, args, made, Path(tmp))}
                except Exception as exc:  # a failing dialect is reported, the next one still runs
                    report["dialects"][dialect] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    print(f"[{dialect}] FAILED: {exc}", flush=True)
    finally:
        if not args.keep:
            for dialect, name in made:
                drop_db(dialect, name)
    report["machine"]["load_at_end"] = load_average()
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"zero-downtime-{stamp}.json").write_text(json.dumps(report, indent=1, default=str))
    section = markdown(report, argv)
    print(section)
    if not args.no_results:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
