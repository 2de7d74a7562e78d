"""Base classes for the pydantic models at our boundaries."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Input(BaseModel):
    """Tool input: unknown options are an error (a typo must never fail open)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Output(BaseModel):
    model_config = ConfigDict(extra="forbid")
