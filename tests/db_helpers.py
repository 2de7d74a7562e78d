"""A small, realistic schema that any test can build on any of the three dialects.

Every introspection-, planning- or validation-related test needs the same few shapes (a parent
and a child table, a primary key, a unique key, a foreign key with an ON DELETE rule, a plain
index, a check constraint, nullable and defaulted columns); building them through SQLAlchemy
metadata keeps one definition valid on SQLite, PostgreSQL and MariaDB alike.
"""

from __future__ import annotations

import os
import subprocess

import sqlalchemy as sa

from dmig.db.engine import create

# Table names that break naive string-built SQL: a quote plus a semicolon, non-ASCII letters and a
# space, and a percent sign (which pyformat drivers treat as a placeholder unless it is escaped).
HOSTILE_TABLES = ('we"ird;drop', "naïve ünïcode", "pct%s`tick")
HOSTILE_COLUMN = 'co"l; --'

SAMPLE_USERS = (
    ("ada@example.test", "Ada", True),
    ("grace@example.test", "Grace", True),
    ("edsger@example.test", None, False),
)


def sample_metadata() -> sa.MetaData:
    """users (parent) and orders (child); names are fixed so tests can assert on them."""
    md = sa.MetaData()
    sa.Table(
        "users",
        md,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("email", sa.String(200), nullable=False),
        sa.Column("name", sa.String(100), nullable=True, comment="display name"),
        sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.UniqueConstraint("email", name="uq_users_email"),
    )
    sa.Table(
        "orders",
        md,
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("user_id", sa.Integer, nullable=False),
        sa.Column("total", sa.Numeric(12, 2), nullable=False),
        sa.Column("status", sa.String(20), nullable=False, server_default="new"),
        sa.Column("note", sa.Text, nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_orders_user", ondelete="CASCADE"),
        sa.CheckConstraint("total >= 0", name="ck_orders_total_positive"),
        sa.Index("ix_orders_user_status", "user_id", "status"),
    )
    return md


def create_sample_schema(url: str, *, orders_per_user: int = 2, note: str = "sample note") -> dict[str, int]:
    """Create users/orders with a few rows; returns the row count per table."""
    md = sample_metadata()
    engine = create(url, must_exist=False)
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            users, orders = md.tables["users"], md.tables["orders"]
            conn.execute(users.insert(), [{"email": e, "name": n, "active": a} for e, n, a in SAMPLE_USERS])
            ids = conn.execute(sa.select(users.c.id).order_by(users.c.id)).scalars().all()
            rows = [
                {"user_id": uid, "total": 10 * (i + 1), "status": "new", "note": note}
                for uid in ids
                for i in range(orders_per_user)
            ]
            conn.execute(orders.insert(), rows)
    finally:
        engine.dispose()
    return {"users": len(SAMPLE_USERS), "orders": len(SAMPLE_USERS) * orders_per_user}


def create_hostile_tables(url: str, *, rows: int = 2) -> tuple[str, ...]:
    """Tables whose names need quoting; each has a hostile column name and ``rows`` rows."""
    md = sa.MetaData()
    tables = [
        sa.Table(name, md, sa.Column("id", sa.Integer, primary_key=True), sa.Column(HOSTILE_COLUMN, sa.String(40)))
        for name in HOSTILE_TABLES
    ]
    engine = create(url, must_exist=False)
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            for table in tables:
                conn.execute(table.insert(), [{"id": i + 1, HOSTILE_COLUMN: f"v{i}"} for i in range(rows)])
    finally:
        engine.dispose()
    return HOSTILE_TABLES


def run_sql(url: str, *statements: str | sa.Executable) -> None:
    """Run set-up statements (text or Core) in one committed transaction."""
    engine = create(url, must_exist=False)
    try:
        with engine.begin() as conn:
            for stmt in statements:
                conn.execute(sa.text(stmt) if isinstance(stmt, str) else stmt)
    finally:
        engine.dispose()


def run_dmig(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the dmig CLI as a user would (a child process), capturing stdout and stderr."""
    from mcp_client import dmig_executable

    child_env = {**os.environ, **(env or {})}
    return subprocess.run(
        [dmig_executable(), *args], capture_output=True, text=True, env=child_env, timeout=120, check=False
    )


def with_password(url: str, password: str) -> str:
    """The same URL with a password set (PostgreSQL trust auth on loopback accepts any password)."""
    return sa.make_url(url).set(password=password).render_as_string(hide_password=False)
