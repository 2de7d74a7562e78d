"""Keyed diff: checksum segments on both sides at once, bisect the ones that differ.

1. First level. Integer keys: the key range is cut into buckets of about ``bucket_rows`` keys and
   one grouped query per side (``GROUP BY (key - lo) / width``, at most 4096 buckets per query)
   returns every bucket's (count, exact hash sum): a single scan, however many segments. Other
   keys (text, dates, composite): boundaries are sampled from real key values and each segment
   gets its own (count, sum) query. Both sides run at the same time on their own threads.
2. Equal pairs are done. A pair where one side is empty is settled from the counts alone (all
   rows missing, or all extra; keys fetched only up to the limit). Pairs where both sides hold at
   most ``download_threshold`` rows have their (key, row hash) pairs fetched, many segments per
   query, and compared in Python. Any other pair is cut into ``bisection_factor`` pieces
   (arithmetic for integer keys, sampled otherwise) whose checksums are computed in turn.
3. The work list is depth first and processed in small batches, so memory stays bounded and the
   search stops as soon as ``limit`` differences are known.

Keys found only on one side are held until the end and matched across segments: when two sides
order text keys slightly differently (a pad-space collation), a row can sit in different
segments on each side, and would otherwise be reported both missing and extra.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from dmig.diff.hashing import as_int
from dmig.diff.plan import Plan, SidePlan
from dmig.diff.segments import Segment, cut_at, split_int
from dmig.errors import InvalidInput

Progress = Callable[[float, float | None, str | None], None]
CKey = tuple[Any, ...]
Checksum = tuple[int, int]
WorkItem = tuple[Segment, Checksum, Checksum]
BUCKETS_PER_QUERY = 4096  # bounds one grouped query's result size and running time
QUERY_WINDOW = 4  # grouped queries in flight per side
LEAF_ROWS_PER_QUERY = 16_384  # small segments fetched together, up to this many rows
LEAF_RANGES_PER_QUERY = 64


@dataclass(frozen=True)
class Options:
    segments: int | None = None
    segment_rows: int = 16_384  # first-level segment size for sampled (non-integer) keys
    bucket_rows: int = 256  # first-level bucket size for integer keys (one grouped pass computes them all)
    bisection_factor: int = 8
    download_threshold: int = 2_048
    limit: int = 100
    batch: int = 32


@dataclass
class Found:
    """Differences found so far, keyed by canonical key text (so sides of any dialect match)."""

    missing: dict[CKey, tuple[Any, ...]] = field(default_factory=dict)
    extra: dict[CKey, tuple[Any, ...]] = field(default_factory=dict)
    changed: dict[CKey, tuple[tuple[Any, ...], tuple[Any, ...]]] = field(default_factory=dict)
    hashes: dict[CKey, int] = field(default_factory=dict)
    unlisted_missing: int = 0
    unlisted_extra: int = 0

    @property
    def total(self) -> int:
        return len(self.missing) + len(self.extra) + len(self.changed) + self.unlisted_missing + self.unlisted_extra

    def add_missing(self, ck: CKey, raw: tuple[Any, ...], h: int | None) -> None:
        self._add(ck, raw, h, self.missing, self.extra, on_source=True)

    def add_extra(self, ck: CKey, raw: tuple[Any, ...], h: int | None) -> None:
        self._add(ck, raw, h, self.extra, self.missing, on_source=False)

    def _add(self, ck: CKey, raw: tuple[Any, ...], h: int | None, mine: dict, other: dict, on_source: bool) -> None:
        """Record a key seen on one side only, unless the other side's copy turned up in another segment."""
        if ck in other:
            raw_other = other.pop(ck)
            if h is None or self.hashes.pop(ck, None) != h:
                self.changed[ck] = (raw, raw_other) if on_source else (raw_other, raw)
            return
        mine[ck] = raw
        if h is not None:
            self.hashes[ck] = h


@dataclass
class Counters:
    rows_source: int = 0
    rows_target: int = 0
    segments_initial: int = 0
    segments_checked: int = 0
    max_depth: int = 0
    leaf_downloads: int = 0
    settled_rows: int = 0


