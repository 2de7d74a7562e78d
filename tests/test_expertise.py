"""expertise.yaml: location rules, validation, self-improve rules, folding, and the planner's view.

Every test works on real files in a scratch project; the shipped seed is checked in place and
must never be written.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from dmig.errors import Conflict, CorruptFile, NotFound, PathOutsideProject
from dmig.harness import expertise as ex

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILE = ".agileflow/experts/datamigration/expertise.yaml"


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _improve(project: Path, insight: str, **fields) -> ex.Improved:
    return ex.self_improve(project, ex.Improvement(insight=insight, **fields))


def _write_env(project: Path, **fields) -> None:
    env = project / "docs/00-meta/environment.json"
    env.parent.mkdir(parents=True, exist_ok=True)
    env.write_text(json.dumps({"project_type": "python", "test_command": "pytest", **fields}))


@pytest.fixture(autouse=True)
def _no_env_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ex.ENV_VAR, raising=False)


@pytest.fixture
def seed_guard():
    """Fail any test that modifies the shipped seed."""
    before = _digest(ex.seed_path())
    yield
    assert _digest(ex.seed_path()) == before, "the shipped seed was modified"


# --------------------------------------------------------------------------- the seed


def test_seed_validates_and_every_listed_path_exists_in_the_repository() -> None:
    seed = REPO / "expertise" / "expertise.yaml"
    assert seed.resolve() == ex.seed_path()
    data = ex.load(seed)
    assert ex.schema_problems(data) == []
    listed = [entry["path"] for _, entry in ex.iter_file_entries(data)]
    assert listed and all((REPO / p).exists() for p in listed), [p for p in listed if not (REPO / p).exists()]
    assert ex.line_count(seed.read_text()) < ex.MAX_LINES
    assert data["domain"] == "datamigration"
    assert set(data["migration_checklist"]) == {"pre_migration", "during_migration", "post_migration"}
    assert not any(ex._facts(item.get("measured")) for item in data["learnings"]), "the seed must not invent figures"


# --------------------------------------------------------------------------- location rules


def test_fresh_project_reads_the_plugin_seed(project: Path) -> None:
    reading = ex.read(project)
    assert reading.location == ex.Location(ex.seed_path(), "plugin")
    assert reading.problems == []


def test_project_file_wins_over_the_seed(project: Path) -> None:
    target = project / PROJECT_FILE
    target.parent.mkdir(parents=True)
    target.write_text("domain: datamigration\nversion: 2\n")
    reading = ex.read(project)
    assert (reading.location.source, reading.location.path) == ("project", target)
    assert reading.data["version"] == 2


def test_environment_json_expertise_path_wins_over_the_project_file(project: Path) -> None:
    (project / PROJECT_FILE).parent.mkdir(parents=True)
    (project / PROJECT_FILE).write_text("domain: project-copy\n")
    (project / "memory").mkdir()
    (project / "memory/exp.yaml").write_text("domain: from-env-json\n")
    _write_env(project, expertise_path="memory/exp.yaml")
    reading = ex.read(project)
    assert reading.location.source == "environment.json"
    assert reading.data["domain"] == "from-env-json"


def test_env_var_beats_environment_json_and_input_path_beats_both(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a", "b", "c"):
        (project / f"{name}.yaml").write_text(f"domain: {name}\n")
    _write_env(project, expertise_path="a.yaml")
    monkeypatch.setenv(ex.ENV_VAR, "b.yaml")
    assert (ex.read(project).location.source, ex.read(project).data["domain"]) == ("env", "b")
    explicit = ex.read(project, "c.yaml")
    assert (explicit.location.source, explicit.data["domain"]) == ("input", "c")


def test_paths_outside_the_project_are_refused(project: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.yaml"
    outside.write_text("domain: x\n")
    for bad in (str(outside), "../elsewhere.yaml"):
        with pytest.raises(PathOutsideProject):
            ex.read(project, bad)
        with pytest.raises(PathOutsideProject):
            ex.self_improve(project, ex.Improvement(insight="never written"), explicit=bad)
    _write_env(project, expertise_path=str(outside))
    with pytest.raises(PathOutsideProject):
        ex.read(project)
    assert outside.read_text() == "domain: x\n"


def test_missing_explicit_file_is_not_found_and_not_created(project: Path) -> None:
    with pytest.raises(NotFound):
        ex.read(project, "nope.yaml")
    with pytest.raises(NotFound):
        ex.self_improve(project, ex.Improvement(insight="x"), explicit="nope.yaml")
    assert not (project / "nope.yaml").exists()


# --------------------------------------------------------------------------- self-improve


def test_first_self_improve_copies_the_seed_and_the_planner_sees_the_figures(project: Path, seed_guard) -> None:
    (project / "migrations").mkdir()
    done = _improve(
        project,
        "COPY into PostgreSQL ran at 50k rows/s with 5000-row batches",
        context="US-0042 copy users",
        files_affected=["migrations", "README.md"],
        measured=[
            {"dialect": "postgres", "operation": "copy", "rows": 100000, "seconds": 2.0, "table": "users"},
            {"dialect": "mariadb", "operation": "Create-Index", "seconds": 0.5, "table": "users"},
        ],
    )
    target = project / PROJECT_FILE
    assert done.created_from_seed and done.location == ex.Location(target, "project")
    assert ex.read(project).location.source == "project"
    data = ex.load(target)
    assert ex.schema_problems(data) == []
    learning = data["learnings"][-1]
    assert learning["date"] == done.learning["date"] and len(learning["date"]) == 10
    assert learning["files_affected"] == ["migrations", "README.md"]
    assert data["last_updated"].endswith("Z") and data["last_updated"][:10] == learning["date"]
    [copy] = ex.measured_throughput(project, "postgresql", "copy")
    assert copy["rows_per_s"] == 50000.0 and copy["table"] == "users" and copy["source"] == "learning"
    [index] = ex.measured_throughput(project, "mysql", "create_index")
    assert index["seconds"] == 0.5
    assert ex.measured_throughput(project, "sqlite", "copy") == []
    # the seed's content is kept: patterns, checklist, the seed learning
    assert [p["name"] for p in data["patterns"]][:2] == ["Expand/contract", "Dual write"]
    assert len(data["learnings"]) == 2


def test_newest_figures_come_first(project: Path) -> None:
    for rows in (1000, 2000, 3000):
        _improve(
            project,
            f"backfill of {rows} rows",
            measured=[{"dialect": "sqlite", "operation": "backfill", "rows": rows, "seconds": 1}],
        )
    assert [f["rows"] for f in ex.measured_throughput(project, "sqlite", "backfill")] == [3000, 2000, 1000]


def test_duplicate_insight_is_refused_and_nothing_is_written(project: Path) -> None:
    _improve(project, "Batches of 5000 rows kept lock waits under 50 ms")
    before = _digest(project / PROJECT_FILE)
    with pytest.raises(Conflict):
        _improve(project, "  batches of 5000 ROWS kept lock waits   under 50 ms. ")
    assert _digest(project / PROJECT_FILE) == before


def test_missing_affected_path_is_not_found_and_nothing_is_written(project: Path) -> None:
    with pytest.raises(NotFound) as err:
        _improve(project, "first", files_affected=["README.md", "nope/a.py", "gone.sql"])
    assert err.value.details["missing"] == ["nope/a.py", "gone.sql"]
    assert not (project / PROJECT_FILE).exists()
    _improve(project, "second")
    before = _digest(project / PROJECT_FILE)
    with pytest.raises(NotFound):
        _improve(project, "third", files_affected=["nope/a.py"])
    assert _digest(project / PROJECT_FILE) == before


@pytest.mark.parametrize(
    "bad",
    [
        {"insight": "   "},
        {"insight": "x", "measured": [{"dialect": "oracle", "operation": "copy", "seconds": 1}]},
        {"insight": "x", "measured": [{"dialect": "sqlite", "operation": "copy", "rows": 10}]},
        {"insight": "x", "measured": [{"dialect": "sqlite", "operation": "copy", "rows": -1, "seconds": 1}]},
        {
            "insight": "x",
            "measured": [{"dialect": "sqlite", "operation": "copy", "rows": 10, "seconds": 1, "rows_per_s": 99}],
        },
        {"insight": "x", "measured": [{"dialect": "sqlite", "operation": "copy; drop", "seconds": 1}]},
        {"insight": "x", "measured": [{"dialect": "sqlite", "operation": "copy", "seconds": "nan"}]},
        {"insight": "x", "measured": [{"dialect": "sqlite", "operation": "copy", "seconds": 1, "typo_rows": 3}]},
        {"insight": "x", "patterns": [{"name": ""}]},
        {"insight": "x", "surprise": 1},
        {"insight": "line\n" * 20},
        {"insight": "x", "context": "c\n" * 20},
    ],
)
def test_schema_invalid_input_is_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        ex.Improvement.model_validate(bad)


def test_file_that_breaks_the_schema_is_refused_untouched(project: Path) -> None:
    target = project / PROJECT_FILE
    target.parent.mkdir(parents=True)
    target.write_text("domain: datamigration\nlearnings:\n  - date: yesterday\n    insight: 3\n")
    before = _digest(target)
    problems = ex.read(project).problems
    assert {p["where"] for p in problems} == {"/learnings/0/date", "/learnings/0/insight"}
    with pytest.raises(CorruptFile) as err:
        _improve(project, "anything")
    assert err.value.details["errors"]
    assert _digest(target) == before


@pytest.mark.parametrize(
    "text",
    [
        "domain: [unclosed\n",
        "- just\n- a list\n",
        "domain: x\n\tbad: tab\n",
        "a: &a [*a, *a]\nb: !!python/object:os.system {}\n",
    ],
)
def test_corrupt_yaml_is_refused_untouched(project: Path, text: str) -> None:
    target = project / PROJECT_FILE
    target.parent.mkdir(parents=True)
    target.write_text(text)
    with pytest.raises(CorruptFile):
        ex.read(project)
    with pytest.raises(CorruptFile):
        _improve(project, "anything")
    assert target.read_text() == text
    assert ex.digest(project)["error"]["code"] == "E_CORRUPT_FILE"


def test_alias_bomb_is_refused(project: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]" for i in range(1, 9)]
    (project / "bomb.yaml").write_text("domain: x\n" + "\n".join(lines) + "\n")
    with pytest.raises(CorruptFile):
        ex.read(project, "bomb.yaml")


def test_updates_add_replace_dedupe_and_remove(project: Path) -> None:
    (project / "src").mkdir()
    (project / "src/migrate.py").write_text("")
    done = _improve(
        project,
        "learned about patterns",
        patterns=[
            {"name": "dual write", "description": "Trigger-based, per table"},
            {"name": "Outbox", "description": "Events written in the same transaction", "location": "src/"},
        ],
        conventions=["Always set lock_timeout", "always set   LOCK_TIMEOUT", "Never DROP without a backup"],
        files=[{"path": "src/migrate.py", "purpose": "Entry point", "group": "project"}],
    )
    data = ex.load(project / PROJECT_FILE)
    names = [p["name"] for p in data["patterns"]]
    assert names.count("Dual write") == 1 and "Outbox" in names and "dual write" not in names
    dual = next(p for p in data["patterns"] if p["name"] == "Dual write")
    assert dual["description"] == "Trigger-based, per table" and dual["example"]  # other fields kept
    assert [c for c in data["conventions"] if "always set" in c.lower()] == ["Always set lock_timeout"]
    assert data["files"]["project"] == [{"path": "src/migrate.py", "purpose": "Entry point"}]
    assert any("pattern updated: dual write" in c for c in done.changes)

    _improve(project, "file renamed", files=[{"path": "src/migrate.py", "conventions": "One function per step"}])
    assert ex.load(project / PROJECT_FILE)["files"]["project"][0] == {
        "path": "src/migrate.py",
        "purpose": "Entry point",
        "conventions": "One function per step",
    }
    (project / "src/migrate.py").unlink()
    with pytest.raises(NotFound) as err:
        _improve(project, "stale entry blocks")
    assert err.value.details["missing"] == ["src/migrate.py"]
    _improve(
        project,
        "stale entry removed",
        remove_files=["./src/migrate.py"],
        remove_patterns=["OUTBOX"],
        remove_conventions=["never drop without a backup"],
    )
    data = ex.load(project / PROJECT_FILE)
    assert "project" not in data["files"] and "Outbox" not in [p["name"] for p in data["patterns"]]
    assert "Never DROP without a backup" not in data["conventions"]
    with pytest.raises(NotFound):
        _improve(project, "remove unknown", remove_patterns=["No such pattern"])
    with pytest.raises(NotFound):
        _improve(project, "add missing file", files=[{"path": "src/none.py"}])


def test_real_world_agileflow_variant_is_read_and_kept(project: Path) -> None:
    """AgileFlow's own files: unquoted dates, numeric version, `learning`/`files_touched`, extra keys, comments."""
    target = project / PROJECT_FILE
    target.parent.mkdir(parents=True)
    target.write_text(
        "# Data Migration Expert\n"
        "domain: datamigration\nlast_updated: 2025-12-21\nversion: 1.1\n"
        "files:\n  docs:\n    - path: README.md\n      purpose: readme\n      key_exports: []\n"
        "relationships:\n  - name: readme_sync\n    files: [README.md]\n"
        "learnings:\n"
        "  - date: 2025-12-21\n    context: archival\n    learning: |\n      JSON files migrate by atomic rewrite.\n"
        "    files_touched: [README.md]\n"
        "  - date: 2025-12-22\n    insight: Copy measured\n"
        "    measured: {dialect: sqlite, operation: copy, rows: 10, seconds: 2}\n"
        "custom_team_key:\n  owner: AG-DATAMIGRATION\n"
    )
    reading = ex.read(project)
    assert reading.problems == []
    assert reading.data["last_updated"] == "2025-12-21" and reading.data["version"] == 1.1
    assert ex.measured_throughput(project, "sqlite", "copy")[0]["rows_per_s"] == 5.0
    with pytest.raises(Conflict):
        _improve(project, "json files migrate by atomic rewrite")
    _improve(project, "new insight")
    data = ex.load(target)
    assert data["custom_team_key"] == {"owner": "AG-DATAMIGRATION"}
    assert data["version"] == 1.1 and data["files"]["docs"][0]["key_exports"] == []
    assert data["learnings"][0]["files_touched"] == ["README.md"] and "learning" in data["learnings"][0]
    assert list(data)[:4] == ["domain", "last_updated", "version", "files"]


