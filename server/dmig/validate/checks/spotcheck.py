"""spot_check: compare chosen rows of source and target field by field, through a column mapping.

Which rows (all chosen on the source, all reproducible):
- random: ``seed``-driven. With a single integer key we draw N values uniformly over
  [min(key), max(key)] and take, for each, the first key >= it (an index seek per draw, batched in
  one UNION ALL; keys just after a gap are somewhat likelier, a price worth paying for never
  scanning). Otherwise we count the rows in scope, draw N distinct row positions and fetch the
  keys at those positions with ``row_number() OVER (ORDER BY key)`` in one pass over the key.
  Neither relies on a dialect-specific hash or random function, so the same seed picks the same
  rows on SQLite, PostgreSQL and MySQL/MariaDB.
- edges: the smallest and largest key, and the rows holding the min/max of ``edge_columns``;
- recent: the newest rows by a timestamp column;
- keys: named keys.
Both sides are then read with ``WHERE key IN (...)`` (at most a few hundred rows), each side
evaluating its own expressions (``expr.py``), and compared by the diff's per-type rules
(``fields.py``), else after normalisation (``values.py``).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dmig.errors import InvalidInput
from dmig.validate.checks import CheckEnv
from dmig.validate.db import Session, column, raw, where_clause
from dmig.validate.fields import Rule, geometry_columns, plan
from dmig.validate.result import Outcome
from dmig.validate.spec import Comparison, SpotCheck
from dmig.validate.values import normalise, same, shown

_CHUNK = 200
KEYS_SHOWN = 50  # chosen keys listed in the figures (reproducibility can be checked by eye)


@dataclass
class Picked:
    """Keys chosen for comparison, in order, each with why it was chosen."""

    keys: list[tuple[Any, ...]] = field(default_factory=list)
    reasons: dict[tuple[Any, ...], list[str]] = field(default_factory=dict)

    def add(self, key: tuple[Any, ...], reason: str) -> None:
        norm = tuple(normalise(k) for k in key)
        if norm not in self.reasons:
            self.keys.append(key)
            self.reasons[norm] = []
        if reason not in self.reasons[norm]:
            self.reasons[norm].append(reason)

    def why(self, key: tuple[Any, ...]) -> list[str]:
        return self.reasons[tuple(normalise(k) for k in key)]


def _first_keys(s: Session, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in s.execute(stmt)]


def _random_integer_keys(s: Session, key: Any, scope: list[Any], n: int, rng: random.Random) -> list[tuple[Any, ...]]:
    lo, hi = s.execute(sa.select(sa.func.min(key), sa.func.max(key)).where(*scope)).one()
    if lo is None:
        return []
    draws = sorted({rng.randint(int(lo), int(hi)) for _ in range(n)})
    found: list[tuple[Any, ...]] = []
    for start in range(0, len(draws), _CHUNK):
        parts = [
            sa.select(key.label("k0")).where(*scope, key >= v).order_by(key).limit(1).subquery(f"d{i}")
            for i, v in enumerate(draws[start : start + _CHUNK])
        ]
        stmt = sa.union_all(*[sa.select(p.c.k0) for p in parts]) if len(parts) > 1 else sa.select(parts[0].c.k0)
        found.extend(_first_keys(s, stmt))
    return found


def _random_positional_keys(
    s: Session, table: sa.Table, keys: list[Any], scope: list[Any], n: int, rng: random.Random
) -> list[tuple[Any, ...]]:
    total = int(s.scalar(sa.select(sa.func.count()).select_from(table).where(*scope)))
    if not total:
        return []
    positions = sorted(rng.sample(range(1, total + 1), min(n, total)))
    numbered = sa.select(
        *[k.label(f"k{i}") for i, k in enumerate(keys)],
        sa.func.row_number().over(order_by=keys).label("rn"),
    ).where(*scope)
    sub = numbered.subquery("numbered")
    out: list[tuple[Any, ...]] = []
    for start in range(0, len(positions), _CHUNK):
        chunk = positions[start : start + _CHUNK]
        stmt = sa.select(*[sub.c[f"k{i}"] for i in range(len(keys))]).where(sub.c.rn.in_(chunk)).order_by(sub.c.rn)
        out.extend(_first_keys(s, stmt))
    return out


def _is_integer(col: Any) -> bool:
    try:
        return col.type.python_type is int
    except NotImplementedError:
        return False


def pick_keys(check: SpotCheck, env: CheckEnv, s: Session, table: sa.Table, keys: list[Any]) -> Picked:
    picked = Picked()
    scope = where_clause(table, check.where)
    n = env.defaults.spot_rows if check.random is None else check.random
    if n:
        rng = random.Random(env.defaults.seed)
        if len(keys) == 1 and _is_integer(keys[0]):
            chosen = _random_integer_keys(s, keys[0], scope, n, rng)
        else:
            chosen = _random_positional_keys(s, table, keys, scope, n, rng)
        for k in chosen:
            picked.add(k, "random")
    base = sa.select(*[raw(k, f"k{i}") for i, k in enumerate(keys)]).where(*scope)
    if check.edges:
        for k in _first_keys(s, base.order_by(*keys).limit(1)):
            picked.add(k, "min key")
        for k in _first_keys(s, base.order_by(*[c.desc() for c in keys]).limit(1)):
            picked.add(k, "max key")
    for name in check.edge_columns:
        col = column(table, name)
        for direction, label in ((col.asc(), "min"), (col.desc(), "max")):
            for k in _first_keys(s, base.where(col.is_not(None)).order_by(direction, *keys).limit(1)):
                picked.add(k, f"{label} {name}")
    if check.recent:
        col = column(table, check.recent.column)
        stmt = base.where(col.is_not(None)).order_by(col.desc(), *[c.desc() for c in keys]).limit(check.recent.rows)
        for k in _first_keys(s, stmt):
            picked.add(k, f"recent by {check.recent.column}")
    for named in check.keys:
        picked.add(tuple(named) if isinstance(named, list) else (named,), "named")
    return picked


def comparisons(check: SpotCheck, source: sa.Table, target: sa.Table) -> list[Comparison]:
    """Explicit mappings, free comparisons, then same-named columns (unless excluded).

    A table whose every column is part of the key (a join table) has no field to compare: the
    check then compares key presence (each chosen key must exist on both sides) and says so.
    """
    out = [Comparison(name=tgt, source=src, target=tgt) for tgt, src in check.columns.items()]
    out.extend(check.compare)
    if check.include_common:
        taken = {c.name for c in out} | set(check.key) | set(check.exclude)
        out.extend(
            Comparison(name=c.name, source=c.name, target=c.name)
            for c in target.c
            if c.name not in taken and c.name in source.c
        )
    out = [c for c in out if c.name not in check.exclude]
    if not out and check.include_common and all(c.name in check.key for c in target.c):
        return []
    if not out:
        raise InvalidInput("spot_check has nothing to compare: give 'columns' or 'compare', or share column names")
    return out


def _coerce_key(value: Any, col: Any) -> Any:
    """Source key values bound against the target's key type (e.g. '7' for an integer key)."""
    try:
        py = col.type.python_type
    except NotImplementedError:
        return value
    if py is int and isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        return int(value)
    if py is str and value is not None and not isinstance(value, str):
        return str(value)
    return value


