"""A latency histogram in the spirit of HdrHistogram: fixed memory, mergeable, ~1% relative error.

A rehearsal can run for hours at thousands of operations per second; keeping every sample would
grow without bound and sorting them at the end would stall the report. Values (in microseconds)
fall into log-linear buckets: below ``2**SUB_BITS`` µs each microsecond has its own bucket, above
it every power of two is split into ``2**SUB_BITS`` equal sub-buckets, so a bucket's width is at
most 1/128 of its value. Percentiles come back as the bucket's midpoint (exact below 128 µs);
min, max, count and mean are exact. Each client thread fills its own histogram (no lock on the
hot path) and the report merges them.
"""

from __future__ import annotations

from collections import Counter

SUB_BITS = 7
SUB = 1 << SUB_BITS


def bucket_of(micros: int) -> int:
    """Bucket index of a non-negative microsecond value (monotonic in the value)."""
    if micros < SUB:
        return micros
    exp = micros.bit_length() - SUB_BITS  # >= 1
    return exp * SUB + ((micros >> (exp - 1)) - SUB)


def bucket_bounds(index: int) -> tuple[int, int]:
    """[low, high) microseconds covered by bucket ``index``."""
    if index < SUB:
        return index, index + 1
    exp, sub = divmod(index, SUB)
    width = 1 << (exp - 1)
    low = (SUB + sub) << (exp - 1)
    return low, low + width


class LatencyHistogram:
    """Counts of latencies by bucket plus exact count/sum/min/max. Not thread-safe: one per thread."""

    __slots__ = ("count", "counts", "max_us", "min_us", "total_us")

    def __init__(self) -> None:
        self.counts: Counter[int] = Counter()
        self.count = 0
        self.total_us = 0
        self.min_us: int | None = None
        self.max_us: int | None = None

    def record(self, seconds: float) -> None:
        us = max(0, int(seconds * 1_000_000))
        self.counts[bucket_of(us)] += 1
        self.count += 1
        self.total_us += us
        self.min_us = us if self.min_us is None or us < self.min_us else self.min_us
        self.max_us = us if self.max_us is None or us > self.max_us else self.max_us

    def merge(self, other: LatencyHistogram) -> LatencyHistogram:
        self.counts.update(other.counts)
        self.count += other.count
        self.total_us += other.total_us
        for attr, pick in (("min_us", min), ("max_us", max)):
            mine, theirs = getattr(self, attr), getattr(other, attr)
            setattr(self, attr, theirs if mine is None else mine if theirs is None else pick(mine, theirs))
        return self

    def percentile_ms(self, q: float) -> float | None:
        """The value below which a fraction ``q`` of the samples fall (nearest rank), in milliseconds."""
        if not self.count:
            return None
        rank = max(1, min(self.count, int(q * self.count + 0.999999)))
        if rank == self.count:
            return round((self.max_us or 0) / 1000, 3)  # the top rank is the exact maximum
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                low, high = bucket_bounds(index)
                mid = low if high - low == 1 else (low + high) / 2
                # Never report beyond the exact extremes (the top bucket may be wider than what it holds).
                mid = min(max(mid, self.min_us or 0), self.max_us or mid)
                return round(mid / 1000, 3)
        return round((self.max_us or 0) / 1000, 3)

    def mean_ms(self) -> float | None:
        return round(self.total_us / self.count / 1000, 3) if self.count else None
