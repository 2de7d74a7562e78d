"""Benchmark: ``dmig diff`` against reladiff, and against the floor of one checksum scan per side.

    python -m bench.diff_bench [--rows 1000000] [--rss-rows 4000000] [--plant 9] [--repeat 3] [--keep]

1. Loads users (``--rows``) and orders (2x) from ``bench.datagen`` into three throwaway databases:
   PostgreSQL ``dmig_bench_src`` and ``dmig_bench_tgt``, MariaDB ``dmig_bench_tgt``; plants the
   same ``--plant`` differences in both targets (a third missing, extra, changed). Load times are
   measured.
2. For MariaDB<-PostgreSQL and PostgreSQL<-PostgreSQL on ``users``: runs our diff and reladiff
   (PyPI, installed by this script into its own venv ``bench/.venv-anchor`` from
   ``bench/requirements-anchor.txt``), each as a child process, ``--repeat`` times, alternating
   the order; records wall time, in-process time (ours) and peak RSS (``wait4``), and checks that
   both found exactly the planted differences.
3. Times the floor: ``SELECT count(*), sum(<row hash>)`` over the whole table on both sides at
   once (what a diff cannot beat: one scan per side).
4. With ``--rss-rows``, loads two more PostgreSQL databases with that many users and records our
   peak RSS there too (memory should stay flat as the table grows).
5. Prints a Markdown section and, with ``--write-results``, puts it into bench/RESULTS.md.

Databases are dropped at the end unless ``--keep``. This is a benchmark, not a test: it asserts
nothing about time, it reports.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import datagen
from bench.machine import host_facts, load_average, python_version, server_value

HERE = Path(__file__).resolve().parent
ANCHOR_VENV = HERE / ".venv-anchor"
ANCHOR_REQS = HERE / "requirements-anchor.txt"
RESULTS = HERE / "RESULTS.md"
OUT = HERE / "out"
PG_ADMIN = os.environ.get("DMIG_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
MY_ADMIN = os.environ.get("DMIG_BENCH_MYSQL", "mysql://root@127.0.0.1:3306")
START, END = "<!-- diff-bench:start -->", "<!-- diff-bench:end -->"


# -- databases ----------------------------------------------------------------------------------


def _admin(url: str) -> sa.Engine:
    base = url.replace("postgresql://", "postgresql+psycopg://").replace("mysql://", "mysql+pymysql://")
    return sa.create_engine(
        base + ("/postgres" if base.startswith("postgresql") else "/mysql"), isolation_level="AUTOCOMMIT"
    )


def create_db(admin: str, name: str) -> str:
    assert re.fullmatch(r"dmig_bench_\w+", name)
    engine = _admin(admin)
    with engine.connect() as conn:
        if admin.startswith("postgresql"):
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    engine.dispose()
    return f"{admin}/{name}" + ("" if admin.startswith("postgresql") else "?charset=utf8mb4")


def drop_db(admin: str, name: str) -> None:
    engine = _admin(admin)
    with engine.connect() as conn:
        if admin.startswith("postgresql"):
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    engine.dispose()


# -- the anchor ---------------------------------------------------------------------------------


def anchor_python() -> Path:
    """reladiff in its own venv (its drivers and pins must not touch ours); reinstalled when the pins change."""
    stamp = ANCHOR_VENV / ".installed"
    want = hashlib.sha256(ANCHOR_REQS.read_bytes()).hexdigest()
    if not (stamp.exists() and stamp.read_text() == want):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(ANCHOR_VENV)], check=True)
        pip = [str(ANCHOR_VENV / "bin/python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        subprocess.run([*pip, "-r", str(ANCHOR_REQS)], check=True)
        stamp.write_text(want)
    return ANCHOR_VENV / "bin/python"


def anchor_version(py: Path) -> str:
    out = subprocess.run(
        [str(py), "-c", "import importlib.metadata as m; print(m.version('reladiff'))"], capture_output=True, text=True
    )
    return out.stdout.strip()


# -- running one diff ---------------------------------------------------------------------------


def run_child(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, int, str, int]:
    """(wall seconds, peak RSS in KiB, stdout, exit code) of one child process.

    Peak RSS comes from GNU time, not from our own wait4: Linux carries a parent's RSS high-water
    mark over fork and exec into the child's ru_maxrss, so a child forked from this (large)
    process would report our size, not its own. GNU time is small, so its child's figure is true.
    """
    gnu_time = Path("/usr/bin/time")
    rss_file = OUT / f".rss-{os.getpid()}"
    OUT.mkdir(exist_ok=True)
    full = [str(gnu_time), "-f", "%M", "-o", str(rss_file), *cmd] if gnu_time.exists() else cmd
    started = time.monotonic()
    proc = subprocess.run(full, capture_output=True, text=True, env=env)
    wall = time.monotonic() - started
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    rss = int(rss_file.read_text().strip().splitlines()[-1]) if gnu_time.exists() else 0
    rss_file.unlink(missing_ok=True)
    return wall, rss, proc.stdout, proc.returncode


def ours(src: str, tgt: str, table: str) -> dict[str, Any]:
    """Our diff in a child process that imports only dmig.diff (the CLI's start-up is measured apart)."""
    code = (
        "import json, sys; from dmig.diff import diff_table; "
        "r = diff_table(sys.argv[1], sys.argv[2], sys.argv[3], limit=10000); print(r.model_dump_json())"
    )
    wall, rss, out, _ = run_child([sys.executable, "-c", code, src, tgt, table])
    doc = json.loads(out)
    changed = {c["key"][0]: c["columns"] for c in doc["changed"]}
    return {
        "wall": wall,
        "inner": doc["stats"]["seconds"],
        "rss_kib": rss,
        "missing": sorted(k[0] for k in doc["missing_in_target"]),
        "extra": sorted(k[0] for k in doc["extra_in_target"]),
        "changed": sorted(changed),
        "changed_columns": changed,
        "stats": doc["stats"],
    }


def reladiff(py: Path, src: str, tgt: str, table: str) -> dict[str, Any]:
    def plain(url: str) -> str:
        return url.split("?")[0]

    cmd = [str(py), "-m", "reladiff", plain(src), table, plain(tgt), table, "-k", "id", "-c", "%", "--json"]
    env = {**os.environ, "COLUMNS": "100000", "TERM": "dumb"}
    wall, rss, out, _ = run_child(cmd, env=env)
    minus: set[int] = set()
    plus: set[int] = set()
    decoder = json.JSONDecoder()
    text, pos = out.replace("\n", ""), 0
    while pos < len(text):
        sign, row = (d := decoder.raw_decode(text, pos))[0]
        pos = d[1]
        while pos < len(text) and text[pos].isspace():
            pos += 1
        (minus if sign == "-" else plus).add(int(row[0]))
    return {
        "wall": wall,
        "rss_kib": rss,
        "missing": sorted(minus - plus),
        "extra": sorted(plus - minus),
        "changed": sorted(minus & plus),
    }


# -- the floor ----------------------------------------------------------------------------------


def floor_scan(src: str, tgt: str, table: str, repeat: int) -> dict[str, float]:
    """One full checksum scan per side (our hash, no segments), alone and both at once; medians."""
    from dmig.diff.plan import build_plan
    from dmig.diff.sides import Side

    sides = [Side(label, url, table, None, 1, 3600) for label, url in (("source", src), ("target", tgt))]
    for s in sides:
        s.open()
    try:
        stmts = [build_plan(s, s, None, None, []).src.checksum(None) for s in sides]

        def once(i: int) -> float:
            started = time.monotonic()
            sides[i].submit(lambda conn, i=i: sides[i].execute(conn, stmts[i])).result()
            return time.monotonic() - started

        alone = [[once(i) for _ in range(repeat)] for i in range(2)]
        both = []
        for _ in range(repeat):
            started = time.monotonic()
            fs = [sides[i].submit(lambda conn, i=i: sides[i].execute(conn, stmts[i])) for i in range(2)]
            for f in fs:
                f.result()
            both.append(time.monotonic() - started)
    finally:
        for s in sides:
            s.close()
    return {
        "source": statistics.median(alone[0]),
        "target": statistics.median(alone[1]),
        "both": statistics.median(both),
    }


# -- the run ------------------------------------------------------------------------------------


def machine(anchor: str) -> dict[str, str]:
    return {
        **host_facts(),
        "cpu": platform.processor() or platform.machine(),
        "python": python_version(),
        "postgresql": server_value(_admin(PG_ADMIN), "SHOW server_version"),
        "mariadb": server_value(_admin(MY_ADMIN), "SELECT VERSION()"),
        "reladiff": anchor,
        "load": load_average(),
    }


def compare(name: str, src: str, tgt: str, py: Path | None, repeat: int, planted: datagen.Planted) -> dict[str, Any]:
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "reladiff": []}
    for i in range(repeat):
        order = ["ours", "reladiff"] if i % 2 == 0 else ["reladiff", "ours"]
        for who in order:
            if who == "reladiff" and py is None:
                continue
            print(f"  {name}: {who} run {i + 1}/{repeat}", file=sys.stderr, flush=True)
            runs[who].append(ours(src, tgt, "users") if who == "ours" else reladiff(py, src, tgt, "users"))  # type: ignore[arg-type]
    expected = {"missing": planted.missing, "extra": planted.extra, "changed": sorted(planted.changed)}
    out: dict[str, Any] = {"pair": name}
    for who, rs in runs.items():
        if not rs:
            continue
        found = {k: rs[0][k] for k in ("missing", "extra", "changed")}
        out[who] = {
            "wall_median": statistics.median(r["wall"] for r in rs),
            "wall_all": [round(r["wall"], 2) for r in rs],
            "rss_mib": max(r["rss_kib"] for r in rs) / 1024,
            "found_planted_exactly": found == expected,
        }
        if who == "ours":
            out[who]["inner_median"] = statistics.median(r["inner"] for r in rs)
            out[who]["stats"] = rs[0]["stats"]
            out[who]["columns_right"] = {int(k): v for k, v in rs[0]["changed_columns"].items()} == planted.changed
    return out


