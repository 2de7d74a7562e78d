"""expertise_read and self_improve as Claude Code and a shell user reach them: `dmig serve` and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from dmig.harness import expertise as ex
from mcp_client import call, dmig_executable

PROJECT_FILE = ".agileflow/experts/datamigration/expertise.yaml"


def _cli(project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, dict]:
    child_env = {k: v for k, v in os.environ.items() if k not in (ex.ENV_VAR, "DMIG_PROJECT_DIR")}
    child_env.update(env or {})
    done = subprocess.run(
        [dmig_executable(), "--project-dir", str(project), *args, "--json"],
        capture_output=True,
        text=True,
        env=child_env,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_round_trip_over_stdio(project: Path) -> None:
    fact = {"dialect": "postgresql", "operation": "copy", "rows": 20000, "seconds": 4, "table": "users"}
    first, improved, again, bad, outside, after = call(
        project,
        [
            ("expertise_read", {"digest": True}),
            ("self_improve", {"insight": "COPY is 10x faster than INSERT batches", "measured": [fact]}),
            ("self_improve", {"insight": "copy is 10x FASTER than insert batches"}),
            ("self_improve", {"insight": "x", "measured": [{"dialect": "sqlite", "operation": "copy"}]}),
            ("self_improve", {"insight": "y", "path": "../../etc/expertise.yaml"}),
            ("expertise_read", {}),
        ],
    )
    assert first["source"] == "plugin" and first["valid"] and first["expertise"] is None
    assert first["digest"]["domain"] == "datamigration"
    assert improved["created_from_seed"] and improved["path"] == PROJECT_FILE and improved["source"] == "project"
    assert improved["learning"]["measured"][0]["rows_per_s"] == 5000.0
    assert again["error"]["code"] == "E_CONFLICT"
    # The SDK validates arguments before dmig's handler sees them; until mcp_server wraps that
    # validation the code may be unstructured, but the refusal and its reason must be there.
    assert bad["error"]["code"] in ("E_INVALID_INPUT", "E_UNPARSED")
    assert "seconds or rows_per_s" in json.dumps(bad["error"])
    assert outside["error"]["code"] == "E_PATH_OUTSIDE_PROJECT"
    assert after["source"] == "project" and after["valid"] and after["problems"] == []
    assert after["expertise"]["learnings"][-1]["insight"] == "COPY is 10x faster than INSERT batches"
    assert ex.measured_throughput(project, "postgresql", "copy")[0]["rows"] == 20000


def test_env_var_location_reaches_the_server(project: Path) -> None:
    (project / "mem.yaml").write_text("domain: datamigration\nlearnings: []\n")
    [read, improved] = call(
        project,
        [("expertise_read", {}), ("self_improve", {"insight": "custom location works"})],
        env={ex.ENV_VAR: "mem.yaml"},
    )
    assert read["source"] == "env" and read["path"] == "mem.yaml"
    assert improved["source"] == "env" and not improved["created_from_seed"]
    assert ex.load(project / "mem.yaml")["learnings"][0]["insight"] == "custom location works"


def test_read_only_server_reads_but_cannot_improve(project: Path) -> None:
    [read, refused] = call(
        project, [("expertise_read", {"digest": True}), ("self_improve", {"insight": "x"})], "--read-only"
    )
    assert read["valid"]
    assert "error" in refused
    assert not (project / PROJECT_FILE).exists()


def test_cli_round_trip_with_json(project: Path) -> None:
    (project / "docs").mkdir()
    code, out = _cli(
        project,
        "self-improve",
        "Backfill batches of 2000 rows kept replica lag under 1 s",
        "--context",
        "US-0007",
        "--files-affected",
        "README.md",
        "docs",
        "--measured",
        json.dumps([{"dialect": "mariadb", "operation": "backfill", "rows": 8000, "seconds": 2, "batch_size": 2000}]),
        "--conventions",
        "Throttle backfills on replica lag",
    )
    assert code == 0, out
    assert out["learning"]["files_affected"] == ["README.md", "docs"]
    assert "convention added: Throttle backfills on replica lag" in out["changes"]
    code, out = _cli(project, "expertise-read")
    assert code == 0 and out["source"] == "project"
    assert out["expertise"]["learnings"][-1]["measured"][0] == {
        "dialect": "mysql",
        "operation": "backfill",
        "rows": 8000,
        "seconds": 2.0,
        "rows_per_s": 4000.0,
        "batch_size": 2000,
    }
    code, out = _cli(project, "self-improve", "missing file", "--files-affected", "nope.sql")
    assert code == 2 and out["error"]["code"] == "E_NOT_FOUND" and out["error"]["details"]["missing"] == ["nope.sql"]
    (project / PROJECT_FILE).write_text("domain: [broken\n")
    code, out = _cli(project, "expertise-read")
    assert code == 2 and out["error"]["code"] == "E_CORRUPT_FILE"


def test_cli_read_exits_1_when_the_file_has_problems(project: Path) -> None:
    (project / "stale.yaml").write_text("domain: datamigration\nfiles:\n  x:\n    - path: src/gone.py\n")
    code, out = _cli(project, "expertise-read", "stale.yaml")
    assert code == 1 and out["source"] == "input" and not out["valid"]
    assert out["problems"] == [
        {"kind": "missing_path", "where": "/files", "message": "listed path src/gone.py does not exist"}
    ]
