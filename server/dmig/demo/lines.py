"""One readable line per tool answer: the figures a reader of the demo wants from each step."""

from __future__ import annotations

from typing import Any

from dmig.demo.facts import step_seconds

Out = dict[str, Any]
TABLES = ("users", "orders")


def session_init(o: Out) -> str:
    return f"harness ready ({len(o['created'])} files created, session {o['session_id']})"


def context(o: Out) -> str:
    story = o.get("story") or {}
    return f"git {o['git'].get('branch')}, story {story.get('id')} '{story.get('status')}', {o['bytes']:,} bytes"


def status(o: Out) -> str:
    return f"{o['story_id']} {o['from_status']} -> {o['to_status']} (test_status {o['test_status']})"


def inspect(o: Out) -> str:
    tables = ", ".join(f"{t['name']} {t['row_count']:,} rows" for t in o["tables"] if t["name"] in TABLES)
    return f"{o['flavor']} {o['server_version']}: {tables}"


def copy(o: Out) -> str:
    per_table = ", ".join(f"{t['table']} {t['rows']:,} rows at {t['rows_per_s']:,.0f} rows/s" for t in o["tables"])
    return f"{o['source_dialect']} -> {o['target_dialect']}: {per_table}; {o['workers']} worker(s)"


def diff(o: Out) -> str:
    stats = o["stats"]
    if o["equal"]:
        verdict = "identical"
    else:
        verdict = f"{o['missing_count']} missing, {o['extra_count']} extra, {o['changed_count']} changed"
    rows = f"{stats['rows_source']:,} vs {stats['rows_target']:,} rows"
    return f"{o['table']}: {rows}, {len(o['columns'])} columns, {verdict}"


def lint(o: Out) -> str:
    counts = o["counts"]
    return (
        f"{o['dialect']} {o['server_version']}: {counts.get('error', 0)} error(s), {counts.get('warning', 0)} "
        f"warning(s), {len(o['steps'])} steps"
    )


def plan(o: Out) -> str:
    est = o["estimated_seconds"]
    return (
        f"{o['migration_id']}: {len(o['steps'])} steps, checksum {o['checksum'][:12]}..., estimated expand "
        f"{est.get('expand', 0):.2f}s, backfill {est.get('backfill', 0):.2f}s, contract {est.get('contract', 0):.2f}s"
    )


def backup(o: Out) -> str:
    b = o["backup"]
    return (
        f"{b['backup_id']}: {b['rows']:,} rows, {b['bytes_stored'] / 1e6:.1f} MB ({b['format']}) in {o['seconds']:.2f}s"
    )


def verify_backup(o: Out) -> str:
    verdict = "passed" if o["passed"] else "FAILED"
    return f"{verdict}: test restore in {o['verification']['restore_seconds']:.2f}s, counts and checksums compared"


def run(o: Out) -> str:
    fills = ", ".join(
        f"{b['table']} {b['rows']:,} rows in {b['batches']} batches, {b['seconds']:.2f}s "
        f"({b['rows_per_s'] or 0:,.0f} rows/s incl. throttle)"
        for b in o["backfills"]
    )
    checks = sum(1 for c in o["validation"] if c["passed"])
    return (
        f"{o['state']}: expand {step_seconds(o, 'expand'):.2f}s; backfill {fills or '-'}; "
        f"{checks}/{len(o['validation'])} checks pass"
    )


def validate(o: Out) -> str:
    return f"{o['passed']} passed, {o['failed']} failed, {o['errored']} errors in {o['seconds']:.2f}s"


def complete(o: Out) -> str:
    taken = (o.get("backup") or {}).get("backup_id") or "(waived)"
    return f"{o['state']}: contract {step_seconds(o, 'contract'):.2f}s, after its own verified backup {taken}"


def verify(o: Out) -> str:
    return f"tests {o['test_status']}: {o['passed']} passed, {o['failed']} failed ({o['duration_ms'] / 1000:.1f}s)"


def bus(o: Out) -> str:
    return f"status message appended to {o['path']}"


def learning(o: Out) -> str:
    measured = len((o.get("learning") or {}).get("measured") or [])
    return f"learning with {measured} measured facts in {o['path']} ({o['line_count']} lines)"


def restore_preview(o: Out) -> str:
    rows = sum(t["rows"] for t in o["tables"])
    return f"would replace {rows:,} rows of {', '.join(t['table'] for t in o['tables'])} in {o['target']}"


def restore(o: Out) -> str:
    rows = sum(t["rows"] for t in o["tables"])
    return f"{rows:,} rows restored in {o['seconds']:.2f}s, checksums {'ok' if o['all_checksums_ok'] else 'DIFFER'}"


def rollback(o: Out) -> str:
    restore = o.get("restore") or {}
    tables = ", ".join(f"{t['table']} {t['rows']:,} rows" for t in restore.get("tables", []))
    shape = "shape identical" if o["schema_identical"] else "shape DIFFERS"
    checks = {True: "checksums = backup", False: "checksums DIFFER", None: "no restore"}[o["checksums_ok"]]
    return f"{o['from_state']} -> {o['state']} by {o['procedure']}: {tables or '-'}; {shape}, {checks}"
