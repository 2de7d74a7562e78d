"""Turn a rules file or an inline object into a ValidationSpec, with errors an agent can act on."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from dmig import safeload
from dmig.errors import InvalidInput, NotFound
from dmig.validate.spec import ValidationSpec

MAX_RULES_BYTES = safeload.KINDS["rules"].max_bytes


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
    try:
        text = safeload.read_text(path, "rules", shown=shown, errors="replace")
    except FileNotFoundError:
        raise NotFound(f"rules file {shown} does not exist", path=shown) from None
    try:
        if path.suffix.lower() == ".json":
            return safeload.parse_json(text, "rules", shown=shown)
        return safeload.parse_yaml(text, "rules", shown=shown)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"rules file {shown} is not valid JSON: {exc.msg} at line {exc.lineno}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "syntax error"
        raise InvalidInput(f"rules file {shown} is not valid YAML: {problem}{where}") from None
