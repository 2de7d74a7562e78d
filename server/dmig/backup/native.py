"""Native backups: the vendors' own dump formats, with the manifest and checksums of the portable one.

- PostgreSQL: ``pg_dump -Fd`` (directory format: one compressed data file per table, plus
  ``toc.dat``) run with ``--snapshot`` of our REPEATABLE READ transaction, so the checksums we
  compute in that transaction describe exactly the dumped data. Data comes back through
  ``pg_restore -f -`` streamed into COPY on our own connection (so a real restore is one
  transaction with the DELETE before it); schema sections through ``pg_restore -d``.
- MariaDB/MySQL: one ``mariadb-dump --single-transaction`` stream, split by table into
  per-table files (plus the prologue and epilogue that set the session up). The dump's snapshot
  cannot be shared, so the checksums are taken in a consistent snapshot before the dump and
  again after it: equal means the table did not change while it was dumped.
- SQLite: the online backup API, from the connection holding our read transaction, so the copy
  and the checksums are one snapshot; the copy is stored gzip-compressed.
"""

from __future__ import annotations

import gzip
import re
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL

from dmig.backup import clients
from dmig.backup.store import open_private
from dmig.errors import CorruptFile, DatabaseError, InvalidInput

PG_FORMAT = "pg_dump-directory"
MARIADB_FORMAT = "mariadb-dump-sql-gzip"
SQLITE_FORMAT = "sqlite-backup-gzip"
PG_DIR = "pgdump"
SQLITE_FILE = "data/database.sqlite.gz"
MY_PROLOGUE = "data/prologue.sql.gz"
MY_EPILOGUE = "data/epilogue.sql.gz"
_STRUCTURE = b"-- Table structure for table "
_DATA = b"-- Dumping data for table "
_EPILOGUE = b"/*!40103 SET TIME_ZONE=@OLD_TIME_ZONE */;"
_TOC_DATA = re.compile(r"^(\d+); \d+ (\d+) TABLE DATA ")
_TOC_SCHEMA = re.compile(r"^\d+; \d+ \d+ SCHEMA - ")


@dataclass
class NativeDump:
    format: str
    table_files: dict[str, str]
    raw_bytes: dict[str, int | None]
    extra_files: list[str] = field(default_factory=list)
    shared: bool = False


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:60] or "table"


# --- PostgreSQL --------------------------------------------------------------------------------


def _pg_quote(name: str) -> str:
    """A pg_dump name pattern matching exactly ``name``: double-quoted parts are literal."""
    return '"' + name.replace('"', '""') + '"'


def pg_dbname_arg(database: str) -> str:
    """``--dbname=`` as a connection string naming exactly ``database``, never read as options.

    pg_dump and pg_restore expand a ``-d`` value holding ``=`` (or a ``postgresql://`` prefix) into
    connection options, so a database named ``host=/tmp/x dbname=y`` would send the restore to
    another server. Inside a connection string a quoted ``dbname`` value is not expanded again.
    """
    return "--dbname=dbname='" + database.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _pg_pattern(schema: str, table: str) -> str:
    return f"{_pg_quote(schema)}.{_pg_quote(table)}"


def _pg_oids(conn: sa.Connection, tables: list[str], schema: str) -> dict[int, str]:
    stmt = sa.text(
        "SELECT c.oid, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = :s AND c.relname = ANY(:t)"
    )
    return {int(r[0]): r[1] for r in conn.execute(stmt, {"s": schema, "t": tables})}


