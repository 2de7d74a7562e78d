"""The copy a user would write by hand with SQLAlchemy: the yardstick of scenario 4 of the copy benchmark.

The application's own table definitions (``bench.copy_data.bench_tables``: reflecting SQLite
gives types such as DATETIME that PostgreSQL does not know), ``create_all`` on the target
(tables with their indexes and foreign keys, parents first), then for each table stream the rows
in batches and insert every batch with ``conn.execute(table.insert(), rows)`` (SQLAlchemy's
executemany) in its own transaction.
Run as its own process so its time and memory are measured like every other contender's.

    python -m bench.copy_sa_loop SOURCE_URL TARGET_URL [--batch 10000]
"""

from __future__ import annotations

import argparse
import sys
import time

import sqlalchemy as sa

from bench.copy_data import bench_tables


def copy_all(source_url: str, target_url: str, batch: int) -> dict[str, int]:
    src, tgt = sa.create_engine(source_url), sa.create_engine(target_url)
    md, _users, _orders = bench_tables()
    md.create_all(tgt)
    counts: dict[str, int] = {}
    with src.connect() as sconn:
        for table in md.sorted_tables:
            result = sconn.execution_options(yield_per=batch).execute(sa.select(table))
            n = 0
            for part in result.mappings().partitions():
                with tgt.begin() as tconn:
                    tconn.execute(table.insert(), [dict(r) for r in part])
                n += len(part)
            counts[table.name] = n
    src.dispose()
    tgt.dispose()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source_url")
    parser.add_argument("target_url")
    parser.add_argument("--batch", type=int, default=10_000)
    args = parser.parse_args(argv)
    started = time.monotonic()
    counts = copy_all(args.source_url, args.target_url, args.batch)
    print(f"copied {counts} in {time.monotonic() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
