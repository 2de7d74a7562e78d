"""One error type for every expected failure.

Tools must answer bad input with a stable, structured error (code + message + details) that
both the MCP server and the CLI can show without a traceback. Anything that is not a
``DmigError`` is a bug and is reported as ``E_INTERNAL`` with its text redacted.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationError

from dmig.redact import redact, redact_obj


class ErrorInfo(BaseModel):
    """The wire form of an error, shared by MCP (as the ToolError text) and the CLI (--json)."""

    code: str = Field(description="Stable machine-readable code, e.g. E_NOT_FOUND.")
    message: str = Field(description="What went wrong and, where possible, what to do about it.")
    details: dict[str, Any] = Field(default_factory=dict)


class DmigError(Exception):
    """An expected failure with a stable code; its text is always redacted before it leaves us."""

    code = "E_DMIG"

    def __init__(self, message: str, *, code: str | None = None, **details: Any) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.message = message
        self.details = details

    def info(self) -> ErrorInfo:
        return ErrorInfo(code=self.code, message=redact(self.message), details=redact_obj(self.details))


class InvalidInput(DmigError):
    code = "E_INVALID_INPUT"


class NotFound(DmigError):
    code = "E_NOT_FOUND"


class Conflict(DmigError):
    """State forbids the action (illegal transition, lock held, gate not met)."""

    code = "E_CONFLICT"


class CorruptFile(DmigError):
    code = "E_CORRUPT_FILE"


class PathOutsideProject(DmigError):
    code = "E_PATH_OUTSIDE_PROJECT"


class ReadOnlyMode(DmigError):
    code = "E_READ_ONLY"


class ConfirmationRequired(DmigError):
    code = "E_CONFIRMATION_REQUIRED"


class DatabaseError(DmigError):
    code = "E_DATABASE"


class ConnectionFailed(DatabaseError):
    code = "E_CONNECTION"


def validation_error(exc: ValidationError) -> ErrorInfo:
    """Field-by-field problems of a bad tool input; the rejected values are not echoed back."""
    problems = [
        {"field": ".".join(str(p) for p in err["loc"]) or "(input)", "problem": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
    return ErrorInfo(code="E_INVALID_INPUT", message="the tool input is not valid", details={"errors": problems})


def internal_error(exc: BaseException) -> ErrorInfo:
    """Describe an unexpected exception without a traceback and without secrets."""
    return ErrorInfo(code="E_INTERNAL", message=redact(f"{type(exc).__name__}: {exc}"))
