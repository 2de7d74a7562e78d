"""Rejected rows: batch bisection, the per-table limit, and the JSON Lines reject file.

A batch the target refuses is split in two and each half retried in its own transaction, down
to the single row to blame; that row is recorded (in ``dmig_rejects``, same transaction as the
checkpoint that moves past it) and the copy goes on. The cost is about log2(batch) extra round
trips per bad row, and good rows are never lost or duplicated because every sub-batch commits
with its own checkpoint. Beyond ``reject_limit`` rows per table the table fails with a clear
error: a flood of rejects means a mapping problem, not a few dirty rows.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dmig.errors import DmigError
from dmig.fsutil import atomic_write_text
from dmig.move.checkpoints import PartState, Store, encode_key
from dmig.move.streamhash import INFO_KEY, Accumulator
from dmig.move.values import jsonable
from dmig.move.writers import Writer, is_data_error
from dmig.redact import redact

SAMPLE_EVERY = 64


class RejectLimitExceeded(DmigError):
    code = "E_REJECT_LIMIT"


class PartitionLost(DmigError):
    """Another process advanced this partition (e.g. a worker of a killed run still finishing)."""

    code = "E_CONFLICT"


def error_text(exc: BaseException) -> str:
    """One line, no credentials, bounded: what the reject file keeps of a database error."""
    text = str(exc).strip() or type(exc).__name__
    return redact(text.splitlines()[0])[:500]


@dataclass
class Batch:
    """One page: source rows, their target rows (None where conversion failed) and per-row notes."""

    src: list[tuple[Any, ...]]
    rows: list[tuple[Any, ...] | None]
    errors: dict[int, str] = field(default_factory=dict)
    warns: dict[int, list[str]] = field(default_factory=dict)
    hashes: list[int] | None = None  # streamed row hashes of ``src`` (see dmig.move.streamhash)


def approx_bytes(rows: list[tuple[Any, ...]]) -> int:
    """Payload size from a sample of rows (text and binary lengths, 8 bytes for other values)."""
    if not rows:
        return 0
    sample = rows[::SAMPLE_EVERY]
    size = 0
    for row in sample:
        for v in row:
            size += len(v) if isinstance(v, str | bytes) else 0 if v is None else 8
    return size * len(rows) // len(sample)


class Committer:
    """Commits batches of one partition: checkpoint first (locks and guards), rows, rejects, commit."""

    def __init__(
        self,
        writer: Writer,
        store: Store,
        part: PartState,
        key_of: Callable[[tuple[Any, ...]], tuple[Any, ...]],
        source_columns: list[str],
        reject_limit: int,
        hashing: Accumulator | None = None,
    ) -> None:
        self.writer, self.store, self.part = writer, store, part
        self.key_of, self.source_columns, self.reject_limit = key_of, source_columns, reject_limit
        self.hashing = hashing
        self.rows_written = 0
        self.rejected = 0

    def commit(self, batch: Batch, final: bool) -> None:
        if self.hashing is not None and batch.hashes is None:
            batch.hashes = self.hashing.hashes(batch.src, batch.errors)
        if batch.src:
            self._range(batch, 0, len(batch.src), final)
        elif final:
            self._attempt(batch, 0, 0, True)

    def _range(self, batch: Batch, lo: int, hi: int, final: bool) -> None:
        try:
            self._attempt(batch, lo, hi, final)
        except Exception as exc:
            if not is_data_error(exc, self.writer.raw.name):
                raise
            good = [i for i in range(lo, hi) if i not in batch.errors]
            if not good:
                raise
            if len(good) == 1:
                batch.errors[good[0]] = error_text(exc)
                self._attempt(batch, lo, hi, final)
                return
            mid = good[len(good) // 2]
            self._range(batch, lo, mid, False)
            self._range(batch, mid, hi, final)

    def _attempt(self, batch: Batch, lo: int, hi: int, final: bool) -> None:
        rows = [r for i, r in enumerate(batch.rows[lo:hi], lo) if i not in batch.errors]
        rejected = [i for i in range(lo, hi) if i in batch.errors]
        part = self.part
        info = dict(part.info)
        warnings = dict(info.get("warnings") or {})
        for i in range(lo, hi):
            for col in batch.warns.get(i, ()):
                warnings[col] = warnings.get(col, 0) + 1
        info["warnings"] = warnings
        if self.hashing is not None and batch.hashes is not None:
            written = [i for i in range(lo, hi) if i not in batch.errors]
            info[INFO_KEY] = self.hashing.merged(info, len(written), sum(batch.hashes[i] for i in written))
        last_key = encode_key(self.key_of(batch.src[hi - 1])) if hi > lo else part.last_key
        nbytes = approx_bytes(rows)  # type: ignore[arg-type]
        raw = self.writer.raw
        self.writer.begin()
        try:
            if rejected and self.store.table_rejects(raw, part.table) + len(rejected) > self.reject_limit:
                raise RejectLimitExceeded(
                    f"table {part.table}: more than {self.reject_limit} rejected rows (reject_limit); "
                    f"last error: {batch.errors[rejected[-1]]}",
                    table=part.table,
                    reject_limit=self.reject_limit,
                )
            staged = PartState(**{**part.__dict__, "info": info})
            if not self.store.advance(raw, staged, last_key, len(rows), nbytes, len(rejected), final):
                raise PartitionLost(f"partition {part.part} of {part.table} was advanced by another process")
            self.writer.write(rows)  # type: ignore[arg-type]
            self.store.add_rejects(
                raw,
                part,
                [
                    (encode_key(self.key_of(batch.src[i])), self._row_json(batch.src[i]), batch.errors[i])
                    for i in rejected
                ],
            )
            self.writer.commit()
        except BaseException:
            self.writer.rollback()
            raise
        self.record(info, last_key, len(rows), nbytes, final, len(rejected))

    def record(
        self, info: dict[str, Any], last_key: str | None, rows: int, nbytes: int, final: bool, rejects: int = 0
    ) -> None:
        """The in-memory partition after a page committed with one checkpoint advance (here or by a fast path)."""
        part = self.part
        part.info = info
        part.last_key = last_key
        part.rows += rows
        part.bytes += nbytes
        part.rejects += rejects
        part.version += 1
        part.state = "done" if final else "loading"
        self.rows_written += rows
        self.rejected += rejects

    def _row_json(self, src: tuple[Any, ...]) -> str:
        row = {name: jsonable(v) for name, v in zip(self.source_columns, src, strict=False)}
        return json.dumps(row, ensure_ascii=False, default=str)


def write_reject_file(path: Path, run_id: str, rejects: list[dict[str, Any]]) -> bool:
    """Export the run's rejects as JSON Lines (atomically); no rejects, no file. True if written."""
    if not rejects:
        if path.exists():
            path.unlink()
        return False
    lines = []
    for r in rejects:
        lines.append(
            json.dumps(
                {
                    "run": run_id,
                    "table": r["table_name"],
                    "partition": r["part"],
                    "key": json.loads(r["key_json"]) if r["key_json"] else None,
                    "row": json.loads(r["row_json"]) if r["row_json"] else None,
                    "error": redact(r["error"] or ""),
                    "at": r["created_at"],
                },
                ensure_ascii=False,
            )
        )
    atomic_write_text(path, "\n".join(lines) + "\n")
    return True
