"""PostgreSQL -> PostgreSQL pass-through: raw binary COPY bytes per key range, no value decoded in Python.

Each test proves one promise of ``dmig.move.passthrough`` on real servers: the path is taken (the
partition checkpoints say so), every value of every type arrives bit for bit, a run interrupted
mid-table (a failed page, or ``kill -9``) resumes with no row lost or doubled, rows the target
refuses still end up in rejects through the decode path, and what cannot go through as bytes
(non-integer keys, transforms, different column types, incremental mode) keeps the general path.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from copy_helpers import cli, engine, popen, recorded_checkpoints, run_copy
from dmig.diff.service import diff_table

pytestmark = pytest.mark.pg

FAR = 10**12  # keys far beyond the rest: empty key ranges and an open-ended last partition

KINDS = [
    "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
    """CREATE TABLE kinds (
    id bigint PRIMARY KEY, i2 smallint, i4 integer, i8 bigint, num numeric(18,6), num_free numeric,
    r4 real, r8 double precision, flag boolean, t text, vc varchar(40), ch char(5), bin bytea,
    d date, tm time(6), tmz timetz, ts timestamp(6), tstz timestamptz, iv interval, u uuid,
    js json, jb jsonb, m mood, arr integer[], tarr text[], addr inet)""",
    f"""INSERT INTO kinds
SELECT id,
    CASE WHEN mod(g, 7) = 0 THEN NULL ELSE (mod(abs(g) * 37, 65535) - 32767)::smallint END,
    CASE WHEN mod(g, 11) = 0 THEN NULL ELSE g * 48271 - 2147483647 / 2 END,
    CASE WHEN mod(g, 13) = 0 THEN NULL ELSE g::bigint * 9007199254740 END,
    CASE WHEN mod(g, 5) = 0 THEN NULL ELSE (g * 1234567.891011 - 999999)::numeric(18,6) END,
    CASE mod(g, 17) WHEN 0 THEN NULL WHEN 1 THEN 'NaN'::numeric ELSE (g::numeric / 7) END,
    CASE mod(g, 19) WHEN 0 THEN NULL WHEN 1 THEN 'Infinity'::real ELSE (g / 3.0)::real END,
    CASE mod(g, 23) WHEN 0 THEN NULL WHEN 1 THEN '-Infinity'::float8 WHEN 2 THEN 'NaN'::float8
        ELSE g / 7.0::float8 END,
    CASE WHEN mod(g, 3) = 0 THEN NULL ELSE mod(g, 2) = 0 END,
    CASE mod(g, 6) WHEN 0 THEN NULL WHEN 1 THEN '' WHEN 2 THEN E'tab\\there\\nnew line \\\\ back'
        WHEN 3 THEN 'Zoë 李 🙂 ' || g ELSE '\\N' END,
    CASE WHEN mod(g, 9) = 0 THEN NULL ELSE 'vc ' || g END,
    CASE WHEN mod(g, 4) = 0 THEN NULL ELSE left(md5(g::text), 3) END,
    CASE WHEN mod(g, 8) = 0 THEN NULL ELSE decode(lpad(to_hex(g), 8, '0') || '00095cff', 'hex') END,
    CASE mod(g, 29) WHEN 0 THEN NULL WHEN 1 THEN 'infinity'::date ELSE date '1970-01-01' + g END,
    CASE WHEN mod(g, 10) = 0 THEN NULL ELSE time '00:00' + g * interval '1.000037 second' END,
    CASE WHEN mod(g, 10) = 1 THEN NULL ELSE (time '12:00' + g * interval '1 second')::timetz END,
    CASE mod(g, 31) WHEN 0 THEN NULL WHEN 1 THEN '-infinity'::timestamp
        ELSE timestamp '2024-01-01' + g * interval '37.000791 second' END,
    CASE WHEN mod(g, 12) = 0 THEN NULL ELSE timestamptz '2023-06-01 00:00+02' + g * interval '1 minute' END,
    CASE WHEN mod(g, 14) = 0 THEN NULL ELSE make_interval(0, mod(g, 13), 0, mod(g, 40), 0, 0, g / 1000.0) END,
    CASE WHEN mod(g, 15) = 0 THEN NULL ELSE md5(g::text)::uuid END,
    CASE WHEN mod(g, 16) = 0 THEN NULL ELSE json_build_object('i', g, 'k', 'ü "q"') END,
    CASE WHEN mod(g, 18) = 0 THEN NULL ELSE jsonb_build_object('i', g, 'nested', jsonb_build_array(1, NULL)) END,
    (ARRAY['sad', 'ok', 'happy'])[1 + mod(g, 3)]::mood,
    CASE WHEN mod(g, 20) = 0 THEN NULL ELSE ARRAY[g, NULL, -g] END,
    CASE WHEN mod(g, 21) = 0 THEN NULL ELSE ARRAY['a', 'b c', NULL] END,
    CASE WHEN mod(g, 22) = 0 THEN NULL ELSE ('10.0.' || abs(mod(g, 256)) || '.1/32')::inet END
