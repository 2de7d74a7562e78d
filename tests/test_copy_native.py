"""SQLite -> PostgreSQL native pages (``dmig.move.nativepath``, ``fastcopy.c``) against the real server.

The native encoder writes each value in binary COPY form exactly as PostgreSQL stores and sends it
back, and verification trusts that claim ("echo" sums of the rows read back): an encoding that
differs from what the general Python path stores would either change a value or make every copy
fall back. So every awkward value of every supported type is copied both ways and the two targets
must be identical; values the encoder cannot take for certain must go the Python way and round
exactly as it does; a tampered sum or target row must never pass; rejects and ``kill -9`` must
behave as on the general path.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from copy_helpers import cli, edit_recorded_info, popen, run_copy
from dmig import native
from dmig.diff.service import diff_table
from dmig.move import nativepath, passthrough
from dmig.move.models import CopySummary, TableCheck
from dmig.move.rawconn import RawConn
from test_copy_passthrough import _connected, _partitions, _rows_as_text
from test_copy_resume import kill_and_reap

pytestmark = pytest.mark.pg

MASK = (1 << 128) - 1

# Reference XXH64 digests (seed 0) of the public algorithm; the 100-byte one was computed with the
# ``xxhash`` package (4.1.0), so the C implementation is checked against an independent one.
XXH64_REFERENCE = {
    b"": 0xEF46DB3751D8E999,
    b"abc": 0x44BC2CF5AD770999,
    bytes(range(100)): 0x6AC1E58032166597,
}

# Declared SQLite types and the PostgreSQL column each becomes (every one has an encoder).
TYPES = {
    "id": ("INTEGER PRIMARY KEY", "bigint"),  # SQLite integers are 64-bit: BIGINT
    "big": ("BIGINT", "bigint"),
    "small": ("SMALLINT", "bigint"),
    "note": ("TEXT", "text"),
    "label": ("VARCHAR(40)", "character varying(40)"),
    "amount": ("DECIMAL(12,2)", "numeric(12,2)"),
    "num": ("NUMERIC", "numeric"),
    "ratio": ("REAL", "double precision"),
    "seen": ("DATETIME", "timestamp without time zone"),
    "born": ("DATE", "date"),
    "flag": ("BOOLEAN", "boolean"),
    "blob": ("BLOB", "bytea"),
}
COLUMNS = ", ".join(f"{name} {declared}" for name, (declared, _) in TYPES.items())

VALUES: dict[str, list[Any]] = {
    "big": [0, -1, 1, 2**63 - 1, -(2**63), 2**31, -(2**31) - 1],
    "small": [0, 1, -1, 32767, -32768],
    "note": [
        *["tab\there", "new\nline", "cr\rhere", "back\\slash", "bs\bff\fvt\v", "ctl\x01x", "\x7f"],
        *["🙂 Zoë 李", "", "\\N", "\\.", "long " + "x" * 5000],
    ],
    "label": ["plain", "\t\n\r\\", "\\N", "", "𝄞 beyond the BMP"],
    # REAL and INTEGER, all exact at scale 2; whole base-10000 groups of zeros, before and after the point
    "amount": [0.1, -0.05, 12.3, 0.0, -0.0, 5, -7, 99999.99, 1234567890, 10000, 100000000, 0.01, -0.01, 10000.01],
    "num": [0, 1, -1, 9999, 10000, 100000000, 10**12, -(10**16), 2**63 - 1, -(2**63), 12345678],
    "ratio": [1 / 3, -0.0, 1e300, 5e-324, 0.1, -2.5, 7, 2**53 + 1, -1.7976931348623157e308],
    "seen": [
        "2024-02-29 10:00:00.120000",
        "2024-01-01T05:06:07",
        "2024-01-01 05:06:07.000000",
        "0099-01-01 00:00:00",
        "1999-12-31 23:59:59.999999",
        "2000-01-01 00:00:00.5",
        "2000-01-01 00:00:00",
        "1970-01-01 00:00:00.000001",
    ],
    "born": ["2024-02-29", "0001-01-01", "1999-12-31", "2000-02-29", "2000-01-01", "9999-12-31"],
    "flag": [0, 1],
    "blob": [b"\x00\xff", b"", b"\\x41", b"\n\t\\", bytes(range(256))],
}
# Values the encoder must not take (the page bails and goes the Python way) that are still stored
# unchanged, so the table verifies.
BAILS = [
    ("ratio", float("inf")),
    ("ratio", float("-inf")),
    ("seen", "2024-01-01"),
    ("flag", "true"),
    ("note", b"blob in text"),
    ("blob", "text in blob"),
    ("num", 0.5),
]


def _row(i: int, bail: bool) -> tuple[Any, ...]:
    """Row ``i``: every column cycles through its awkward values at its own pace, and is NULL now and then."""
    row = {"id": i}
    for n, (name, values) in enumerate(VALUES.items()):
        row[name] = None if i % (n + 3) == 0 else values[i % len(values)]
    if bail and i % 97 == 0:
        column, value = BAILS[(i // 97) % len(BAILS)]
        row[column] = value
    return tuple(row[c] for c in TYPES)


def _plain(i: int, **values: Any) -> tuple[Any, ...]:
    """Row ``i`` of ordinary values, some replaced."""
    row = {"big": i, "small": 1, "note": "x", "label": "y", "amount": 0.25, "num": 3, "ratio": 0.5}
    row |= {"seen": "2024-01-01 00:00:00", "born": "2024-01-01", "flag": 1, "blob": b""}
    row |= {"id": i, **values}
    return tuple(row[c] for c in TYPES)


def _sqlite(path: Path, tables: dict[str, list[tuple[Any, ...]]], columns: str = COLUMNS) -> str:
    """A SQLite file written with the sqlite3 module, so each value keeps the storage class it was given."""
    con = sqlite3.connect(path)
    try:
        for name, rows in tables.items():
            con.execute(f"CREATE TABLE {name} ({columns})")
            if rows:
                marks = ", ".join("?" * len(rows[0]))
                con.executemany(f"INSERT INTO {name} VALUES ({marks})", rows)
        con.commit()
    finally:
        con.close()
    return f"sqlite:///{path}"


def _types(url: str, table: str) -> list[tuple[str, str]]:
    sql = (
        "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
        "WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
    )
    with _connected(url) as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), {"t": table})]


def _check(out: CopySummary, table: str) -> TableCheck:
    return next(c for c in out.verification.tables if c.table == table)


def _table(out: CopySummary, table: str) -> Any:
    return next(t for t in out.tables if t.table == table)


def _copy(src: str, tgt: str, project: Path, **options: Any) -> CopySummary:
    options = {"batch_size": 100, "partition_rows": 400, "workers": 2, **options}
    return run_copy(src, tgt, project, **options)


# ---------------------------------------------------------------- the C library on its own


def test_xxh64_matches_the_public_algorithm() -> None:
    for data, expected in XXH64_REFERENCE.items():
        assert native.xxh64(data) == expected, data


SAMPLE = [
    "CREATE TABLE sample (id integer PRIMARY KEY, t text, n numeric(18,6), b bytea, d date, f float8)",
    """INSERT INTO sample SELECT g, CASE WHEN mod(g, 3) = 0 THEN NULL ELSE repeat('x', mod(g, 50)) END,
        g::numeric / 7, CASE WHEN mod(g, 5) = 0 THEN NULL ELSE decode(repeat('00ff', mod(g, 300)), 'hex') END,
        date '2000-01-01' - g, CASE WHEN mod(g, 4) = 0 THEN '-0'::float8 ELSE g / 3.0 END
    FROM generate_series(1, 700) g""",
]


def _binary_copy(url: str) -> bytes:
    """The sample table as a real binary COPY stream: NULLs, empty values, wide rows, header and trailer."""
    with _connected(url, write=True) as conn:
        for statement in SAMPLE:
            conn.exec_driver_sql(statement)
    conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    sql = "COPY (SELECT id, t, n, b, d, f FROM sample) TO STDOUT (FORMAT binary)"
    with psycopg.connect(conninfo) as conn, conn.cursor() as cur, cur.copy(sql) as cp:
        return b"".join(bytes(chunk) for chunk in cp)


def _rows_of(stream: bytes) -> list[bytes]:
    """The rows of a binary COPY stream, each with its field count, parsed the slow obvious way."""
    assert stream.startswith(native.BINARY_SIGNATURE)
    at = native.BINARY_HEADER + int.from_bytes(stream[15:19], "big")
    rows = []
    while True:
        fields = int.from_bytes(stream[at : at + 2], "big", signed=True)
        if fields == -1:
            assert at + 2 == len(stream)
            return rows
        end = at + 2
        for _ in range(fields):
            n = int.from_bytes(stream[end : end + 4], "big", signed=True)
            end += 4 + max(n, 0)
        rows.append(stream[at:end])
        at = end


def test_binary_row_sums_agree_whatever_the_chunking_and_the_read_loop(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = _binary_copy(pg_url)
    rows = _rows_of(stream)
    expected = (len(rows), sum(native.xxh64(r) for r in rows) & MASK)
    assert expected[0] == 700
    lib = native.lib()
    assert lib is not None
    for sizes in ((1,), (7,), (777,), (1, 7, 777), (len(stream),)):
        h = native.Hasher(lib)
        at, turn = 0, 0
        while at < len(stream):
            size = sizes[turn % len(sizes)]
            chunk = stream[at : at + size]
            h.binrows(bytearray(chunk) if turn % 2 else chunk)  # the Python read loop hands bytearrays
            at, turn = at + size, turn + 1
        assert (h.rows, h.total) == expected, sizes

    # The echo read-back: the C pump over libpq, then the Python loop it falls back to, same sums.
    columns = ["id", "t", "n", "b", "d", "f"]
    e = sa.create_engine(pg_url)
    try:
        for pump in (native.pump, lambda *_: None):
            monkeypatch.setattr(native, "pump", pump)
            raw = RawConn(e)
            try:
                assert passthrough.binary_sum(raw, "sample", None, columns) == expected
            finally:
                raw.close()
    finally:
        e.dispose()


def test_encoder_codes_for_postgresql_types() -> None:
    assert nativepath.code_of("numeric(12,2)") == (native.C_NUMERIC, 2)
    assert nativepath.code_of("timestamp(3) without time zone") == (native.C_TIMESTAMP, 3)
    assert nativepath.code_of("timestamp without time zone") == (native.C_TIMESTAMP, 6)
    assert nativepath.code_of("character varying(12)") == (native.C_TEXT, 0)
    for unknown in ("jsonb", "timestamp with time zone", "uuid", "real", "text[]"):
        assert nativepath.code_of(unknown) is None, unknown


# ---------------------------------------------------------------- native and Python paths store the same


GAPPED_KEYS = [*range(-1500, -900), 0, *range(10**6, 10**6 + 600), 2**31 - 2]  # keyset pages across gaps


def test_native_and_python_paths_store_identical_rows(
    tmp_path: Path, pg_url: str, pg_url2: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    n = 1500
    tables = {
        "clean": [_row(i, bail=False) for i in range(1, n + 1)],
        "odd": [_row(i, bail=True) for i in range(1, n + 1)],
        "gapped": [_row(i, bail=False) for i in GAPPED_KEYS],
        "empty": [],
    }
    src = _sqlite(tmp_path / "src.db", tables)

    fast = _copy(src, pg_url, project)
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    slow = _copy(src, pg_url2, project)

    for out in (fast, slow):
        assert out.ok, out.model_dump_json(indent=1)
        assert {t.table: (t.rows, t.rejects) for t in out.tables} == {k: (len(v), 0) for k, v in tables.items()}
    for table in tables:
        assert _types(pg_url, table) == _types(pg_url2, table) == [(c, pg) for c, (_, pg) in TYPES.items()]
        assert _rows_as_text(pg_url, table) == _rows_as_text(pg_url2, table), table
        for tgt in (pg_url, pg_url2):
            result = diff_table(src, tgt, table, key=["id"])
            assert result.equal, (table, result.model_dump_json(indent=1))
        assert not any(p.get("path") == nativepath.PATH for p in _partitions(pg_url2, table, project))

    for table in ("clean", "gapped", "empty"):
        check = _check(fast, table)
        assert (check.checksum, check.method) == ("match", "echo"), check
        parts = _partitions(pg_url, table, project)
        assert {p.get("path") for p in parts} == {nativepath.PATH}
        assert not any(p.get("redone_pages") for p in parts)
    assert _table(fast, "clean").partitions > 1 and _table(fast, "gapped").partitions > 1

    odd = _check(fast, "odd")
    assert odd.checksum == "match" and odd.method != "echo", odd
    parts = _partitions(pg_url, "odd", project)
    assert {p.get("path") for p in parts} == {nativepath.PATH}
    assert sum(p.get("redone_pages", 0) for p in parts) >= 1
    assert {"spec": "mixed"} in [p.get(nativepath.INFO_KEY) for p in parts]


ROUNDED = {1: (12.345, "12.35"), 2: (1e-7, "0.00"), 3: (-12.345, "-12.35"), 4: (0.125, "0.13"), 5: (2.675, "2.68")}


def test_reals_off_the_scale_bail_and_round_as_the_python_path_does(
    tmp_path: Path, pg_url: str, pg_url2: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """numeric(12,2) given a REAL with more digits: the general path sends repr() and PostgreSQL rounds
    the decimal (2.675 -> 2.68, although the double is below 2.675); the encoder must not round it itself."""
    rows = [_plain(i, amount=x) for i, (x, _) in ROUNDED.items()] + [_plain(i) for i in range(6, 1200)]
    src = _sqlite(tmp_path / "src.db", {"money": rows})

    fast = _copy(src, pg_url, project)
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    slow = _copy(src, pg_url2, project)

    with _connected(pg_url) as conn:
        got = dict(conn.exec_driver_sql("SELECT id, amount::text FROM money WHERE id <= 5").all())
    assert got == {i: text for i, (_, text) in ROUNDED.items()}
    assert _rows_as_text(pg_url, "money") == _rows_as_text(pg_url2, "money")
    assert sum(p.get("redone_pages", 0) for p in _partitions(pg_url, "money", project)) >= 1
    # Rounding changes the value, and both paths' verification says so alike, naming the same rows.
    checks = [_check(out, "money") for out in (fast, slow)]
    assert [(c.checksum, c.method, c.detail) for c in checks] == [("differ", "diff", checks[1].detail)] * 2
    assert "amount" in (checks[0].detail or "")
    diffs = [diff_table(src, tgt, "money", key=["id"]) for tgt in (pg_url, pg_url2)]
    changed = [sorted((r.key, tuple(r.columns)) for r in d.changed) for d in diffs]
    assert changed[0] == changed[1] == [([i], ("amount",)) for i in ROUNDED]


# ---------------------------------------------------------------- echo sums catch tampering


def _native_copy(tmp_path: Path, pg_url: str, project: Path) -> str:
    src = _sqlite(tmp_path / "src.db", {"clean": [_row(i, bail=False) for i in range(1, 1201)]})
    out = _copy(src, pg_url, project)
    assert out.ok, out.model_dump_json(indent=1)
    check = _check(out, "clean")
    assert (check.checksum, check.method) == ("match", "echo"), check
    assert _table(out, "clean").partitions > 1
    return src


def _rerun(src: str, pg_url: str, project: Path) -> tuple[CopySummary, TableCheck]:
    out = _copy(src, pg_url, project)
    assert out.already_complete
    return out, _check(out, "clean")


def test_a_tampered_echo_sum_falls_back_to_another_check(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _native_copy(tmp_path, pg_url, project)
    # a finished copy's checkpoints are in the project's record file, not in the target
    edit_recorded_info(
        project, 0, lambda info: info[nativepath.INFO_KEY].update(sum=str(int(info[nativepath.INFO_KEY]["sum"]) + 1))
    )

    out, check = _rerun(src, pg_url, project)

    assert out.ok and check.checksum == "match" and check.method not in ("echo", None), check


def test_a_changed_target_row_fails_verification_and_is_named(tmp_path: Path, pg_url: str, project: Path) -> None:
    src = _native_copy(tmp_path, pg_url, project)
    with _connected(pg_url, write=True) as conn:
        conn.exec_driver_sql("UPDATE clean SET label = 'tampered' WHERE id = 321")

    out, check = _rerun(src, pg_url, project)

    assert not out.ok and check.checksum == "differ", check
    assert "changed 1" in (check.detail or "") and "label" in (check.detail or ""), check


# ---------------------------------------------------------------- rows the target refuses


BAD_ROWS: dict[int, tuple[str, Any]] = {
    17: ("label", "a label far too long"),  # VARCHAR(12): encoded, refused by PostgreSQL
    230: ("label", "a label far too long"),
    231: ("label", "a label far too long"),
    600: ("label", "a label far too long"),
    250: ("note", "nul\x00inside"),  # PostgreSQL text holds no NUL
    260: ("born", "2021-02-30"),  # no such date: rejected while converting
}


def test_rows_the_target_refuses_are_rejected_and_the_page_redone(tmp_path: Path, pg_url: str, project: Path) -> None:
    """Whether the encoder renders the value and PostgreSQL refuses the page, or the encoder bails, the page
    is redone the general way: the bad rows alone are rejected, and pages without one stay native."""
    rows = []
    for i in range(1, 1001):
        row = {"id": i, "label": f"item {i}", "qty": -i, "small": i % 100, "note": f"n{i}", "born": "2020-01-01"}
        column, value = BAD_ROWS.get(i, ("id", i))
        rows.append(tuple({**row, column: value}.values()))
    columns = "id INTEGER PRIMARY KEY, label VARCHAR(12), qty INTEGER, small INTEGER, note TEXT NOT NULL, born DATE"
    src = _sqlite(tmp_path / "src.db", {"items": rows}, columns)
    bad = set(BAD_ROWS)

    out = _copy(src, pg_url, project, batch_size=64, partition_rows=300, max_rejects=1000)

    assert out.ok, out.model_dump_json(indent=1)
    [t] = out.tables
    assert (t.rows, t.rejects) == (1000 - len(bad), len(bad))
    with _connected(pg_url) as conn:
        ids = set(conn.exec_driver_sql("SELECT id FROM items").scalars())
    assert ids == set(range(1, 1001)) - bad
    parts = _partitions(pg_url, "items", project)
    assert {p.get("path") for p in parts} == {nativepath.PATH}
    assert sum(p.get("redone_pages", 0) for p in parts) >= 1
    assert any(p[nativepath.INFO_KEY].get("spec") != "mixed" for p in parts)  # the last rows are all good
    check = _check(out, "items")
    assert check.counts_match and check.checksum == "match" and "rejected" in (check.detail or ""), check
    lines = [json.loads(x) for x in (project / (out.reject_file or "")).read_text().splitlines()]
    assert sorted(x["key"][0] for x in lines) == sorted(bad)
    assert all(x["error"] for x in lines)
    result = diff_table(src, pg_url, "items", key=["id"])
    assert result.missing_count == len(bad) and result.extra_count == result.changed_count == 0


def test_integers_too_wide_for_an_existing_target_column_are_rejected(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    """SQLite integers map to BIGINT, but an existing INTEGER/SMALLINT column (append mode) must refuse what
    does not fit: the encoder checks the width and leaves the row to the general path, which rejects it."""
    rows = [(i, i, i % 100) for i in range(1, 501)]
    rows[98] = (99, 2**40, 1)  # beyond INTEGER
    rows[311] = (312, 1, 40000)  # beyond SMALLINT
    src = _sqlite(tmp_path / "src.db", {"nums": rows}, "id INTEGER PRIMARY KEY, qty INTEGER, small INTEGER")
    with _connected(pg_url, write=True) as conn:
        conn.exec_driver_sql("CREATE TABLE nums (id BIGINT PRIMARY KEY, qty INTEGER, small SMALLINT)")

    out = _copy(src, pg_url, project, batch_size=64, mode="append", max_rejects=1000)

    assert out.ok, out.model_dump_json(indent=1)
    [t] = out.tables
    assert (t.rows, t.rejects) == (498, 2)
    with _connected(pg_url) as conn:
        got = dict(conn.exec_driver_sql("SELECT id, qty FROM nums").all())
    assert set(got) == set(range(1, 501)) - {99, 312} and got[7] == 7
    parts = _partitions(pg_url, "nums", project)
    assert {p.get("path") for p in parts} == {nativepath.PATH}


# ---------------------------------------------------------------- kill -9 mid-copy, then resume


def _committed(conn: sa.Connection) -> int:
    try:
        sql = "SELECT COALESCE(SUM(row_count), 0) FROM dmig_checkpoints WHERE part >= 0"
        return int(conn.exec_driver_sql(sql).scalar() or 0)
    except sa.exc.DBAPIError:  # not created yet
        conn.rollback()
        return 0
    finally:
        conn.rollback()  # a fresh snapshot for the next look


def _kill_mid_copy(project: Path, args: list[str], url: str, rows: int, rng: random.Random, kills: int) -> int:
    """``_kill_loop`` with the kill timed by the copy's progress instead of a 2-8 s sleep: the native path
    loads these rows in well under a second, so a fixed delay would land after the load. The first kill
    lands in start-up or planning, each other one after a random share (under two thirds) of the rows
    still to copy is committed, so every killed run leaves work for the next."""
    killed = 0
    with _connected(url) as conn:
        for attempt in range(kills):
            proc = popen(project, *args)
            if attempt == 0:
                time.sleep(rng.uniform(0.05, 0.45))
            else:
                done = _committed(conn)
                goal = done + int(rng.uniform(0.05, 0.6) * (rows - done))
                deadline = time.monotonic() + 120
                while proc.poll() is None and _committed(conn) < goal and time.monotonic() < deadline:
                    time.sleep(0.01)
                time.sleep(rng.uniform(0, 0.01))  # not always right after a page commit
            if proc.poll() is not None:  # finished before the kill: nothing left to interrupt
                break
            kill_and_reap(proc)
            killed += 1
    return killed


@pytest.mark.slow
def test_kill_nine_at_random_points_then_resume_native(tmp_path: Path, pg_url: str, project: Path) -> None:
    rng = random.Random(int(os.environ.get("DMIG_TEST_SEED", "0")) or None)
    rows = 40_000
    src = _sqlite(tmp_path / "src.db", {"clean": [_row(i, bail=False) for i in range(1, rows + 1)]})
    args = ["copy", src, pg_url, "--workers", "2", "--batch-size", "500", "--partition-rows", "8000", "--json"]

    killed = _kill_mid_copy(project, args, pg_url, rows, rng, kills=4)

    final = cli(project, *args)
    assert final.returncode == 0, final.stdout + final.stderr
    out = json.loads(final.stdout)
    [t] = out["tables"]
    assert killed >= 1 and (out["resumed"] or out["already_complete"])
    assert out["ok"] and t["rows"] == rows and t["rejects"] == 0 and t["partitions"] > 1
    [check] = out["verification"]["tables"]
    assert (check["checksum"], check["method"]) == ("match", "echo"), check
    with _connected(pg_url) as conn:
        count, distinct = conn.exec_driver_sql("SELECT count(*), count(DISTINCT id) FROM clean").one()
    assert (count, distinct) == (rows, rows)
    parts = _partitions(pg_url, "clean", project)
    assert {p.get("path") for p in parts} == {nativepath.PATH}
    assert sum(p[nativepath.INFO_KEY]["rows"] for p in parts) == rows
    result = diff_table(src, pg_url, "clean", key=["id"])
    assert result.equal and result.stats.rows_source == result.stats.rows_target == rows


# ---------------------------------------------------------------- what stays on the general path


def test_switched_off_the_same_table_takes_the_general_path(
    tmp_path: Path, pg_url: str, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(native.ENV_SWITCH, "0")
    assert native.lib() is None
    src = _sqlite(tmp_path / "src.db", {"clean": [_row(i, bail=False) for i in range(1, 1201)]})

    out = _copy(src, pg_url, project)

    assert out.ok, out.model_dump_json(indent=1)
    check = _check(out, "clean")
    assert (check.checksum, check.method) == ("match", "streamed"), check
    assert not any(p.get("path") == nativepath.PATH for p in _partitions(pg_url, "clean", project))


def test_a_column_without_an_encoder_keeps_the_table_on_the_general_path(
    tmp_path: Path, pg_url: str, project: Path
) -> None:
    """JSON becomes jsonb, which the encoder does not render: the whole table goes the Python way."""
    rows = [(i, f"n{i}", json.dumps({"i": i, "s": "ü\t"}) if i % 4 else None) for i in range(1, 1201)]
    src = _sqlite(tmp_path / "src.db", {"docs": rows}, "id INTEGER PRIMARY KEY, note TEXT, payload JSON")

    out = _copy(src, pg_url, project)

    assert out.ok, out.model_dump_json(indent=1)
    assert dict(_types(pg_url, "docs"))["payload"] == "jsonb"
    assert not any(p.get("path") == nativepath.PATH for p in _partitions(pg_url, "docs", project))
    check = _check(out, "docs")
    assert check.checksum == "match" and check.method != "echo", check
    assert diff_table(src, pg_url, "docs", key=["id"], columns=["id", "note"]).equal
