"""The contenders of the copy benchmark, each one a command run and measured as a process tree.

* ``dmig copy`` and ``dmig diff`` (our CLI, default options unless told);
* pgloader with a load command file (SQLite -> PostgreSQL; it creates tables, indexes, keys);
* ``pgcopydb clone`` (PostgreSQL -> PostgreSQL; needs the target database to exist);
* the MariaDB floor: ``LOAD DATA LOCAL INFILE`` of CSV files into pre-created tables, then the
  two indexes and the foreign key, run by the ``mariadb`` client (the CSV export is separate);
* the hand-written SQLAlchemy loop (``bench.copy_sa_loop``).

Throwaway databases are all named ``dmig_bench_copy<tag>_*`` and created/dropped here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench import datagen
from bench.copy_measure import Measured, run_measured

HERE = Path(__file__).resolve().parent
DMIG = str(Path(sys.executable).with_name("dmig"))
PG_SERVER = os.environ.get("DMIG_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
MY_SERVER = os.environ.get("DMIG_BENCH_MYSQL", "mysql://root@127.0.0.1:3306")
TIMEOUT_S = 4 * 3600
_NAME = re.compile(r"^dmig_bench_copy\w*$")


class Server:
    """One database server where throwaway databases are made and counted."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.pg = base.startswith("postgresql")
        driver = "postgresql+psycopg" if self.pg else "mysql+pymysql"
        self.engine = sa.create_engine(
            driver + base[base.index("://") :] + ("/postgres" if self.pg else "/mysql"), isolation_level="AUTOCOMMIT"
        )

    def url(self, name: str) -> str:
        return f"{self.base}/{name}" + ("" if self.pg else "?charset=utf8mb4")

    def quoted(self, name: str) -> str:
        if not _NAME.match(name):
            raise ValueError(f"not a benchmark database name: {name}")
        return f'"{name}"' if self.pg else f"`{name}`"

    def drop(self, name: str) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS {self.quoted(name)}" + (" WITH (FORCE)" if self.pg else ""))

    def fresh(self, name: str) -> str:
        self.drop(name)
        with self.engine.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {self.quoted(name)}" + ("" if self.pg else " CHARACTER SET utf8mb4"))
        return self.url(name)

    def leftovers(self, prefix: str) -> list[str]:
        sql = "SELECT datname FROM pg_database" if self.pg else "SHOW DATABASES"
        with self.engine.connect() as conn:
            names = [r[0] for r in conn.exec_driver_sql(sql)]
        return [n for n in names if n.startswith(prefix) and _NAME.match(n)]

    def version(self) -> str:
        with self.engine.connect() as conn:
            return str(conn.exec_driver_sql("SELECT version()").scalar()).split(" on ")[0]


def counts(url: str, tables: tuple[str, ...] = ("users", "orders")) -> dict[str, int]:
    engine = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://").replace("mysql://", "mysql+pymysql://")
    )
    try:
        with engine.connect() as conn:
            return {
                t: int(conn.execute(sa.select(sa.func.count()).select_from(sa.table(t))).scalar() or 0) for t in tables
            }
    finally:
        engine.dispose()


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


# -- our tool -----------------------------------------------------------------------------------


def dmig_copy(
    source: str, target: str, project: Path, extra: list[str] | None = None
) -> tuple[Measured, dict[str, Any]]:
    """``dmig copy --json``; returns the measurement and the parsed summary ({} when it failed)."""
    project.mkdir(parents=True, exist_ok=True)
    argv = [DMIG, "--project-dir", str(project), "copy", source, target, "--json", *(extra or [])]
    m = run_measured(argv, timeout=TIMEOUT_S)
    try:
        summary = json.loads(m.stdout)
    except json.JSONDecodeError:
        summary = {}
    return m, summary


