"""Turn a rules file or an inline object into a ValidationSpec, with errors an agent can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dmig.errors import InvalidInput, NotFound
from dmig.validate.spec import ValidationSpec

MAX_RULES_BYTES = 2_000_000


def parse_spec(data: Any, *, origin: str = "spec") -> ValidationSpec:
    """Validate; on failure E_INVALID_INPUT listing every problem with its place in the spec."""
    if not isinstance(data, dict):
        raise InvalidInput(f"the {origin} must be an object with 'checks' (got {type(data).__name__})")
    try:
        return ValidationSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in err["loc"]) or "(spec)", "problem": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise InvalidInput(
            f"the {origin} is not a valid rule spec ({len(problems)} problem(s)); see details.errors "
            "and schemas/validation-rules.schema.json",
            errors=problems,
        ) from None


def read_rules(path: Path, shown: str) -> Any:
    """YAML or JSON (by extension; YAML also reads JSON)."""
    if not path.is_file():
        raise NotFound(f"rules file {shown} does not exist", path=shown)
    if path.stat().st_size > MAX_RULES_BYTES:
        raise InvalidInput(f"rules file {shown} is larger than {MAX_RULES_BYTES} bytes", path=shown)
    text = path.read_text(encoding="utf-8", errors="replace")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"rules file {shown} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InvalidInput(f"rules file {shown} is not valid YAML: {problem}{where}") from None
