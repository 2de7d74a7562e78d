"""The copy benchmark's building blocks at a tiny size (seconds): the benchmark itself is never run by pytest."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest

# bench/ is a folder of scripts at the repository root, not part of the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import copy_anchors, copy_bench, copy_data, run
from bench.copy_measure import run_measured

pytestmark = pytest.mark.slow

CHILD = (
    "import subprocess, sys; "
    "p = subprocess.Popen([sys.executable, '-c', 'b = bytearray(60 * 2**20); import time; time.sleep(0.6)']); "
    "b = bytearray(40 * 2**20); p.wait()"
)


def test_peak_memory_sums_the_process_tree():
    m = run_measured([sys.executable, "-c", CHILD])
    assert m.returncode == 0
    assert m.processes >= 2
    assert m.max_hwm_mb >= 60
    assert m.peak_rss_mb >= 100  # parent's 40 MB and child's 60 MB at the same time


def test_sqlite_source_has_rows_indexes_and_foreign_key(tmp_path):
    path = copy_data.sqlite_source(50, 120, seed=3, cache_dir=tmp_path)
    assert copy_data.sqlite_source(50, 120, seed=3, cache_dir=tmp_path) == path  # cached
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT count(*) FROM users").fetchone() == (50,)
        assert db.execute("SELECT count(*) FROM orders").fetchone() == (120,)
        assert db.execute("PRAGMA foreign_key_list(orders)").fetchall()[0][2] == "users"
        names = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert {"ux_users_email", "ix_orders_user"} <= names
        assert db.execute("PRAGMA foreign_key_check").fetchall() == []


def test_csv_export_writes_null_marker(tmp_path):
    path = copy_data.sqlite_source(20, 60, seed=3, cache_dir=tmp_path)
    out = tmp_path / "orders.csv"
    copy_data.export_csv(path, "orders", out)
    lines = out.read_bytes().split(b"\r\n")
    assert len([x for x in lines if x]) == 60
    assert any(b"\\N" in x for x in lines)


def test_anchor_scripts_name_every_step(tmp_path):
    script = copy_anchors.load_data_script({"users": tmp_path / "u.csv", "orders": tmp_path / "o.csv"})
    assert script.count("LOAD DATA LOCAL INFILE") == 2 and "FOREIGN KEY" in script and "UNIQUE INDEX" in script
    load = copy_anchors.pgloader_command(tmp_path / "s.db", "postgresql://postgres@127.0.0.1:5432/dmig_bench_copy_x")
    assert "INTO pgsql://postgres@127.0.0.1:5432/dmig_bench_copy_x" in load and "foreign keys" in load
    with pytest.raises(ValueError):
        copy_anchors.Server.quoted(copy_anchors.Server.__new__(copy_anchors.Server), "production")


def test_markdown_reports_ratios_and_goals():
    run_ok = {"ok": True, "wall_s": 10.0, "rows_per_s": 300, "counts_ok": True, "peak_rss_mb": 150.0}
    result = {
        "started": "2024-01-01T00:00:00",
        "argv": ["copy_bench.py", "--users", "100"],
        "sizes": {"users": 100, "orders": 200, "big_users": 1000},
        "repeat": 1,
        "workers": "2",
        "machine": {k: "x" for k in ("nproc", "memory", "postgresql", "mariadb", "sqlite", "pgloader", "pgcopydb")}
        | {"python": "3", "dmig commit": "abc"},
        "scenarios": {
            "1": {
                "title": "SQLite -> PostgreSQL",
                "contenders": [
                    copy_bench.Contender("dmig copy", [run_ok]).as_dict(),
                    copy_bench.Contender("pgloader", [run_ok | {"wall_s": 30.0}]).as_dict(),
                ],
                "goals": [copy_bench.goal("dmig >= 2x faster", 3.0, lambda v: v >= 2)],
            }
        },
    }
    text = copy_bench.markdown(result)
    assert text.startswith(copy_bench.START) and text.endswith(copy_bench.END)
    assert "| pgloader | 30.0 | 30 |" in text and "**met**" in text


def test_bench_run_finds_the_scripts(capsys):
    assert run.main(["--list"]) == 0
    assert "copy_bench" in capsys.readouterr().out
    assert run.main(["--only", "nope"]) == 2
