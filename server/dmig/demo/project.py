"""The user's project the demo works in: what a team adopting dmig would have on disk.

A git repository with the application's tests, an AgileFlow board (docs/09-agents/status.json)
holding the migration story, and the migration spec: the seed's example, verbatim, next to a
drill copy (same operations, its own id, aimed at the drill database). Everything is committed, so
obtain_context sees a clean tree and the migration's own files show up as the run's changes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import yaml

from dmig.assets import asset_path
from dmig.demo.databases import DRILL
from dmig.errors import Conflict, DmigError

STORY_ID = "US-0042"
EPIC_ID = "EP-0007"
SPEC = "docs/migrations/split-user-name.yaml"
DRILL_SPEC = "docs/migrations/split-user-name-drill.yaml"
MARKER = ".dmig-demo"

APP_TESTS = '''\
"""The application's own checks on its database (run by `verify`; DMIG_TARGET_URL names it)."""

import os

import pytest
import sqlalchemy as sa

DRIVERS = {"postgresql": "postgresql+psycopg", "postgres": "postgresql+psycopg", "mysql": "mysql+pymysql",
           "mariadb": "mysql+pymysql"}


@pytest.fixture(scope="module")
def db():
    url = sa.make_url(os.environ["DMIG_TARGET_URL"])
    if "+" not in url.drivername:
        url = url.set(drivername=DRIVERS.get(url.drivername, url.drivername))
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        yield conn
    engine.dispose()


def scalar(conn, sql):
    return conn.execute(sa.text(sql)).scalar()


def test_users_have_first_and_last_name(db):
    columns = {c["name"] for c in sa.inspect(db).get_columns("users")}
    assert {"first_name", "last_name"} <= columns
    assert scalar(db, "SELECT count(*) FROM users WHERE last_name IS NOT NULL AND first_name IS NULL") == 0


def test_old_readers_still_get_user_name(db):
    # The compatibility shape: a generated column (SQLite, MariaDB) or the dmig_compat view (PostgreSQL < 18).
    table = "dmig_compat.users" if db.dialect.name == "postgresql" else "users"
    rebuilt = "SELECT count(*) FROM {} WHERE user_name IS NOT NULL".format(table)
    assert scalar(db, rebuilt) == scalar(db, "SELECT count(*) FROM users WHERE first_name IS NOT NULL")


def test_every_order_belongs_to_a_user(db):
    orphans = "SELECT count(*) FROM orders o LEFT JOIN users u ON u.id = o.user_id WHERE u.id IS NULL"
    assert scalar(db, "SELECT count(*) FROM orders") > 0
    assert scalar(db, orphans) == 0
'''


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _board() -> dict:
    now = _now()
    story = {
        "id": STORY_ID,
        "title": "Move users and orders to the new database and split users.user_name into first_name/last_name",
        "epic": EPIC_ID,
        "owner": "AG-DATAMIGRATION",
        "status": "ready",
        "phase": "plan",
        "estimate": "1d",
        "deps": [],
        "acceptance_criteria": [
            "users and orders copied to the target with no row lost or changed (checksum diff)",
            "users.user_name split into first_name/last_name with zero downtime; old readers keep user_name",
            "verified backup before any change; rollback rehearsed and proven identical",
            "measured throughput recorded in the expertise for the next plan",
        ],
        "test_status": "not_run",
        "created": now,
        "updated": now,
        "history": [{"status": "ready", "ts": now}],
    }
    epic = {"id": EPIC_ID, "title": "Customer data on the new database", "status": "active", "stories": [STORY_ID]}
    return {"updated": now, "epics": {EPIC_ID: epic}, "stories": {STORY_ID: story}}


def _seed_spec() -> str:
    try:
        return asset_path("docs", "migrations", "examples", "split-user-name.yaml").read_text(encoding="utf-8")
    except DmigError as exc:
        raise DmigError(f"the seed's example spec is missing: {exc.info().message}") from None


def drill_spec(seed_text: str) -> str:
    """The same operations and options under their own id, aimed at the drill database."""
    spec = yaml.safe_load(seed_text)
    spec["id"] = f"{spec['id']}-drill"
    spec["description"] = "Rollback drill of " + spec.get("description", spec["id"]) + " on the drill database."
    spec["database"] = DRILL
    header = "# The seed's example again, on the drill database: its plan estimates from the first run's learning.\n"
    return header + yaml.safe_dump(spec, sort_keys=False, allow_unicode=True)


def _git(project: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=demo", "-c", "user.email=demo@example.invalid", "-C", str(project), *args],
        check=True,
        capture_output=True,
    )


def make_project(root: Path) -> Path:
    """Create (or recreate, if an earlier demo made it) the project folder and commit it."""
    project = root / "app-project"
    if project.exists():
        if not (project / MARKER).exists():
            raise Conflict(f"{project} exists and was not made by dmig demo: choose another --workdir")
        shutil.rmtree(project)
    (project / "tests").mkdir(parents=True)
    (project / "data").mkdir()
    (project / "docs" / "09-agents").mkdir(parents=True)
    (project / "docs" / "migrations").mkdir(parents=True)
    (project / MARKER).write_text("made by dmig demo; safe to delete\n")
    (project / ".gitignore").write_text("data/\n*.lock\n__pycache__/\n")
    (project / "tests" / "test_app_db.py").write_text(APP_TESTS)
    (project / "docs" / "09-agents" / "status.json").write_text(json.dumps(_board(), indent=2) + "\n")
    seed = _seed_spec()
    (project / SPEC).write_text(seed)
    (project / DRILL_SPEC).write_text(drill_spec(seed))
    (project / "README.md").write_text(
        textwrap.dedent(
            """\
            # shop-app

            The demo application: users and orders. Story US-0042 moves them to the new database and
            splits users.user_name; the migration's plan, runbook and reports land in docs/migrations/.
            """
        )
    )
    subprocess.run(["git", "init", "-q", "-b", "main", str(project)], check=True, capture_output=True)
    _git(project, "add", ".")
    _git(project, "commit", "-q", "-m", "shop-app: tests, board and the migration spec")
    return project
