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


class UnreadableFile(DmigError):
    """A path names something that cannot be read or written as the tool needs (a folder, a file where
    a folder must be, a file that is not a database)."""

    code = "E_UNREADABLE_FILE"


# Driver messages that mean "the name you gave does not exist" (PostgreSQL, MariaDB/MySQL, SQLite).
_MISSING = ("does not exist", "no such table", "no such column", "unknown column", "unknown database",
            "unknown table", "doesn't exist", "undefinedtable", "undefinedcolumn")  # fmt: skip
# ... or "the name you gave cannot be a name here" (NUL bytes, length, encoding).
_BAD_NAME = ("null character", "nul (0x00)", "incorrect table name", "incorrect database name",
             "incorrect column name", "invalid utf8", "identifier name", "too long", "syntax")  # fmt: skip
MAX_DRIVER_TEXT = 300


def driver_text(exc: BaseException) -> str:
    """The driver's own first line, redacted and bounded; never SQLAlchemy's ``[SQL: ...]`` echo."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return redact(first.split(" [SQL: ")[0])[:MAX_DRIVER_TEXT]


def database_error(exc: BaseException, what: str, *, quote_driver: bool = True, **details: Any) -> DmigError:
    """A database's refusal of one of our statements as a specific error, without the statement.

    ``what`` says what we were doing ("workload: reading the key range of users"). A name that does
    not exist is E_NOT_FOUND, a name the server cannot take (NUL byte, too long, bad encoding) is
    E_INVALID_INPUT, anything else E_DATABASE; the message carries the driver's first line only, or
    nothing of it with ``quote_driver=False`` (where a server's text could carry data, as a probe's can).
    """
    first = driver_text(exc)
    low = f"{type(getattr(exc, 'orig', None) or exc).__name__} {first}".lower()
    if any(s in low for s in _MISSING):
        cls: type[DmigError] = NotFound
        why = "it does not exist"
    elif any(s in low for s in _BAD_NAME):
        cls, why = InvalidInput, "the server cannot take that name"
    else:
        cls, why = DatabaseError, "the server refused the statement"
    return cls(f"{what}: {first if quote_driver else why}", **details)


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
