"""Every tool input is bounded, and a request beyond the transport limit is answered while the server lives (12.9).

Three layers, each tested on its own:
- the input models: every string (at any depth, dict keys included) has a maxLength, every array a
  maxItems, every free-form object a maxProperties (a guard over all registered tools' schemas);
- the refusal: an over-limit value at each of those places, generated from the schema, is refused by
  ``dmig.bounds`` in-process and over MCP stdio with a structured E_INVALID_INPUT naming the field,
  fast, and the server answers the next call;
- the transport: raw JSON-RPC lines of 10 MB (valid JSON, invalid JSON, no newline) written to
  ``dmig serve``'s stdin get a JSON-RPC error, the server answers the next request, its memory stays flat.
"""

from __future__ import annotations

import functools
import json
import os
import queue
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from pydantic import TypeAdapter, ValidationError

from dmig import bounds, fields
from dmig.harness import bus
from dmig.lint.sql_parse import MAX_SQL_CHARS
from dmig.mcp_stdio import MAX_LINE_BYTES
from dmig.registry import ToolSpec, all_tools
from mcp_client import result_payload, server_params

TOOLS = all_tools()
MB10 = 10 * 1024 * 1024

# ----------------------------------------------------------------------------------------- schema walk


def _resolve(schema: dict[str, Any], defs: dict[str, Any], seen: frozenset[str]) -> tuple[dict | None, frozenset]:
    """Follow $ref; a definition already on the path (recursive JSON) is not entered twice."""
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        if name in seen:
            return None, seen
        seen, schema = seen | {name}, defs[name]
    return schema, seen


def unbounded(
    schema: dict[str, Any], defs: dict[str, Any], where: str = "", seen: frozenset = frozenset()
) -> list[str]:
    """Every place under ``schema`` that accepts a value of unbounded size."""
    schema, seen = _resolve(schema, defs, seen)
    if schema is None or (schema.get(fields.BOUNDED_JSON) and "type" not in schema):
        return []  # free JSON: bounded by the recursive validator; targets() generates its over-limit values
    out: list[str] = []
    for key in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(key, []):
            out += unbounded(branch, defs, where, seen)
    kind = schema.get("type")
    if not kind and not any(k in schema for k in ("anyOf", "oneOf", "allOf", "const", "enum")):
        out.append(f"{where}: any value")
    if kind == "string" and "maxLength" not in schema and "enum" not in schema and "const" not in schema:
        out.append(f"{where}: string without maxLength")
    if kind == "array":
        if "maxItems" not in schema:
            out.append(f"{where}: array without maxItems")
        out += unbounded(schema.get("items", {}), defs, where + "[]", seen)
    if kind == "object":
        for name, sub in schema.get("properties", {}).items():
            out += unbounded(sub, defs, f"{where}.{name}", seen)
        extra = schema.get("additionalProperties", "properties" not in schema)
        if extra is not False:
            if "maxProperties" not in schema:
                out.append(f"{where}: object without maxProperties")
            if "maxLength" not in schema.get("propertyNames", {}):
                out.append(f"{where}: object keys without maxLength")
            out += unbounded(extra if isinstance(extra, dict) else {}, defs, where + "{}", seen)
    return out