FROM (SELECT id, (CASE WHEN id > {FAR} THEN id - {FAR} + 3000 ELSE id END)::integer
      FROM (SELECT generate_series(-5, 3000) UNION ALL SELECT generate_series(1, 40) + {FAR}) AS k(id)
      WHERE id <> 0) AS s(id, g)""",
]


@contextmanager
def _connected(url: str, write: bool = False) -> Iterator[sa.Connection]:
    """One connection to ``url`` (in a committed transaction when ``write``), its engine disposed after."""
    e = engine(url)
    try:
        with e.begin() if write else e.connect() as conn:
            yield conn
    finally:
        e.dispose()


def _sql(url: str, *statements: str) -> None:
    with _connected(url, write=True) as conn:
        for statement in statements:
            conn.exec_driver_sql(statement)


def _scalar(url: str, sql: str) -> Any:
    with _connected(url) as conn:
        return conn.exec_driver_sql(sql).scalar()


def _column(url: str, sql: str, **params: Any) -> list[Any]:
    with _connected(url) as conn:
        return list(conn.execute(sa.text(sql), params).scalars())


def _rows_as_text(url: str, table: str) -> list[str]:
    """Every row as PostgreSQL prints it: equal lists mean equal values of every type."""
    return _column(url, f"SELECT t::text FROM {table} t ORDER BY id")


def _columns(url: str, table: str) -> list[str]:
    with _connected(url) as conn:
        return [c["name"] for c in sa.inspect(conn).get_columns(table)]


def _partitions(url: str, table: str, project: Path) -> list[dict[str, Any]]:
    """Each partition's checkpoint info (where the pass-through records itself): in the target while the copy
    is unfinished, in the project's record file once it finished (the target then keeps no dmig_ table)."""
    with _connected(url) as conn:
        in_target = sa.inspect(conn).has_table("dmig_checkpoints")
    if in_target:
        sql = "SELECT info FROM dmig_checkpoints WHERE table_name = :t AND part >= 0 ORDER BY part"
        found = [json.loads(i) if i else {} for i in _column(url, sql, t=table)]
        if found:
            return found
    rows = sorted(
        (r for r in recorded_checkpoints(project, url) if r["table_name"] == table and r["part"] >= 0),
        key=lambda r: r["part"],
    )
    return [json.loads(r["info"]) if r["info"] else {} for r in rows]


def _paths(url: str, table: str, project: Path) -> set[str | None]:
    return {p.get("path") for p in _partitions(url, table, project)}


def _items(url: str, n: int, mood: str = "ENUM ('sad', 'ok', 'happy')") -> None:
    """A plain table ``items`` (bigint key, text, integer, enum) with ``n`` rows on ``url``."""
    _sql(
        url,
        f"CREATE TYPE mood AS {mood}",
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, qty integer, m mood)",
        "INSERT INTO items SELECT g, 'item ' || g, g, (ARRAY['sad', 'ok'])[1 + mod(g, 2)]::mood "
        f"FROM generate_series(1, {n}) g",
    )


def test_values_of_every_type_arrive_identical(pg_url: str, pg_url2: str, project: Path) -> None:
    _sql(pg_url, *KINDS)
    rows = int(_scalar(pg_url, "SELECT count(*) FROM kinds"))

    out = run_copy(pg_url, pg_url2, project, workers=2, batch_size=250, partition_rows=1000)

    assert out.ok, out.model_dump_json(indent=1)
    [t] = out.tables
    assert (t.state, t.rows, t.rejects) == ("done", rows, 0)
    parts = _partitions(pg_url2, "kinds", project)
    assert len(parts) > 2 and {p.get("path") for p in parts} == {"passthrough"}
    assert t.bytes > 0
    assert _rows_as_text(pg_url2, "kinds") == _rows_as_text(pg_url, "kinds")
    result = diff_table(pg_url, pg_url2, "kinds", key=["id"], columns=_columns(pg_url, "kinds"))
    assert result.equal and result.stats.rows_source == result.stats.rows_target == rows, result.model_dump_json()
    [check] = out.verification.tables
    assert (check.checksum, check.method) == ("match", "binary"), check