def fetch(s: Session, table: sa.Table, keys: list[Any], exprs: list[Any], wanted: list[tuple[Any, ...]]) -> dict:
    """Rows by key: normalised key -> list of values of ``exprs``."""
    found: dict[tuple[Any, ...], list[Any]] = {}
    cols = [raw(k, f"k{i}") for i, k in enumerate(keys)] + [raw(e, f"v{i}") for i, e in enumerate(exprs)]
    for start in range(0, len(wanted), _CHUNK):
        chunk = [tuple(_coerce_key(v, c) for v, c in zip(w, keys, strict=True)) for w in wanted[start : start + _CHUNK]]
        cond = keys[0].in_([c[0] for c in chunk]) if len(keys) == 1 else sa.tuple_(*keys).in_(chunk)
        for row in s.execute(sa.select(*cols).where(cond)):
            norm = tuple(normalise(v) for v in row[: len(keys)])
            found.setdefault(norm, list(row[len(keys) :]))
    return found


def run(check: SpotCheck, env: CheckEnv) -> Outcome:
    src_key_names = check.source_key or check.key
    with env.session("source") as src:
        stable = src.table(check.source_name, env.schema("source", check.source_schema))
        skeys = [column(stable, k) for k in src_key_names]
        with env.session("target") as tgt:
            ttable = tgt.table(check.target_name, env.schema("target", check.target_schema))
            tkeys = [column(ttable, k) for k in check.key]
            comps = comparisons(check, stable, ttable)
            geometry = (geometry_columns(src, stable), geometry_columns(tgt, ttable))
            plans = [plan(c, src, stable, tgt, ttable, geometry) for c in comps]
            sexprs = [p[0] for p in plans]
            texprs = [p[1] for p in plans]
            rules = [p[2] for p in plans]
            picked = pick_keys(check, env, src, stable, skeys)
            # A key holding NULL (SQLite allows it when the declared type is not exactly INTEGER) names no
            # row: `= NULL` finds nothing on either side. Those rows are compared as a multiset instead.
            null_keyed = [k for k in picked.keys if any(v is None for v in k)]
            picked.keys = [k for k in picked.keys if k not in null_keyed]
            srows = fetch(src, stable, skeys, sexprs, picked.keys)
            trows = fetch(tgt, ttable, tkeys, texprs, picked.keys)
            nulls = (
                _null_key_rows(src, stable, skeys, sexprs, null_keyed),
                _null_key_rows(tgt, ttable, tkeys, texprs, null_keyed),
            )
    outcome = _compare(check, env, comps, picked, srows, trows, rules)
    return _with_null_keys(outcome, nulls, [same] * len(skeys) + list(rules), env) if null_keyed else outcome


