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
from dataclasses import dataclass, field
from typing import Any

from dmig.diff.codegen import RowHasher, row_hasher
from dmig.diff.normalize import FRAMED

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


def build_hasher(spec: HashSpec) -> RowHasher:
    """The diff's row hash for this spec's columns of a source row (see ``dmig.diff.codegen``)."""
    return row_hasher(spec.categories, spec.framed, spec.positions)


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
        if self.broken:
            return {"spec": "unhashable"}
        return add_sums(info.get(INFO_KEY), self.spec.fingerprint, rows, total)


def add_sums(previous: dict[str, Any] | None, fingerprint: str, rows: int, total: int) -> dict[str, Any]:
    """A partition's stored (rows, sum) after one more committed batch, for the streamed row hashes and
    the pass-through's byte hashes alike: "mixed" once its batches were hashed under different plans
    (e.g. a resume with another mapping), which the verification then leaves to a full check."""
    prev = previous or {}
    if prev and prev.get("spec") != fingerprint:
        return {"spec": "mixed"}
    return {
        "spec": fingerprint,
        "rows": int(prev.get("rows", 0)) + rows,
        "sum": str(int(prev.get("sum", "0")) + total),
    }


def partition_totals(infos: list[dict[str, Any]], fingerprint: str, key: str = INFO_KEY) -> tuple[int, int] | None:
    """Sum of every partition's (rows, sum) under ``key``; None unless each partition has one for this plan."""
    rows = total = 0
    for info in infos:
        got = info.get(key)
        if not got or got.get("spec") != fingerprint:
            return None
        rows += int(got["rows"])
        total += int(got["sum"])
    return rows, total
