"""The native fast paths (``fastcopy.c``): built on first use with the machine's C compiler, loaded with ctypes.

Why C at all: a SQLite -> PostgreSQL copy was CPU-bound on about 6 us of Python per row, and a
PostgreSQL pass-through spent most of its verification hashing rows one Python call at a time
(bench/RESULTS.md). The C code does that per-row work for a whole page per call: it encodes SQLite
rows as PostgreSQL binary COPY rows, and hashes the rows of any binary COPY stream.

Why built here rather than shipped: the project installs from source (``pip install -e .``) on
machines that have a C compiler, and a plain shared library loaded with ctypes (no Python C API)
needs no build backend support and serves every Python version. The library is compiled once per
source version into ``_build/`` beside this file (or the user cache when that is read-only), under
a lock, atomically. Without a compiler, or with ``DMIG_NATIVE=0``, :func:`lib` returns None and
every caller keeps its Python path: the native code only ever makes things faster, never different.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

SOURCE = Path(__file__).with_name("fastcopy.c")
ENV_SWITCH = "DMIG_NATIVE"

# Column codes of dmig_sq_page (the enum in fastcopy.c).
C_INT, C_TEXT, C_NUMERIC, C_TIMESTAMP, C_DATE, C_BOOL, C_FLOAT8, C_BYTEA = 1, 2, 3, 4, 5, 6, 7, 8
# Its results.
DONE, BAIL, ERROR, NOMEM = 0, 1, 2, 3
BINARY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
BINARY_HEADER = 19  # signature, flags, header extension length
MAX_COLUMNS = 1600  # dmig_sq_page's limit, PostgreSQL's own per table
HASH_NAME = "xxh64"  # the row hash; part of every fingerprint, so sums of another hash never compare


class Sum(ctypes.Structure):
    """(rows, 128-bit sum of the rows' 64-bit hashes)."""

    _fields_ = [("rows", ctypes.c_uint64), ("lo", ctypes.c_uint64), ("hi", ctypes.c_uint64)]

    @property
    def total(self) -> int:
        return (self.hi << 64) | self.lo


class PQ(ctypes.Structure):
    """The libpq functions dmig_pg_pump calls (see :func:`libpq`)."""

    _fields_ = [(name, ctypes.c_void_p) for name in ("get_copy_data", "put_copy_data", "flush", "socket", "freemem")]


class Page(ctypes.Structure):
    _fields_ = [
        ("buf", ctypes.c_void_p),
        ("len", ctypes.c_size_t),
        ("cap", ctypes.c_size_t),
        ("sum", Sum),
        ("last_key", ctypes.c_longlong),
        ("err", ctypes.c_char * 256),
    ]

    def data(self) -> bytes:
        return ctypes.string_at(self.buf, self.len) if self.len else b""


def _candidates(tag: str) -> list[Path]:
    name = f"fastcopy-{tag}.so"
    cache_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [SOURCE.with_name("_build") / name, cache_home / "dmig" / name]


def _tag() -> str:
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    return f"{digest}-{platform.machine()}"


def _compile(out: Path) -> bool:
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    from filelock import FileLock

    with FileLock(str(out) + ".lock"):
        if out.exists():
            return True
        fd, tmp = tempfile.mkstemp(dir=out.parent, suffix=".so")
        os.close(fd)
        try:
            for sqlite in ("-l:libsqlite3.so.0", "-lsqlite3"):
                cmd = [compiler, "-O2", "-fPIC", "-shared", "-o", tmp, str(SOURCE), sqlite, "-lm"]
                if subprocess.run(cmd, capture_output=True, timeout=120).returncode == 0:
                    os.replace(tmp, out)
                    for old in out.parent.glob("fastcopy-*"):  # builds (and locks) of earlier source versions
                        if old.name not in (out.name, out.name + ".lock"):
                            old.unlink(missing_ok=True)
                    return True
            return False
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)


def build() -> Path | None:
    """The compiled library's path, compiling it when missing; None when it cannot be built here."""
    tag = _tag()
    for path in _candidates(tag):
        if path.exists():
            return path
    for path in _candidates(tag):
        try:
            if _compile(path):
                return path
        except (OSError, subprocess.SubprocessError):
            continue
    return None


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "false", "no", "off")


