"""Bounded reads of the files the server parses: one mechanism, one table of limits.

Every file dmig reads from the project or from a tool argument may be hostile or damaged: a 20 MB
``plan.yaml``, a FIFO in place of ``status.json`` (an ``open`` that never returns), a 1 KB YAML
alias bomb that expands exponentially, a path with a NUL byte. Each of these used to stall or
kill the server (every other tool call waits meanwhile). This module reads and parses them with
limits checked *before* the cost is paid:

* the path is checked first (NUL bytes, over-long names: :class:`BadPath`, not a traceback);
* the file is opened with ``O_NONBLOCK`` (a FIFO cannot block the open) and ``fstat`` on that
  descriptor must say "regular file" (:class:`NotRegularFile` for directories, FIFOs, devices,
  sockets) and at most the kind's byte limit (:class:`FileTooLarge`), and the read itself stops
  one byte past the limit (a file growing meanwhile is caught too);
* YAML is scanned as an event stream (libyaml when available) before anything is built: the
  nesting depth, the number of anchors/aliases and the number of nodes *after alias expansion*
  are counted as the events arrive (:class:`DocumentTooComplex`), so a bomb fails after reading
  its few hundred events, in milliseconds; only then is it loaded with the safe loader (plain
  data types only, ``CSafeLoader`` when present);
* JSON nesting too deep for the parser is the same :class:`DocumentTooComplex`.

Every refusal names the path and the limit in its details. The per-kind limits are in
:data:`KINDS` with the reason for each number. A missing file raises ``FileNotFoundError``
unchanged so that each caller keeps its own "does not exist" answer.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import yaml

from dmig.errors import CorruptFile, InvalidInput

KIB, MIB = 1 << 10, 1 << 20
# Linux limits (PATH_MAX, NAME_MAX): longer names cannot be opened anyway; refusing them up front
# gives a clear answer instead of an ENAMETOOLONG traceback.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


@dataclass(frozen=True)
class Kind:
    """The limits for one kind of file. ``max_nodes`` counts YAML nodes after alias expansion.

    Building YAML objects is what costs (PyYAML's constructor: about 15 µs a node even with
    libyaml), so ``max_nodes`` is what bounds the time of a YAML load: 200,000 nodes take 3-5 s,
    ten times what a plan of a thousand steps has. JSON is parsed in C at ~100 MB/s: its bytes
    limit is its time limit.
    """

    name: str
    max_bytes: int
    why: str
    max_nodes: int = 200_000
    max_depth: int = 64
    max_aliases: int = 100  # anchors + aliases; a hand-written file needs a handful at most


_KIND_LIST = (
    Kind(
        "policy",
        1 * MIB,
        "a real policy is a few hundred bytes; it fails closed, so no anchors at all and few nodes",
        max_nodes=20_000,
        max_depth=16,
        max_aliases=0,
    ),
    Kind("plan", 16 * MIB, "a generated plan.yaml: about 200 bytes per step, so tens of thousands of steps"),
    Kind("spec", 4 * MIB, "a hand-written migration spec is a few KB; room for big raw_sql blocks"),
    Kind("rules", 2_000_000, "a validation rules file: hundreds of checks fit in a few hundred KB"),
    Kind("expertise", 1_000_000, "expertise.yaml is kept under 200 lines by the tools"),
    Kind(
        "project_json",
        64 * MIB,
        "status.json / environment.json / session state, shared with other agents: hundreds of stories with "
        "long texts reach tens of MB; JSON parses at ~100 MB/s, so this costs under a second",
    ),
    Kind("manifest", 16 * MIB, "a backup manifest: per-table entries with checksums, thousands of tables"),
    Kind("record", 4 * MIB, "small JSON records dmig keeps (backups.json, package.json of the project)"),
    Kind("schema_dump", 256 * MIB, "a backup's neutral schema (DDL of every table, view and routine)"),
    Kind("jsonl", 256 * MIB, "a monitoring timeline: one line per sample over a long migration"),
    Kind("bus_tail", 8 * MIB, "how far back bus tail reads: many complete lines, not a runaway file"),
    Kind("env_scan", 2 * MIB, "how much of each docs/ file (its end: a log's newest lines) is scanned for env: names"),
    Kind("text", 4 * MIB, "small project text files read to detect things (a Makefile)"),
    Kind("pid_file", 4 * KIB, "a server's pid file (its path comes from the server: @@pid_file) holds one number"),
)
KINDS: dict[str, Kind] = {k.name: k for k in _KIND_LIST}

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BadPath(InvalidInput):
    """A path no file can have (NUL byte, longer than the OS allows)."""

    code = "E_INVALID_PATH"


class FileTooLarge(CorruptFile):
    code = "E_FILE_TOO_LARGE"


class NotRegularFile(CorruptFile):
    code = "E_NOT_A_FILE"


class DocumentTooComplex(CorruptFile):
    """Too deep, too many aliases, or too many nodes once aliases are expanded."""

    code = "E_DOCUMENT_TOO_COMPLEX"


def kind_of(kind: str | Kind) -> Kind:
    return kind if isinstance(kind, Kind) else KINDS[kind]


def _shown(path: str | os.PathLike[str], shown: str | None) -> str:
    return shown if shown is not None else os.fspath(path).replace("\x00", "\\x00")


def check_path(path: str | os.PathLike[str], shown: str | None = None) -> None:
    """Refuse a path the OS would reject with a confusing error (ValueError or ENAMETOOLONG)."""
    text = os.fspath(path)
    where = _shown(text, shown)
    if "\x00" in text:
        raise BadPath(f"the path {where} holds a NUL byte", path=where, reason="nul_byte")
    raw = os.fsencode(text)
    if len(raw) > MAX_PATH_BYTES:
        raise BadPath(
            f"the path is {len(raw)} bytes long; the limit is {MAX_PATH_BYTES}",
            path=where[:200] + "...",
            reason="path_too_long",
            limit=MAX_PATH_BYTES,
        )
    longest = max((len(p) for p in raw.split(b"/")), default=0)
    if longest > MAX_NAME_BYTES:
        raise BadPath(
            f"a name in the path {where[:200]}... is {longest} bytes long; the limit is {MAX_NAME_BYTES}",
            path=where[:200] + "...",
            reason="name_too_long",
            limit=MAX_NAME_BYTES,
        )


_TYPES = {
    stat.S_IFDIR: "directory",
    stat.S_IFIFO: "FIFO",
    stat.S_IFCHR: "character device",
    stat.S_IFBLK: "block device",
    stat.S_IFSOCK: "socket",
}


@contextlib.contextmanager
def open_regular(
    path: str | os.PathLike[str],
    kind: str | Kind,
    *,
    shown: str | None = None,
    follow_symlinks: bool = True,
    check_size: bool = True,
) -> Iterator[tuple[IO[bytes], int]]:
    """An opened regular file and its size; refused before a byte is read if it is not a small file.

    ``check_size=False`` is for readers that read only part of a large file (a log's tail) and
    bound what they read themselves.
    """
    k = kind_of(kind)
    where = _shown(path, shown)
    check_path(path, shown)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except (FileNotFoundError, NotADirectoryError):
        raise FileNotFoundError(errno.ENOENT, "no such file", where) from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and not follow_symlinks:
            raise NotRegularFile(f"{where} is a symbolic link", path=where, file_type="symlink") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise BadPath(f"the path {where} is too long", path=where, reason="name_too_long") from None
        raise CorruptFile(f"{where} cannot be opened: {exc.strerror}", path=where, reason="unreadable") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            kind_name = _TYPES.get(stat.S_IFMT(st.st_mode), "special file")
            raise NotRegularFile(
                f"{where} is a {kind_name}, not a regular file; refused", path=where, file_type=kind_name
            )
        if check_size and st.st_size > k.max_bytes:
            raise _too_large(where, k, st.st_size)
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh, st.st_size  # type: ignore[misc]


def _too_large(where: str, k: Kind, size: int | None) -> FileTooLarge:
    said = f"{size} bytes" if size is not None else f"more than {k.max_bytes} bytes"
    return FileTooLarge(
        f"{where} is {said}; a {k.name} file may have at most {k.max_bytes} bytes ({k.why})",
        path=where,
        limit=k.max_bytes,
        size=size,
        kind=k.name,
    )


def read_bytes(
    path: str | os.PathLike[str], kind: str | Kind, *, shown: str | None = None, follow_symlinks: bool = True
) -> bytes:
    """The whole file, at most the kind's byte limit (a file that grows past it while read is refused)."""
    k = kind_of(kind)
    where = _shown(path, shown)
    with open_regular(path, k, shown=shown, follow_symlinks=follow_symlinks) as (fh, _size):
        chunks, total = [], 0
        try:
            while total <= k.max_bytes:
                chunk = fh.read(min(1 * MIB, k.max_bytes + 1 - total))
                if not chunk:
                    break
                chunks.append(chunk)
                total += len(chunk)
        except OSError as exc:
            raise CorruptFile(f"{where} cannot be read: {exc.strerror}", path=where, reason="unreadable") from None
    if total > k.max_bytes:
        raise _too_large(where, k, None)
    return b"".join(chunks)


def decode(raw: bytes, where: str, *, errors: str = "strict") -> str:
    try:
        return raw.decode("utf-8", errors=errors)
    except UnicodeDecodeError as exc:
        raise CorruptFile(
            f"{where} is not UTF-8 text (byte {exc.start})", path=where, reason="not_utf8", offset=exc.start
        ) from None


def read_text(
    path: str | os.PathLike[str], kind: str | Kind, *, shown: str | None = None, errors: str = "strict"
) -> str:
    return decode(read_bytes(path, kind, shown=shown), _shown(path, shown), errors=errors)


# ------------------------------------------------------------------------------------------- YAML


def _complex(where: str, k: Kind, reason: str, what: str, limit: int) -> DocumentTooComplex:
    return DocumentTooComplex(
        f"{where} {what}; the limit for a {k.name} file is {limit}", path=where, reason=reason, limit=limit, kind=k.name
    )


def scan_yaml(text: str, kind: str | Kind, *, shown: str = "the document") -> None:
    """Refuse a YAML text whose expansion would be expensive, from its event stream alone.

    Counts, as events arrive: nesting depth; anchors and aliases; and nodes *after* alias
    expansion (each anchor's expanded size is remembered, an alias adds it), so an exponential
    alias bomb is refused as soon as its total passes ``max_nodes``, long before it is built.
    """
    k = kind_of(kind)
    frames: list[list[Any]] = []  # per open collection: [expanded size, anchor]
    sizes: dict[str, int] = {}
    total = marks = 0
    for event in yaml.parse(text, Loader=_Loader):
        if isinstance(event, yaml.AliasEvent):
            marks += 1
            n = sizes.get(event.anchor, 1)
        elif isinstance(event, yaml.ScalarEvent):
            n = 1
            if event.anchor:
                marks += 1
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.CollectionStartEvent):
            if event.anchor:
                marks += 1
            frames.append([1, event.anchor])
            if len(frames) > k.max_depth:
                raise _complex(shown, k, "depth", f"nests deeper than {k.max_depth} levels", k.max_depth)
            n = 1
        elif isinstance(event, yaml.CollectionEndEvent):
            size, anchor = frames.pop()
            if anchor:
                sizes[anchor] = size
            if frames:
                frames[-1][0] += size
            continue
        else:
            continue
        if marks > k.max_aliases:
            if k.max_aliases == 0:
                raise _complex(shown, k, "aliases", "uses YAML anchors/aliases, which are not allowed", 0)
            raise _complex(shown, k, "aliases", f"has more than {k.max_aliases} YAML anchors/aliases", k.max_aliases)
        total += n
        if frames and not isinstance(event, yaml.CollectionStartEvent):
            frames[-1][0] += n
        if total > k.max_nodes:
            raise _complex(
                shown, k, "nodes", f"expands to more than {k.max_nodes} YAML nodes (aliases counted)", k.max_nodes
            )


