"""agileflow-datamigration: safe, measured data migrations for SQLite, PostgreSQL and MySQL/MariaDB."""

__version__ = "0.1.0"