def _schema(spec: ToolSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    schema = spec.input_model.model_json_schema()
    return schema, schema.get("$defs", {})


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_every_input_of_every_tool_is_bounded(spec: ToolSpec) -> None:
    schema, defs = _schema(spec)
    assert unbounded(schema, defs) == []


def _ref_cycle(node: Any, defs: dict[str, Any], path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """The first chain of $defs that leads back to itself, if any."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref.rsplit("/", 1)[-1]
            if name in path:
                return (*path, name)
            found = _ref_cycle(defs.get(name, {}), defs, (*path, name))
            if found:
                return found
        return next((c for v in node.values() if (c := _ref_cycle(v, defs, path))), None)
    if isinstance(node, list):
        return next((c for v in node if (c := _ref_cycle(v, defs, path))), None)
    return None


@pytest.mark.parametrize("spec", TOOLS, ids=lambda s: s.name)
def test_published_schemas_hold_no_ref_cycle(spec: ToolSpec) -> None:
    """Claude Code's MCP client has failed to list a server's tools over a recursive $ref (claude-code#77106)."""
    schema, defs = _schema(spec)
    assert _ref_cycle(schema, defs) is None


def test_free_json_stays_bounded_at_depth() -> None:
    """The recursive validator behind the flat published hint refuses oversize at any depth."""
    adapter = TypeAdapter(fields.JsonObject)
    ok = {"a": [{"b": ["x" * 100, 1, 2.5, None, True]}]}
    assert adapter.validate_python(ok) == ok
    for where, _n, make in json_targets(""):
        with pytest.raises(ValidationError):
            adapter.validate_python({"k": make(FILLS["ascii"])}), where


def test_the_guard_finds_what_it_guards_against() -> None:
    """The walk itself: an unbounded string, list, dict, key or free value anywhere is reported."""
    schema = {
        "type": "object",
        "properties": {
            "s": {"type": "string"},
            "l": {"type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/Inner"}},
            "d": {"type": "object", "additionalProperties": {"type": "integer"}},
            "a": {},
            "ok": {"anyOf": [{"type": "string", "maxLength": 3}, {"type": "null"}]},
        },
        "$defs": {"Inner": {"type": "object", "properties": {"deep": {"type": "array", "items": {"type": "string"}}}}},
    }
    assert unbounded(schema, schema["$defs"]) == [
        ".s: string without maxLength",
        ".l[].deep: array without maxItems",
        ".l[].deep[]: string without maxLength",
        ".d: object without maxProperties",
        ".d: object keys without maxLength",
        ".a: any value",
    ]


def test_limits_agree_with_each_other() -> None:
    """One story of numbers: no model limit above the bounds budget, the budget well inside one request line."""
    assert MAX_LINE_BYTES >= 2 * bounds.MAX_ARGUMENT_CHARS
    assert fields.SQL_MAX == MAX_SQL_CHARS <= bounds.MAX_ARGUMENT_CHARS
    assert fields.MESSAGE_MAX == bus.MAX_TEXT
    for spec in TOOLS:
        text = json.dumps(_schema(spec)[0])
        for key in ("maxLength", "maxItems", "maxProperties"):
            for part in text.split(f'"{key}": ')[1:]:
                assert int(part.split(",")[0].split("}")[0]) <= bounds.MAX_ARGUMENT_CHARS, (spec.name, key)


# ------------------------------------------------------------------------------ over-limit values, generated

Make = Callable[[Callable[[int], str]], Any]


def _minimal(schema: dict[str, Any], defs: dict[str, Any], seen: frozenset = frozenset()) -> Any:
    """A small value of the schema's type (valid where it matters: dict values, the SDK's str parameters)."""
    schema, seen = _resolve(schema, defs, seen)
    if schema is None:
        return None
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return _minimal(schema[key][0], defs, seen)
    kind = schema.get("type")
    if kind == "string":
        return "x" * max(1, schema.get("minLength", 1))
    if kind in ("integer", "number"):
        return schema.get("minimum", schema.get("exclusiveMinimum", 0) + 1)
    if kind == "array":
        return [_minimal(schema["items"], defs, seen) for _ in range(schema.get("minItems", 0))]
    if kind == "object":
        props = schema.get("properties", {})
        required = {k: _minimal(props[k], defs, seen) for k in schema.get("required", []) if k in props}
        return required | {k: v["const"] for k, v in props.items() if "const" in v}
    return False if kind == "boolean" else None


def _string(length: int, fill: Callable[[int], str]) -> str:
    return fill(length)


def _many(item: Any, count: int, fill: Callable[[int], str]) -> list[Any]:
    return [item] * count


def _keys(value: Any, count: int, fill: Callable[[int], str]) -> dict[str, Any]:
    return {f"k{i}": value for i in range(count)}


def _long_key(value: Any, length: int, fill: Callable[[int], str]) -> dict[str, Any]:
    return {fill(length): value}


def _in_list(make: Make, fill: Callable[[int], str]) -> list[Any]:
    return [make(fill)]


def _in_object(tags: dict[str, Any], name: str, make: Make, fill: Callable[[int], str]) -> dict[str, Any]:
    return {**tags, name: make(fill)}


def _in_dict(make: Make, fill: Callable[[int], str]) -> dict[str, Any]:
    return {"k": make(fill)}


def _arguments(base: dict[str, Any], make: Make, fill: Callable[[int], str]) -> dict[str, Any]:
    return {**base, **make(fill)}


def _over_budget(base: dict[str, Any], name: str) -> dict[str, Any]:
    return {**base, name: "A" * (bounds.MAX_ARGUMENT_CHARS + 1000)}


def targets(schema: dict[str, Any], defs: dict[str, Any], where: str = "", seen: frozenset = frozenset()) -> Iterator:
    """(where, limit, make) for every bound under ``schema``; make(fill) builds a value one over it there.

    ``fill(n)`` gives the n-character string used for an over-long string or key.
    """
    schema, seen = _resolve(schema, defs, seen)
    if schema is None:
        return
    if schema.get(fields.BOUNDED_JSON) and "type" not in schema:
        yield from json_targets(where)
        return
    for key in ("anyOf", "oneOf"):
        for branch in schema.get(key, []):
            yield from targets(branch, defs, where, seen)
    kind = schema.get("type")
    if kind == "string" and "maxLength" in schema:
        n = schema["maxLength"]
        yield where, n, functools.partial(_string, n + 1)
    elif kind == "array":
        items = schema["items"]
        if "maxItems" in schema:
            n = schema["maxItems"]
            yield where + "[#]", n, functools.partial(_many, _minimal(items, defs, seen), n + 1)
        for w, n, make in targets(items, defs, where + "[]", seen):
            yield w, n, functools.partial(_in_list, make)
    elif kind == "object":
        props = schema.get("properties", {})
        tags = {k: v["const"] for k, v in props.items() if "const" in v}  # a discriminated union's tag
        label = "".join(f"({k}={v})" for k, v in tags.items())
        for name, sub in props.items():
            for w, n, make in targets(sub, defs, f"{where}{label}.{name}", seen):
                yield w, n, functools.partial(_in_object, tags, name, make)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" in schema:
                n = schema["maxProperties"]
                yield where + "{#}", n, functools.partial(_keys, _minimal(extra, defs, seen), n + 1)
            key_max = schema.get("propertyNames", {}).get("maxLength")
            if key_max:
                yield where + "{key}", key_max, functools.partial(_long_key, _minimal(extra, defs, seen), key_max + 1)
            for w, n, make in targets(extra, defs, where + "{}", seen):
                yield w, n, functools.partial(_in_dict, make)


def _nested(depth: int, make: Make, fill: Callable[[int], str]) -> Any:
    """make(fill) buried ``depth`` levels down, alternating lists and objects."""
    value = make(fill)
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def json_targets(where: str) -> Iterator:
    """Over-limit values for a free JSON field (the published schema is a flat hint, the validator recursive)."""
    kinds = [
        ("str", fields.SQL_MAX, functools.partial(_string, fields.SQL_MAX + 1)),
        ("list", fields.ITEMS_MAX, functools.partial(_many, 0, fields.ITEMS_MAX + 1)),
        ("object", fields.KEYS_MAX, functools.partial(_keys, 0, fields.KEYS_MAX + 1)),
        ("key", fields.NAME_MAX, functools.partial(_long_key, 0, fields.NAME_MAX + 1)),
    ]
    for depth in (0, 5):
        for kind, n, make in kinds:
            yield f"{where}<json {kind} at depth {depth}>", n, functools.partial(_nested, depth, make)


FILLS: dict[str, Callable[[int], str]] = {
    "ascii": lambda n: "A" * n,
    "utf8": lambda n: "é" * n,  # two bytes a character: the limit counts characters
    "mixed": lambda n: ("x\u200b'\";--\x1b[2J" * (n // 10 + 1))[:n],  # quotes, escapes, zero-width
}


def over_limit_cases() -> list[tuple[str, ToolSpec, str, Callable[[], dict[str, Any]]]]:
    """(id, tool, top-level field, build arguments) for every bound of every tool, in every fill.

    The arguments are built when a test needs them: hundreds of megabyte strings held at once would not be.
    """
    cases = []
    for spec in TOOLS:
        schema, defs = _schema(spec)
        base = _minimal(schema, defs)
        for where, _limit, make in targets(schema, defs):
            field = where.lstrip(".").split("[")[0].split("{")[0].split(".")[0].split("(")[0]
            fills = FILLS if not where.endswith(("[#]", "{#}")) else {"ascii": FILLS["ascii"]}
            for fill_name, fill in fills.items():
                build = functools.partial(_arguments, base, make, fill)
                cases.append((f"{spec.name}{where}:{fill_name}", spec, field, build))
        for name, prop in schema.get("properties", {}).items():  # the per-argument budget of dmig.bounds
            if '"string"' in json.dumps(prop):
                build = functools.partial(_over_budget, base, name)
                cases.append((f"{spec.name}.{name}:budget", spec, name, build))
    return cases


CASES = over_limit_cases()


def _names_field(details: dict[str, Any], field: str) -> bool:
    """The refusal is dmig.bounds' size refusal for this field: it names the field and the limit passed."""
    named = [details, *details.get("errors", [])]
    return any(
        isinstance(e.get("field"), str) and e["field"].split(".")[0] == field and isinstance(e.get("limit"), int)
        for e in named
    )


def test_every_bound_is_generated() -> None:
    """Guard on the generator: each tool with a string input gets cases, ~ hundreds in all."""
    per_tool = {spec.name: sum(1 for c in CASES if c[1] is spec) for spec in TOOLS}
    assert all(n > 0 for name, n in per_tool.items() if name != "server_info"), per_tool
    assert len(CASES) > 500


@pytest.mark.parametrize(("spec", "field", "build"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_over_limit_value_is_refused_in_process(spec: ToolSpec, field: str, build: Callable[[], dict]) -> None:
    arguments = build()
    started = time.perf_counter()
    with pytest.raises(bounds.InputTooLarge) as err:
        bounds.check(spec.input_model, arguments)
    assert time.perf_counter() - started < 1
    assert err.value.code == "E_INVALID_INPUT"
    assert _names_field(err.value.details, field), err.value.details


# Session, not module, scope: an xdist worker interleaves other modules' tests with this group's, and
# pytest tears a module fixture down whenever the next test is in another module (the corpus ran twice).
@pytest.fixture(scope="session")
def stdio_answers(tmp_path_factory: pytest.TempPathFactory, dmig_data_dir: Path) -> dict[str, Any]:
    """Every case sent to one `dmig serve` over stdio (official client), each followed by server_info."""
    project = tmp_path_factory.mktemp("limits") / "project"
    project.mkdir()
    answers: dict[str, Any] = {}

    async def run() -> None:
        async with Client(server_params(project), read_timeout_seconds=60) as client:
            for case_id, spec, _field, build in CASES:
                arguments = build()
                started = time.perf_counter()
                payload = result_payload(await client.call_tool(spec.name, arguments))
                seconds = time.perf_counter() - started
                after = result_payload(await client.call_tool("server_info", {}))
                answers[case_id] = (payload, seconds, after)

    anyio.run(run)
    answers["_audit"] = (project / "docs/00-meta/dmig-audit.jsonl").read_text(errors="replace")
    return answers


@pytest.mark.parametrize("spec", [s for s in TOOLS if s.name != "server_info"], ids=lambda s: s.name)
@pytest.mark.xdist_group("limits-stdio")  # one worker starts the module's server once
def test_over_limit_values_are_refused_over_stdio(spec: ToolSpec, stdio_answers: dict[str, Any]) -> None:
    mine = [(case_id, field) for case_id, s, field, _args in CASES if s is spec]
    assert mine
    for case_id, field in mine:
        payload, seconds, after = stdio_answers[case_id]
        assert payload.get("error", {}).get("code") == "E_INVALID_INPUT", (case_id, payload)
        assert _names_field(payload["error"]["details"], field), (case_id, payload)
        assert seconds < 5, (case_id, seconds)
        assert after.get("version") and len(after["tools"]) == len(TOOLS), (case_id, after)


@pytest.mark.xdist_group("limits-stdio")
def test_refused_inputs_never_reach_the_audit_log(stdio_answers: dict[str, Any]) -> None:
    audit = stdio_answers["_audit"]
    assert audit  # the write tools were refused and audited...
    assert "A" * 300 not in audit and "é" * 300 not in audit  # ...by field names and sizes only


BIG = "A" * 100_000  # over every string limit but a row value's, far under the 2M budget
HUGE = "A" * 1_100_000  # over the 1M limit of SQL and of any text in inline JSON
SQLITE = "sqlite:///limits.db"
COPY = {"source_url": SQLITE, "target_url": "sqlite:///t.db"}
DIFF = {"source_url": SQLITE, "target_url": SQLITE}
HAND_PICKED: list[tuple[str, dict[str, Any], str]] = [
    ("inspect", {"url": SQLITE, "tables": [BIG]}, "tables"),
    ("inspect", {"url": SQLITE, "schema": BIG}, "schema"),
    ("inspect", {"url": SQLITE, "include": ["columns"] * 40}, "include"),
    ("diff", {**DIFF, "table": BIG}, "table"),
    ("diff", {**DIFF, "table": "t", "key": [BIG]}, "key"),
    ("diff", {**DIFF, "table": "t", "where": [{"column": "c", "op": "=", "value": HUGE}]}, "where"),
    ("copy", {**COPY, "tables": [BIG]}, "tables"),
    ("copy", {**COPY, "mapping": {"t": {"transforms": [{"op": "rename", "column": BIG, "to": "b"}]}}}, "mapping"),
    ("copy", {**COPY, "mapping": {"t": {"filter": [{"column": "c", "op": "eq", "value": HUGE}]}}}, "mapping"),
    ("copy", {**COPY, "mapping": {BIG: {}}}, "mapping"),
    ("copy", {**COPY, "since_column": "c", "since_value": BIG}, "since_value"),
    ("backup", {"url": SQLITE, "tables": [BIG]}, "tables"),
    ("backup", {"url": SQLITE, "folder": BIG}, "folder"),
    ("restore_backup", {"backup_id": BIG, "url": SQLITE, "dry_run": True}, "backup_id"),
    ("verify_backup", {"backup_id": BIG}, "backup_id"),
    ("prune_backups", {"protect": [BIG]}, "protect"),
    ("list_backups", {"folder": BIG}, "folder"),
    ("health", {"url": SQLITE, "probes": [BIG]}, "probes"),
    ("health", {"url": SQLITE, "thresholds": {BIG: 1}}, "thresholds"),
    ("monitor", {"url": SQLITE, "run_id": BIG}, "run_id"),
    ("plan_migration", {"spec": BIG}, "spec"),
    ("run_migration", {"plan": BIG, "dry_run": True}, "plan"),
    ("migration_status", {"migration_id": BIG, "url": SQLITE}, "migration_id"),
    ("complete_migration", {"plan": "p", "confirm": BIG}, "confirm"),
    ("abort_migration", {"plan": BIG, "confirm": "c"}, "plan"),
    ("rollback", {"plan": BIG, "confirm": "c"}, "plan"),
    ("validate", {"rules": BIG}, "rules"),
    ("validate", {"spec": {"checks": [{"type": "row_count", "table": "t"}] * 1001}}, "spec"),
    ("validate", {"spec": {"checks": []}, "source": BIG}, "source"),
    ("lint_migration", {"spec_inline": {"operations": [{"op": "raw_sql", "sql": HUGE}]}}, "spec_inline"),
    ("self_improve", {"insight": "i", "conventions": [BIG]}, "conventions"),
    ("self_improve", {"insight": "i", "files_affected": [BIG]}, "files_affected"),
    ("self_improve", {"insight": "i", "measured": [{"dialect": "sqlite", "operation": BIG, "seconds": 1}]}, "measured"),
    ("expertise_read", {"path": BIG}, "path"),
    ("workload", {"url": SQLITE, "table": BIG}, "table"),
    ("bus_append", {"type": "note", "text": "t", "extra": {"k": HUGE}}, "extra"),
    ("bus_append", {"type": "note", "text": "t", "extra": {BIG: 1}}, "extra"),
    ("session_init", {"project_type": BIG}, "project_type"),
]  # fmt: skip


def test_hand_picked_oversized_inputs_over_stdio(project: Path) -> None:
    """Independent of the schema walk: values an attacker would send, each refused for its size, fast."""

    async def run() -> list[tuple[dict[str, Any], float]]:
        out = []
        async with Client(server_params(project), read_timeout_seconds=60) as client:
            for tool, arguments, _field in HAND_PICKED:
                started = time.perf_counter()
                out.append((result_payload(await client.call_tool(tool, arguments)), time.perf_counter() - started))
            out.append((result_payload(await client.call_tool("server_info", {})), 0.0))
        return out

    answers = anyio.run(run)
    for (tool, _args, field), (payload, seconds) in zip(HAND_PICKED, answers, strict=False):
        assert payload.get("error", {}).get("code") == "E_INVALID_INPUT", (tool, field, payload)
        assert _names_field(payload["error"]["details"], field), (tool, field, payload)
        assert seconds < 5, (tool, field, seconds)
    assert len(answers[-1][0]["tools"]) == len(TOOLS)
    assert not (project / "limits.db").exists() and not (project / "t.db").exists()  # nothing reached a database


ISSUE_CASES = [  # issue 12.9's 10 MB inputs, through the official client: refused by the transport now
    ("inspect", {"url": "A" * MB10}),
    ("bus_append", {"type": "note", "text": "A" * MB10}),
    ("status_update", {"story_id": "A" * MB10, "status": "ready"}),
    ("lint_migration", {"sql": "SELECT " + "A" * MB10}),
    ("self_improve", {"insight": "A" * MB10}),
    ("lint_migration", {"spec": "A" * MB10}),
]


def test_ten_megabyte_arguments_from_the_official_client(project: Path) -> None:
    """What Claude Code sends: each call fails with a JSON-RPC error, fast, and the same session goes on."""

    async def run() -> list[Any]:
        out: list[Any] = []
        async with Client(server_params(project), read_timeout_seconds=60) as client:
            for tool, arguments in ISSUE_CASES:
                started = time.perf_counter()
                with pytest.raises(MCPError) as err:
                    await client.call_tool(tool, arguments)
                out.append((err.value.error.code, time.perf_counter() - started))
            out.append(result_payload(await client.call_tool("server_info", {})))
        return out

    answers = anyio.run(run)
    for (tool, _args), (code, seconds) in zip(ISSUE_CASES, answers, strict=False):
        assert code == mcp_types.INVALID_REQUEST, tool
        assert seconds < 5, (tool, seconds)
    assert len(answers[-1]["tools"]) == len(TOOLS)
    assert not (project / "docs/09-agents/bus/log.jsonl").exists()  # nothing of it was written anywhere


# ----------------------------------------------------------------------------------------- raw transport


class RawServer:
    """`dmig serve` as a child process, spoken to in raw bytes (what a broken or hostile client sends)."""

    def __init__(self, project: Path) -> None:
        params = server_params(project)
        self.stderr_path = project.parent / "serve-stderr.txt"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [params.command, *params.args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            env=params.env,
            cwd=params.cwd,
        )
        self._lines: queue.Queue[bytes | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.request(0, "initialize", {
            "protocolVersion": mcp_types.LATEST_PROTOCOL_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "raw-test", "version": "1"},
        })  # fmt: skip
        assert self.answer(timeout=120)["id"] == 0  # start-up: imports every tool module
        self.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def send(self, data: bytes, timeout: float = 30) -> None:
        """Write in a thread so a server that stops reading fails the test instead of hanging it."""
        assert self.proc.stdin is not None
        stdin = self.proc.stdin

        def write() -> None:
            stdin.write(data)
            stdin.flush()

        writer = threading.Thread(target=write, daemon=True)
        writer.start()
        writer.join(timeout)
        assert not writer.is_alive(), "the server stopped reading its input"

    def request(self, request_id: Any, method: str, params: dict[str, Any] | None = None) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            message["params"] = params
        self.send(json.dumps(message).encode() + b"\n")

    def answer(self, timeout: float = 30) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no answer within {timeout} s") from None
        assert line is not None, "the server closed its output (it died)"
        return json.loads(line)

    def alive(self, request_id: int = 999) -> None:
        """The server still answers a normal request (tools/list, the whole tool catalogue)."""
        self.request(request_id, "tools/list")
        answer = self.answer()
        assert answer["id"] == request_id
        assert len(answer["result"]["tools"]) == len(TOOLS)

    def peak_memory_kib(self) -> int:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(status.split("VmHWM:")[1].split()[0])

    def close(self) -> str:
        if self.proc.poll() is None:
            assert self.proc.stdin is not None
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._stderr.close()
        return self.stderr_path.read_text(errors="replace")


@pytest.fixture
def raw(project: Path) -> Iterator[RawServer]:
    server = RawServer(project)
    yield server
    stderr = server.close()
    assert "Traceback" not in stderr, stderr


def _call(request_id: Any, tool: str, arguments: dict[str, Any]) -> bytes:
    message = {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    }
    return json.dumps(message).encode() + b"\n"


def _refused(answer: dict[str, Any], request_id: Any) -> None:
    assert answer["id"] == request_id, answer
    assert answer["error"]["code"] == mcp_types.INVALID_REQUEST, answer
    assert answer["error"]["data"]["limit_bytes"] == MAX_LINE_BYTES


OVERSIZED_LINES: dict[str, tuple[bytes, Any]] = {
    "valid_json_tool_call": (_call(7, "inspect", {"url": "A" * MB10}), 7),
    "valid_json_string_id": (_call("req-7", "lint_migration", {"sql": "SELECT " + "1," * (MB10 // 2)}), "req-7"),
    "valid_json_id_not_first": (json.dumps({"method": "tools/list", "id": 8, "x": "A" * MB10}).encode() + b"\n", None),
    "valid_json_id_last": (b'{"method":"ping","params":{"x":"' + b"A" * MB10 + b'"},"jsonrpc":"2.0","id":13}\n', 13),
    "valid_json_nested_id_last": (b'{"method":"ping","params":{"x":"' + b"A" * MB10 + b'","id":14}}\n', None),
    "valid_json_array": (b"[" + b"1," * (MB10 // 2) + b"1]\n", None),
    "invalid_json": (b'{"jsonrpc":"2.0","id":9,' + b"A" * MB10 + b"\n", 9),
    "binary_garbage": (os.urandom(MB10).replace(b"\n", b" ") + b"\n", None),
    "just_over_the_limit": (b'{"jsonrpc":"2.0","id":10,"method":"ping","x":"' + b"A" * MAX_LINE_BYTES + b'"}\n', 10),
}


@pytest.mark.parametrize("name", sorted(OVERSIZED_LINES))
def test_oversized_line_is_answered_and_the_server_lives(raw: RawServer, name: str) -> None:
    line, request_id = OVERSIZED_LINES[name]
    started = time.perf_counter()
    raw.send(line)
    _refused(raw.answer(), request_id)
    assert time.perf_counter() - started < 5
    raw.alive()


def test_line_without_newline_is_answered_before_it_ends(raw: RawServer) -> None:
    """10 MB with no newline: the error comes at once (the client may be waiting); the next line is served."""
    raw.send(b'{"jsonrpc":"2.0","id":11,"method":"tools/list","params":{"x":"' + b"A" * MB10)
    _refused(raw.answer(), 11)
    raw.send(b'"}}\n')  # the rest of that line is dropped with it
    raw.alive()


def test_line_without_newline_then_end_of_input(raw: RawServer) -> None:
    raw.send(b'{"jsonrpc":"2.0","id":12,' + b"A" * MB10)
    _refused(raw.answer(), 12)
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()
    assert raw.proc.wait(10) == 0  # a clean shutdown at end of input, no crash


def test_line_without_newline_nor_leading_id_is_answered_at_end_of_input(raw: RawServer) -> None:
    raw.send(b'{"method":"ping","params":{"x":"' + b"A" * MB10)
    assert raw.proc.stdin is not None
    raw.proc.stdin.close()
    _refused(raw.answer(), None)
    assert raw.proc.wait(10) == 0


def test_requests_pipelined_around_an_oversized_line_are_all_served(raw: RawServer) -> None:
    ping = b'{"jsonrpc":"2.0","id":%d,"method":"ping"}\n'
    raw.send(ping % 20 + b'{"jsonrpc":"2.0","id":21,' + b"A" * MB10 + b"\n" + ping % 22 + ping % 23)
    answers = [raw.answer() for _ in range(4)]
    assert [a["id"] for a in answers] == [20, 21, 22, 23]
    assert [("error" in a) for a in answers] == [False, True, False, False]
    raw.alive()


def test_many_oversized_lines_keep_memory_flat(raw: RawServer) -> None:
    """Bounded reader: 64 MB in one line and ten 10 MB lines cost the server less than 32 MiB more peak memory."""
    raw.alive(1)
    before = raw.peak_memory_kib()
    raw.send(b'{"jsonrpc":"2.0","id":30,"method":"ping","x":"' + b"A" * (64 * 1024 * 1024) + b'"}\n', timeout=60)
    _refused(raw.answer(), 30)
    for i in range(10):
        raw.send(_call(31 + i, "bus_append", {"type": "note", "text": "A" * MB10}))
        _refused(raw.answer(), 31 + i)
    raw.alive(2)
    assert raw.peak_memory_kib() - before < 32 * 1024


def test_a_line_at_the_limit_is_still_served(raw: RawServer) -> None:
    """The limit is a size, not a ban on large requests: a 4 MiB line still reaches the tool (and its bounds)."""
    head = b'{"jsonrpc":"2.0","id":40,"method":"tools/call","params":{"name":"inspect","arguments":{"url":"'
    tail = b'"}}}'
    raw.send(head + b"A" * (MAX_LINE_BYTES - len(head) - len(tail)) + tail + b"\n")
    answer = raw.answer()
    assert answer["id"] == 40 and answer["result"]["isError"] is True
    assert "E_INVALID_INPUT" in answer["result"]["content"][0]["text"]  # refused by dmig.bounds, not the transport
    raw.alive()


@pytest.mark.parametrize(
    ("line", "code", "request_id"),
    [
        (b'{"jsonrpc":"2.0","id":50,"method":\n', mcp_types.PARSE_ERROR, 50),
        (b"not json at all\n", mcp_types.PARSE_ERROR, None),
        (b'{"jsonrpc":"2.0","id":51,"method":"tools/list"\n', mcp_types.PARSE_ERROR, 51),
        (b'{"jsonrpc":"1.0","id":52,"method":"tools/list"}\n', mcp_types.INVALID_REQUEST, 52),
        (b'{"id":"s53","method":42}\n', mcp_types.INVALID_REQUEST, "s53"),
        (b"[1, 2, 3]\n", mcp_types.INVALID_REQUEST, None),
        (b"\xff\xfe\x00garbage\n", mcp_types.PARSE_ERROR, None),
    ],
    ids=["truncated", "text", "unclosed", "jsonrpc-1.0", "method-not-string", "array", "bytes"],
)
def test_a_short_malformed_line_is_answered(raw: RawServer, line: bytes, code: int, request_id: Any) -> None:
    """The SDK drops these in silence (the client waits forever); JSON-RPC 2.0 says answer them."""
    raw.send(line)
    answer = raw.answer()
    assert answer["error"]["code"] == code and answer["id"] == request_id, answer
    raw.alive()


def test_blank_lines_are_ignored(raw: RawServer) -> None:
    raw.send(b"\n\r\n   \n")
    raw.alive()
