"""Streamed checksum: hash the source rows while they are copied, so verification reads the source only once.

The checksum diff (``dmig.diff``) proves a copy by computing, on each side, the exact sum of
per-row hashes (see ``dmig.diff.hashing``). Done after the copy, the source side is a second full
read, and on SQLite every row goes through a Python function in one thread: for a SQLite source
that pass cost twice the copy itself. The copy workers already hold every source row in Python,
so they compute the very same row hash (same columns, same canonical rules, chosen by the diff's
own ``build_plan`` for this pair of tables) as the rows stream, and keep (rows, sum) per partition
in the partition's checkpoint, in the same transaction as the rows. Verification then runs only
the target side's checksum, in SQL inside the target, and compares.

What it proves: the target holds exactly the rows that were read from the source (key and every
compared column, canonicalised the diff's way). When the sums differ, or anything about the
streamed sums is in doubt (a partition without one, a plan that no longer matches), the caller
runs the full diff, which also names the differing keys. A hash computed differently in Python
than the source database would compute it can therefore only cost time, never a false "match":
a match needs the target's SQL to agree with hashes of the rows as read.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dmig.diff.normalize import CANON, FRAMED, NULL_TOKEN, SEPARATOR

RowHasher = Callable[[tuple[Any, ...]], int]
INFO_KEY = "stream_hash"


@dataclass(frozen=True)
class HashSpec:
    """Which values of a source row are hashed, and how (picklable: it travels to worker processes)."""

    positions: tuple[int, ...]  # indexes into the row tuple the reader returns
    categories: tuple[str, ...]
    framed: tuple[bool, ...]
    columns: tuple[str, ...]  # source column names, for the fingerprint and messages

    @property
    def fingerprint(self) -> str:
        parts = zip(self.columns, self.categories, self.framed, strict=True)
        text = "\n".join(f"{c}:{k}:{int(f)}" for c, k, f in parts)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def _decimal_of_float(v: float) -> str:
    """canon_decimal for a float, without the Decimal round trip when ``repr`` is already plain."""
    r = repr(v)
    if "e" in r or "n" in r:  # exponent, nan, inf: the general rule
        return CANON["decimal"](v)
    if r.endswith(".0"):
        r = r[:-2]
    return "0" if r == "-0" else r


def _framed(text: str) -> str:
    return f"{len(text)}:{text}"


def _token_expr(j: int, category: str, framed: bool) -> str:
    """Python source for column ``j``'s token; fast paths for the types a driver hands over most."""
    v = f"v{j}"
    slow = f"C[{category!r}]({v})"
    if category == "text":
        if framed:
            return f"(f'{{len({v})}}:{{{v}}}' if type({v}) is str else fr({slow}))"
        return f"({v} if type({v}) is str else {slow})"
    if category == "int":
        fast = f"(str({v}) if type({v}) is int else {slow})"
    elif category == "decimal":
        fast = f"(df({v}) if type({v}) is float else str({v}) if type({v}) is int else {slow})"
    elif category == "timestamp":
        # Text already in the canonical shape is its own canonical form (parse + format is the identity).
        fast = f"({v} if type({v}) is str and len({v}) == 26 and {v}[10] == ' ' and {v}[19] == '.' else {slow})"
    else:
        fast = slow
    return f"fr({fast})" if framed else fast


def build_hasher(spec: HashSpec) -> RowHasher:
    """A row-hash function generated for one table: straight-line code, equal to ``diff.hashing.row_hash``.

    The generated source holds only integer positions and category names from ``CANON``; values
    are never part of it.
    """
    for c in spec.categories:
        if c not in CANON:
            raise ValueError(f"unknown category {c!r}")
    lines = ["def row_hash(r):"]
    tokens = []
    for j, (pos, cat, framed) in enumerate(zip(spec.positions, spec.categories, spec.framed, strict=True)):
        lines.append(f"    v{j} = r[{int(pos)}]")
        tokens.append(f"(NULL if v{j} is None else {_token_expr(j, cat, framed)})")
    joined = f" + {SEPARATOR!r} + ".join(tokens) if tokens else "''"
    lines.append(f"    return fb(md5(({joined}).encode('utf-8'), usedforsecurity=False).digest()[:8], 'big') >> 4")
    env: dict[str, Any] = {
        "C": CANON,
        "NULL": NULL_TOKEN,
        "df": _decimal_of_float,
        "fr": _framed,
        "md5": hashlib.md5,
        "fb": int.from_bytes,
    }
    exec(compile("\n".join(lines) + "\n", "<dmig row hash>", "exec"), env)
    return env["row_hash"]


def framed_for(categories: list[str]) -> tuple[bool, ...]:
    return tuple(c in FRAMED for c in categories)


@dataclass
class Accumulator:
    """Per-batch row hashes, summed over whichever rows a (sub-)batch finally writes."""

    spec: HashSpec
    broken: bool = False
    hasher: RowHasher = field(init=False)

    def __post_init__(self) -> None:
        self.hasher = build_hasher(self.spec)

    def hashes(self, src_rows: list[tuple[Any, ...]], skip: set[int] | dict[int, Any]) -> list[int]:
        h = self.hasher
        try:
            if not skip:
                return [h(r) for r in src_rows]
            return [0 if i in skip else h(r) for i, r in enumerate(src_rows)]
        except Exception:  # a value no rule expected: give up the streamed sums, the full diff will check
            self.broken = True
            return [0] * len(src_rows)

    def merged(self, info: dict[str, Any], rows: int, total: int) -> dict[str, Any]:
        """The partition's stored (rows, sum) after adding a committed sub-batch."""
        prev = info.get(INFO_KEY) or {}
        if self.broken:
            return {"spec": "unhashable"}
        if prev and prev.get("spec") != self.spec.fingerprint:
            return {"spec": "mixed"}  # a resume under a different plan: not comparable, the full diff decides
        return {
            "spec": self.spec.fingerprint,
            "rows": int(prev.get("rows", 0)) + rows,
            "sum": str(int(prev.get("sum", "0")) + total),
        }


def partition_totals(infos: list[dict[str, Any]], fingerprint: str) -> tuple[int, int] | None:
    """Sum of every partition's streamed (rows, sum); None unless each partition has one for this plan."""
    rows = total = 0
    for info in infos:
        got = info.get(INFO_KEY)
        if not got or got.get("spec") != fingerprint:
            return None
        rows += int(got["rows"])
        total += int(got["sum"])
    return rows, total
