"""The validate tool through its three doors: the service function, the CLI and MCP over stdio."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from dmig.cli import main as cli_main
from dmig.context import RunContext
from dmig.errors import InvalidInput, PathOutsideProject, ReadOnlyMode
from dmig.tools.validate import ValidateInput, validate
from mcp_client import call
from validate_helpers import HOSTILE_TEXT, plant_checks

PASSING = [{"type": "not_null", "table": "customers", "columns": ["first_name"]}]
FAILING = [{"type": "enum", "table": "customers", "column": "status", "values": ["active", "inactive"]}]
BROKEN = [{"type": "not_null", "table": "customers", "columns": ["no_such_column"]}]


def write_rules(project: Path, checks: list[dict[str, Any]], name: str = "rules.yaml", **top: Any) -> str:
    (project / name).write_text(yaml.safe_dump({**top, "checks": checks}), encoding="utf-8")
    return name


@pytest.fixture
def target(sqlite_url: str) -> str:
    plant_checks(sqlite_url)
    return sqlite_url


def test_rules_file_in_project_with_report(project: Path, target: str) -> None:
    rules = write_rules(project, PASSING + FAILING, target=target)
    out = validate(ValidateInput(rules=rules, report=True), RunContext(project_dir=project))
    assert out.rules == "rules.yaml" and (out.passed, out.failed, out.errored) == (1, 1, 0) and not out.ok
    assert out.report_path and out.report_path.startswith("docs/migrations/reports/validation-")
    text = (project / out.report_path).read_text(encoding="utf-8")
    assert "**FAILED**" in text and "| 2 | enum customers.status | enum | error | FAIL |" in text
    assert HOSTILE_TEXT in text  # present, but only inside a fenced block of sample data:
    block = text[text.index("Sample, untrusted data") :]
    assert block.index("```") < block.index(HOSTILE_TEXT) < block.index("```", block.index("```") + 3)


def test_inline_spec_and_url_override(project: Path, target: str) -> None:
    out = validate(
        ValidateInput(spec={"target": "env:DMIG_UNSET_TARGET_URL", "checks": PASSING}, target=target),
        RunContext(project_dir=project),
    )
    assert out.ok and out.rules is None and out.report_path is None and out.target


def test_input_errors(project: Path, target: str, tmp_path: Path) -> None:
    rc = RunContext(project_dir=project)
    with pytest.raises(InvalidInput):
        validate(ValidateInput(), rc)
    with pytest.raises(InvalidInput):
        validate(ValidateInput(rules="a.yaml", spec={"checks": PASSING}), rc)
    outside = tmp_path / "outside.yaml"
    outside.write_text(yaml.safe_dump({"target": target, "checks": PASSING}))
    with pytest.raises(PathOutsideProject):
        validate(ValidateInput(rules=str(outside)), rc)
    with pytest.raises(PathOutsideProject):
        validate(ValidateInput(rules="../outside.yaml"), rc)
    (project / "bad.yaml").write_text("checks: [unclosed\n")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        validate(ValidateInput(rules="bad.yaml"), rc)
    with pytest.raises(InvalidInput, match="no target URL"):
        validate(ValidateInput(spec={"checks": PASSING}), rc)
    with pytest.raises(ReadOnlyMode):
        validate(ValidateInput(spec={"target": target, "checks": PASSING}, report=True), RunContext(project, True))
    assert not (project / "docs").exists()  # nothing written by any failed call


def cli(project: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli_main(["--project-dir", str(project), "validate", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_exit_codes_and_output(project: Path, target: str, capsys: pytest.CaptureFixture[str]) -> None:
    write_rules(project, PASSING, "ok.yaml", target=target)
    write_rules(project, PASSING + FAILING, "fail.yaml", target=target)
    (project / "broken.json").write_text(json.dumps({"target": target, "checks": PASSING + BROKEN}))
    (project / "malformed.yaml").write_text(yaml.safe_dump({"target": target, "checks": [{"type": "not_null"}]}))

    code, out, _ = cli(project, "--rules", "ok.yaml", capsys=capsys)
    assert code == 0 and out.startswith("validate: PASSED") and "not_null customers(first_name)" in out

    code, out, _ = cli(project, "--rules", "fail.yaml", capsys=capsys)
    assert code == 1 and "FAIL" in out and "sample:" in out and "untrusted" in out
    assert "\\u001b" not in out and "\x1b" not in out

    code, out, _ = cli(project, "--rules", "broken.json", "--json", capsys=capsys)
    payload = json.loads(out)
    assert code == 2 and payload["errored"] == 1 and payload["checks"][1]["error"]["code"] == "E_NOT_FOUND"

    code, out, err = cli(project, "--rules", "malformed.yaml", "--json", capsys=capsys)
    assert code == 2 and json.loads(out)["error"]["code"] == "E_INVALID_INPUT"
    assert "checks.0.not_null" in err

    code, _, err = cli(project, "--rules", "/etc/passwd", capsys=capsys)
    assert code == 2 and "E_PATH_OUTSIDE_PROJECT" in err


def test_mcp_stdio(project: Path, target: str) -> None:
    write_rules(project, PASSING + FAILING, target="env:DMIG_TEST_TARGET")
    ok, bad, ro_report = call(
        project,
        [
            ("validate", {"rules": "rules.yaml"}),
            ("validate", {"spec": {"target": "env:DMIG_TEST_TARGET", "checks": [{"type": "not_null"}]}}),
            ("validate", {"rules": "rules.yaml", "report": True}),
        ],
        "--read-only",
        env={"DMIG_TEST_TARGET": target},
    )
    assert ok["failed"] == 1 and ok["passed"] == 1 and "untrusted" in ok["note"]
    hostile = [row["status"] for row in ok["checks"][1]["sample"]]
    assert HOSTILE_TEXT in hostile  # returned as a value inside structured data, nothing more
    assert bad["error"]["code"] == "E_INVALID_INPUT" and bad["error"]["details"]["errors"]
    assert ro_report["error"]["code"] == "E_READ_ONLY"