class KeyedDiff:
    def __init__(self, plan: Plan, opts: Options, progress: Progress) -> None:
        self.plan = plan
        self.opts = opts
        self.progress = progress
        self.found = Found()
        self.counters = Counters()
        self.complete = True
        self._last_progress = 0.0
        self._nkey = len(plan.key)

    # -- the search -----------------------------------------------------------------------------

    def run(self) -> None:
        self._check_null_keys()
        work: deque[WorkItem] = deque(self._int_buckets() if self.plan.int_keys else self._top_ranges())
        self._report_progress(force=True)
        while work:
            if self._enough():
                self.complete = False
                return
            batch = [work.popleft() for _ in range(min(self.opts.batch, len(work)))]
            children = self._resolve(batch)
            for item in reversed(children):
                work.appendleft(item)
            self._report_progress()

    def _first_level(self, pairs: list[tuple[Segment, Checksum, Checksum]]) -> list[WorkItem]:
        """Count rows per side, settle equal segments, keep the others as work."""
        out = []
        for seg, a, b in pairs:
            self.counters.rows_source += a[0]
            self.counters.rows_target += b[0]
            if a == b:
                self.counters.settled_rows += a[0]
            else:
                out.append((seg, a, b))
        return out

    def _top_ranges(self) -> list[WorkItem]:
        top = self._top_segments()
        self.counters.segments_initial = len(top)
        results = self._checksums(top)
        return self._first_level([(seg, a, b) for seg, (a, b) in zip(top, results, strict=True)])

    def _int_buckets(self) -> list[WorkItem]:
        """Integer keys: the whole first level in grouped passes of at most BUCKETS_PER_QUERY buckets."""
        (a,), (b,) = self._both(lambda sp: sp.bounds())
        lows = [int(v) for v in (a[0], b[0]) if v is not None]
        highs = [int(v) for v in (a[1], b[1]) if v is not None]
        if not lows:
            self.counters.segments_initial = 1
            return []
        lo, hi = min(lows), max(highs) + 1
        est = max(self.plan.src.side.estimated_rows or 0, self.plan.tgt.side.estimated_rows or 0) or (hi - lo)
        per_bucket = min(self.opts.bucket_rows, self.opts.download_threshold)
        buckets = self.opts.segments or max(1, math.ceil(est / per_bucket))
        width = max(1, math.ceil((hi - lo) / buckets))
        buckets = math.ceil((hi - lo) / width)
        self.counters.segments_initial = buckets
        span = width * BUCKETS_PER_QUERY
        windows = [Segment((q,), (min(q + span, hi),), 0) for q in range(lo, hi, span)]
        out: list[WorkItem] = []
        for start in range(0, len(windows), QUERY_WINDOW):
            chunk = windows[start : start + QUERY_WINDOW]
            fs = [self._submit_grouped(self.plan.src, self.plan.src.bucket_sums(lo, width, w)) for w in chunk]
            ft = [self._submit_grouped(self.plan.tgt, self.plan.tgt.bucket_sums(lo, width, w)) for w in chunk]
            for f_src, f_tgt in zip(fs, ft, strict=True):
                by_src = {int(r[0]): (int(r[1]), as_int(r[2])) for r in f_src.result()}
                by_tgt = {int(r[0]): (int(r[1]), as_int(r[2])) for r in f_tgt.result()}
                pairs = []
                for bucket in sorted(set(by_src) | set(by_tgt)):
                    seg = Segment((lo + bucket * width,), (min(lo + (bucket + 1) * width, hi),), 0)
                    pairs.append((seg, by_src.get(bucket, (0, 0)), by_tgt.get(bucket, (0, 0))))
                out.extend(self._first_level(pairs))
                self.counters.segments_checked += len(pairs)
            self._report_progress()
        return out

    def _enough(self) -> bool:
        return self.found.total >= max(self.opts.limit, 1)

    def _resolve(self, batch: list[tuple[Segment, tuple[int, int], tuple[int, int]]]) -> list[Any]:
        leaves, one_sided, to_split = [], [], []
        for seg, a, b in batch:
            self.counters.max_depth = max(self.counters.max_depth, seg.depth)
            if (a[0] == 0 or b[0] == 0) and self.plan.exact_order:
                one_sided.append((seg, a, b))
            elif max(a[0], b[0]) <= self.opts.download_threshold:
                leaves.append((seg, a, b))
            else:
                to_split.append((seg, a, b))
        self._settle_one_sided(one_sided)
        self._download(leaves)
        if not to_split or self._enough():
            if to_split:
                self.complete = False
            return []
        pieces = self._split(to_split)
        stuck = [item for item, children in zip(to_split, pieces, strict=True) if children == [item[0]]]
        if stuck:  # one key value holds more rows than the threshold: only a non-unique key does that
            self._download(stuck)
        flat = [
            child
            for (seg, _a, _b), children in zip(to_split, pieces, strict=True)
            if children != [seg]
            for child in children
        ]
        sums = self._checksums(flat)
        out = []
        for child, (a, b) in zip(flat, sums, strict=True):
            if a == b:
                self.counters.settled_rows += a[0]
            else:
                out.append((child, a, b))
        return out

    # -- queries on both sides ------------------------------------------------------------------

    def _both(self, make_src: Callable[[SidePlan], Any], make_tgt: Callable[[SidePlan], Any] | None = None) -> Any:
        """Run one statement per side concurrently and return (source rows, target rows)."""
        make_tgt = make_tgt or make_src
        fs = self._submit(self.plan.src, make_src(self.plan.src))
        ft = self._submit(self.plan.tgt, make_tgt(self.plan.tgt))
        return fs.result(), ft.result()

    @staticmethod
    def _submit(sp: SidePlan, stmt: Any) -> Future[list[Any]]:
        return sp.side.submit(lambda conn: sp.side.execute(conn, stmt))

    @staticmethod
    def _submit_grouped(sp: SidePlan, stmt: Any) -> Future[list[Any]]:
        return sp.side.submit(lambda conn: sp.side.execute_grouped(conn, stmt))

    def _checksums(self, segs: list[Segment]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
        src, tgt = self.plan.src, self.plan.tgt
        fs = [self._submit(src, src.checksum(s)) for s in segs]
        ft = [self._submit(tgt, tgt.checksum(s)) for s in segs]
        self.counters.segments_checked += len(segs)
        out = []
        for a, b in zip(fs, ft, strict=True):
            ra, rb = a.result()[0], b.result()[0]
            out.append(((int(ra[0]), as_int(ra[1])), (int(rb[0]), as_int(rb[1]))))
        return out

    def _check_null_keys(self) -> None:
        if not self.plan.check_null_keys:
            return
        a, b = self._both(lambda sp: sp.null_keys())
        for label, rows in (("source", a), ("target", b)):
            if int(rows[0][0]):
                raise InvalidInput(
                    f"the key ({', '.join(self.plan.key)}) is NULL in {int(rows[0][0])} row(s) on the {label}:"
                    " choose a key without NULLs",
                    side=label,
                )

    # -- cutting --------------------------------------------------------------------------------

    def _top_segments(self) -> list[Segment]:
        src, tgt = self.plan.src, self.plan.tgt
        est = max(src.side.estimated_rows or 0, tgt.side.estimated_rows or 0)
        sampler = src
        if not est:
            (a,), (b,) = self._both(lambda sp: sp.count())
            est = max(int(a[0]), int(b[0]))
            sampler = src if int(a[0]) >= int(b[0]) else tgt
        elif (tgt.side.estimated_rows or 0) > (src.side.estimated_rows or 0):
            sampler = tgt
        n = self._segment_count(est)
        whole = Segment(None, None, -1)
        if n <= 1 or est == 0:
            return [Segment(None, None, 0)]
        bounds = self._sample(sampler, whole, max(1, math.ceil(est / n)))
        return [Segment(s.lo, s.hi, 0) for s in cut_at(whole, bounds)]

    def _segment_count(self, rows: int) -> int:
        if self.opts.segments:
            return self.opts.segments
        return max(1, min(4096, math.ceil(rows / self.opts.segment_rows)))

    @staticmethod
    def _sample(sp: SidePlan, seg: Segment, step: int) -> list[tuple[Any, ...]]:
        stmt = sp.sample(seg, step)
        return [tuple(r) for r in sp.side.submit(lambda conn: sp.side.execute(conn, stmt)).result()]

    def _split(self, items: list[tuple[Segment, tuple[int, int], tuple[int, int]]]) -> list[list[Segment]]:
        factor = self.opts.bisection_factor
        if self.plan.int_keys:
            return [split_int(seg, factor) for seg, _a, _b in items]
        futures = []
        for seg, a, b in items:
            sp = self.plan.src if a[0] >= b[0] else self.plan.tgt
            step = max(1, math.ceil(max(a[0], b[0]) / factor))
            stmt = sp.sample(seg, step)
            futures.append((seg, sp.side.submit(lambda conn, sp=sp, stmt=stmt: sp.side.execute(conn, stmt))))
        return [cut_at(seg, [tuple(r) for r in f.result()]) for seg, f in futures]

    # -- settling -------------------------------------------------------------------------------

    def _remaining(self) -> int:
        return max(0, self.opts.limit - self.found.total)

    def _settle_one_sided(self, items: list[tuple[Segment, tuple[int, int], tuple[int, int]]]) -> None:
        """All rows of the non-empty side differ: count them, list keys only while the limit allows."""
        for seg, a, b in items:
            sp, count = (self.plan.src, a[0]) if b[0] == 0 else (self.plan.tgt, b[0])
            take = min(count, self._remaining())
            rows = self._fetch(sp, sp.keys(seg, take)) if take else []
            for r in rows:
                ck, raw = tuple(r[: self._nkey]), tuple(r[self._nkey :])
                (self.found.add_missing if sp is self.plan.src else self.found.add_extra)(ck, raw, None)
            if sp is self.plan.src:
                self.found.unlisted_missing += count - len(rows)
            else:
                self.found.unlisted_extra += count - len(rows)
            self.counters.settled_rows += count

    @staticmethod
    def _fetch(sp: SidePlan, stmt: Any) -> list[Any]:
        return sp.side.submit(lambda conn: sp.side.execute(conn, stmt)).result()

    def _download(self, items: list[WorkItem]) -> None:
        """Fetch small mismatching segments, several per query, both sides at once, and compare rows."""
        groups: list[list[WorkItem]] = [[]]
        budget = 0
        for item in items:
            rows = max(item[1][0], item[2][0])
            if groups[-1] and (budget + rows > LEAF_ROWS_PER_QUERY or len(groups[-1]) >= LEAF_RANGES_PER_QUERY):
                groups.append([])
                budget = 0
            groups[-1].append(item)
            budget += rows
        src, tgt = self.plan.src, self.plan.tgt
        pending = []
        for group in groups:
            if group:
                segs = [seg for seg, _a, _b in group]
                pending.append((group, self._submit(src, src.leaves(segs)), self._submit(tgt, tgt.leaves(segs))))
        for group, f_src, f_tgt in pending:
            self._compare_leaf(self._index(f_src.result(), "source"), self._index(f_tgt.result(), "target"))
            self.counters.leaf_downloads += len(group)
            self.counters.settled_rows += sum(max(a[0], b[0]) for _seg, a, b in group)

    def _index(self, rows: list[Any], label: str) -> dict[CKey, tuple[tuple[Any, ...], int]]:
        n = self._nkey
        out: dict[CKey, tuple[tuple[Any, ...], int]] = {}
        for r in rows:
            ck = tuple(r[:n])
            if ck in out:
                raise InvalidInput(
                    f"the key ({', '.join(self.plan.key)}) is not unique on the {label}: {list(ck)!r} appears twice;"
                    " choose a unique key with `key`",
                    side=label,
                )
            out[ck] = (tuple(r[n : 2 * n]), int(r[2 * n]))
        return out

    def _compare_leaf(self, src: dict[CKey, Any], tgt: dict[CKey, Any]) -> None:
        for ck, (raw, h) in src.items():
            other = tgt.get(ck)
            if other is None:
                self.found.add_missing(ck, raw, h)
            elif other[1] != h:
                self.found.changed[ck] = (raw, other[0])
        for ck, (raw, h) in tgt.items():
            if ck not in src:
                self.found.add_extra(ck, raw, h)

    def _report_progress(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < 0.5:
            return
        self._last_progress = now
        total = max(self.counters.rows_source, self.counters.rows_target) or None
        self.progress(
            float(min(self.counters.settled_rows, total or self.counters.settled_rows)),
            float(total) if total else None,
            f"{self.counters.segments_checked} segments checked, {self.found.total} difference(s) so far",
        )