def dump_pg(
    conn: sa.Connection, url: URL, tables: list[str], schema: str, snapshot: str | None, folder: Path
) -> NativeDump:
    if any("\n" in t for t in tables):
        raise InvalidInput("pg_dump cannot select a table whose name contains a newline: use format=portable")
    pg_dump = clients.require(("pg_dump",))
    out = folder / PG_DIR
    # The whole schema's definitions (types, functions, sequences the tables need: -t alone would
    # leave an enum type behind), but data only for the chosen tables.
    database = url.database or "postgres"
    argv = [pg_dump, "-Fd", f"--file={out}", "--no-sync", f"--schema={_pg_quote(schema)}", pg_dbname_arg(database)]
    if snapshot:
        argv.append(f"--snapshot={snapshot}")
    chosen = set(tables)
    for other in sa.inspect(conn).get_table_names(schema=schema):
        if other not in chosen:
            argv.append(f"--exclude-table-data={_pg_pattern(schema, other)}")
    clients.run(argv, env=clients.pg_env(url, database), what="pg_dump")
    oids = _pg_oids(conn, tables, schema)
    files: dict[str, str] = {}
    for entry, oid in pg_toc_data_entries(out):
        if oid in oids:
            files[oids[oid]] = f"{PG_DIR}/{entry}.dat.gz"
    missing = [t for t in tables if t not in files]
    if missing:
        raise DatabaseError(f"pg_dump wrote no data entry for {', '.join(missing)}")
    raw = {t: _gunzip_size(folder / f) for t, f in files.items()}
    return NativeDump(PG_FORMAT, files, raw, extra_files=[f"{PG_DIR}/toc.dat"])


def pg_toc_data_entries(dump_dir: Path) -> list[tuple[int, int]]:
    """(TOC entry id, table oid) of every TABLE DATA entry of a directory dump."""
    proc = clients.run([clients.require(("pg_restore",)), "-l", "--", str(dump_dir)], what="pg_restore -l")
    out = []
    for line in proc.stdout.decode("utf-8", errors="replace").splitlines():
        m = _TOC_DATA.match(line)
        if m:
            out.append((int(m.group(1)), int(m.group(2))))
    return out


def _gunzip_size(path: Path) -> int | None:
    try:
        total = 0
        with gzip.open(path, "rb") as fh:
            while block := fh.read(1024 * 1024):
                total += len(block)
        return total
    except (OSError, EOFError):
        return None


def pg_restore_section(url: URL, dump_dir: Path, section: str, database: str) -> None:
    """Schema before data (tables, types, sequences) or after it (indexes, constraints).

    The schema itself is created by the caller (``CREATE SCHEMA IF NOT EXISTS``): pg_dump's own
    ``CREATE SCHEMA`` fails on a database where it exists already, as ``public`` always does.
    """
    tool = clients.require(("pg_restore",))
    listing = clients.run([tool, "-l", "--", str(dump_dir)], what="pg_restore -l").stdout.decode("utf-8", "replace")
    keep = [ln for ln in listing.splitlines() if not _TOC_SCHEMA.match(ln)]
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as lf:
        lf.write("\n".join(keep) + "\n")
        list_file = lf.name
    argv = [
        tool,
        "--no-owner",
        "--no-privileges",
        "--exit-on-error",
        f"--section={section}",
        f"--use-list={list_file}",
        pg_dbname_arg(database),
        "--",
        str(dump_dir),
    ]
    try:
        clients.run(argv, env=clients.pg_env(url, database), what=f"pg_restore --section={section}")
    finally:
        Path(list_file).unlink(missing_ok=True)


