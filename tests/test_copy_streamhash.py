"""Streamed checksum: source rows hashed while copied, compared with the target's own checksum.

The generated row hash must equal the diff's reference hash bit for bit (else every copy would
fall back to the slow full diff); a tampered sum or a tampered target row must never pass: the
full diff then runs and names what differs.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from copy_helpers import edit_recorded_info, engine, make_people, run_copy
from dmig.diff.hashing import row_hash
from dmig.move.streamhash import Accumulator, HashSpec, build_hasher, framed_for, partition_totals

NASTY: dict[str, list[object]] = {
    "text": ["", "a|b", "!", "3:abc", "ü🙂", "tab\there", b"bytes\x00", 1.5, 7, "\\N"],
    "int": [0, -1, 2**63 + 5, True, False, "42", "t", Decimal("7"), 3.0],
    "decimal": [Decimal("10.50"), Decimal("-0.00"), 741.81, 1e16, 1e-7, -0.0, 3, "12.3400", float("nan")],
    "float": [0.1, 1 / 3, -2.5, 1e300, float("inf"), "2.50", 7],
    "timestamp": [
        "2024-01-02 03:04:05.123456",
        "2024-01-02T03:04:05",
        "2024-01-02",
        "garbage that is 26 chars!!",
        dt.datetime(2024, 1, 2, 3, 4, 5, 6),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        dt.date(2020, 2, 29),
        "0099-01-01 00:00:00.000000",
    ],
    "date": ["2020-02-29", dt.date(1, 1, 1), dt.datetime(2020, 1, 1, 5)],
    "time": ["12:00:00", dt.time(1, 2, 3, 4), dt.timedelta(hours=30, microseconds=5)],
    "binary": [b"\x00\xff", "text", memoryview(b"ab")],
    "bool": [True, False, 1, 0],
}


@pytest.mark.parametrize("category", sorted(NASTY))
def test_generated_hasher_equals_the_reference_row_hash(category: str) -> None:
    cats = ["int", category, "text"]
    spec = HashSpec(positions=(2, 0, 1), categories=tuple(cats), framed=framed_for(cats), columns=("k", "v", "t"))
    h = build_hasher(spec)
    for value in [*NASTY[category], None]:
        row = (value, "x|y" if value is None else None, 17)
        assert h(row) == row_hash(cats, (17, value, row[1])), (category, value)


def test_accumulator_gives_up_instead_of_guessing() -> None:
    spec = HashSpec(positions=(0,), categories=("int",), framed=(False,), columns=("k",))
    acc = Accumulator(spec)

    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text form")

    assert acc.hashes([(1,), (Unprintable(),)], {}) == [0, 0] and acc.broken
    assert acc.merged({}, 2, 5) == {"spec": "unhashable"}
    assert partition_totals([{"stream_hash": {"spec": "unhashable"}}], spec.fingerprint) is None
    assert partition_totals([{}], spec.fingerprint) is None


def _copied(tmp_path: Path, pg_url: str, project: Path, rows: int = 3000) -> str:
    src = f"sqlite:///{tmp_path / 'src.db'}"
    make_people(src, rows)
    out = run_copy(src, pg_url, project, batch_size=500, workers=2, partition_rows=800)
    assert out.ok, out.model_dump_json(indent=1)
    [check] = out.verification.tables
    assert (check.checksum, check.method) == ("match", "streamed"), check
    assert out.tables[0].partitions > 1
    return src


def _rerun(src: str, pg_url: str, project: Path):  # type: ignore[no-untyped-def]
    out = run_copy(src, pg_url, project, batch_size=500, workers=2, partition_rows=800)
    assert out.already_complete
    [check] = out.verification.tables
    return out, check


def test_streamed_sums_are_used_and_a_tampered_sum_falls_back_to_the_full_diff(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    src = _copied(tmp_path, pg_url, project)
    # a finished copy's checkpoints are in the project's record file, not in the target
    edit_recorded_info(
        project, 0, lambda info: info["stream_hash"].update(sum=str(int(info["stream_hash"]["sum"]) + 1))
    )

    out, check = _rerun(src, pg_url, project)

    assert out.ok and (check.checksum, check.method) == ("match", "diff"), check


def test_a_changed_target_row_is_found_and_named(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _copied(tmp_path, pg_url, project)
    e = engine(pg_url)
    with e.begin() as conn:
        conn.execute(sa.text("UPDATE people SET note = 'tampered' WHERE id = 1234"))
    e.dispose()

    out, check = _rerun(src, pg_url, project)

    assert not out.ok and (check.checksum, check.method) == ("differ", "diff"), check
    assert "changed 1" in (check.detail or "") and "note" in (check.detail or "")