@pytest.mark.slow
def test_sixty_learnings_stay_under_the_limit_and_keep_their_figures(project: Path) -> None:
    for i in range(60):
        done = _improve(
            project,
            f"run {i}: copy of orders took {i + 1} s; the window {'held' if i % 2 else 'slipped'} " + "detail " * 12,
            context=f"US-{i:04d}",
            files_affected=["README.md"],
            measured=[
                {
                    "dialect": "postgresql",
                    "operation": "copy",
                    "rows": 1000 * (i + 1),
                    "seconds": i + 1,
                    "table": "orders",
                },
                {"dialect": "sqlite", "operation": "validate", "rows": 500, "seconds": 0.25},
            ],
        )
        assert done.lines <= ex.MAX_LINES
        assert ex.line_count((project / PROJECT_FILE).read_text()) <= ex.MAX_LINES
    data = ex.load(project / PROJECT_FILE)
    assert ex.schema_problems(data) == []
    summary = data["learnings_summary"]
    assert summary["folded_count"] + len(data["learnings"]) == 61  # 60 + the seed's learning
    assert len(data["learnings"]) >= ex.KEEP_RECENT
    copies = ex.measured_throughput(project, "postgresql", "copy")
    individual = [f for f in copies if f["source"] != "aggregate"]
    aggregates = [f for f in copies if f["source"] == "aggregate"]
    assert aggregates and individual, "some figures survive only folded, some verbatim"
    assert len(individual) + sum(a["samples"] for a in aggregates) == 60
    total_rows = sum(f["rows"] for f in individual) + sum(a["rows"] for a in aggregates)
    assert total_rows == sum(1000 * (i + 1) for i in range(60))
    assert all(a["rows_per_s"] == 1000.0 for a in aggregates)
    assert individual[0]["rows"] == 60000 and individual[0]["source"] == "learning"
    validates = ex.measured_throughput(project, "sqlite", "validate")
    assert (
        len([f for f in validates if f["source"] != "aggregate"])
        + sum(a["samples"] for a in validates if a["source"] == "aggregate")
        == 60
    )
    with pytest.raises(Conflict):  # a folded (one-line) learning is still recognised
        _improve(project, data["learnings_summary"]["entries"][-1]["insight"])


