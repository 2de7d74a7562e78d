"""Checksum diff of one table across two databases (any pair of SQLite, PostgreSQL, MySQL/MariaDB).

Modelled on data-diff's hashdiff: the key range is cut into segments, each side computes a
(count, exact hash sum) per segment in SQL, in parallel, and only mismatching segments are cut
again, until they are small enough to fetch their (key, row hash) pairs. See ``normalize`` for
the canonical value rules that make equal data hash equal across dialects.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dmig.diff.models import ChangedRow, DiffResult, WhereClause
    from dmig.diff.service import diff_table

__all__ = ["ChangedRow", "DiffResult", "WhereClause", "diff_table"]


def __getattr__(name: str) -> Any:
    """Imported on first use: copy workers need only ``normalize``/``hashing``, not the whole engine."""
    if name == "diff_table":
        from dmig.diff.service import diff_table

        return diff_table
    if name in ("ChangedRow", "DiffResult", "WhereClause"):
        from dmig.diff import models

        return getattr(models, name)
    raise AttributeError(f"module 'dmig.diff' has no attribute {name!r}")
