"""Backups on real SQLite, PostgreSQL and MariaDB: round trips, verification, corruption, restore."""

from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from backup_helpers import (
    create_tables,
    flip_bytes,
    manifest,
    modes,
    restore_confirm,
    root,
    run_sql,
    table_file,
    take,
    truncate,
    verify,
)
from dmig.backup import service
from dmig.backup.checksum import prepare_connection, table_checksum
from dmig.backup.portable import TableStream
from dmig.diff import diff_table
from dmig.errors import CorruptFile

FORMATS = ["portable", "native"]


def _diff_checksum(url: str, table: str) -> str:
    """The diff's checksum of a live table, computed outside any backup code path."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            prepare_connection(conn)
            return table_checksum(conn, url, table).token
    finally:
        engine.dispose()


@pytest.mark.parametrize("fmt", FORMATS)
def test_nasty_values_round_trip_and_verify(db_url, fmt, project):
    tables = create_tables(db_url)
    live = {t: _diff_checksum(db_url, t) for t in tables}

    out = take(project, db_url, fmt=fmt)
    m = out.manifest
    assert [t.name for t in m.tables] == tables
    assert {t.name: t.checksum.token for t in m.tables} == live  # the manifest holds diff's checksum
    assert {t.name: t.rows for t in m.tables} == {"child": 10, "nasty": 4, "nokey": 3}
    assert all(len(t.sha256) == 64 and t.bytes_stored > 0 for t in m.tables)

    result = verify(project, m.backup_id)
    assert result.passed, result.problems
    assert result.verification.counts_ok and result.verification.checksums_ok
    assert set(result.verification.tables.values()) == {"ok"}

    on_disk = manifest(project, m.backup_id)  # the verification is recorded, with its measured restore time
    assert on_disk.verified
    assert on_disk.verifications[-1].restore_seconds > 0
    assert on_disk.verifications[-1].scratch_target
    files, dirs = modes(root(project) / m.backup_id)
    assert files == {0o600}
    assert dirs == {0o700}


@pytest.mark.parametrize("fmt", FORMATS)
def test_restore_after_deleting_rows_is_checksum_identical(db_url, fmt, project):
    create_tables(db_url)
    run_sql(db_url, "CREATE TABLE nasty_ref AS SELECT * FROM nasty")
    out = take(project, db_url, fmt=fmt, tables=["nasty", "child"])
    backup_id = out.manifest.backup_id
    assert verify(project, backup_id).passed
    confirm = restore_confirm(project, backup_id, db_url)

    run_sql(db_url, "DELETE FROM child WHERE id > 5", "UPDATE nasty SET label = 'changed' WHERE id = 4")
    run_sql(db_url, "DELETE FROM nasty WHERE id NOT IN (SELECT nasty_id FROM child)")
    assert not diff_table(db_url, db_url, "nasty", target_table="nasty_ref").equal

    restored = service.restore_tables(project, backup_id, db_url, confirm=confirm)
    assert restored.all_checksums_ok, restored
    assert {t.table: t.rows for t in restored.tables} == {"nasty": 4, "child": 10}
    assert _diff_checksum(db_url, "nasty") == out.manifest.table("nasty").checksum.token
    assert diff_table(db_url, db_url, "nasty", target_table="nasty_ref").equal


@pytest.mark.parametrize("damage", [flip_bytes, truncate])
def test_damaged_file_fails_verification_naming_the_table(db_url, damage, project):
    create_tables(db_url)
    backup_id = take(project, db_url).manifest.backup_id
    damage(table_file(project, backup_id, "nasty"))

    result = verify(project, backup_id)
    assert not result.passed
    assert result.verification.tables["nasty"] != "ok"
    assert result.verification.tables["child"] == "ok"  # the others are still restored and checked
    assert any("nasty" in p for p in result.problems)
    assert not manifest(project, backup_id).verified


def test_corruption_is_caught_by_the_restore_too(sqlite_url, project):
    """Even with a matching sha256 (file and manifest both altered), the stream itself refuses bad data."""
    create_tables(sqlite_url)
    backup_id = take(project, sqlite_url).manifest.backup_id
    path = table_file(project, backup_id, "nasty")
    truncate(path)
    with pytest.raises(CorruptFile, match="nasty"):
        for _ in TableStream(path, None, "nasty").batches():
            pass


def test_native_postgres_corrupt_table_file_is_named(pg_url, project):
    create_tables(pg_url)
    backup_id = take(project, pg_url, fmt="native").manifest.backup_id
    flip_bytes(table_file(project, backup_id, "child"))
    result = verify(project, backup_id)
    assert not result.passed
    assert "child" in result.verification.tables["child"]
    assert result.verification.tables["nasty"] == "ok"


def test_restore_refusals(sqlite_url, project):
    from dmig.context import RunContext
    from dmig.errors import ConfirmationRequired, Conflict, ReadOnlyMode
    from dmig.registry import all_tools, run_tool, tools_for

    create_tables(sqlite_url)
    backup_id = take(project, sqlite_url).manifest.backup_id
    sha = service.list_backups(root(project), project).backups[0].manifest_sha256
    with pytest.raises(Conflict, match="verif"):  # unverified: refused even with the right token
        service.restore_tables(project, backup_id, sqlite_url, confirm=sha)

    sha = verify(project, backup_id).manifest_sha256
    with pytest.raises(ConfirmationRequired):  # the manifest's sha256 is no longer the confirmation
        service.restore_tables(project, backup_id, sqlite_url, confirm=sha)
    with pytest.raises(ConfirmationRequired):
        service.restore_tables(project, backup_id, sqlite_url, confirm=None)
    with pytest.raises(ConfirmationRequired):
        service.restore_tables(project, backup_id, sqlite_url, confirm="0" * 64)

    spec = next(t for t in all_tools() if t.name == "restore_backup")
    assert spec.destructive and not spec.read_only
    assert "restore_backup" not in {t.name for t in tools_for(read_only=True)}
    assert "list_backups" in {t.name for t in tools_for(read_only=True)}
    with pytest.raises(ReadOnlyMode):
        run_tool(spec, {"backup_id": backup_id, "url": sqlite_url, "confirm": sha}, RunContext(project, read_only=True))

    preview = run_tool(spec, {"backup_id": backup_id, "url": sqlite_url, "dry_run": True}, RunContext(project))
    assert preview.dry_run and preview.confirm_token
    token = preview.confirm_token
    out = run_tool(spec, {"backup_id": backup_id, "url": sqlite_url, "confirm": token}, RunContext(project))
    assert out.all_checksums_ok


def test_prune_keeps_protected_and_last_verified(sqlite_url, project):
    create_tables(sqlite_url)
    ids = [take(project, sqlite_url, tables=["nokey"]).manifest.backup_id for _ in range(4)]
    verify(project, ids[1])  # the newest verified backup: must survive
    r = root(project)

    dry = service.prune_backups(r, project, keep_last=1, protect=[ids[0]])
    assert dry.dry_run and dry.confirm_token
    assert sorted(dry.would_delete) == sorted([ids[2]])
    assert set(dry.kept) == {ids[0], ids[1], ids[3]}
    assert (r / ids[2]).exists()

    from dmig.errors import ConfirmationRequired

    with pytest.raises(ConfirmationRequired):
        service.prune_backups(r, project, keep_last=1, protect=[ids[0]], confirm="wrong")
    done = service.prune_backups(r, project, keep_last=1, protect=[ids[0]], confirm=dry.confirm_token)
    assert done.deleted == [ids[2]]
    assert sorted(p.name for p in r.iterdir() if not p.name.startswith(".")) == sorted([ids[0], ids[1], ids[3]])


def test_credentials_never_written_or_returned(pg_url, project):
    password = "Xq9-secret-Pw-77"
    url = sa.make_url(pg_url).set(password=password).render_as_string(hide_password=False)
    assert password in url
    create_tables(pg_url)
    outputs = []
    for fmt in FORMATS:
        out = take(project, url, fmt=fmt)
        outputs.append(out.model_dump_json())
        ver = verify(project, out.manifest.backup_id, url)
        assert ver.passed, ver.problems
        outputs.append(ver.model_dump_json())
    outputs.append(service.list_backups(root(project), project).model_dump_json())
    for text in outputs:
        assert password not in text
    for path in root(project).rglob("*"):
        if path.is_file():
            assert password.encode() not in path.read_bytes(), path


def test_encrypted_backup(sqlite_url, project, monkeypatch):
    pytest.importorskip("cryptography")
    import base64
    import os

    from dmig.errors import NotFound

    monkeypatch.setenv("DMIG_TEST_BACKUP_KEY", base64.b64encode(os.urandom(32)).decode())
    create_tables(sqlite_url)
    with pytest.raises(NotFound, match="DMIG_UNSET_KEY"):
        take(project, sqlite_url, encrypt_key_env="DMIG_UNSET_KEY")
    out = take(project, sqlite_url, encrypt_key_env="DMIG_TEST_BACKUP_KEY")
    assert out.manifest.encryption.key_env == "DMIG_TEST_BACKUP_KEY"
    data = table_file(project, out.manifest.backup_id, "nasty").read_bytes()
    assert data.startswith(b"DMIGAES1")
    key_text = os.environ["DMIG_TEST_BACKUP_KEY"]
    assert key_text.encode() not in (root(project) / out.manifest.backup_id / "manifest.json").read_bytes()
    assert verify(project, out.manifest.backup_id).passed

    monkeypatch.setenv("DMIG_TEST_BACKUP_KEY", base64.b64encode(os.urandom(32)).decode())  # the wrong key
    result = verify(project, out.manifest.backup_id)
    assert not result.passed
    assert any("nasty" in p for p in result.problems)


def test_latest_verified_backup(sqlite_url, project):
    create_tables(sqlite_url)
    first = take(project, sqlite_url).manifest.backup_id
    take(project, sqlite_url, tables=["nokey"])  # newer, never verified
    assert service.latest_verified_backup(project, sqlite_url, ["nasty"]) is None
    verify(project, first)
    found = service.latest_verified_backup(project, sqlite_url, ["nasty", "child"], max_age=dt.timedelta(hours=1))
    assert found is not None and found.backup_id == first
    assert service.latest_verified_backup(project, sqlite_url, ["missing_table"]) is None
    assert service.latest_verified_backup(project, sqlite_url, max_age=dt.timedelta(0)) is None


def test_backup_tables_for_the_executor(mysql_url, project):
    """The executor's contract step: one call that backs up, verifies and says so."""
    create_tables(mysql_url)
    info = service.backup_tables(project, mysql_url, ["nasty"], label="before-contract-p1")
    assert info["verified"] is True and info["problems"] == []
    assert manifest(project, info["id"]).label == "before-contract-p1"
    found = service.latest_verified_backup(project, mysql_url, ["nasty"])
    assert found is not None and found.backup_id == info["id"]