def dmig_diff(source: str, target: str, table: str, project: Path) -> dict[str, Any]:
    argv = [DMIG, "--project-dir", str(project), "diff", source, target, "--table", table, "--no-report", "--json"]
    m = run_measured(argv, timeout=TIMEOUT_S)
    try:
        out = json.loads(m.stdout)
    except json.JSONDecodeError:
        out = {}
    return {
        "table": table,
        "exit_code": m.returncode,
        "wall_s": m.wall_s,
        "equal": out.get("equal"),
        "error": None if m.returncode == 0 else (m.stderr or m.stdout)[-400:],
    }


# -- pgloader -----------------------------------------------------------------------------------


def pgloader_command(sqlite_path: Path, target: str) -> str:
    """The load command file: pgloader's SQLite defaults spelled out (it builds tables, indexes, keys)."""
    return (
        "LOAD DATABASE\n"
        f"  FROM sqlite://{sqlite_path}\n"
        f"  INTO {target.replace('postgresql://', 'pgsql://')}\n"
        "  WITH include drop, create tables, create indexes, reset sequences, foreign keys;\n"
    )


def pgloader(sqlite_path: Path, target: str, workdir: Path) -> tuple[Measured, str]:
    workdir.mkdir(parents=True, exist_ok=True)
    load = workdir / "copy-bench.load"
    load.write_text(pgloader_command(sqlite_path, target))
    argv = ["pgloader", "--no-ssl-cert-verification", "--root-dir", str(workdir / "pgloader"), str(load)]
    return run_measured(argv, timeout=TIMEOUT_S), load.read_text()


# -- pgcopydb -----------------------------------------------------------------------------------


def pgcopydb(source: str, target: str) -> Measured:
    """``pgcopydb clone`` with its default job counts, in a fresh work directory."""
    work = tempfile.mkdtemp(prefix="dmig-bench-pgcopydb-")
    try:
        argv = ["pgcopydb", "clone", "--source", source, "--target", target, "--dir", work]
        return run_measured(argv, timeout=TIMEOUT_S)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- MariaDB LOAD DATA floor ---------------------------------------------------------------------

_LOAD = (
    "LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{table}` CHARACTER SET utf8mb4 "
    "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' LINES TERMINATED BY '\\r\\n';\n"
)


def create_plain_tables(url: str) -> None:
    """users and orders with their primary keys only: what LOAD DATA loads into."""
    md = sa.MetaData()
    datagen.tables(md)
    engine = sa.create_engine(url.replace("mysql://", "mysql+pymysql://"))
    try:
        md.create_all(engine)
    finally:
        engine.dispose()


def load_data_script(csv: dict[str, Path]) -> str:
    """LOAD DATA for both tables, then the indexes and the (validated) foreign key, as dmig builds them."""
    script = "".join(_LOAD.format(path=csv[t], table=t) for t in ("users", "orders"))
    return script + (
        "CREATE UNIQUE INDEX ux_users_email ON users (email);\n"
        "CREATE INDEX ix_orders_user ON orders (user_id);\n"
        "ALTER TABLE orders ADD CONSTRAINT fk_orders_user FOREIGN KEY (user_id) REFERENCES users (id);\n"
    )


def mariadb_load(database: str, csv: dict[str, Path]) -> tuple[Measured, str]:
    script = load_data_script(csv)
    host = MY_SERVER.split("@")[-1]
    hostname, _, port = host.partition(":")
    user = MY_SERVER.split("://")[1].split("@")[0]
    argv = ["mariadb", "--local-infile=1", "-h", hostname, "-P", port or "3306", "-u", user, database]
    return run_measured(argv, stdin_text=script, timeout=TIMEOUT_S), script


# -- the hand-written SQLAlchemy loop ------------------------------------------------------------


def sa_loop(source: str, target: str) -> Measured:
    pg = target.replace("postgresql://", "postgresql+psycopg://")
    argv = [sys.executable, "-m", "bench.copy_sa_loop", source, pg]
    return run_measured(argv, cwd=HERE.parent, timeout=TIMEOUT_S)


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError:
        return "not installed"
    lines = (out.stdout + out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"
