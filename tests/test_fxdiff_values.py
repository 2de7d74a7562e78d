"""The diff and the copy's verification agree with a plain-read comparison on bit, timetz and geometry copies.

Before (round-2 fidelity findings): MySQL BIT(1) -> PostgreSQL boolean made the diff fail with
"cannot cast type boolean to bigint"; a PostgreSQL varbit copied into MariaDB text ('' among the
values) showed as changed; a timetz copied as text ('12:00:00+02:00') was "time on the source vs
text on the target", changed; MariaDB geometry copied as WKT text ('POINT(1 2)') was changed on
both the diff and the verification. Each test copies along the pair, reads both tables with plain
SQLAlchemy, compares them in Python under the rule stated in the test, and requires the diff's and
the verification's verdicts to be that same answer, both for the identical copy and after a change.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from copy_helpers import run_copy
from dmig.diff import diff_table
from proof_helpers import bit_int, db, read, run_sql


def _why(r: Any) -> str:
    return f"equal={r.equal} missing={r.missing_count} extra={r.extra_count} {r.changed} {r.warnings} {r.not_compared}"


def _plain(src: str, tgt: str, table: str, rule: Any) -> bool:
    a, b = sorted(read(src, table)), sorted(read(tgt, table))
    return len(a) == len(b) and all(
        ra[0] == rb[0] and all(rule(i, x, y) for i, (x, y) in enumerate(zip(ra[1:], rb[1:], strict=True)))
        for ra, rb in zip(a, b, strict=True)
    )


def _agree(src: str, tgt: str, project: Path, table: str, rule: Any, change: str) -> None:
    """Copy, check all three verdicts on the identical copy, then change one target value and check again."""
    out = run_copy(src, tgt, project)
    assert _plain(src, tgt, table, rule), ("the copy itself changed values", read(src, table), read(tgt, table))
    [check] = out.verification.tables
    assert check.checksum == "match", check
    assert out.ok, out.message
    result = diff_table(src, tgt, table)
    assert result.equal, _why(result)
    assert not result.not_compared and not result.warnings, _why(result)
    run_sql(tgt, change)
    assert not _plain(src, tgt, table, rule)
    changed = diff_table(src, tgt, table)
    assert not changed.equal and changed.changed_count == 1, _why(changed)


def _bits(_i: int, x: Any, y: Any) -> bool:
    return (x is None and y is None) or (x is not None and y is not None and bit_int(x) == bit_int(y))


@pytest.mark.parametrize("target_kind", ["postgresql", "sqlite"])
def test_mysql_bit_against_boolean_and_integers(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, mysql_url: str, target_kind: str
) -> None:
    """BIT(n) compares by the unsigned integer its bits spell, whatever the copy made of it."""
    tgt = db(request, tmp_path, target_kind, "target")
    # BIT(64) goes to SQLite as TEXT holding decimal digits (the copy's mapping, reported separately):
    # the text side of the bit rule is a text of bits, so that column is left to the PostgreSQL target here.
    wide = ", b64 BIT(64)" if target_kind == "postgresql" else ""
    top = ", b'" + "1" * 64 + "'" if wide else ""
    run_sql(
        mysql_url,
        f"CREATE TABLE b (id INT PRIMARY KEY, b1 BIT(1), b8 BIT(8){wide})",
        f"INSERT INTO b VALUES (1, b'0', b'01000001'{top}), (2, b'1', b'00000000'{', 0' if wide else ''}),"
        f" (3, NULL, NULL{', NULL' if wide else ''})",
    )
    _agree(
        mysql_url,
        tgt,
        project,
        "b",
        _bits,
        "UPDATE b SET b1 = NOT b1 WHERE id = 1" if target_kind == "postgresql" else "UPDATE b SET b1 = 1 WHERE id = 1",
    )


def _varbit(_i: int, x: Any, y: Any) -> bool:
    """varbit by its bit text: '0101' and '101' are different values, as PostgreSQL says."""
    return x == y


def test_pg_varbit_copied_to_mariadb_text(project: Path, pg_url: str, mysql_url2: str) -> None:
    run_sql(
        pg_url,
        "CREATE TABLE v (id INT PRIMARY KEY, vb VARBIT(80))",
        "INSERT INTO v VALUES (1, B'101'), (2, B''), (3, B'0101'), (4, NULL),"
        " (5, B'11111111111111111111111111111111111111111111111111111111111111111111111111110')",
    )
    _agree(pg_url, mysql_url2, project, "v", _varbit, "UPDATE v SET vb = '00101' WHERE id = 1")


def _offset_of(v: Any) -> Any:
    if isinstance(v, dt.time):
        return v
    return dt.time.fromisoformat(v)


def _timetz(_i: int, x: Any, y: Any) -> bool:
    """timetz by wall time and offset."""
    if x is None or y is None:
        return x is None and y is None
    a, b = _offset_of(x), _offset_of(y)
    return a == b and a.utcoffset() == b.utcoffset() and a.replace(tzinfo=None) == b.replace(tzinfo=None)


@pytest.mark.parametrize("target_kind", ["mysql", "sqlite"])
def test_pg_timetz_copied_as_text(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, pg_url: str, target_kind: str
) -> None:
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(
        pg_url,
        "CREATE TABLE t (id INT PRIMARY KEY, tt TIMETZ)",
        "INSERT INTO t VALUES (1, '12:00:00+02'), (2, '23:59:59.5-05:30'), (3, '00:00:00.000001+00'), (4, NULL)",
    )
    _agree(pg_url, tgt, project, "t", _timetz, "UPDATE t SET tt = '12:00:00+03:00' WHERE id = 1")


def _wkt(_i: int, x: Any, y: Any) -> bool:
    return x == y


@pytest.mark.parametrize("target_kind", ["postgresql", "sqlite"])
def test_mariadb_geometry_copied_as_wkt(
    request: pytest.FixtureRequest, tmp_path: Path, project: Path, mysql_url: str, target_kind: str
) -> None:
    """Geometry against text compares as MariaDB's WKT (ST_AsText): the form the copy writes."""
    tgt = db(request, tmp_path, target_kind, "target")
    run_sql(
        mysql_url,
        "CREATE TABLE g (id INT PRIMARY KEY, p POINT)",
        "INSERT INTO g VALUES (1, ST_GeomFromText('POINT(1 2)')), (2, ST_GeomFromText('POINT(-71.06 42.36)')),"
        " (3, NULL)",
    )
    plain = sorted(read(mysql_url, "g"))
    assert isinstance(plain[0][1], bytes)  # the driver reads MariaDB's internal SRID + WKB
    e = sa.create_engine(mysql_url)
    with e.connect() as conn:
        wkt = dict(conn.exec_driver_sql("SELECT id, ST_AsText(p) FROM g").all())
    e.dispose()
    out = run_copy(mysql_url, tgt, project)
    assert {r[0]: r[1] for r in read(tgt, "g")} == wkt
    [check] = out.verification.tables
    assert check.checksum == "match", check
    assert out.ok, out.message
    result = diff_table(mysql_url, tgt, "g")
    assert result.equal and not result.not_compared and not result.warnings, _why(result)
    run_sql(tgt, "UPDATE g SET p = 'POINT(1 3)' WHERE id = 1")
    changed = diff_table(mysql_url, tgt, "g")
    assert not changed.equal and changed.changed_count == 1, _why(changed)


def test_mariadb_geometry_within_mariadb_compares_binary_and_srid(mysql_url: str, mysql_url2: str) -> None:
    ddl = "CREATE TABLE g (id INT PRIMARY KEY, p GEOMETRY)"
    run_sql(mysql_url, ddl, "INSERT INTO g VALUES (1, ST_GeomFromText('POINT(1 2)', 4326)), (2, NULL)")
    run_sql(mysql_url2, ddl, "INSERT INTO g VALUES (1, ST_GeomFromText('POINT(1 2)', 4326)), (2, NULL)")
    assert read(mysql_url, "g") == read(mysql_url2, "g")
    result = diff_table(mysql_url, mysql_url2, "g")
    assert result.equal and not result.warnings, _why(result)
    run_sql(mysql_url2, "UPDATE g SET p = ST_GeomFromText('POINT(1 2)', 0) WHERE id = 1")
    assert read(mysql_url, "g") != read(mysql_url2, "g")
    changed = diff_table(mysql_url, mysql_url2, "g")
    assert not changed.equal and changed.changed_count == 1, _why(changed)
