"""The workload generator: histogram accuracy, shape rules, and a live run through split_column's
expand, backfill, validation and contract on PostgreSQL and MariaDB (zero failed requests expected)."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from dmig.errors import InvalidInput
from dmig.execute import run_plan
from dmig.workload import Workload
from dmig.workload.histogram import LatencyHistogram, bucket_bounds, bucket_of
from dmig.workload.locks import LockWaitSampler
from dmig.workload.runner import allowed_ops
from dmig.workload.shape import join, split
from workload_helpers import complete_plan, count, old_reader_rows, split_plan, users_table


def test_histogram_percentiles_within_one_percent() -> None:
    rng = random.Random(3)
    values = sorted(rng.lognormvariate(-5, 1.5) for _ in range(20_000))  # seconds, 0.1 ms .. seconds
    halves = LatencyHistogram(), LatencyHistogram()
    for i, v in enumerate(values):
        halves[i % 2].record(v)
    h = halves[0].merge(halves[1])
    assert h.count == len(values)
    for q in (0.5, 0.95, 0.99):
        exact = values[int(q * len(values) + 0.999999) - 1] * 1000
        assert abs(h.percentile_ms(q) - exact) <= exact * 0.01 + 0.001, q
    assert h.percentile_ms(1.0) == round(values[-1] * 1_000_000 // 1 / 1000, 3)
    assert LatencyHistogram().percentile_ms(0.99) is None


def test_histogram_buckets_are_contiguous() -> None:
    prev_high = 0
    for index in range(bucket_of(10**9) + 1):
        low, high = bucket_bounds(index)
        assert low == prev_high and high > low
        assert bucket_of(low) == index and bucket_of(high - 1) == index
        prev_high = high


def test_split_join_follow_the_split_column_rules() -> None:
    assert split("Mary Ann Smith", " ") == ("Mary", "Ann Smith")
    assert split("Plato", " ") == ("Plato", None)
    assert split("", " ") == ("", None)
    assert split(None, " ") == (None, None)
    assert split(" leading", " ") == ("", "leading")
    for value in ["Mary Ann Smith", "Plato", "", None, " leading", "trailing ", "a  b"]:
        assert join(*split(value, " "), " ") == value
    assert join(None, "X", " ") == " X"


def test_allowed_ops_follow_the_phase() -> None:
    assert not any(op.startswith("new_") for op in allowed_ops("old", True))
    assert not any(op.startswith("new_") for op in allowed_ops("expanding", True))
    assert set(allowed_ops("expanded", False)) == {"old_point_read", "old_range_read", "new_point_read",
                                                   "new_range_read", "new_insert", "new_update"}  # fmt: skip
    assert "old_update" not in allowed_ops("contracted", True)


def test_bad_arguments_fail_closed(sqlite_url: str) -> None:
    with pytest.raises(InvalidInput):
        Workload(sqlite_url, "users", mix={"old_delete": 1})
    with pytest.raises(InvalidInput):
        Workload(sqlite_url, "users", duration_s=0)
    with pytest.raises(InvalidInput):
        Workload(sqlite_url, "users", phase="halfway")
    with pytest.raises(InvalidInput):
        Workload(sqlite_url, "users", new_columns=("user_name", "last_name"))


def test_sqlite_old_shape_only_and_cleanup(sqlite_url: str) -> None:
    """SQLite (one writer at a time, busy_timeout): told the old phase, the workload never touches new columns."""
    rows = users_table(sqlite_url, 300)
    report = Workload(sqlite_url, "users", threads=2, max_ops=300, duration_s=30, phase="old").run_for(30)
    assert report.failed == 0, report.errors
    assert report.ops == 300 and {s.op for s in report.by_op} <= {"old_point_read", "old_range_read", "old_insert",
                                                                   "old_update", "read_back"}  # fmt: skip
    assert report.verified_rows > 0
    assert report.own_rows.deleted == report.own_rows.inserted
    assert count(sqlite_url) == len(rows)


@pytest.mark.parametrize("dialect", ["postgresql", "mysql"])
def test_workload_during_split_column(dialect: str, request: pytest.FixtureRequest, project: Path) -> None:
    url = request.getfixturevalue("pg_url" if dialect == "postgresql" else "mysql_url")
    rows = users_table(url, 1500)
    plan = split_plan(project, url)
    sampler = LockWaitSampler(url, interval_s=0.05).start()
    wl = Workload(url, "users", threads=4, rate=150, duration_s=120, cleanup=False, seed=5).start()
    try:
        time.sleep(0.5)
        wl.mark("migration")
        out = run_plan(plan, confirm=plan.checksum, url=url)
        assert out.state == "validated" and out.validation_passed
        time.sleep(0.5)  # both shapes live: old and new code write at once
        wl.retire_old_writers()  # the new release is out; old code only reads from here on
        time.sleep(0.3)
        wl.mark("contract")
        done = complete_plan(plan, project, url)
        assert done.state == "completed"
        wl.mark("after")
        time.sleep(0.5)
    finally:
        report = wl.stop()
        locks = sampler.stop()
    assert locks.samples > 0
    assert report.phases[0].phase == "old" and report.phases[-1].phase == "contracted"
    assert {"new_insert", "new_update", "old_update"} <= {s.op for s in report.by_op if s.count}

    # Final validation: every original row's parts rebuild its value for old readers; nothing lost or added.
    assert old_reader_rows(url, list(rows)) == rows
    assert count(url) == len(rows) + report.own_rows.inserted

    assert report.failed == 0, [e.model_dump() for e in report.errors]
