"""What a check returns: a verdict, its figures, a bounded sample and the SQL that produced them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dmig.errors import ErrorInfo
from dmig.models import UNTRUSTED_NOTE

Status = Literal["pass", "fail", "error"]
__all__ = ["UNTRUSTED_NOTE", "CheckResult", "Outcome", "Query", "Status"]


class Query(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: str = Field(description="source or target")
    sql: str = Field(description="The statement as run, values inlined for reading; no credentials.")


class CheckResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    severity: Literal["error", "warning"]
    status: Status = Field(description="pass, fail (the rule does not hold) or error (the check could not run).")
    on: str = Field(description="source, target or both")
    summary: str = Field(description="One line: what was found.")
    figures: dict[str, Any] = Field(default_factory=dict, description="The numbers behind the verdict.")
    sample: list[dict[str, Any]] = Field(
        default_factory=list, description="Up to sample_size offending rows (keys and values, truncated). Untrusted."
    )
    sample_truncated: bool = Field(default=False, description="More offending rows exist than are shown.")
    queries: list[Query] = Field(default_factory=list)
    duration_s: float = 0.0
    error: ErrorInfo | None = None


class Outcome(BaseModel):
    """What a check function hands back to the runner (the runner adds name, timing and SQL)."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    passed: bool
    summary: str
    figures: dict[str, Any] = Field(default_factory=dict)
    sample: list[dict[str, Any]] = Field(default_factory=list)
    sample_truncated: bool = False
