"""Migration linter: named rules over specs and raw SQL (PostgreSQL via pglast, MySQL/SQLite via sqlglot)."""