def _worker(args: tuple[str, int]) -> int:
    project, worker = args
    for n in range(6):
        ex.self_improve(
            Path(project),
            ex.Improvement(
                insight=f"worker {worker} run {n}",
                measured=[{"dialect": "sqlite", "operation": "copy", "rows": 100, "seconds": 1}],
            ),
        )
    return worker


def test_concurrent_self_improve_from_four_processes_loses_nothing(project: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:
        assert sorted(pool.map(_worker, [(str(project), w) for w in range(4)])) == [0, 1, 2, 3]
    data = ex.load(project / PROJECT_FILE)
    summary = data.get("learnings_summary", {})
    assert summary.get("folded_count", 0) + len(data["learnings"]) == 25
    facts = ex.measured_throughput(project, "sqlite", "copy")
    assert sum(f.get("samples", 1) for f in facts) == 24
    live = {item["insight"] for item in data["learnings"]} | {e["insight"] for e in summary.get("entries", [])}
    assert len([i for i in live if i.startswith("worker ")]) + summary.get("aggregated_count", 0) == 24


def test_digest_is_small_and_newest_first(project: Path) -> None:
    for i in range(7):
        _improve(project, f"insight number {i}")
    d = ex.digest(project)
    assert [r["insight"] for r in d["recent_learnings"]] == [f"insight number {i}" for i in (6, 5, 4, 3, 2)]
    assert d["source"] == "project" and d["path"] == PROJECT_FILE and d["problems"] == 0
    assert len(d["conventions"]) <= 12 and all(len(c) <= 120 for c in d["conventions"])
    assert len(json.dumps(d)) < 4000


def test_rendered_file_reloads_identically(project: Path) -> None:
    _improve(
        project,
        "multi-line\ninsight with: colons, 'quotes' and unicode — ok",
        measured=[{"dialect": "mysql", "operation": "copy", "seconds": 1.5, "notes": "a: b, {c}"}],
    )
    text = (project / PROJECT_FILE).read_text()
    assert text.startswith("# AG-DATAMIGRATION expertise")
    data = ex.load(project / PROJECT_FILE)
    assert ex._plain(yaml.safe_load(ex.render(data)), [10**6]) == data


@pytest.mark.parametrize(
    "insight",
    ["yes", "null", "- dash", "# hash", "tab\there", "nul\x00byte", "sep\u2028line", "@at", "'q' \"dq\"", "1.5"],
)
def test_awkward_text_round_trips_as_text(project: Path, insight: str) -> None:
    _improve(project, insight, context=insight)
    last = ex.load(project / PROJECT_FILE)["learnings"][-1]
    assert (last["insight"], last["context"]) == (insight, insight)
