"""Plans, runbooks and reports are MCP resources of the real stdio server; nothing outside docs/migrations is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml
from mcp import Client
from mcp.shared.exceptions import MCPError

from dmig.demo.project import drill_spec
from dmig.demo.sample import generate
from dmig.mcp_extras import MAX_RESOURCE_BYTES
from mcp_client import result_payload, server_params

SEED = Path(__file__).resolve().parents[1] / "docs/migrations/examples/split-user-name.yaml"
TRAVERSALS = [
    "dmig://migrations/..%2F..%2Fetc/plan.yaml",
    "dmig://migrations/%2E%2E/plan.yaml",
    "dmig://migrations/../plan.yaml",
    "dmig://migrations/a%2Fb/plan.yaml",
    "dmig://migrations/%2Fetc%2Fpasswd/plan.yaml",
    "dmig://migrations/.git/plan.yaml",
    "dmig://migrations/x%00y/plan.yaml",
    "dmig://reports/..%2F..%2F..%2Fetc%2Fpasswd.md",
    "dmig://reports/passwd",
    "dmig://migrations/outside/plan.yaml",  # a symlink pointing out of the project
    "dmig://migrations/huge/plan.yaml",  # over the size bound
    "dmig://migrations/nothing-here/plan.yaml",
]


def _project_with_a_plan(project: Path, tmp_path: Path) -> str:
    generate(project / "data" / "app.db", users=300, orders=450)
    spec = yaml.safe_load(drill_spec(SEED.read_text()))
    spec["database"] = f"sqlite:///{project / 'data' / 'app.db'}"
    (project / "docs" / "migrations").mkdir(parents=True)
    (project / "docs/migrations/split.yaml").write_text(yaml.safe_dump(spec))
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "plan.yaml").write_text("secret: outside the project\n")
    (project / "docs/migrations/outside").symlink_to(outside, target_is_directory=True)
    (project / "docs/migrations/huge").mkdir()
    (project / "docs/migrations/huge/plan.yaml").write_text("x" * (MAX_RESOURCE_BYTES + 1))
    return spec["id"]


async def _session(project: Path, migration_id: str) -> dict[str, Any]:
    seen: dict[str, Any] = {"refused": {}}
    url = f"sqlite:///{project / 'data' / 'app.db'}"
    async with Client(server_params(project), read_timeout_seconds=300) as client:
        seen["listed_before"] = {str(r.uri) for r in (await client.list_resources()).resources}
        planning = {"spec": "docs/migrations/split.yaml", "environment": "development"}
        seen["plan"] = result_payload(await client.call_tool("plan_migration", planning))
        rules = {"target": url, "checks": [{"type": "unique", "table": "users", "columns": ["email"]}]}
        seen["validate"] = result_payload(await client.call_tool("validate", {"spec": rules, "report": True}))
        seen["listed"] = {str(r.uri): r for r in (await client.list_resources()).resources}
        seen["templates"] = {t.uri_template for t in (await client.list_resource_templates()).resource_templates}
        for name in ("plan.yaml", "runbook.md"):
            read = await client.read_resource(f"dmig://migrations/{migration_id}/{name}")
            seen[name] = read.contents[0]
        report = Path(seen["validate"]["report_path"]).name
        seen["report"] = (await client.read_resource(f"dmig://reports/{report}")).contents[0]
        for uri in TRAVERSALS:
            try:
                await client.read_resource(uri)
                seen["refused"][uri] = None
            except MCPError as exc:
                seen["refused"][uri] = str(exc)
    return seen


def test_plans_runbooks_and_reports_are_served_and_traversal_is_refused(project: Path, tmp_path: Path) -> None:
    migration_id = _project_with_a_plan(project, tmp_path)
    seen = anyio.run(_session, project, migration_id)
    plan = seen["plan"]
    assert "error" not in plan, plan
    plan_uri = f"dmig://migrations/{migration_id}/plan.yaml"
    assert plan_uri not in seen["listed_before"]
    assert {plan_uri, f"dmig://migrations/{migration_id}/runbook.md"} <= set(seen["listed"])
    assert seen["listed"][plan_uri].mime_type == "application/yaml"
    assert f"dmig://reports/{Path(seen['validate']['report_path']).name}" in seen["listed"]
    assert not any("/outside/" in uri or "/huge/" in uri for uri in seen["listed"]), "unservable files listed"
    assert {"dmig://migrations/{migration_id}/plan.yaml", "dmig://reports/{name}"} <= seen["templates"]
    assert yaml.safe_load(seen["plan.yaml"].text)["checksum"] == plan["checksum"]
    assert seen["plan.yaml"].text == (project / plan["plan_path"]).read_text()
    assert seen["runbook.md"].text == (project / plan["runbook_path"]).read_text()
    assert seen["runbook.md"].mime_type == "text/markdown"
    assert "unique" in seen["report"].text
    for uri, error in seen["refused"].items():
        assert error is not None, f"{uri} was served"
        assert "secret" not in error and "root:" not in error
    assert "outside docs/migrations" in seen["refused"]["dmig://migrations/outside/plan.yaml"]
    assert "more than" in seen["refused"]["dmig://migrations/huge/plan.yaml"]
    assert "does not exist" in seen["refused"]["dmig://migrations/nothing-here/plan.yaml"]


@pytest.mark.parametrize("segment", ["..", "a/b", ".hidden", "", "x" * 201, "a\\b"])
def test_a_uri_variable_is_one_plain_path_segment(segment: str) -> None:
    from dmig.mcp_extras import _segment

    with pytest.raises(MCPError):
        _segment(segment, "migration id")