def _load(report: dict[str, Any], key: str, url: str, rows: int, seed: int, orders: int | None = None) -> None:
    print(f"loading {key}: {rows:,} users", file=sys.stderr, flush=True)
    started = time.monotonic()
    rep = datagen.load(url, rows, orders=orders, seed=seed)
    report["load"].setdefault(key, []).append({"seconds": round(time.monotonic() - started, 1), "steps": rep.seconds})


def scenarios(args: argparse.Namespace, py: Path | None, report: dict[str, Any], made: list[tuple[str, str]]) -> None:
    """For each planted-difference count: fresh targets, plant, time both tools on both pairs."""
    urls = {}
    for key, admin, name in (
        ("src", PG_ADMIN, "dmig_bench_src"),
        ("pg", PG_ADMIN, "dmig_bench_tgt"),
        ("my", MY_ADMIN, "dmig_bench_tgt"),
    ):
        urls[key] = create_db(admin, name)
        made.append((admin, name))
    _load(report, "postgresql source", urls["src"], args.rows, args.seed)
    for n, count in enumerate(int(c) for c in args.plant.split(",")):
        _load(report, "postgresql target", urls["pg"], args.rows, args.seed)
        _load(report, "mariadb target", urls["my"], args.rows, args.seed)
        planted = datagen.plant(urls["pg"], count, args.rows, args.seed)
        assert planted == datagen.plant(urls["my"], count, args.rows, args.seed)
        report["planted"][count] = {"missing": planted.missing, "extra": planted.extra, "changed": planted.changed}
        if n == 0:
            report["floor"] = {
                "pg->mariadb": floor_scan(urls["src"], urls["my"], "users", args.repeat),
                "pg->pg": floor_scan(urls["src"], urls["pg"], "users", args.repeat),
            }
        for pair, tgt in (("pg->mariadb", urls["my"]), ("pg->pg", urls["pg"])):
            run = compare(pair, urls["src"], tgt, py, args.repeat, planted)
            run["differences"] = len(planted.missing) + len(planted.extra) + len(planted.changed)
            report["runs"].append(run)


