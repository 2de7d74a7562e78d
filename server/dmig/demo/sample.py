"""The demo's sample application database: users and orders with realistic, awkward values.

Deterministic for a seed so that figures are comparable between runs. The values include what
real data has and migrations trip over: NULL and empty names, single names, three-part names,
non-ASCII, apostrophes, emails that differ only in case, NULL notes, zero and large amounts,
timestamps with microseconds.
"""

from __future__ import annotations

import os
import random
import sqlite3
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

FIRST = [
    "Ana",
    "Bob",
    "Chen",
    "Dmitri",
    "Émile",
    "Fatima",
    "Günther",
    "Hiro",
    "Ifeoma",
    "José",
    "Kai",
    "Léa",
    "Mary Ann",
    "Nguyễn",
    "O'Brien",
    "Priya",
    "Quentin",
    "Ragnhild",
    "Søren",
    "Zoë",
]
LAST = [
    "Smith",
    "García",
    "Müller",
    "Kowalski",
    "O'Neil",
    "van der Berg",
    "Nakamura",
    "Okafor",
    "Ivanova",
    "Da Silva",
    "Łukasiewicz",
    "Ng",
    "Dupont-Moreau",
    "Øster",
    "Al-Sayed",
]
STATUSES = ["active", "active", "active", "inactive", "suspended", "pending"]
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)

SCHEMA = """
CREATE TABLE users (
    id INTEGER PRIMARY KEY,
    user_name VARCHAR(200),
    email VARCHAR(320) NOT NULL,
    age INTEGER,
    status VARCHAR(20) NOT NULL DEFAULT 'active',
    balance NUMERIC(12, 2) NOT NULL DEFAULT 0,
    created_at TIMESTAMP NOT NULL,
    CONSTRAINT uq_users_email UNIQUE (email),
    CONSTRAINT ck_users_age CHECK (age IS NULL OR age BETWEEN 0 AND 150)
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    user_id INTEGER NOT NULL REFERENCES users(id),
    amount NUMERIC(12, 2) NOT NULL,
    note TEXT,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX ix_orders_user_id ON orders(user_id);
CREATE INDEX ix_users_created_at ON users(created_at);
"""


def _user_name(rng: random.Random, i: int) -> str | None:
    roll = rng.random()
    if roll < 0.01:
        return None
    if roll < 0.015:
        return rng.choice(["Cher", "Madonna", "Prince", "Björk"])
    return f"{rng.choice(FIRST)} {rng.choice(LAST)}"


def _timestamp(rng: random.Random) -> str:
    ts = EPOCH + timedelta(seconds=rng.randrange(0, 5 * 365 * 86400), microseconds=rng.randrange(0, 1_000_000))
    return ts.strftime("%Y-%m-%d %H:%M:%S.%f")


def _money(rng: random.Random, high: int) -> str:
    roll = rng.random()
    if roll < 0.01:
        return "0.00"
    if roll < 0.012:
        return "9999999999.99"
    return str(Decimal(rng.randrange(1, high * 100)) / 100)


USERS, ORDERS = 100_000, 150_000


def sample_sizes() -> tuple[int, int]:
    """The demo's sizes; DMIG_DEMO_SCALE (e.g. 0.2) shrinks them for slow machines and the server tests."""
    try:
        scale = float(os.environ.get("DMIG_DEMO_SCALE", "1"))
    except ValueError:
        scale = 1.0
    scale = min(max(scale, 0.01), 10.0)
    return max(100, int(USERS * scale)), max(150, int(ORDERS * scale))


def generate(path: Path, users: int = 100_000, orders: int = 150_000, seed: int = 42) -> dict[str, int]:
    """Create the SQLite application database at ``path`` (replacing it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    rng = random.Random(seed)
    conn = sqlite3.connect(path)
    try:
        conn.executescript("PRAGMA journal_mode=WAL; PRAGMA synchronous=OFF;" + SCHEMA)
        conn.executemany(
            "INSERT INTO users VALUES (?,?,?,?,?,?,?)",
            (
                (
                    i,
                    _user_name(rng, i),
                    f"user{i}@example.com" if i % 1000 else f"User{i}.Case@Example.COM",
                    None if rng.random() < 0.05 else rng.randrange(13, 99),
                    rng.choice(STATUSES),
                    _money(rng, 5_000),
                    _timestamp(rng),
                )
                for i in range(1, users + 1)
            ),
        )
        conn.executemany(
            "INSERT INTO orders VALUES (?,?,?,?,?)",
            (
                (
                    i,
                    rng.randrange(1, users + 1),
                    _money(rng, 900),
                    None
                    if rng.random() < 0.3
                    else rng.choice(["gift wrap", "leave at door", "Ünïcödé ✓", "", "a;b,c|d"]),
                    _timestamp(rng),
                )
                for i in range(1, orders + 1)
            ),
        )
        conn.commit()
    finally:
        conn.close()
    return {"users": users, "orders": orders}