def test_manifest_is_json_with_timings_and_versions(mysql_url, project):
    create_tables(mysql_url)
    out = take(project, mysql_url, fmt="native")
    doc = json.loads((root(project) / out.manifest.backup_id / "manifest.json").read_text())
    assert doc["source"]["flavor"] == "mariadb"
    assert doc["tools"]["mariadb_dump"]
    assert doc["seconds_total"] >= 0 and all("seconds" in t for t in doc["tables"])
    assert "before and after" in doc["consistency"]
    assert set(doc["schema_files"]) == {"schema.json", "schema.sqlite.sql", "schema.postgresql.sql", "schema.mysql.sql"}


def test_executor_bridge_uses_this_api(sqlite_url, project):
    bridge = pytest.importorskip("dmig.execute.backups")
    create_tables(sqlite_url)
    assert bridge.unavailable_reason() is None
    info = bridge.take_verified_backup(project, sqlite_url, ["nasty", "child"], label="before-contract-x")
    assert info["verified"] is True
    ok, detail = bridge.backup_state(project, sqlite_url, ["nasty"])
    assert ok is True and info["id"] in detail


PG_EXOTIC = [
    "CREATE TYPE mood AS ENUM ('ok', 'sad')",
    'CREATE TABLE "odd ""name""; t" (id serial PRIMARY KEY, tz timestamptz, iv interval, ip inet, u uuid, m mood,'
    " arr int[], j jsonb, js json, n numeric, f double precision, r real, money_col money)",
    """INSERT INTO "odd ""name""; t" (tz, iv, ip, u, m, arr, j, js, n, f, r, money_col) VALUES
    ('2024-01-01 00:00:00.000001+02', '1 day 02:03:04.5', '10.0.0.1/8', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
     'sad', '{1,NULL,3}', '{"b": [1, 2], "a": null}', '{"x":  1, "x": 2}', 'NaN', 'Infinity', 1.1, 12.34),
    (NULL, NULL, NULL, NULL, NULL, '{}', 'null', '""', 123456789012345678901234567890.123456789, -0.0, 'NaN',
     NULL)""",
    "CREATE TABLE gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, a int,"
    " twice int GENERATED ALWAYS AS (a * 2) STORED)",
    "INSERT INTO gen (a) VALUES (1), (NULL), (3)",
]
MY_EXOTIC = [
    "CREATE TABLE `odd ``name``; t` (id int AUTO_INCREMENT PRIMARY KEY, tm time(6), y year, bt bit(8),"
    " e enum('ok','sad'), s set('a','b'), j json, ts timestamp(6) NULL, f float, d decimal(65,30), tx longtext,"
    " vb varbinary(10))",
    "INSERT INTO `odd ``name``; t` (tm, y, bt, e, s, j, ts, f, d, tx, vb) VALUES"
    " ('-838:59:59.000000', 2024, b'101', 'sad', 'a,b', '{\"b\": [1, 2], \"a\": null}', '2024-01-01 00:00:00.000001',"
    " 1.1, 12345678901234567890123456789012345.123456789012345678901234567890, 'x', x'00ff'),"
    " (NULL, NULL, NULL, NULL, '', NULL, NULL, NULL, NULL, NULL, NULL)",
    "CREATE TABLE gen (id int AUTO_INCREMENT PRIMARY KEY, a int, twice int AS (a * 2) STORED)",
    "INSERT INTO gen (a) VALUES (1), (NULL), (3)",
]


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("server", ["postgresql", "mariadb"])
def test_server_specific_types_round_trip(server, fmt, request, project):
    url = request.getfixturevalue("pg_url" if server == "postgresql" else "mysql_url")
    run_sql(url, *(PG_EXOTIC if server == "postgresql" else MY_EXOTIC))
    out = take(project, url, fmt=fmt)
    result = verify(project, out.manifest.backup_id)
    assert result.passed, result.problems
    confirm = restore_confirm(project, out.manifest.backup_id, url)
    run_sql(url, "DELETE FROM gen")
    restored = service.restore_tables(project, out.manifest.backup_id, url, confirm=confirm)
    assert restored.all_checksums_ok, restored
    run_sql(url, "INSERT INTO gen (a) VALUES (4)")  # the identity/auto-increment continues after the restored ids