NULL_KEY_ROWS = 200  # rows with a NULL key compared pairwise (rules are predicates, not canonical forms)


def _null_key_rows(
    s: Session, table: sa.Table, keys: list[Any], exprs: list[Any], null_keyed: list[tuple[Any, ...]]
) -> list[tuple[Any, ...]] | None:
    """Every row whose key holds a NULL (keys then values), or None when there are more than NULL_KEY_ROWS."""
    if not null_keyed:
        return []
    cols = [raw(k, f"k{i}") for i, k in enumerate(keys)] + [raw(e, f"v{i}") for i, e in enumerate(exprs)]
    stmt = sa.select(*cols).where(sa.or_(*[k.is_(None) for k in keys])).limit(NULL_KEY_ROWS + 1)
    rows = [tuple(r) for r in s.execute(stmt)]
    return None if len(rows) > NULL_KEY_ROWS else rows


def _with_null_keys(
    outcome: Outcome,
    nulls: tuple[list[tuple[Any, ...]] | None, list[tuple[Any, ...]] | None],
    rules: list[Rule],
    env: CheckEnv,
) -> Outcome:
    """Each source row with a NULL key must equal a distinct target row with a NULL key, and no target one is left."""
    source, target = nulls
    if source is None or target is None:
        # Never a silent pass: the rows that could not be compared make the check fail, saying why.
        outcome.passed = False
        outcome.summary += f"; rows with a NULL key NOT compared (more than {NULL_KEY_ROWS}): use diff (multiset)"
        return outcome
    unmatched_target = list(target)
    unmatched_source = []
    for row in source:
        hit = next((t for t in unmatched_target if all(r(a, b) for r, a, b in zip(rules, row, t, strict=True))), None)
        if hit is None:
            unmatched_source.append(row)
        else:
            unmatched_target.remove(hit)
    cap = env.defaults.max_value_chars
    outcome.figures["null_key_rows"] = {"source": len(source), "target": len(target)}
    if unmatched_source or unmatched_target:
        outcome.passed = False
        outcome.figures["offending"] = (
            outcome.figures.get("offending", 0) + len(unmatched_source) + len(unmatched_target)
        )
        outcome.summary += (
            f"; rows with a NULL key (compared as a multiset): {len(unmatched_source)} source row(s) and "
            f"{len(unmatched_target)} target row(s) without an equal row on the other side"
        )
        outcome.figures["null_key_examples"] = {
            "source_only": [[shown(v, cap) for v in r] for r in unmatched_source[:5]],
            "target_only": [[shown(v, cap) for v in r] for r in unmatched_target[:5]],
        }
    else:
        outcome.summary += f"; {len(source)} row(s) with a NULL key equal as a multiset"
    return outcome


