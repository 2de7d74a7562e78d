"""Benchmark: ``dmig copy`` side by side with pgloader, pgcopydb, MariaDB LOAD DATA and a SQLAlchemy loop.

    python -m bench.copy_bench [--users 1000000] [--orders 2000000] [--big-users 10000000]
                               [--repeat 2] [--scenarios 1,2,3,4,5] [--keep] [--write-results]

Data: ``users`` and ``orders`` from ``bench.datagen`` (same seed, same rows everywhere) with the
unique e-mail index, the ``orders.user_id`` index and the foreign key, in a SQLite file
(``bench.copy_data``, cached in bench/data) and in PostgreSQL ``dmig_bench_copy<tag>_src``.

Scenarios, every contender a child process measured end to end (start-up, table creation, load,
index and foreign-key builds) with the peak memory of its whole process tree (bench.copy_measure):

1. SQLite -> PostgreSQL: ``dmig copy`` vs pgloader (goals: >= 2x faster, peak RSS <= 200 MB);
2. PostgreSQL -> PostgreSQL: ``dmig copy`` vs ``pgcopydb clone`` (goal: no slower);
3. SQLite -> MariaDB: ``dmig copy`` vs LOAD DATA LOCAL INFILE of CSV files into pre-created tables
   plus the index and foreign-key builds; the CSV export is timed separately (goal: within 1.5x);
4. SQLite -> PostgreSQL: ``dmig copy`` vs a hand-written SQLAlchemy executemany loop (ratio);
5. memory: peak RSS of ``dmig copy --tables users`` from SQLite with ``--users`` and ``--big-users``
   rows (goal: nearly the same).

Each contender runs ``--repeat`` times (alternating which goes first) and the median is reported
with the spread, because the machine is shared. Every dmig run is checked: its own verification,
row counts in the target, and once per scenario ``dmig diff`` on one table (exit code 0).
Databases are dropped at the end unless ``--keep``. This is a benchmark, not a test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import copy_anchors as A
from bench import copy_data
from bench.copy_measure import Measured

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
RESULTS = HERE / "RESULTS.md"
START, END = "<!-- copy-bench:start -->", "<!-- copy-bench:end -->"
RSS_GOAL_MB = 200.0
FLAT_MEMORY = 1.25  # "nearly the same": the bigger run's peak within 25 % of the smaller one's

Runner = Callable[[str], tuple[Measured, dict[str, Any]]]


@dataclass
class Contender:
    """All runs of one tool in one scenario."""

    name: str
    runs: list[dict[str, Any]] = field(default_factory=list)

    def median(self, key: str) -> float | None:
        values = [r[key] for r in self.runs if r.get("ok") and r.get(key) is not None]
        return round(statistics.median(values), 2) if values else None

    def peak(self, key: str) -> float | None:
        values = [r[key] for r in self.runs if r.get(key) is not None]
        return max(values) if values else None

    def spread(self) -> float | None:
        walls = [r["wall_s"] for r in self.runs if r.get("ok")]
        if len(walls) < 2:
            return None
        return round(100 * (max(walls) - min(walls)) / statistics.median(walls), 1)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "median_wall_s": self.median("wall_s"),
            "spread_pct": self.spread(),
            "peak_rss_mb": self.peak("peak_rss_mb"),
            "peak_pss_mb": self.peak("peak_pss_mb"),
            "runs": self.runs,
        }


def unverified_goal(anchor: Contender, bare: Contender, name: str, need: float) -> dict[str, Any]:
    """The same goal for ``dmig copy --no-verify``: the anchors do not verify, so this is like for like."""
    speed = ratio(anchor.median("wall_s"), bare.median("wall_s"))
    text = f"same without dmig's verification ({name}/dmig --no-verify = {fmt(speed)}x)"
    return goal(text, speed, lambda v: v >= need)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix = f"dmig_bench_copy{args.tag}_"
        self.pg = A.Server(A.PG_SERVER)
        self.my = A.Server(A.MY_SERVER)
        self.project = Path(tempfile.mkdtemp(prefix="dmig-copy-bench-"))
        self.rows = args.users + args.orders
        self.result: dict[str, Any] = {"scenarios": {}, "notes": []}

    # --- helpers ---

    def db(self, name: str) -> str:
        return self.prefix + name

    def log(self, msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    def record(self, m: Measured, expected: dict[str, int], got: dict[str, int], detail: dict[str, Any]) -> dict:
        rows = sum(expected.values())
        counts_ok = got == expected
        ok = m.returncode == 0 and counts_ok and detail.pop("verified", True) is not False
        run = {
            "ok": ok,
            "returncode": m.returncode,
            "wall_s": m.wall_s,
            "rows_per_s": round(rows / m.wall_s) if m.wall_s else None,
            "peak_rss_mb": m.peak_rss_mb,
            "peak_pss_mb": m.peak_pss_mb,
            "max_process_hwm_mb": m.max_hwm_mb,
            "processes": m.processes,
            "counts": got,
            "counts_ok": counts_ok,
            **detail,
        }
        if m.returncode != 0:
            run["error"] = (m.stderr or m.stdout)[-1500:]
        return run

    def measure(
        self,
        contender: Contender,
        server: A.Server,
        dbname: str,
        runner: Runner,
        expected: dict[str, int],
        last: bool,
        after: Callable[[str], dict[str, Any]] | None = None,
    ) -> None:
        """Fresh target database, one measured run, counts, optional check; drop unless kept."""
        url = server.fresh(dbname)
        self.log(f"  {contender.name} ...")
        m, detail = runner(url)
        got = A.counts(url, tuple(expected)) if m.returncode == 0 else {}
        run = self.record(m, expected, got, detail)
        if after is not None and last and run["ok"]:
            run["diff"] = after(url)
        contender.runs.append(run)
        self.log(
            f"  {contender.name}: {m.wall_s}s rss {m.peak_rss_mb} MB pss {m.peak_pss_mb} MB "
            f"ok={run['ok']}" + ("" if run["ok"] else f" error={run.get('error', '')[-300:]!r} counts={got}")
        )
        if not (self.args.keep and last):
            server.drop(dbname)

    def repeat(self, contenders: list[tuple[Contender, Callable[[bool], None]]]) -> None:
        """Each contender ``--repeat`` times, the order reversed every other round (warm caches even out)."""
        for r in range(self.args.repeat):
            order = contenders if r % 2 == 0 else list(reversed(contenders))
            for _contender, run in order:
                run(r == self.args.repeat - 1)

    def step(
        self,
        contender: Contender,
        server: A.Server,
        dbname: str,
        runner: Runner,
        after: Callable[[str], dict[str, Any]] | None = None,
        expected: dict[str, int] | None = None,
    ) -> tuple[Contender, Callable[[bool], None]]:
        """One contender of a scenario, as ``repeat`` wants it: called with ``last`` once per round."""

        def run(last: bool) -> None:
            self.measure(contender, server, self.db(dbname), runner, expected or self.expected(), last, after)

        return contender, run

    def dmig_runner(self, source: str, extra: list[str] | None = None) -> Runner:
        def run(url: str) -> tuple[Measured, dict[str, Any]]:
            m, summary = A.dmig_copy(source, url, self.project, extra)
            return m, dmig_detail(summary)

        return run

    def diff_after(self, source: str, table: str) -> Callable[[str], dict[str, Any]]:
        return lambda url: A.dmig_diff(source, url, table, self.project)

    # --- data ---

    def prepare(self) -> None:
        a = self.args
        started = time.monotonic()
        self.sqlite = copy_data.sqlite_source(a.users, a.orders, a.seed)
        self.result["data"] = {"sqlite_file": str(self.sqlite), "sqlite_mb": round(self.sqlite.stat().st_size / 2**20)}
        self.log(f"SQLite source {self.sqlite} ready in {time.monotonic() - started:.0f}s")
        if {2} & self.scenarios:
            url = self.pg.fresh(self.db("src"))
            self.result["data"]["pg_source_load_s"] = copy_data.pg_source(url, a.users, a.orders, a.seed)
            self.pg_src = url
            self.log(f"PostgreSQL source {self.db('src')} loaded")

    # --- scenarios ---

    def expected(self) -> dict[str, int]:
        return {"users": self.args.users, "orders": self.args.orders}

    def s1(self) -> None:
        src = A.sqlite_url(self.sqlite)
        ours, anchor = Contender("dmig copy"), Contender("pgloader")
        load_file: list[str] = []

        def run_pgloader(url: str) -> tuple[Measured, dict[str, Any]]:
            m, text = A.pgloader(self.sqlite, url, self.project)
            load_file[:] = [text]
            return m, {}

        steps = [
            self.step(ours, self.pg, "s1_dmig", self.dmig_runner(src), self.diff_after(src, "users")),
            self.step(anchor, self.pg, "s1_pgloader", run_pgloader),
        ]
        bare = Contender("dmig copy --no-verify")  # pgloader does not verify: the copy alone, like for like
        if self.args.no_verify_too:
            steps.insert(1, self.step(bare, self.pg, "s1_dmig_nv", self.dmig_runner(src, ["--no-verify"])))
        self.repeat(steps)
        speed = ratio(anchor.median("wall_s"), ours.median("wall_s"))
        rss = ours.peak("peak_rss_mb")
        goals = [
            goal(f"dmig >= 2x faster than pgloader (pgloader/dmig = {fmt(speed)}x)", speed, lambda v: v >= 2),
            goal(f"dmig peak RSS <= {RSS_GOAL_MB:.0f} MB (tree sum {fmt(rss)} MB)", rss, lambda v: v <= RSS_GOAL_MB),
        ]
        if bare.runs:
            goals.insert(1, unverified_goal(anchor, bare, "pgloader", 2))
        self.scenario(
            "1",
            "SQLite -> PostgreSQL",
            [c for c in (ours, bare, anchor) if c.runs],
            goals=goals,
            extra={"pgloader_command_file": load_file[0] if load_file else None},
        )

    def s2(self) -> None:
        src = self.pg_src
        ours, anchor = Contender("dmig copy"), Contender("pgcopydb clone")
        steps = [
            self.step(ours, self.pg, "s2_dmig", self.dmig_runner(src), self.diff_after(src, "orders")),
            self.step(anchor, self.pg, "s2_pgcopydb", lambda url: (A.pgcopydb(src, url), {})),
        ]
        bare = Contender("dmig copy --no-verify")  # pgcopydb does not verify either: like for like
        if self.args.no_verify_too:
            steps.insert(1, self.step(bare, self.pg, "s2_dmig_nv", self.dmig_runner(src, ["--no-verify"])))
        self.repeat(steps)
        speed = ratio(anchor.median("wall_s"), ours.median("wall_s"))
        goals = [goal(f"dmig no slower than pgcopydb (pgcopydb/dmig = {fmt(speed)}x)", speed, lambda v: v >= 1)]
        if bare.runs:
            goals.append(unverified_goal(anchor, bare, "pgcopydb", 1))
        self.scenario("2", "PostgreSQL -> PostgreSQL", [c for c in (ours, bare, anchor) if c.runs], goals=goals)

    def s3(self) -> None:
        src = A.sqlite_url(self.sqlite)
        ours, anchor = Contender("dmig copy"), Contender("LOAD DATA + indexes/FK")
        csv_dir = Path(tempfile.mkdtemp(prefix="dmig-bench-csv-"))
        csv = {t: csv_dir / f"{t}.csv" for t in ("users", "orders")}
        export_s = {t: round(copy_data.export_csv(self.sqlite, t, p), 2) for t, p in csv.items()}
        self.log(f"  CSV export {export_s}")

        def run_load(url: str) -> tuple[Measured, dict[str, Any]]:
            A.create_plain_tables(url)
            m, _script = A.mariadb_load(url.rsplit("/", 1)[1].split("?")[0], csv)
            return m, {}

        try:
            self.repeat(
                [
                    self.step(ours, self.my, "s3_dmig", self.dmig_runner(src), self.diff_after(src, "users")),
                    self.step(anchor, self.my, "s3_load", run_load),
                ]
            )
        finally:
            for p in csv.values():
                p.unlink(missing_ok=True)
            csv_dir.rmdir()
        total_export = round(sum(export_s.values()), 2)
        limit = ratio(ours.median("wall_s"), anchor.median("wall_s"))
        with_export = ratio(ours.median("wall_s"), (anchor.median("wall_s") or 0) + total_export)
        self.scenario(
            "3",
            "SQLite -> MariaDB",
            [ours, anchor],
            goals=[
                goal(
                    f"dmig within 1.5x of LOAD DATA + indexes/FK (dmig/anchor = {fmt(limit)}x)",
                    limit,
                    lambda v: v <= 1.5,
                )
            ],
            extra={
                "csv_export_s": export_s,
                "dmig_vs_export_plus_load": with_export,
                "load_script": A.load_data_script(csv),
            },
        )

    def s4(self) -> None:
        src = A.sqlite_url(self.sqlite)
        ours, anchor = Contender("dmig copy"), Contender("SQLAlchemy executemany loop")
        previous = self.result["scenarios"].get("1")
        loop = self.step(anchor, self.pg, "s4", lambda url: (A.sa_loop(src, url), {}))
        if previous:  # scenario 1 already measured dmig on exactly this copy: reuse, run only the loop
            ours.runs = previous["contenders"][0]["runs"]
            self.repeat([loop])
        else:
            self.repeat([self.step(ours, self.pg, "s4", self.dmig_runner(src)), loop])
        speed = ratio(anchor.median("wall_s"), ours.median("wall_s"))
        self.scenario(
            "4",
            "SQLite -> PostgreSQL vs hand-written SQLAlchemy",
            [ours, anchor],
            goals=[goal(f"ratio SQLAlchemy loop / dmig = {fmt(speed)}x (no target set)", speed, None)],
            extra={"dmig_runs_reused_from_scenario_1": bool(previous)},
        )

    def s5(self) -> None:
        a = self.args
        small = Contender(f"dmig copy users {a.users:,}")
        big = Contender(f"dmig copy users {a.big_users:,}")
        started = time.monotonic()
        big_file = copy_data.sqlite_source(a.big_users, 0, a.seed)
        self.log(f"  SQLite source with {a.big_users:,} users ready in {time.monotonic() - started:.0f}s")
        for c, path, n in ((small, self.sqlite, a.users), (big, big_file, a.big_users)):
            _c, run = self.step(
                c, self.pg, "s5", self.dmig_runner(A.sqlite_url(path), ["--tables", "users"]), expected={"users": n}
            )
            for r in range(a.memory_repeat):
                run(r == a.memory_repeat - 1)
        growth = ratio(big.peak("peak_rss_mb"), small.peak("peak_rss_mb"))
        self.scenario(
            "5",
            "memory: SQLite -> PostgreSQL users only",
            [small, big],
            goals=[
                goal(
                    f"peak RSS nearly flat (x{a.big_users // max(a.users, 1)} rows -> x{fmt(growth)} RSS, "
                    f"target <= {FLAT_MEMORY})",
                    growth,
                    lambda v: v <= FLAT_MEMORY,
                )
            ],
        )

    def scenario(
        self,
        key: str,
        title: str,
        contenders: list[Contender],
        goals: list[dict[str, Any]],
        extra: dict[str, Any] | None = None,
    ) -> None:
        self.result["scenarios"][key] = {
            "title": title,
            "contenders": [c.as_dict() for c in contenders],
            "goals": goals,
            **(extra or {}),
        }
        self.save()

    # --- the run ---

    @property
    def scenarios(self) -> set[int]:
        return {int(s) for s in self.args.scenarios.split(",") if s.strip()}

    def run(self) -> dict[str, Any]:
        a = self.args
        self.result.update(
            started=dt.datetime.now().isoformat(timespec="seconds"),
            argv=sys.argv,
            sizes={"users": a.users, "orders": a.orders, "big_users": a.big_users},
            repeat=a.repeat,
            workers=f"dmig default (--workers not given): os.cpu_count() = {os.cpu_count()}",
            machine=machine(self.pg, self.my),
        )
        self.out = OUT / f"copy-bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
        try:
            self.prepare()
            for key in sorted(self.scenarios):
                self.log(f"scenario {key}")
                getattr(self, f"s{key}")()
        finally:
            if not a.keep:
                self.cleanup()
        self.result["finished"] = dt.datetime.now().isoformat(timespec="seconds")
        self.save()
        return self.result

    def cleanup(self) -> None:
        for server in (self.pg, self.my):
            for name in server.leftovers(self.prefix):
                server.drop(name)

    def save(self) -> None:
        OUT.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.result, indent=2, default=str))


def dmig_detail(summary: dict[str, Any]) -> dict[str, Any]:
    """What dmig said about its own run: in-process seconds, index/FK time, its verification."""
    if not summary:
        return {"verified": False}
    v = summary.get("verification") or {}
    tables = summary.get("tables") or []
    return {
        "verified": summary.get("ok") is True and v.get("ok") is not False,
        "dmig_seconds": (summary.get("totals") or {}).get("seconds"),
        "dmig_wall_seconds": (summary.get("totals") or {}).get("wall_seconds"),
        "dmig_verify_seconds": v.get("seconds"),
        "dmig_workers": summary.get("workers"),
        "dmig_verification": {c["table"]: c.get("checksum") for c in v.get("tables") or []},
        "dmig_tables": {
            t["table"]: {
                "seconds": t["seconds"],
                "index_s": t["index_seconds"],
                "fk_s": t["fk_seconds"],
                "partitions": t["partitions"],
            }
            for t in tables
        },
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 2) if a and b else None


def fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:g}"


def goal(text: str, value: float | None, test: Callable[[float], bool] | None) -> dict[str, Any]:
    met = None if test is None or value is None else bool(test(value))
    return {"goal": text, "value": value, "met": met}


def machine(pg: A.Server, my: A.Server) -> dict[str, str]:
    import sqlite3

    from bench.machine import host_facts, load_average, python_version

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "server/dmig/move", "server/dmig/tools/copy.py"],
        capture_output=True,
        text=True,
        cwd=HERE.parent,
    )
    facts = host_facts()
    return {
        "nproc": facts["nproc"],
        "memory": facts["memory"],
        "load at start": load_average(),
        "kernel": platform.release(),
        "python": python_version(),
        "postgresql": pg.version(),
        "mariadb": my.version(),
        "sqlite": sqlite3.sqlite_version,
        "pgloader": A.tool_version(["pgloader", "--version"]),
        "pgcopydb": A.tool_version(["pgcopydb", "--version"]),
        "dmig commit": commit.stdout.strip() + (" + uncommitted copy-engine changes" if dirty.stdout.strip() else ""),
    }


# -- Markdown -----------------------------------------------------------------------------------


def markdown(r: dict[str, Any]) -> str:
    m = r["machine"]
    s = r["sizes"]
    lines = [
        START,
        f"## copy: `dmig copy` vs pgloader, pgcopydb, LOAD DATA, SQLAlchemy ({r['started'][:10]})",
        "",
        f"Machine: {m['nproc']} cores, {m['memory']}, load average at start {m.get('load at start', 'n/a')}; "
        f"{m['postgresql']}; "
        f"MariaDB {m['mariadb']}; SQLite {m['sqlite']}; {m['pgloader']}; {m['pgcopydb']}; Python {m['python']}; "
        f"dmig {m['dmig commit']}.",
        f"Data: users {s['users']:,} + orders {s['orders']:,} rows (bench.datagen seed 42; unique e-mail index, "
        "orders.user_id index, FK). Workers: " + r["workers"] + f". Each contender run {r['repeat']}x, "
        "alternating order; median wall shown, spread = (max-min)/median.",
        *(
            [f"Command: `python -m bench.copy_bench {' '.join(r['argv'][1:])}`"]
            if len(r.get("sessions", [])) < 2
            else ["Sessions (a scenario re-run in a later session replaces the earlier one):"]
            + [f"- {x.replace('`', '`python -m bench.copy_bench ', 1)}" for x in r["sessions"]]
        ),
        "",
        "Wall = end to end for the process (start-up, tables, load, indexes, FK; dmig also its own "
        "verification). Peak RSS = max over 50 ms samples of the SUM of VmRSS over the tool's process tree "
        "(PSS in brackets: shared pages counted once). Server-side memory is not included for anyone.",
        "",
    ]
    for key in sorted(r["scenarios"]):
        sc = r["scenarios"][key]
        lines += [f"### {key}. {sc['title']}", ""]
        lines.append("| contender | wall s (runs) | median s | spread | rows/s | peak RSS MB [PSS] | checks |")
        lines.append("|---|---|---|---|---|---|---|")
        for c in sc["contenders"]:
            lines.append(_row(c))
        for c in sc["contenders"]:
            inside = _dmig_inside(c)
            if inside:
                lines.append(f"- {c['name']}, inside the process (fastest run): {inside}")
        for g in sc["goals"]:
            verdict = {True: "**met**", False: "**NOT met**", None: "(reported)"}[g["met"]]
            lines.append(f"- {g['goal']}: {verdict}")
        if "csv_export_s" in sc:
            lines.append(
                f"- CSV export with the sqlite3 shell (not in the anchor's time): {sc['csv_export_s']} s; "
                f"dmig / (export + load) = {fmt(sc['dmig_vs_export_plus_load'])}x"
            )
        lines.append("")
    lines.append(END)
    return "\n".join(lines)


def _dmig_inside(c: dict[str, Any]) -> str:
    """Where dmig's own time went in its fastest run: start-up, per-table load, index/FK builds, verification."""
    runs = sorted((x for x in c["runs"] if x.get("ok") and x.get("dmig_seconds")), key=lambda x: x["wall_s"])
    if not runs:
        return ""
    x = runs[0]  # the fastest: the least disturbed by the other work on the machine
    tables = x["dmig_tables"]
    slowest = max(t["seconds"] for t in tables.values())
    inner = x.get("dmig_wall_seconds")  # summaries since the verification is timed on its own
    if inner is None:  # earlier summaries: totals.seconds was the whole call, verification included
        parts = [f"start-up and exit {x['wall_s'] - x['dmig_seconds']:.1f} s"]
    else:
        parts = [f"start-up and exit {x['wall_s'] - inner:.1f} s", f"verification {x['dmig_verify_seconds']:.1f} s"]
    for name, t in tables.items():
        parts.append(
            f"{name} {t['seconds']:.1f} s incl. indexes {t['index_s']:.1f} s + FK {t['fk_s']:.1f} s "
            f"({t['partitions']} partitions)"
        )
    if inner is None:
        parts.append(f"planning + verification ≈ {x['dmig_seconds'] - slowest:.1f} s (tables load in parallel)")
    else:
        parts.append(f"planning etc. ≈ {x['dmig_seconds'] - slowest:.1f} s (tables load in parallel)")
    return "; ".join(parts)


