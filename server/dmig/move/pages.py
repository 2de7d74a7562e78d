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
