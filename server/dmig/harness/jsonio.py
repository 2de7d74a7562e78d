"""Read, validate and rewrite the shared JSON files without losing anything we do not know.

Other AgileFlow agents write these files too, so a rewrite keeps every unknown field and the
key order, and reuses the file's own indentation so that a one-field change is a one-line diff.
Validation against the JSON Schemas happens on read (a corrupt file is reported, never
"repaired") and again before write (we never produce a file another agent cannot read).
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from dmig import fsutil, safeload
from dmig.assets import schema_path
from dmig.errors import CorruptFile, InvalidInput, NotFound
from dmig.redact import redact_obj

DEFAULT_INDENT: int | str = 2
_INDENT = re.compile(r"^\{\s*\n([ \t]+)\S")


@functools.cache
def validator(schema_name: str) -> Draft202012Validator:
    schema = json.loads(schema_path(schema_name).read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema_problems(data: Any, schema_name: str, limit: int = 5) -> list[str]:
    """Human-readable schema violations, each naming where in the document it is."""
    errors = sorted(validator(schema_name).iter_errors(data), key=lambda e: list(e.absolute_path))
    out = []
    for err in errors[:limit]:
        where = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        out.append(f"{where}: {err.message[:200]}")
    return out


def detect_indent(text: str) -> int | str | None:
    """The indent of the first nested line; None for a one-line (compact) file."""
    stripped = text.strip()
    if stripped and "\n" not in stripped:
        return None
    match = _INDENT.match(stripped)
    if not match:
        return DEFAULT_INDENT
    unit = match.group(1)
    return unit if "\t" in unit else len(unit)


def dumps(data: Any, indent: int | str | None = DEFAULT_INDENT) -> str:
    return json.dumps(data, indent=indent, ensure_ascii=False) + "\n"


@dataclass
class JsonDoc:
    """A loaded document plus what we need to write it back the way it was written."""

    path: Path
    data: dict[str, Any]
    indent: int | str | None = DEFAULT_INDENT
    existed: bool = True
    loaded: str = field(default="", repr=False)


def load(path: Path, schema_name: str, *, label: str) -> JsonDoc | None:
    """None when the file does not exist; CorruptFile when it is not valid JSON or fails the schema."""
    try:
        raw = safeload.read_bytes(path, "project_json", shown=str(path))
    except FileNotFoundError:
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFile(f"{label} is not UTF-8 text: {exc.reason}", path=str(path)) from None
    try:
        data = safeload.parse_json(text, "project_json", shown=str(path))
    except json.JSONDecodeError as exc:
        raise CorruptFile(
            f"{label} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); it was left untouched",
            path=str(path),
            line=exc.lineno,
            column=exc.colno,
        ) from None
    if not isinstance(data, dict):
        raise CorruptFile(f"{label} must hold a JSON object, found {type(data).__name__}", path=str(path))
    problems = schema_problems(data, schema_name)
    if problems:
        raise CorruptFile(
            f"{label} does not match {schema_name}: {problems[0]}; it was left untouched",
            path=str(path),
            problems=problems,
        )
    indent = detect_indent(text)
    return JsonDoc(path=path, data=data, indent=indent, loaded=dumps(data, indent))


def save(doc: JsonDoc, schema_name: str, *, label: str) -> bool:
    """Mask credentials, validate, then replace atomically; False (and no write) when nothing changed.

    Masking the object (not the JSON text) keeps the mask inside strings whatever JSON escapes.
    """
    doc.data = redact_obj(doc.data)
    problems = schema_problems(doc.data, schema_name)
    if problems:
        raise InvalidInput(f"the change would make {label} invalid: {problems[0]}", problems=problems)
    text = dumps(doc.data, doc.indent)
    if doc.existed and text == doc.loaded:
        return False  # unchanged content: leave the bytes exactly as the other writer left them
    fsutil.atomic_write_text(doc.path, text)
    doc.loaded, doc.existed = text, True
    return True


@contextlib.contextmanager
def editing(path: Path, schema_name: str, *, label: str, default: dict[str, Any] | None = None) -> Iterator[JsonDoc]:
    """Hold the file's lock across read-modify-write; write only if the block finishes without error.

    With ``default`` a missing file starts from that content; without it a missing file is an error.
    """
    with fsutil.locked(path):
        doc = load(path, schema_name, label=label)
        if doc is None:
            if default is None:
                raise NotFound(f"{label} does not exist; run session_init first", path=str(path))
            doc = JsonDoc(path=path, data=json.loads(json.dumps(default)), existed=False)
        yield doc
        save(doc, schema_name, label=label)