def _row(c: dict[str, Any]) -> str:
    runs = c["runs"]
    walls = ", ".join(f"{x['wall_s']}" + ("" if x["ok"] else " FAILED") for x in runs)
    rps = statistics.median([x["rows_per_s"] for x in runs if x.get("rows_per_s")] or [0])
    checks = []
    if all(x["counts_ok"] for x in runs):
        checks.append("counts ok")
    else:
        checks.append("COUNTS WRONG")
    if any(x.get("dmig_verification") for x in runs):
        checks.append("verify ok" if all(x.get("ok") for x in runs) else "verify FAILED")
    elif any("dmig_verification" in x for x in runs):
        checks.append("verify off")
    for x in runs:
        if "diff" in x:
            d = x["diff"]
            checks.append(f"diff {d['table']} exit {d['exit_code']}")
    return (
        f"| {c['name']} | {walls} | {fmt(c['median_wall_s'])} | "
        f"{'n/a' if c['spread_pct'] is None else str(c['spread_pct']) + ' %'} | {rps:,.0f} | "
        f"{fmt(c['peak_rss_mb'])} [{fmt(c['peak_pss_mb'])}] | {', '.join(checks)} |"
    )


def merged(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs as one report (a scenario re-run later replaces the earlier one); their runs are listed."""
    out = dict(results[0])
    out["scenarios"] = {}
    for r in results:
        out["scenarios"].update(r["scenarios"])
    out["sessions"] = [
        f"{r['started']} to {r.get('finished', '?')}, dmig {r['machine']['dmig commit']}: `{' '.join(r['argv'][1:])}`"
        for r in results
    ]
    if len(results) > 1:
        out["machine"] = dict(out["machine"], **{"dmig commit": "per session, below"})
    return out


def write_section(section: str) -> None:
    """Replace this benchmark's section of RESULTS.md (between its markers), leaving the others alone."""
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    head, found, rest = text.partition(START)
    if found and END in rest:
        text = head + section + rest.split(END, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=1_000_000)
    p.add_argument("--orders", type=int, default=2_000_000)
    p.add_argument("--big-users", type=int, default=10_000_000, help="users rows of the memory scenario's big run")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--repeat", type=int, default=2, help="runs per contender (median reported)")
    p.add_argument("--memory-repeat", type=int, default=1, help="runs per size in the memory scenario")
    p.add_argument("--scenarios", default="1,2,3,4,5", help="comma-separated subset of 1..5")
    p.add_argument("--tag", default="", help="suffix of the database prefix, to run two benches at once")
    p.add_argument(
        "--no-verify-too",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="scenarios 1 and 2 also time dmig copy --no-verify (the anchors do not verify)",
    )
    p.add_argument("--keep", action="store_true", help="keep the last run's databases")
    p.add_argument("--write-results", action="store_true", help="put the Markdown section into bench/RESULTS.md")
    p.add_argument(
        "--render",
        type=Path,
        nargs="+",
        help="only print (and --write-results) the section of saved JSON results; scenarios of later files win",
    )
    p.add_argument("--notes", type=Path, help="with --render: Markdown put at the end of the section")
    args = p.parse_args(argv)
    if args.render:
        section = markdown(merged([json.loads(p.read_text()) for p in args.render]))
        if args.notes:  # the analysis written after looking at the figures goes inside the section
            section = section.replace(END, args.notes.read_text().strip() + "\n" + END)
        print(section)
        if args.write_results:
            write_section(section)
        return 0
    bench = Bench(args)
    result = bench.run()
    section = markdown(result)
    print(section)
    print(f"\nraw results: {bench.out}", file=sys.stderr)
    if args.write_results:
        write_section(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
