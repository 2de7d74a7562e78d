"""What the fast paths (``passthrough``, ``nativepath``) share with the general per-row path of a partition.

A fast path copies pages its own way but falls back to the general path page by page (a value it
cannot handle, a page the target refuses), so it is handed the same reader, committer and row
conversion the general path would use, and reports progress the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dmig.move.plan import TablePlan
from dmig.move.readers import Reader
from dmig.move.rejects import Batch, Committer
from dmig.move.transforms import TargetSpec
from dmig.move.typemap import Kind
from dmig.move.writers import Writer

if TYPE_CHECKING:
    from dmig.move.worker import PartitionJob

MODES = ("create", "truncate", "append")

ConvertFn = Callable[[list[tuple[Any, ...]]], Batch]
ReportFn = Callable[[str, int, int], None]


@dataclass
class PageContext:
    job: PartitionJob
    reader: Reader
    committer: Committer
    convert: ConvertFn  # source rows -> a Batch for committer.commit (the general path's conversion)
    report: ReportFn  # (table, rows, rejects) progress
    check: Callable[[], None]  # raises when the coordinating process is gone

    def redo(
        self, info_key: str, after: tuple[Any, ...] | None, upto: tuple[Any, ...] | None, final: bool, one_page: bool
    ) -> tuple[int, tuple[Any, ...] | None]:
        """Source rows in (after, upto] through the general path (conversion, bisection, rejects), a page at
        a time (only the first when ``one_page``), for what a fast path cannot do itself. The partition's
        fast-path sums (``info_key``) become "mixed": converted rows have none, so verification checksums.
        Returns (source rows read, the last one's key)."""
        part, committer = self.committer.part, self.committer
        part.info = {
            **part.info,
            "redone_pages": int(part.info.get("redone_pages", 0)) + 1,
            info_key: {"spec": "mixed"},
        }
        size, read, last = self.job.batch_size, 0, None
        while True:
            self.check()
            src_rows = self.reader.page(after, upto, size)
            short = len(src_rows) < size
            rows, rejects = committer.rows_written, committer.rejected
            committer.commit(self.convert(src_rows), short and final)
            self.report(self.job.plan.source_table, committer.rows_written - rows, committer.rejected - rejects)
            read += len(src_rows)
            last = self.reader.key_of(src_rows[-1]) if src_rows else last
            if short or one_page:
                return read, last
            after = last


def rows_unchanged(plan: TablePlan, spec: TargetSpec, mode: str) -> bool:
    """What every fast path needs: a bulk mode, one integer key (pages are key ranges), and target
    columns that are the source columns, same names, same order, no transform or expression."""
    return (
        mode in MODES
        and len(plan.key) == 1
        and plan.key_kinds[0].name == "int"
        and not spec.has_ops
        and not spec.exprs
        and [c.name for c in spec.columns] == [c.name for c in plan.columns]
        and all(c.origin == c.name for c in spec.columns)
    )


def fast_path_expected(plan: TablePlan, spec: TargetSpec, mode: str) -> bool:
    """The coordinator's forecast that the workers will copy this table by a fast path, which hashes rows
    its own way: planning the general path's streamed hashes (both tables reflected) is then wasted. The
    workers still decide (column types, server versions); a table that ends up on the general path
    without streamed hashes is verified by checksum instead, which is correct, only slower."""
    from dmig import native

    if not rows_unchanged(plan, spec, mode) or native.lib() is None:
        return False
    pair = (plan.source_dialect, plan.target_dialect)
    if pair == ("postgresql", "postgresql"):
        return True
    return pair == ("sqlite", "postgresql") and all(_encodable(c.kind) for c in plan.columns)


def _encodable(kind: Kind) -> bool:
    """Kinds whose PostgreSQL target type (``typemap``) the native encoder writes (``nativepath.code_of``)."""
    if kind.name in ("int", "bool", "text", "enum", "bytes", "date"):
        return not (kind.name == "int" and kind.unsigned and (kind.bits or 64) >= 64)
    if kind.name == "string":
        return not kind.fixed  # char(n) pads: not the same bytes back
    if kind.name == "float":
        return (kind.bits or 64) == 64
    if kind.name == "datetime":
        return not kind.tz
    return kind.name == "decimal"


def binary_copy_in(writer: Writer) -> str:
    """The fast paths' load statement: the writer's table and columns, binary COPY."""
    return f"COPY {writer.qtable} ({', '.join(writer.qcols)}) FROM STDIN (FORMAT BINARY)"