def test_binary_verification_catches_a_changed_target_row(pg_url: str, pg_url2: str, project: Path) -> None:
    """The byte sums only pass when the target holds the very bytes that were read; else the diff names the key."""
    _items(pg_url, 3000)
    options: dict[str, Any] = {"workers": 2, "batch_size": 250, "partition_rows": 1000}
    first = run_copy(pg_url, pg_url2, project, **options)
    assert first.ok and first.verification.tables[0].method == "binary", first.model_dump_json(indent=1)
    _sql(pg_url2, "UPDATE items SET qty = qty + 1 WHERE id = 1234")

    again = run_copy(pg_url, pg_url2, project, **options)

    assert again.already_complete and not again.ok
    [check] = again.verification.tables
    assert (check.checksum, check.method) == ("differ", "diff"), check
    assert "changed 1" in (check.detail or "") and "qty" in (check.detail or "")


def test_filtered_rows_only(pg_url: str, pg_url2: str, project: Path) -> None:
    _items(pg_url, 2000)
    mapping = {"items": {"filter": [{"column": "qty", "op": "gt", "value": 1500}]}}

    out = run_copy(pg_url, pg_url2, project, batch_size=100, mapping=mapping)

    assert out.ok, out.model_dump_json(indent=1)
    assert out.tables[0].rows == 500 and _paths(pg_url2, "items", project) == {"passthrough"}
    assert _rows_as_text(pg_url2, "items") == _rows_as_text(pg_url, "items")[1500:]


def test_a_failed_page_mid_table_resumes_without_duplicates_or_gaps(pg_url: str, pg_url2: str, project: Path) -> None:
    _items(pg_url, 5000)
    # The target has no primary key, so a page written twice would show as duplicates; its trigger fails
    # the page holding id 2500 once (a server error, not a data error: the table stops, like a crash).
    _sql(
        pg_url2,
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
        "CREATE TABLE items (id bigint NOT NULL, name text, qty integer, m mood)",
        "CREATE SEQUENCE boom",
        """CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = 2500 THEN
                IF nextval('boom') = 1 THEN RAISE EXCEPTION 'simulated crash' USING ERRCODE = 'XX000'; END IF;
            END IF;
            RETURN NEW;
        END $$""",
        "CREATE TRIGGER boom BEFORE INSERT ON items FOR EACH ROW EXECUTE FUNCTION boom()",
    )
    options: dict[str, Any] = {"mode": "append", "workers": 1, "batch_size": 200}

    first = run_copy(pg_url, pg_url2, project, **options)

    assert not first.ok and first.tables[0].state == "failed"
    assert "simulated crash" in (first.tables[0].error or "")
    copied = int(_scalar(pg_url2, "SELECT count(*) FROM items"))
    assert 0 < copied < 2500  # pages before the failing one stayed committed with their checkpoint
    last = json.loads(_scalar(pg_url2, "SELECT last_key FROM dmig_checkpoints WHERE part = 0"))[0]
    assert int(_scalar(pg_url2, "SELECT max(id) FROM items")) <= last < 2500

    again = run_copy(pg_url, pg_url2, project, **options)

    assert again.ok and again.resumed, again.model_dump_json(indent=1)
    assert (again.tables[0].rows, again.tables[0].rejects) == (5000, 0)
    assert _scalar(pg_url2, "SELECT count(*) = 5000 AND count(DISTINCT id) = 5000 FROM items")
    assert _paths(pg_url2, "items", project) == {"passthrough"}
    assert _rows_as_text(pg_url2, "items") == _rows_as_text(pg_url, "items")
    sums = [p["binary_hash"] for p in _partitions(pg_url2, "items", project)]  # the byte sums survive the failure
    assert sum(int(x["rows"]) for x in sums) == 5000 and len({x["spec"] for x in sums}) == 1


def _checkpoint_rows(url: str) -> int:
    try:
        return int(_scalar(url, "SELECT coalesce(sum(row_count), 0) FROM dmig_checkpoints WHERE part >= 0"))
    except sa.exc.ProgrammingError:  # the run has not created its checkpoint table yet
        return 0