def _key_shown(key: tuple[Any, ...], cap: int) -> Any:
    return shown(key[0], cap) if len(key) == 1 else [shown(k, cap) for k in key]


def _compare(
    check: SpotCheck,
    env: CheckEnv,
    comps: list[Comparison],
    picked: Picked,
    srows: dict,
    trows: dict,
    rules: list[Rule] | None = None,
) -> Outcome:
    rules = rules or [same] * len(comps)
    limit = check.max_mismatches or max(env.defaults.sample_size, 1)
    cap = env.defaults.max_value_chars
    mismatches: list[dict[str, Any]] = []
    per_field = {c.name: 0 for c in comps}
    missing_target = missing_source = compared = bad_rows = differing = 0
    for key in picked.keys:
        norm = tuple(normalise(k) for k in key)
        s_vals, t_vals = srows.get(norm), trows.get(norm)
        problem, fields = None, {}
        if s_vals is None or t_vals is None:
            problem = (
                "missing on both sides"
                if s_vals is None and t_vals is None
                else ("missing in source" if s_vals is None else "missing in target")
            )
            missing_source += s_vals is None
            missing_target += t_vals is None
        else:
            compared += 1
            for comp, rule, a, b in zip(comps, rules, s_vals, t_vals, strict=True):
                if not rule(a, b):
                    per_field[comp.name] += 1
                    fields[comp.name] = {"source": shown(a, cap), "target": shown(b, cap)}
        differing += bool(fields)
        if problem or fields:
            bad_rows += 1
            if len(mismatches) < limit:
                entry: dict[str, Any] = {
                    "key": {n: shown(v, cap) for n, v in zip(check.key, key, strict=True)},
                    "chosen_as": picked.why(key),
                }
                entry.update({"problem": problem} if problem else {"fields": fields})
                mismatches.append(entry)
    ok = bad_rows == 0
    table = check.label
    what = f"on {len(comps)} field(s)" if comps else "by key presence only (every column is part of the key)"
    summary = (
        f"{table}: {compared} row(s) compared {what}, all equal"
        if ok
        else f"{table}: {bad_rows} of {len(picked.keys)} chosen row(s) differ ({missing_target} missing in target, "
        f"{missing_source} missing in source, {differing} with differing fields)"
    )
    return Outcome(
        passed=ok,
        summary=summary,
        figures={
            "offending": bad_rows,
            "rows_chosen": len(picked.keys),
            "keys_chosen": [_key_shown(k, cap) for k in picked.keys[:KEYS_SHOWN]],
            "rows_compared": compared,
            "missing_in_target": missing_target,
            "missing_in_source": missing_source,
            "fields": [c.name for c in comps],
            "field_mismatches": {k: v for k, v in per_field.items() if v},
        },
        sample=mismatches,
        sample_truncated=bad_rows > len(mismatches),
    )
