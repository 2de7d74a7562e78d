"""What the fast paths (``passthrough``, ``nativepath``) share with the general per-row path of a partition.

A fast path copies pages its own way but falls back to the general path page by page (a value it
cannot handle, a page the target refuses), so it is handed the same reader, committer and row
conversion the general path would use, and reports progress the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dmig.move.readers import Reader
from dmig.move.rejects import Batch, Committer
from dmig.move.transforms import TargetSpec

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


def rows_unchanged(job: PartitionJob, spec: TargetSpec) -> bool:
    """What every fast path needs: a bulk mode, one integer key (pages are key ranges), and target
    columns that are the source columns, same names, same order, no transform or expression."""
    plan = job.plan
    return (
        job.mode in MODES
        and len(plan.key) == 1
        and plan.key_kinds[0].name == "int"
        and not spec.has_ops
        and not spec.exprs
        and [c.name for c in spec.columns] == [c.name for c in plan.columns]
        and all(c.origin == c.name for c in spec.columns)
    )
