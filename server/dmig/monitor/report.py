"""The run report: one self-contained HTML file (docs/migrations/<run-id>/report.html).

A reviewer opens it after the run, often offline or from a ticket attachment, so nothing is
fetched: styles are inline and the charts are SVG drawn here. It shows latency percentiles and
throughput over time with every pause, trigger and executor event marked where it happened, and
a summary table a reviewer can paste into a post-mortem.
"""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import Any

from dmig import fsutil
from dmig.harness.clock import parse_ts
from dmig.monitor import charts
from dmig.monitor.metrics import percentiles_of
from dmig.monitor.thresholds import Thresholds

_EVENT_COLORS = {
    "rollback": "#b3001b",
    "pause": "#e07b00",
    "warn": "#c9a400",
    "clear": "#2e8540",
    "resume": "#2e8540",
}
_VERDICT_COLORS = {"continue": "#2e8540", "warn": "#c9a400", "pause": "#e07b00", "rollback": "#b3001b"}

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;color:#222;max-width:960px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;font-size:13px} table{border-collapse:collapse;font-size:13px;margin:6px 0}
td,th{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top} th{background:#f4f4f4}
td.nw{white-space:nowrap}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:2px 8px;font-weight:600}
svg.chart{display:block;margin:8px 0 18px;max-width:100%;height:auto}
svg .ct{font-size:14px;font-weight:600;fill:#222} svg .tk{font-size:11px;fill:#555}
svg .ax{font-size:12px;fill:#444} svg .lg{font-size:12px;fill:#333} svg .mk{font-size:10px;fill:#fff;font-weight:700}
"""


def _x(records: list[dict[str, Any]]) -> list[float]:
    """Seconds since the first record, from timestamps (a resumed run keeps one time axis)."""
    moments = [parse_ts(r.get("ts")) for r in records]
    known = [m for m in moments if m is not None]
    if not known:
        return [float(r.get("elapsed_s") or 0) for r in records]
    origin = min(known)
    return [(m - origin).total_seconds() if m is not None else 0.0 for m in moments]


def _event_color(ev: dict[str, Any]) -> str:
    if ev.get("kind") in ("trigger", "escalate"):
        return _EVENT_COLORS.get(str(ev.get("action")), "#777")
    return _EVENT_COLORS.get(str(ev.get("kind")), _EVENT_COLORS.get(str(ev.get("kind", "")).split("_")[0], "#555"))


def _event_title(ev: dict[str, Any]) -> str:
    head = str(ev.get("kind"))
    if ev.get("rule"):
        head += f" {ev['rule']} -> {ev.get('action')}"
    return f"{head}: {ev.get('detail', '')}"


def _check_limit(sample: dict[str, Any], rule: str) -> float | None:
    for c in sample.get("checks") or []:
        if c.get("rule") == rule and c.get("limit") is not None:
            return float(c["limit"])
    return None


def _get(d: dict[str, Any], *path: str) -> Any:
    cur: Any = d
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def build_charts(records: list[dict[str, Any]]) -> tuple[list[str], list[tuple[int, float, dict[str, Any]]]]:
    xs = _x(records)
    samples = [(x, r) for x, r in zip(xs, records, strict=True) if r["type"] == "sample"]
    events = [
        (i + 1, x, r)
        for i, (x, r) in enumerate((x, r) for x, r in zip(xs, records, strict=True) if r["type"] == "event")
    ]
    baseline = next((r for r in reversed(records) if r["type"] == "baseline"), None)
    markers = [charts.Marker(x, str(n), _event_color(ev), _event_title(ev)) for n, x, ev in events]
    last = samples[-1][1] if samples else {}

    def series(name: str, color: str, path: tuple[str, ...], scale: float = 1.0, dash: str | None = None):
        pts = []
        for x, s in samples:
            v = _get(s, *path)
            pts.append((x, None if v is None else float(v) * scale))
        return charts.Series(name, color, pts, dash)

    def ref(name: str, color: str, value: float | None, dash: str = "6 4") -> list[charts.Series]:
        return [] if value is None else [charts.Series(name, color, [(0.0, value)], dash)]

    base_p95 = _get(baseline or {}, "latency", "p95_ms")
    latency = charts.Chart(
        "Probe latency (sliding-window percentiles)",
        "milliseconds",
        [
            series("p50", "#1f77b4", ("latency", "p50_ms")),
            series("p95", "#ff7f0e", ("latency", "p95_ms")),
            series("p99", "#d62728", ("latency", "p99_ms")),
        ],
        markers,
        ref("baseline p95", "#7f7f7f", base_p95, "2 3")
        + ref("latency limit", "#b3001b", _check_limit(last, "latency")),
    )
    throughput = charts.Chart(
        "Throughput reported by the migration",
        "rows / second",
        [series("rows/s", "#2ca02c", ("throughput_rows_per_s",))],
        markers,
    )
    err_limit = _check_limit(last, "error_rate")
    pressure = charts.Chart(
        "Probe error rate and connections in use",
        "percent",
        [
            series("error rate %", "#d62728", ("error_rate",), 100.0),
            series("connections %", "#9467bd", ("connections", "used_pct")),
        ],
        markers,
        ref("error limit", "#d62728", None if err_limit is None else err_limit * 100)
        + ref("connections limit", "#9467bd", _check_limit(last, "connections")),
    )
    out = [charts.render(latency), charts.render(throughput), charts.render(pressure)]
    if any(_get(s, "replication", "max_lag_s") is not None for _, s in samples):
        lag = charts.Chart(
            "Replication lag",
            "seconds",
            [series("worst lag", "#8c564b", ("replication", "max_lag_s"))],
            markers,
            ref("lag limit", "#b3001b", _check_limit(last, "replication_lag")),
        )
        out.append(charts.render(lag))
    return out, events


def _fmt(v: Any, unit: str = "", digits: int = 1) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:,.{digits}f}{unit}"
    return f"{v}{unit}"


def _size(n: Any) -> str:
    if n is None:
        return "n/a"
    value, sign = abs(float(n)), "-" if float(n) < 0 else ""
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{sign}{value:.0f} {unit}" if unit == "B" else f"{sign}{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def _max(values: list[Any]) -> float | None:
    nums = [float(v) for v in values if v is not None]
    return max(nums) if nums else None


def summary_rows(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    samples = [r for r in records if r["type"] == "sample"]
    baseline = next((r for r in reversed(records) if r["type"] == "baseline"), None)
    probes = [p for s in samples for p in s.get("probes") or []]
    felt = [p["latency_ms"] for p in probes if p.get("latency_ms") is not None and (p.get("ok") or p.get("timed_out"))]
    overall = percentiles_of(felt)
    failed = sum(1 for p in probes if not p.get("ok"))
    xs = _x(records)
    rates = [s.get("throughput_rows_per_s") for s in samples]
    last = samples[-1] if samples else {}
    triggers = [r for r in records if r["type"] == "event" and r.get("kind") in ("trigger", "escalate")]
    rows = [
        ("Samples", f"{len(samples)} over {_fmt(max(xs) if xs else 0.0, ' s')}"),
        (
            "Baseline latency p50 / p95 / p99",
            " / ".join(_fmt(_get(baseline or {}, "latency", k), " ms", 2) for k in ("p50_ms", "p95_ms", "p99_ms")),
        ),
        (
            "Run latency p50 / p95 / p99 (all probes)",
            " / ".join(_fmt(v, " ms", 2) for v in (overall.p50_ms, overall.p95_ms, overall.p99_ms)),
        ),
        ("Worst window p99", _fmt(_max([_get(s, "latency", "p99_ms") for s in samples]), " ms", 2)),
        ("Probe errors", f"{failed} of {len(probes)}"),
        ("Rows reported", _fmt(last.get("rows_done"))),
        (
            "Peak / last throughput",
            f"{_fmt(_max(rates), ' rows/s')} / {_fmt(last.get('throughput_rows_per_s'), ' rows/s')}",
        ),
        ("Peak connections in use", _fmt(_max([_get(s, "connections", "used_pct") for s in samples]), "%")),
        ("Replication", _replication_text(samples)),
        (
            "Database size (growth)",
            f"{_size(_get(last, 'disk', 'database_bytes'))} ({_size(_get(last, 'disk', 'growth_bytes'))})",
        ),
        (
            "Data filesystem used",
            _fmt(_get(last, "disk", "filesystem_used_pct"), "%")
            if _get(last, "disk", "filesystem_used_pct") is not None
            else "not visible",
        ),
        (
            "Peak server CPU / host CPU",
            f"{_fmt(_max([_get(s, 'host', 'cpu_server_pct') for s in samples]), '%')} / "
            f"{_fmt(_max([_get(s, 'host', 'cpu_host_pct') for s in samples]), '%')}",
        ),
        ("Triggers", str(len(triggers))),
        ("Final verdict", str(last.get("verdict", "n/a"))),
    ]
    return rows


def _replication_text(samples: list[dict[str, Any]]) -> str:
    if not samples:
        return "n/a"
    rep = samples[-1].get("replication") or {}
    worst = _max([_get(s, "replication", "max_lag_s") for s in samples])
    if worst is not None:
        return f"{rep.get('role')}: worst lag {worst:.1f} s"
    return str(rep.get("note") or rep.get("role") or "not visible")


def render(records: list[dict[str, Any]], title: str, thresholds: Thresholds | None = None) -> str:
    svgs, events = build_charts(records)
    samples = [r for r in records if r["type"] == "sample"]
    verdict = samples[-1].get("verdict", "n/a") if samples else "n/a"
    first_ts = records[0].get("ts") if records else None
    last_ts = records[-1].get("ts") if records else None
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<div class='sub'>{escape(str(first_ts))} to {escape(str(last_ts))} (UTC) · final verdict "
        f"<span class='badge' style='background:{_VERDICT_COLORS.get(verdict, '#555')}'>{escape(verdict)}</span></div>",
        "<h2>Summary</h2><table>",
        *(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in summary_rows(records)),
        "</table><h2>Charts</h2>",
        "<div class='sub'>Numbered markers are the events listed below (hover for details).</div>",
        *svgs,
        "<h2>Events</h2>",
        _events_table(events),
    ]
    if thresholds is not None:
        parts += ["<h2>Thresholds</h2>", _thresholds_table(thresholds)]
    parts.append("</body></html>")
    return "\n".join(parts)


def _events_table(events: list[tuple[int, float, dict[str, Any]]]) -> str:
    if not events:
        return "<p>No pauses, triggers or other events.</p>"
    rows = [
        "<table><tr><th>#</th><th>at (s)</th><th>time (UTC)</th><th>event</th><th>rule → action</th>"
        "<th>detail</th></tr>"
    ]
    for n, x, ev in events:
        color = _event_color(ev)
        rule = f"{ev.get('rule')} → {ev.get('action')}" if ev.get("rule") else ""
        rows.append(
            f"<tr class='event'><td><span class='badge' style='background:{color}'>{n}</span></td>"
            f"<td>{x:.1f}</td><td class='nw'>{escape(str(ev.get('ts')))}</td><td>{escape(str(ev.get('kind')))}</td>"
            f"<td>{escape(rule)}</td><td>{escape(str(ev.get('detail', '')))}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _thresholds_table(t: Thresholds) -> str:
    rows = ["<table><tr><th>rule</th><th>limit</th><th>action</th><th>severity</th></tr>"]
    limits = {
        "latency": f"{t.latency.percentile} over {t.latency.factor:g}× baseline (floor {t.latency.min_ms:g} ms"
        + (f", ceiling {t.latency.max_ms:g} ms" if t.latency.max_ms else "")
        + ")",
        "error_rate": f"over {100 * t.error_rate.max_ratio:g}% of probes",
        "replication_lag": f"over {t.replication_lag.max_seconds:g} s",
        "disk": f"over {t.disk.max_used_pct:g}% used",
        "connections": f"over {t.connections.max_used_pct:g}% of max",
    }
    for name, text in limits.items():
        r = t.rule(name)
        action = r.action if r.enabled else f"{r.action} (disabled)"
        rows.append(f"<tr><td>{name}</td><td>{escape(text)}</td><td>{action}</td><td>{r.severity}</td></tr>")
    rows.append(
        f"</table><div class='sub'>Hysteresis: {t.breaches_to_trigger} consecutive breaches trigger, "
        f"{t.healthy_to_resume} healthy samples clear; window {t.window_probes} probes / {t.window_seconds:g} s.</div>"
    )
    return "".join(rows)


def write(path: Path, records: list[dict[str, Any]], title: str, thresholds: Thresholds | None = None) -> None:
    fsutil.atomic_write_text(path, render(records, title, thresholds))
