"""Keyless diff: a table without a usable key compared as a multiset of row hashes.

Without a key there are no ranges to bisect, so rows are bucketed by their own hash instead:
1. both sides' (count, sum) for the whole table: equal means done, with one scan per side;
2. (count, sum) per hash bucket (the top 8 of the 60 hash bits), still one scan per side;
3. for the mismatching buckets only, each side streams ``(hash, copies)`` sorted by hash, and
   the two streams are merged with bounded memory; a hash with more copies on the source is a
   missing row (once per missing copy), more on the target an extra row;
4. one more query per side fetches the canonical values of up to ``limit`` such rows.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dmig.diff.hashing import as_int, sum_sql
from dmig.diff.plan import Plan, SidePlan

BUCKET_SHIFT = 52  # 60-bit hashes -> 256 buckets
_END = object()
_SHIFT = sa.literal_column(str(BUCKET_SHIFT), sa.Integer)  # a literal: PostgreSQL has no bigint >> bigint


@dataclass
class MultisetFound:
    missing: dict[int, int] = field(default_factory=dict)  # hash -> copies missing in the target
    extra: dict[int, int] = field(default_factory=dict)
    missing_count: int = 0
    extra_count: int = 0
    rows_source: int = 0
    rows_target: int = 0
    buckets_checked: int = 0
    totals_equal: bool = False
    complete: bool = True


def _put(out: queue.Queue[Any], item: Any, stop: threading.Event) -> bool:
    """Hand over one item unless the consumer has gone (then never block on a full queue)."""
    while not stop.is_set():
        try:
            out.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def _stream_into(sp: SidePlan, stmt: Any, out: queue.Queue[Any], stop: threading.Event) -> None:
    """Producer: push batches of (hash, copies) into ``out``; errors are passed along, not lost."""

    def work(conn: sa.Connection) -> None:
        try:
            for batch in sp.side.stream(conn, stmt):
                if not _put(out, batch, stop):
                    return
        except BaseException as exc:
            _put(out, exc, stop)
            return
        _put(out, _END, stop)

    sp.side.submit(work)


def _drain(q: queue.Queue[Any]) -> Iterator[tuple[int, int]]:
    while True:
        item = q.get()
        if item is _END:
            return
        if isinstance(item, BaseException):
            raise item
        for h, n in item:
            yield int(h), int(n)


class MultisetDiff:
    def __init__(self, plan: Plan, limit: int) -> None:
        self.plan = plan
        self.limit = limit
        self.found = MultisetFound()

    def run(self) -> None:
        totals = self._both(lambda sp: sp.checksum(None))
        (cs, ss), (ct, st) = ((int(r[0][0]), as_int(r[0][1])) for r in totals)
        self.found.rows_source, self.found.rows_target = cs, ct
        if (cs, ss) == (ct, st):
            self.found.totals_equal = True
            return
        buckets = self._mismatching_buckets()
        self.found.buckets_checked = 256
        if buckets:
            self._merge(buckets)

    def _both(self, make: Any, grouped: bool = False) -> tuple[list[Any], list[Any]]:
        src, tgt = self.plan.src, self.plan.tgt

        def run(sp: SidePlan) -> Any:
            stmt = make(sp)
            if grouped:
                return sp.side.submit(lambda conn: sp.side.execute_grouped(conn, stmt))
            return sp.side.submit(lambda conn: sp.side.execute(conn, stmt))

        fs, ft = run(src), run(tgt)
        return fs.result(), ft.result()

    @staticmethod
    def _bucket(sp: SidePlan) -> sa.ColumnElement[int]:
        return sp.hash_expr().op(">>")(_SHIFT)

    def _bucket_sums(self, sp: SidePlan) -> sa.Select[Any]:
        h = sp.hash_expr()
        bucket = h.op(">>")(_SHIFT).label("b")
        return sp.filtered(sa.select(bucket, sa.func.count(), sum_sql(sp.dialect, h)), None).group_by(bucket)

    def _mismatching_buckets(self) -> list[int]:
        a, b = self._both(self._bucket_sums, grouped=True)
        sa_ = {int(r[0]): (int(r[1]), as_int(r[2])) for r in a}
        sb = {int(r[0]): (int(r[1]), as_int(r[2])) for r in b}
        return sorted(k for k in set(sa_) | set(sb) if sa_.get(k) != sb.get(k))

    def _hash_counts(self, sp: SidePlan, buckets: list[int]) -> sa.Select[Any]:
        h = sp.hash_expr().label("h")
        stmt = sp.filtered(sa.select(h, sa.func.count()), None)
        return stmt.where(self._bucket(sp).in_(buckets)).group_by(h).order_by(h)

    def _merge(self, buckets: list[int]) -> None:
        stop = threading.Event()
        qs: queue.Queue[Any] = queue.Queue(maxsize=4)
        qt: queue.Queue[Any] = queue.Queue(maxsize=4)
        _stream_into(self.plan.src, self._hash_counts(self.plan.src, buckets), qs, stop)
        _stream_into(self.plan.tgt, self._hash_counts(self.plan.tgt, buckets), qt, stop)
        try:
            self._merge_sorted(_drain(qs), _drain(qt))
        finally:
            stop.set()

    def _merge_sorted(self, src: Iterator[tuple[int, int]], tgt: Iterator[tuple[int, int]]) -> None:
        f = self.found
        a, b = next(src, None), next(tgt, None)
        while a is not None or b is not None:
            if f.missing_count + f.extra_count >= max(self.limit, 1):
                f.complete = False
                return
            if b is None or (a is not None and a[0] < b[0]):
                self._note(a[0], a[1], 0)  # type: ignore[index]
                a = next(src, None)
            elif a is None or b[0] < a[0]:
                self._note(b[0], 0, b[1])
                b = next(tgt, None)
            else:
                self._note(a[0], a[1], b[1])
                a, b = next(src, None), next(tgt, None)

    def _note(self, h: int, on_source: int, on_target: int) -> None:
        f = self.found
        if on_source > on_target:
            f.missing[h] = on_source - on_target
            f.missing_count += on_source - on_target
        elif on_target > on_source:
            f.extra[h] = on_target - on_source
            f.extra_count += on_target - on_source

    def samples(self, truncate: Any) -> tuple[list[list[Any]], list[list[Any]]]:
        """Canonical values of the listed rows, one entry per differing copy, at most ``limit`` each."""
        return (
            self._rows(self.plan.src, self.found.missing, truncate),
            self._rows(self.plan.tgt, self.found.extra, truncate),
        )

    def _rows(self, sp: SidePlan, copies: dict[int, int], truncate: Any) -> list[list[Any]]:
        wanted = list(copies)[: self.limit]
        if not wanted:
            return []
        h = sp.hash_expr().label("h")
        stmt = sp.filtered(sa.select(h, *sp.canon_columns()), None).where(sp.hash_expr().in_(wanted))
        rows = sp.side.submit(lambda conn: sp.side.execute(conn, stmt)).result()
        first: dict[int, list[Any]] = {}
        for r in rows:
            first.setdefault(int(r[0]), [truncate(v) for v in r[1:]])
        out: list[list[Any]] = []
        for hv in wanted:
            for _ in range(copies[hv]):
                if len(out) < self.limit and hv in first:
                    out.append(first[hv])
        return out