def parse_yaml(text: str, kind: str | Kind, *, shown: str = "the document") -> Any:
    """Safe types only, after :func:`scan_yaml` passed. Syntax errors stay ``yaml.YAMLError`` for the caller."""
    scan_yaml(text, kind, shown=shown)
    try:
        return yaml.load(text, Loader=_Loader)
    except RecursionError:  # cannot happen within max_depth; kept so it never becomes E_INTERNAL
        k = kind_of(kind)
        raise _complex(shown, k, "depth", "nests too deeply", k.max_depth) from None


def load_yaml(path: str | os.PathLike[str], kind: str | Kind, *, shown: str | None = None) -> Any:
    where = _shown(path, shown)
    return parse_yaml(read_text(path, kind, shown=where), kind, shown=where)


# ------------------------------------------------------------------------------------------- JSON


def parse_json(text: str | bytes, kind: str | Kind, *, shown: str = "the document") -> Any:
    """``json.loads``; nesting too deep for it is DocumentTooComplex. Syntax errors stay ``ValueError``."""
    try:
        return json.loads(text)
    except RecursionError:
        k = kind_of(kind)
        raise _complex(shown, k, "depth", "nests too deeply to parse", k.max_depth) from None


def load_json(path: str | os.PathLike[str], kind: str | Kind, *, shown: str | None = None) -> Any:
    where = _shown(path, shown)
    return parse_json(read_text(path, kind, shown=where), kind, shown=where)