def memory_run(args: argparse.Namespace, report: dict[str, Any], made: list[tuple[str, str]]) -> None:
    """Our peak RSS on a bigger table (PostgreSQL to PostgreSQL, users only)."""
    a, b = create_db(PG_ADMIN, "dmig_bench_rss_a"), create_db(PG_ADMIN, "dmig_bench_rss_b")
    made += [(PG_ADMIN, "dmig_bench_rss_a"), (PG_ADMIN, "dmig_bench_rss_b")]
    for key, url in (("memory run source", a), ("memory run target", b)):
        _load(report, key, url, args.rss_rows, args.seed, orders=0)
    count = int(args.plant.split(",")[0])
    big = datagen.plant(b, count, args.rss_rows, args.seed)
    run = ours(a, b, "users")
    report["rss"] = {
        "rows": args.rss_rows,
        "rss_mib": run["rss_kib"] / 1024,
        "inner": run["inner"],
        "wall": run["wall"],
        "found_planted_exactly": [run["missing"], run["extra"], run["changed"]]
        == [big.missing, big.extra, sorted(big.changed)],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=100_000, help="users rows (orders get twice as many)")
    p.add_argument("--rss-rows", type=int, default=0, help="also measure our peak RSS with this many users")
    p.add_argument("--plant", default="9", help="planted differences; a comma list runs one scenario each")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--skip-anchor", action="store_true", help="do not install or run reladiff")
    p.add_argument("--keep", action="store_true", help="keep the dmig_bench_* databases")
    p.add_argument("--write-results", action="store_true", help="put the Markdown section into bench/RESULTS.md")
    args = p.parse_args(argv)

    py = None if args.skip_anchor else anchor_python()
    report: dict[str, Any] = {
        "args": vars(args),
        "machine": machine(anchor_version(py) if py else "not run"),
        "load": {},
        "planted": {},
        "runs": [],
    }
    made: list[tuple[str, str]] = []
    try:
        scenarios(args, py, report, made)
        if args.rss_rows:
            memory_run(args, report, made)
    finally:
        if not args.keep:
            for admin, name in made:
                drop_db(admin, name)
    report["machine"]["load_end"] = load_average()
    OUT.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (OUT / f"diff-{stamp}.json").write_text(json.dumps(report, indent=2, default=str))
    section = markdown(report, argv if argv is not None else sys.argv[1:])
    print(section)
    if args.write_results:
        write_section(section)
    return 0


