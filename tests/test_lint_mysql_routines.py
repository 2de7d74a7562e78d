"""MySQL/MariaDB lint false positives seen on dmig's own rendered SQL: trigger bodies (BEGIN ... END with
their own semicolons) are one statement and not a parse error; a VIRTUAL generated column copies nothing,
a STORED/PERSISTENT one does."""

from __future__ import annotations

from dmig.lint.engine import lint_sql
from dmig.spec.context import OpContext
from dmig.spec.render import render_spec
from spec_helpers import spec_of

TRIGGER = """CREATE TRIGGER t_bu BEFORE UPDATE ON u FOR EACH ROW BEGIN
  IF (NEW.a <=> OLD.a) THEN SET NEW.b = CASE WHEN NEW.a > 0 THEN 1 ELSE 2 END;
  END IF;
  CASE WHEN NEW.a IS NULL THEN SET NEW.c = 0; ELSE SET NEW.c = 1; END CASE;
END;
CREATE INDEX i ON u (a);
"""


def _rules(sql: str) -> list[tuple[int | None, str]]:
    return [(f.line, f.rule) for f in lint_sql(sql, "mysql", (10, 11), "mariadb", in_spec=True).findings]


def test_trigger_body_is_one_statement() -> None:
    found = _rules(TRIGGER)
    assert all(rule != "parse-error" for _, rule in found), found
    assert (6, "mysql-missing-algorithm") in found  # the statement after the body is still linted, on its line


def test_generated_columns_copy_only_when_stored() -> None:
    assert not [r for _, r in _rules("ALTER TABLE u ADD COLUMN g int AS (a + 1) VIRTUAL, ALGORITHM=INSTANT")]
    assert "mysql-table-copy" in [r for _, r in _rules("ALTER TABLE u ADD COLUMN g int AS (a + 1) STORED, "
                                                       "ALGORITHM=INPLACE, LOCK=NONE")]  # fmt: skip
    assert "mysql-table-copy" in [r for _, r in _rules("ALTER TABLE u ADD COLUMN g int AS (a + 1) PERSISTENT")]


def test_split_column_rendered_sql_has_no_error_findings() -> None:
    spec = spec_of({"op": "split_column", "table": "users", "column": "user_name", "into": ["first_name", "last_name"]})
    rendered = render_spec(spec, OpContext.offline("mysql", "10.11", spec.options))
    for phase in ("expand", "contract", "rollback"):
        for step in rendered.steps(phase):
            for stmt in step.sql:
                errors = [f.rule for f in lint_sql(stmt, "mysql", (10, 11), "mariadb", in_spec=True).findings
                          if f.severity == "error"]  # fmt: skip
                assert not errors, (step.id, stmt[:80], errors)