@cache
def _load() -> ctypes.CDLL | None:
    path = build()
    if path is None:
        return None
    lib = ctypes.CDLL(str(path))
    vp, cp, i, ll, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_longlong, ctypes.c_size_t
    ip = ctypes.POINTER(ctypes.c_int)
    sigs = {
        "dmig_xxh64": ([vp, sz, ctypes.c_uint64], ctypes.c_uint64),
        "dmig_hash_binrows": ([ctypes.POINTER(Sum), vp, sz], ll),
        "dmig_sq_open": ([cp, i, cp, i], vp),
        "dmig_sq_close": ([vp], None),
        "dmig_sq_prepare": ([vp, cp, cp, i], vp),
        "dmig_sq_finalize": ([vp], None),
        "dmig_sq_bind": ([vp, i, i, ll, ctypes.c_double, cp, i], i),
        "dmig_sq_reset": ([vp], None),
        "dmig_page_new": ([], ctypes.POINTER(Page)),
        "dmig_page_free": ([ctypes.POINTER(Page)], None),
        "dmig_sq_page": ([vp, ip, ip, i, i, ctypes.POINTER(Page)], i),
        "dmig_pg_pump": ([ctypes.POINTER(PQ), vp, vp, ctypes.POINTER(Sum)], ll),
    }
    for name, (args, res) in sigs.items():
        fn = getattr(lib, name)
        fn.argtypes, fn.restype = args, res
    return lib


def lib() -> ctypes.CDLL | None:
    """The loaded library, or None (no compiler, a failed build, or switched off with DMIG_NATIVE=0)."""
    if not enabled():
        return None
    try:
        return _load()
    except (OSError, AttributeError):  # unloadable, or a build that lacks a function this code expects
        return None


@cache
def libpq() -> PQ | None:
    """The functions of the libpq psycopg itself loaded: a PGconn may only be handled by the library
    instance that made it (psycopg's binary wheel bundles its own). Found in this process's memory
    map; None when that is not unambiguous (or not Linux), and callers keep their Python loop."""
    import psycopg.pq

    psycopg.pq.version()  # loaded by now
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "/libpq" in line and line.split()[-1].startswith("/")}
    except OSError:
        return None
    paths = {p for p in paths if Path(p).name.startswith("libpq")}
    if len(paths) > 1 and psycopg.pq.__impl__ == "binary":
        paths = {p for p in paths if "psycopg_binary" in p}
    if len(paths) != 1:
        return None
    try:
        so = ctypes.CDLL(paths.pop())  # the already loaded instance: dlopen returns the same handle
        names = ("PQgetCopyData", "PQputCopyData", "PQflush", "PQsocket", "PQfreemem")
        return PQ(*[ctypes.cast(getattr(so, n), ctypes.c_void_p) for n in names])
    except (OSError, AttributeError):
        return None


def pump(source: Any, target: Any | None, hasher: Hasher) -> int | None:
    """Move a started binary COPY TO STDOUT on ``source`` (a psycopg PGconn) into a started COPY FROM
    STDIN on ``target`` (None: only read), hashing its rows into ``hasher``, in C and without the GIL.
    Returns bytes moved, -1 (source failed) or -2 (target failed); None when the pump is unavailable."""
    native, pq = lib(), libpq()
    if native is None or pq is None:
        return None
    dst = None if target is None else target.pgconn_ptr
    return int(native.dmig_pg_pump(ctypes.byref(pq), source.pgconn_ptr, dst, ctypes.byref(hasher.state)))


def xxh64(data: bytes, seed: int = 0) -> int:
    native = lib()
    if native is None:
        raise RuntimeError("the native library is not available")
    return int(native.dmig_xxh64(data, len(data), seed))


class Hasher:
    """A running (rows, sum) over the rows of a binary COPY stream fed in buffers of any size."""

    def __init__(self, native: ctypes.CDLL) -> None:
        self.native = native
        self.state = Sum()
        self._carry = b""
        self._started = False

    def binrows(self, buf: bytes | bytearray) -> None:
        """Rows of a binary COPY stream, header and trailer included (left out of the sums); a row split
        across two buffers is kept until the next one."""
        data = self._carry + bytes(buf) if self._carry else buf
        if not self._started:
            if len(data) < BINARY_HEADER:
                self._carry = bytes(data)
                return
            if bytes(data[:11]) == BINARY_SIGNATURE:
                skip = BINARY_HEADER + int.from_bytes(data[15:19], "big")
                if len(data) < skip:
                    self._carry = bytes(data)
                    return
                data = data[skip:]
            self._started = True
        if isinstance(data, bytearray):  # passed in place, not copied
            data_ptr: Any = ctypes.addressof((ctypes.c_char * len(data)).from_buffer(data))
        else:
            data_ptr = data
        used = int(self.native.dmig_hash_binrows(ctypes.byref(self.state), data_ptr, len(data)))
        if used < 0:
            raise ValueError("broken binary COPY framing")
        self._carry = bytes(data[used:])

    @property
    def rows(self) -> int:
        return int(self.state.rows)

    @property
    def total(self) -> int:
        return self.state.total


def main() -> int:
    """``python -m dmig.native``: build now (the Makefile's install step), so a first copy does not wait."""
    path = build() if enabled() else None
    print(f"dmig native library: {path or 'not available (the Python paths will be used)'}")
    return 0
