"""What a workload run reports: latency percentiles per operation class and per segment, failures by class."""

from __future__ import annotations

from pydantic import BaseModel, Field

from dmig.workload.histogram import LatencyHistogram


class OpStats(BaseModel):
    op: str = Field(description="Operation class (old_point_read, new_update, ...), or 'all'.")
    count: int = Field(description="Requests issued (successful + failed).")
    failed: int = Field(description="Requests that raised or returned a wrong result.")
    p50_ms: float | None = Field(default=None, description="Median latency (ms), measured from the scheduled start.")
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    service_p99_ms: float | None = Field(
        default=None,
        description="p99 of pure service time (send to result), without the wait of a request started late "
        "because its thread was still blocked (the difference shows coordinated omission).",
    )


class ErrorClass(BaseModel):
    op: str
    error: str = Field(description="Exception class (driver class + SQLSTATE/errno), or WrongResult.")
    count: int
    sample: str = Field(description="First message seen (credentials masked).")


class SegmentStats(BaseModel):
    segment: str = Field(description="Label set by Workload.mark() while these requests ran (e.g. backfill).")
    seconds: float
    overall: OpStats
    by_op: list[OpStats]


class PhaseChange(BaseModel):
    at_s: float = Field(description="Seconds since the workload started.")
    phase: str
    source: str = Field(description="catalog (seen by the schema watcher) or told (set by the caller).")


class OwnRows(BaseModel):
    key_start: int = Field(description="First key of the workload's own rows (key_start + thread + n*threads).")
    inserted: int
    deleted: int = 0


class WorkloadReport(BaseModel):
    dialect: str
    table: str
    threads: int
    target_ops_per_s: float | None = Field(description="Rate limit over all threads; None: as fast as possible.")
    seconds: float
    ops: int
    ops_per_s: float
    failed: int = Field(description="Failed requests of every class: the zero-downtime goal is 0.")
    ok: bool = Field(description="True when no request failed.")
    overall: OpStats
    by_op: list[OpStats]
    segments: list[SegmentStats] = Field(default_factory=list)
    errors: list[ErrorClass] = Field(default_factory=list)
    phases: list[PhaseChange] = Field(default_factory=list)
    own_rows: OwnRows
    late_resets: int = Field(
        default=0, description="Times a thread fell over max_lag_s behind the schedule and skipped ahead."
    )
    verified_rows: int = Field(description="Rows of the table snapshotted at start whose reads were verified.")
    watcher_errors: int = 0


def stats(op: str, latency: LatencyHistogram, service: LatencyHistogram, failed: int) -> OpStats:
    return OpStats(
        op=op,
        count=latency.count,
        failed=failed,
        p50_ms=latency.percentile_ms(0.50),
        p95_ms=latency.percentile_ms(0.95),
        p99_ms=latency.percentile_ms(0.99),
        max_ms=round(latency.max_us / 1000, 3) if latency.max_us is not None else None,
        mean_ms=latency.mean_ms(),
        service_p99_ms=service.percentile_ms(0.99),
    )
