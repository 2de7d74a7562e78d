"""The text of `dmig demo --help`, kept apart so the CLI can show it without importing the story."""

HELP = """\
Run the product's story end to end through `dmig serve` (spawned over stdio, driven with the
official MCP client): copy users and orders to the target and diff them, lint and plan the seed's
split of users.user_name, verified backup, run (expand, backfill) under the monitor, validate,
complete with the plan checksum, diff and validate after contract, the project's tests, story
in-review, bus message, self_improve with the measured figures; then the rollback drill on a scratch
copy restored from the backup: the same migration planned again (its estimate now from the first
run's learning), run, contracted and rolled back with `rollback`, and diffed against the source.
Needs nothing but SQLite by default.
--source URL: the application database to start from (must hold the sample's users and orders);
default: generated as SQLite (100k users, 150k orders; DMIG_DEMO_SCALE scales them).
--target URL: the database the application moves to, e.g. postgresql://user@host/db or
mysql://user@host/db (it must not hold users/orders yet); default: a new SQLite file. On a server
the drill uses a scratch database dmig_verify_drill_<hex> created next to the target and dropped
at the end. URLs reach the server as environment variables; tools see only env: references.
"""
