"""validate's spot check follows the diff's per-type rules across dialects (fidelity round 2).

Each case writes one column on each side, row by row, and checks every row on its own: the spot
check must pass exactly when an independent comparison of the written values (below, no dmig code)
says they are the same value, so both a FAIL on identical data and a PASS on changed data fail
the test.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from dmig.db.urls import parse_url
from dmig.validate.load import parse_spec
from dmig.validate.runner import run_spec

# --- the independent comparison: one canonical Python value per kind ----------------------------------


def _time(v: Any) -> Any:
    """Wall clock in microseconds and the UTC offset (None when the value has none)."""
    if isinstance(v, dt.time):
        micros = ((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond
        return (micros, v.utcoffset())
    m = re.fullmatch(r"(\d+):(\d\d):(\d\d)(?:\.(\d+))?([+-]\d\d(?::\d\d)?)?", v)
    assert m, v
    micros = ((int(m[1]) * 60 + int(m[2])) * 60 + int(m[3])) * 1_000_000 + int((m[4] or "0").ljust(6, "0"))
    offset = None
    if m[5]:
        sign = -1 if m[5][0] == "-" else 1
        offset = sign * dt.timedelta(hours=int(m[5][1:3]), minutes=int(m[5][4:6] or 0))
    return (micros, offset)


def _interval(v: Any) -> Any:
    if isinstance(v, dt.timedelta):
        return v
    m = re.fullmatch(r"(?:(-?\d+) days? ?)?(?:(\d+):(\d\d):(\d\d))?", v)
    assert m, v
    return dt.timedelta(days=int(m[1] or 0), hours=int(m[2] or 0), minutes=int(m[3] or 0), seconds=int(m[4] or 0))


def _array(v: Any) -> Any:
    return tuple(v) if isinstance(v, list) else tuple(int(x) for x in v.strip("{}").split(",") if x)


def _json(v: Any) -> Any:
    return ("document", json.loads(v))  # v is the document's text; SQL NULL is None, never a document


def _f32(v: Any) -> Any:
    return struct.unpack("f", struct.pack("f", float(v)))[0]


def _point(v: Any) -> Any:
    m = re.fullmatch(r"POINT\((\S+) (\S+)\)", v)
    assert m, v
    return (float(m[1]), float(m[2]))


ORACLE: dict[str, Callable[[Any], Any]] = {
    "time": _time,
    "interval": _interval,
    "array": _array,
    "inet": lambda v: ipaddress.ip_interface(v),
    "json": _json,
    "f32": _f32,
    "point": _point,
}


def oracle_same(kind: str, a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return ORACLE[kind](a) == ORACLE[kind](b)


# --- cases ------------------------------------------------------------------------------------------------


@dataclass
class Side:
    ddl: str
    values: tuple[Any, ...]
    insert: str = ":v"  # how a value is written (a cast where the driver cannot bind the type)


@dataclass
class Case:
    source: str
    target: str
    kind: str
    src: Side
    tgt: Side


T = dt.time
CASES: dict[str, Case] = {
    "time-sqlite-pg": Case(
        "sqlite", "pg", "time", Side("TIME", ("00:00:00", "00:00:00")), Side("TIME(6)", (T(0, 0), T(0, 0, 1)))
    ),
    "time-sqlite-mysql": Case(
        "sqlite", "mysql", "time", Side("TIME", ("00:00:00", "00:00:00")), Side("TIME(6)", ("00:00:00", "00:00:01"))
    ),
    "time-pg-sqlite": Case(
        "pg",
        "sqlite",
        "time",
        Side("TIME(6)", (T(0, 0), T(0, 0))),
        Side("TIME", ("00:00:00.000000", "00:00:00.000001")),
    ),
    "time-mysql-pg": Case(
        "mysql",
        "pg",
        "time",
        Side("TIME(6)", ("23:59:00.000005", "23:59:00.000005")),
        Side("TIME(6)", (T(23, 59, 0, 5), T(23, 59, 0, 6))),
    ),
    "time-mysql-sqlite": Case(
        "mysql",
        "sqlite",
        "time",
        Side("TIME(6)", ("23:59:00.000005", "23:59:00.000005")),
        Side("TIME", ("23:59:00.000005", "23:59:00.000006")),
    ),
    "timetz-pg-sqlite": Case(
        "pg",
        "sqlite",
        "time",
        Side("TIMETZ", ("12:00:00+02", "12:00:00+02", "23:59:59.5-05:30")),
        Side("TEXT", ("12:00:00+02:00", "12:00:00", "23:59:59.500000-05:30")),
    ),
    "interval-pg-sqlite": Case(
        "pg",
        "sqlite",
        "interval",
        Side("INTERVAL", (dt.timedelta(days=1, hours=2), dt.timedelta(days=1, hours=2))),
        Side("TEXT", ("1 day 02:00:00", "1 day 03:00:00")),
    ),
    "interval-pg-mysql": Case(
        "pg",
        "mysql",
        "interval",
        Side("INTERVAL", (dt.timedelta(days=2), dt.timedelta(days=2))),
        Side("TEXT", ("2 days", "3 days")),
    ),
    "array-pg-sqlite": Case(
        "pg", "sqlite", "array", Side("INTEGER[]", ([1, 2, 3], [1, 2, 3])), Side("TEXT", ("{1,2,3}", "{1,2,4}"))
    ),
    "array-pg-mysql": Case(
        "pg", "mysql", "array", Side("INTEGER[]", ([1, 2, 3], [])), Side("TEXT", ("{1,2,3}", "{1}"))
    ),
    "inet-pg-sqlite": Case(
        "pg",
        "sqlite",
        "inet",
        Side("INET", ("192.168.0.1", "192.168.0.1", "10.0.0.0/8"), "CAST(:v AS inet)"),
        Side("TEXT", ("192.168.0.1", "192.168.0.1/32", "10.0.0.1/8")),
    ),
    "inet-pg-mysql": Case(
        "pg",
        "mysql",
        "inet",
        Side("INET", ("192.168.0.1", "::1"), "CAST(:v AS inet)"),
        Side("TEXT", ("192.168.0.1/32", "::2")),
    ),
    "json-pg-sqlite": Case(
        "pg",
        "sqlite",
        "json",
        Side("JSONB", ("null", "null", None, '{"a": 1}'), "CAST(:v AS jsonb)"),
        Side("TEXT", ("null", None, "null", '{"a":1}')),
    ),
    "json-sqlite-pg": Case(
        "sqlite",
        "pg",
        "json",
        Side("TEXT", ("null", "null", None)),
        Side("JSON", ("null", None, "null"), "CAST(:v AS json)"),
    ),
    "float4-pg-sqlite": Case(
        "pg",
        "sqlite",
        "f32",
        Side("REAL", (3.4028234663852886e38, 0.1, 0.1)),
        Side("REAL", (3.4028234663852886e38, 0.10000000149011612, 0.2)),
    ),
    "float4-pg-mysql": Case(
        "pg", "mysql", "f32", Side("REAL", (3.4028234663852886e38, 0.5)), Side("FLOAT", (3.4028234663852886e38, 0.25))
    ),
    "float-mysql-mysql": Case(
        "mysql",
        "mysql",
        "f32",
        Side("FLOAT", (3.4028234663852886e38, 3.4028234663852886e38)),
        Side("FLOAT", (3.4028234663852886e38, 3.40282e38)),
    ),
    "float-mysql-sqlite": Case(
        "mysql",
        "sqlite",
        "f32",
        Side("FLOAT", (3.4028234663852886e38, 3.4028234663852886e38)),
        Side("REAL", (3.4028234663852886e38, 3.40282e38)),
    ),
    "geometry-mysql-pg": Case(
        "mysql",
        "pg",
        "point",
        Side("POINT", ("POINT(1 2)", "POINT(1 2)"), "ST_GeomFromText(:v)"),
        Side("TEXT", ("POINT(1 2)", "POINT(1 3)")),
    ),
    "geometry-mysql-sqlite": Case(
        "mysql",
        "sqlite",
        "point",
        Side("POINT", ("POINT(-71.06 42.36)", "POINT(0 0)"), "ST_GeomFromText(:v)"),
        Side("TEXT", ("POINT(-71.06 42.36)", "POINT(0 1)")),
    ),
}

FIXTURE = {"sqlite": "sqlite_url", "pg": "pg_url", "mysql": "mysql_url"}
SECOND = {"pg": "pg_url2", "mysql": "mysql_url2"}  # a same-dialect pair: a second private database


def _write(url: str, side: Side) -> None:
    engine = sa.create_engine(parse_url(url), poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE TABLE t (id INTEGER PRIMARY KEY, v {side.ddl})")
            for i, value in enumerate(side.values, start=1):
                conn.execute(sa.text(f"INSERT INTO t (id, v) VALUES (:id, {side.insert})"), {"id": i, "v": value})
    finally:
        engine.dispose()


def _marked(name: str) -> Any:
    """A case carries the markers of the servers it uses (``-m pg`` / ``-m mysql`` select it)."""
    case = CASES[name]
    return pytest.param(name, marks=[getattr(pytest.mark, m) for m in sorted({case.source, case.target})])


@pytest.mark.parametrize("name", [_marked(n) for n in CASES])
def test_spot_check_agrees_with_the_independent_comparison(name: str, request: pytest.FixtureRequest) -> None:
    case = CASES[name]
    source = request.getfixturevalue(FIXTURE[case.source])
    target = request.getfixturevalue((SECOND if case.source == case.target else FIXTURE)[case.target])
    _write(source, case.src)
    _write(target, case.tgt)
    ids = range(1, len(case.src.values) + 1)
    checks = [
        {"name": f"row{i}", "type": "spot_check", "table": "t", "key": ["id"], "keys": [i], "random": 0, "edges": False}
        for i in ids
    ]
    run = run_spec(parse_spec({"source": source, "target": target, "checks": checks}))
    got = {c.name: c.status for c in run.checks}
    want = {
        f"row{i}": "pass" if oracle_same(case.kind, a, b) else "fail"
        for i, a, b in zip(ids, case.src.values, case.tgt.values, strict=True)
    }
    assert got == want, [(c.name, c.summary, c.sample) for c in run.checks]