@pytest.mark.slow
def test_kill_nine_mid_table_then_resume(pg_url: str, pg_url2: str, project: Path) -> None:
    rows = 20_000
    _items(pg_url, rows)
    _sql(
        pg_url2,
        "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
        "CREATE TABLE items (id bigint NOT NULL, name text, qty integer, m mood)",  # no key: duplicates would show
        "CREATE FUNCTION pace() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$",
        "CREATE TRIGGER pace AFTER INSERT ON items FOR EACH STATEMENT EXECUTE FUNCTION pace()",  # ~50 ms a page
    )
    args = ["copy", pg_url, pg_url2, "--mode", "append", "--workers", "2", "--batch-size", "250"]
    args += ["--partition-rows", "5000", "--json"]

    proc = popen(project, *args)
    deadline = time.monotonic() + 120
    while _checkpoint_rows(pg_url2) < rows // 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the copy finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)  # the coordinator and its workers, as a crash would
    proc.wait()
    time.sleep(0.5)
    interrupted = int(_scalar(pg_url2, "SELECT count(*) FROM items"))
    assert 0 < interrupted < rows

    final = cli(project, *args)

    assert final.returncode == 0, final.stdout + final.stderr
    out = json.loads(final.stdout)
    assert out["ok"] and out["resumed"] and out["tables"][0]["rows"] == rows and out["tables"][0]["rejects"] == 0
    assert _scalar(pg_url2, f"SELECT count(*) = {rows} AND count(DISTINCT id) = {rows} FROM items")
    assert _paths(pg_url2, "items", project) == {"passthrough"}
    result = diff_table(pg_url, pg_url2, "items", key=["id"])
    assert result.equal, result.model_dump_json(indent=1)


def test_rows_the_target_refuses_fall_back_to_rejects(pg_url: str, pg_url2: str, project: Path) -> None:
    _items(pg_url, 1000)
    _sql(pg_url, "UPDATE items SET qty = -1 WHERE id IN (10, 420)", "UPDATE items SET m = 'happy' WHERE id = 777")
    # Same column types, so the pages go through as bytes; but the target checks qty, lacks the label
    # 'happy' (a data error) and already holds id 55 (a unique violation).
    _sql(
        pg_url2,
        "CREATE TYPE mood AS ENUM ('sad', 'ok')",
        "CREATE TABLE items (id bigint PRIMARY KEY, name text, qty integer CHECK (qty >= 0), m mood)",
        "INSERT INTO items VALUES (55, 'already here', 0, 'ok')",
    )
    bad = {10, 420, 777, 55}

    out = run_copy(pg_url, pg_url2, project, mode="append", batch_size=100)

    [t] = out.tables
    assert (t.state, t.rows, t.rejects) == ("done", 1000 - len(bad), len(bad)), out.model_dump_json(indent=1)
    [part] = _partitions(pg_url2, "items", project)
    assert part["path"] == "passthrough" and part["redone_pages"] == 3  # 55 and 10 share the first page
    assert set(_column(pg_url2, "SELECT id FROM items")) == set(range(1, 1001)) - (bad - {55})
    assert _scalar(pg_url2, "SELECT name FROM items WHERE id = 55") == "already here"
    assert out.reject_file
    rejected = [json.loads(x) for x in (project / out.reject_file).read_text().splitlines()]
    assert {r["key"][0] for r in rejected} == bad
    assert {r["key"][0] for r in rejected if "check" in r["error"].lower()} == {10, 420}


@pytest.mark.parametrize("case", ["text_key", "transform", "other_type", "incremental"])
def test_what_cannot_pass_as_bytes_keeps_the_general_path(pg_url: str, pg_url2: str, project: Path, case: str) -> None:
    options: dict[str, Any] = {"batch_size": 100}
    if case == "text_key":
        _sql(
            pg_url,
            "CREATE TABLE items (code text PRIMARY KEY, qty integer)",
            "INSERT INTO items SELECT 'k' || g, g FROM generate_series(1, 300) g",
        )
    else:
        _items(pg_url, 300)
    if case == "transform":
        options["mapping"] = {"items": {"transforms": [{"op": "rename", "column": "name", "to": "title"}]}}
    elif case == "other_type":  # integer where the source has bigint: the binary forms differ
        _sql(
            pg_url2,
            "CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy')",
            "CREATE TABLE items (id integer PRIMARY KEY, name text, qty integer, m mood)",
        )
        options["mode"] = "append"
    elif case == "incremental":
        options["mode"] = "incremental"

    out = run_copy(pg_url, pg_url2, project, **options)

    assert out.ok, out.model_dump_json(indent=1)
    assert (out.tables[0].rows, out.tables[0].rejects) == (300, 0)
    assert _paths(pg_url2, "items", project) == {None}
    assert int(_scalar(pg_url2, "SELECT count(*) FROM items")) == 300