def markdown(r: dict[str, Any], argv: list[str]) -> str:
    m = r["machine"]
    rows = r["args"]["rows"]
    lines = [
        START,
        "## diff: checksum diff vs reladiff, and vs the one-scan floor",
        "",
        f"Command: `python -m bench.diff_bench {' '.join(argv)}`  ",
        f"Date: {m['date']} · machine: {m['nproc']} cores, {m['memory']} ({m['cpu']}), load average at start "
        f"{m['load']} (shared with other work) · Python {m['python']} · PostgreSQL {m['postgresql']} · "
        f"MariaDB {m['mariadb']} · reladiff {m['reladiff']}",
        "",
        f"Data: `users` {rows:,} rows (and `orders` {2 * rows:,}, loaded but not diffed) from `bench/datagen.py`, "
        f"seed {r['args']['seed']}; planted differences per scenario (a third missing, extra, changed): "
        + "; ".join(f"{n}: changed {sorted(v['changed'])[:5]}..." for n, v in r["planted"].items()),
        "",
        "Load times (s, COPY / LOAD DATA + indexes + analyze; TSV generated once and reused): "
        + "; ".join(f"{k} " + ", ".join(str(x["seconds"]) for x in v) for k, v in r["load"].items())
        + ".",
        "",
        "| pair | differences | ours wall (s) | ours in-process (s) | reladiff wall (s) | reladiff / ours "
        "| floor: both sides at once (s) | ours in-process / floor | ours peak RSS (MiB) | reladiff peak RSS (MiB) "
        "| same differences |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in r["runs"]:
        lines.append("| " + " | ".join(_cells(run, r["floor"][run["pair"]]["both"])) + " |")
    lines += [
        "",
        "Floor detail (median s, one side alone): "
        + "; ".join(f"{k}: source {v['source']:.2f}, target {v['target']:.2f}" for k, v in r["floor"].items()),
    ]
    if "rss" in r:
        first = next(run for run in r["runs"] if run["pair"] == "pg->pg")["ours"]  # the first scenario's
        lines += [
            "",
            f"Memory: our peak RSS {first['rss_mib']:.0f} MiB at {rows:,} rows vs {r['rss']['rss_mib']:.0f} MiB at "
            f"{r['rss']['rows']:,} rows (PostgreSQL to PostgreSQL; {r['rss']['inner']:.1f} s in-process; planted "
            f"differences found exactly: {r['rss']['found_planted_exactly']}).",
        ]
    lines += ["", "Raw figures: `bench/out/diff-*.json`.", END]
    return "\n".join(lines)


def _cells(run: dict[str, Any], floor: float) -> list[str]:
    o, a = run["ours"], run.get("reladiff")
    same = o["found_planted_exactly"] and o["columns_right"] and (a is None or a["found_planted_exactly"])
    return [
        run["pair"],
        str(run["differences"]),
        f"{o['wall_median']:.2f}",
        f"{o['inner_median']:.2f}",
        f"{a['wall_median']:.2f}" if a else "n/a",
        f"{a['wall_median'] / o['wall_median']:.2f}×" if a else "n/a",
        f"{floor:.2f}",
        f"{o['inner_median'] / floor:.2f}×",
        f"{o['rss_mib']:.0f}",
        f"{a['rss_mib']:.0f}" if a else "n/a",
        "yes" if same else f"NO (ours {o['found_planted_exactly']}, reladiff {a and a['found_planted_exactly']})",
    ]


def write_section(section: str) -> None:
    text = RESULTS.read_text() if RESULTS.exists() else "# Benchmark results\n"
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    RESULTS.write_text(text)


if __name__ == "__main__":
    sys.exit(main())