def pg_copy_table(conn: sa.Connection, dump_dir: Path, entry: int, table: str) -> int:
    """Stream one table's data entry into COPY on ``conn`` (inside the caller's transaction)."""
    with tempfile.NamedTemporaryFile("w", suffix=".list", delete=False) as lf:
        lf.write(f"{entry};\n")
        list_file = lf.name
    argv = [clients.require(("pg_restore",)), f"--use-list={list_file}", "--file=-", "--", str(dump_dir)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    rows = 0
    if not conn.in_transaction():
        conn.begin()  # the COPY runs on the driver connection: SQLAlchemy must know to commit it
    try:
        assert proc.stdout is not None
        raw = conn.connection.dbapi_connection
        lines: Iterator[bytes] = iter(proc.stdout)
        for line in lines:
            if line.startswith(b"COPY ") and line.rstrip().endswith(b"FROM stdin;"):
                stmt = line.rstrip()[: -len(b"stdin;")].decode("utf-8") + "STDIN"
                with raw.cursor() as cur, cur.copy(stmt) as copy:  # type: ignore[attr-defined]
                    for data in lines:
                        if data == b"\\.\n":
                            break
                        copy.write(data)
                        rows += 1
        _, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        Path(list_file).unlink(missing_ok=True)
    if proc.returncode != 0:
        raise CorruptFile(
            f"backup data of table {table} cannot be read by pg_restore: {clients.stderr_text(err)}", table=table
        )
    return rows


# --- MariaDB / MySQL ---------------------------------------------------------------------------


def _marker_name(line: bytes, prefix: bytes) -> str:
    quoted = line[len(prefix) :].strip().decode("utf-8")
    if quoted.startswith("`") and quoted.endswith("`"):
        return quoted[1:-1].replace("``", "`")
    return quoted


def dump_mariadb(url: URL, tables: list[str], database: str, folder: Path) -> NativeDump:
    if any("\n" in t for t in tables):
        raise InvalidInput("mariadb-dump output cannot carry a table name with a newline: use format=portable")
    tool = clients.require(clients.MARIADB_DUMP)
    (folder / "data").mkdir(mode=0o700, exist_ok=True)
    with clients.mariadb_options(url) as opts:
        argv = [
            tool,
            opts,
            "--single-transaction",
            "--skip-add-locks",
            "--skip-disable-keys",
            "--hex-blob",
            "--no-tablespaces",
            "--skip-triggers",
            "--tz-utc",
            "--default-character-set=utf8mb4",
            "--skip-dump-date",
            # "--" ends option parsing: a database or table named "--result-file=/x" is a name, not an option.
            "--",
            database,
            *tables,
        ]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            assert proc.stdout is not None
            files, raw = _split_dump(proc.stdout, tables, folder)
            _, err = proc.communicate()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if proc.returncode != 0:
        raise DatabaseError(f"mariadb-dump failed: {clients.stderr_text(err)}")
    missing = [t for t in tables if t not in files]
    if missing:
        raise DatabaseError(f"mariadb-dump wrote nothing for {', '.join(missing)}")
    return NativeDump(MARIADB_FORMAT, files, raw, extra_files=[MY_PROLOGUE, MY_EPILOGUE])


class _GzOut:
    def __init__(self, path: Path) -> None:
        self.fh = open_private(path)
        self.gz = gzip.GzipFile(fileobj=self.fh, mode="wb", mtime=0)
        self.raw = 0

    def write(self, data: bytes) -> None:
        self.gz.write(data)
        self.raw += len(data)

    def close(self) -> None:
        self.gz.close()
        self.fh.close()


class _Splitter:
    """Routes dump lines to the prologue, one file per table, then the epilogue."""

    def __init__(self, tables: list[str], folder: Path) -> None:
        self.index = {t: i for i, t in enumerate(tables)}
        self.folder = folder
        self.files: dict[str, str] = {}
        self.raw: dict[str, int | None] = {}
        self.out = _GzOut(folder / MY_PROLOGUE)
        self.table: str | None = None
        self.in_epilogue = False

    def _switch(self, rel: str, table: str | None) -> None:
        self.out.close()
        if self.table is not None:
            self.raw[self.table] = self.out.raw
        self.out = _GzOut(self.folder / rel)
        self.table = table

    def start_table(self, marker: bytes) -> None:
        name = _marker_name(marker, _STRUCTURE)
        if name not in self.index:
            raise DatabaseError(f"mariadb-dump produced an unexpected section for table {name!r}")
        rel = f"data/{self.index[name]:04d}.{_safe(name)}.sql.gz"
        self._switch(rel, name)
        self.files[name] = rel

    def start_epilogue(self) -> None:
        self._switch(MY_EPILOGUE, None)
        self.in_epilogue = True

    def close(self) -> None:
        self.out.close()
        if self.table is not None:
            self.raw[self.table] = self.out.raw


def _split_dump(
    stream: Iterable[bytes], tables: list[str], folder: Path
) -> tuple[dict[str, str], dict[str, int | None]]:
    sp = _Splitter(tables, folder)
    held: bytes | None = None  # a "--" line belongs to the section whose marker follows it
    try:
        for line in stream:
            if held is not None:
                if not sp.in_epilogue and line.startswith(_STRUCTURE):
                    sp.start_table(line)
                    sp.out.write(held + line)
                    held = None
                    continue
                sp.out.write(held)
                held = None
            if line == b"--\n" and not sp.in_epilogue:
                held = line
                continue
            if not sp.in_epilogue and line.startswith(_STRUCTURE):
                sp.start_table(line)
            elif not sp.in_epilogue and line.startswith(_EPILOGUE):
                sp.start_epilogue()
            sp.out.write(line)
        if held is not None:
            sp.out.write(held)
    finally:
        sp.close()
    if not sp.in_epilogue:
        raise DatabaseError("mariadb-dump output ended without its epilogue (the dump was cut short)")
    return sp.files, sp.raw


def mariadb_parts(path: Path) -> tuple[bytes, bytes]:
    """(structure, data) of one table file: the data part starts at the 'Dumping data' marker."""
    text = gzip.decompress(path.read_bytes())
    cut = text.find(b"\n" + _DATA)
    if not text.startswith(b"--\n" + _STRUCTURE) or cut < 0:
        raise CorruptFile(f"{path.name} is not a table section of a mariadb-dump", file=path.name)
    return text[: cut + 1], text[cut + 1 :]


def mariadb_run(url: URL, database: str, chunks: Iterable[bytes], what: str, table: str | None = None) -> None:
    tool = clients.require(clients.MARIADB_CLIENT)
    with clients.mariadb_options(url) as opts:
        proc = subprocess.Popen(
            [tool, opts, "--binary-mode", "--", database],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stdin is not None
        try:
            for chunk in chunks:
                proc.stdin.write(chunk)
            proc.stdin.close()
        except BrokenPipeError:
            pass
        err = proc.stderr.read() if proc.stderr else b""
        proc.wait()
    if proc.returncode != 0:
        details = {"table": table} if table else {}
        raise DatabaseError(f"{what}: the mariadb client failed: {clients.stderr_text(err)}", **details)


# --- SQLite ------------------------------------------------------------------------------------


def dump_sqlite(conn: sa.Connection, tables: list[str], folder: Path) -> NativeDump:
    raw_conn = conn.connection.dbapi_connection
    assert isinstance(raw_conn, sqlite3.Connection)
    (folder / "data").mkdir(mode=0o700, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dmig-sqlite-", dir=folder) as tmp:
        copy_path = Path(tmp) / "copy.db"
        target = sqlite3.connect(copy_path)
        try:
            raw_conn.backup(target)  # inside our read transaction: the same snapshot as the checksums
        finally:
            target.close()
        size = copy_path.stat().st_size
        with (
            open(copy_path, "rb") as fin,
            open_private(folder / SQLITE_FILE) as fout,
            gzip.GzipFile(fileobj=fout, mode="wb", mtime=0) as gz,
        ):
            shutil.copyfileobj(fin, gz, 1024 * 1024)
    return NativeDump(SQLITE_FORMAT, {t: SQLITE_FILE for t in tables}, {t: size for t in tables}, shared=True)


def sqlite_extract(path: Path, dest: Path, tables: list[str]) -> None:
    """Decompress the database copy and prove it is a healthy SQLite file."""
    label = ", ".join(tables)
    try:
        with gzip.open(path, "rb") as fin, open(dest, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
    except (OSError, EOFError) as exc:
        raise CorruptFile(f"backup data of table(s) {label} is corrupt: {exc}", file=path.name) from None
    try:
        con = sqlite3.connect(dest)
        try:
            result = con.execute("PRAGMA integrity_check").fetchall()
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        raise CorruptFile(f"backup data of table(s) {label} is not a SQLite database: {exc}") from None
    if result != [("ok",)]:
        raise CorruptFile(f"backup of table(s) {label} fails SQLite's integrity check: {result[:3]}")
