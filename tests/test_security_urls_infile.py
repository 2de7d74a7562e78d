"""LOAD DATA LOCAL: off on every connection, and the copy's loads send only the file they wrote.

Issue 20.2: ``local_infile`` was always on, so a hostile ``mysql://`` server could ask any dmig
connection (inspect, health, validate, lint) for a local file and receive it. With LOCAL the
server names the file; a server that names another file than the one in our statement behaves
exactly like the hostile server, so the statement ``LOAD DATA LOCAL INFILE '/etc/passwd'`` stands
in for it here. Each test reads the table back: no line of ``/etc/passwd`` may arrive.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pymysql
import pytest
import sqlalchemy as sa
from pymysql.constants import CLIENT

from dmig.db import access, localinfile
from dmig.db.engine import create
from dmig.move.typemap import Kind
from dmig.move.writers import Writer
from mcp_client import call
from test_security_urls import PASSWD_MARKERS


def _table(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE landed (id INTEGER PRIMARY KEY AUTO_INCREMENT, line TEXT)")
    engine.dispose()


def _landed(url: str) -> list[str]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [r[0] for r in conn.exec_driver_sql("SELECT line FROM landed ORDER BY id")]
    finally:
        engine.dispose()


def _load(dbapi: object, path: str) -> None:
    cur = dbapi.cursor()  # type: ignore[attr-defined]
    try:
        cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE landed (line)")
    finally:
        cur.close()
    dbapi.commit()  # type: ignore[attr-defined]


def _passwd_free(lines: list[str]) -> None:
    for line in lines:
        for marker in PASSWD_MARKERS:
            assert marker not in line


@pytest.mark.parametrize("read_only", [False, True])
def test_ordinary_connections_cannot_send_local_files(mysql_url: str, read_only: bool) -> None:
    _table(mysql_url)
    with access.scope(access.Access(read_only=read_only)):
        engine = create(mysql_url)
    try:
        raw = engine.raw_connection()
        dbapi = raw.driver_connection
        assert not dbapi.client_flag & CLIENT.LOCAL_FILES
        with pytest.raises(Exception):  # noqa: B017 - the server or the driver refuses; either way nothing is sent
            _load(dbapi, "/etc/passwd")
        raw.invalidate()
    finally:
        engine.dispose()
    assert _landed(mysql_url) == []


def test_a_read_only_call_never_gets_local_infile_even_when_asked(mysql_url: str) -> None:
    with access.scope(access.Access(read_only=True)):
        engine = create(mysql_url, local_infile=True)
    try:
        raw = engine.raw_connection()
        assert not raw.driver_connection.client_flag & CLIENT.LOCAL_FILES
        raw.close()
    finally:
        engine.dispose()


def test_a_bulk_engine_sends_nothing_outside_allow_file(mysql_url: str) -> None:
    _table(mysql_url)
    engine = create(mysql_url, local_infile=True)
    try:
        raw = engine.raw_connection()
        dbapi = raw.driver_connection
        assert dbapi.client_flag & CLIENT.LOCAL_FILES  # the capability, for the copy's loads...
        with pytest.raises(Exception):  # noqa: B017 - ...but PyMySQL's switch is off between them
            _load(dbapi, "/etc/passwd")
        raw.invalidate()
    finally:
        engine.dispose()
    assert _landed(mysql_url) == []


def _other_spellings(tmp_path: Path, own: Path) -> list[str]:
    link = tmp_path / "link.tsv"
    link.symlink_to("/etc/passwd")
    sub = tmp_path / "sub"
    sub.mkdir()
    return ["/etc/passwd", str(link), f"{sub}/../{own.name}", str(tmp_path / "other.tsv"), "/proc/self/environ"]


@pytest.mark.parametrize("which", range(5))
def test_during_a_load_only_the_one_file_may_be_sent(mysql_url: str, tmp_path: Path, which: int) -> None:
    _table(mysql_url)
    own = tmp_path / "batch.tsv"
    own.write_text("first\nsecond\n", encoding="utf-8")
    (tmp_path / "other.tsv").write_text("not offered\n", encoding="utf-8")
    asked = _other_spellings(tmp_path, own)[which]
    engine = create(mysql_url, local_infile=True)
    try:
        raw = engine.raw_connection()
        dbapi = raw.driver_connection
        with localinfile.allow_file(dbapi, str(own)), pytest.raises(pymysql.err.OperationalError) as info:
            _load(dbapi, asked)
        assert "did not offer" in str(info.value)
        dbapi.rollback()
        cur = dbapi.cursor()
        cur.execute("SELECT 1")  # the connection is still in step with the server
        assert cur.fetchall() == ((1,),)
        cur.close()
        with localinfile.allow_file(dbapi, str(own)):
            _load(dbapi, str(own))  # the offered file itself goes through
        raw.close()
    finally:
        engine.dispose()
    lines = _landed(mysql_url)
    assert lines == ["first", "second"]
    _passwd_free(lines)


def test_the_writer_loads_only_on_a_bulk_engine_and_writes_either_way(mysql_url: str) -> None:
    engine = sa.create_engine(mysql_url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, name VARCHAR(20))")
    engine.dispose()
    kinds = [Kind("int", bits=32), Kind("string", length=20)]
    for bulk, first in ((True, 1), (False, 100)):
        target = create(mysql_url, local_infile=bulk)
        try:
            writer = Writer(target, "t", None, ["id", "name"], kinds, ["id"], upsert=False)
            assert writer.load_data is bulk
            writer.begin()
            writer.write([(first + i, f"n{i}") for i in range(3)])
            writer.commit()
            writer.close()
        finally:
            target.dispose()
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        assert [r[0] for r in conn.exec_driver_sql("SELECT id FROM t ORDER BY id")] == [1, 2, 3, 100, 101, 102]
    engine.dispose()


def test_copy_into_mariadb_still_loads_and_read_only_tools_cannot_be_asked_for_files(
    mysql_url: str, tmp_path: Path, project: Path
) -> None:
    src = tmp_path / "src.db"
    engine = sa.create_engine(f"sqlite:///{src}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)")
        conn.exec_driver_sql("INSERT INTO items VALUES (1, 'a'), (2, 'b'), (3, 'c')")
    engine.dispose()
    outfile = Path(f"/tmp/dmig-sec-{uuid.uuid4().hex}.txt")
    results = call(
        project,
        [
            ("copy", {"source_url": f"sqlite:///{src}", "target_url": mysql_url}),
            ("health", {"url": mysql_url, "probes": [f"SELECT 1 INTO OUTFILE '{outfile}'"], "thresholds": {}}),
            ("health", {"url": mysql_url, "probes": ["SELECT LOAD_FILE('/etc/passwd')"], "thresholds": {}}),
        ],
    )
    assert "error" not in results[0], results[0]
    for res in results[1:]:
        assert "error" in res, res
        for marker in PASSWD_MARKERS:
            assert marker not in str(res)
    assert not outfile.exists()
    engine = sa.create_engine(mysql_url)
    with engine.connect() as conn:
        assert [tuple(r) for r in conn.exec_driver_sql("SELECT id, name FROM items ORDER BY id")] == [
            (1, "a"),
            (2, "b"),
            (3, "c"),
        ]
    engine.dispose()
