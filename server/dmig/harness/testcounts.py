"""Best-effort pass/fail counts from a test runner's output.

The exit code is the verdict; counts only help a reader see how much failed. Each parser looks
for the runner's own summary line (pytest, jest, vitest, cargo, go, unittest, mocha) and the
first runner whose summary is present wins, so wrappers such as ``make test`` still parse.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from pydantic import BaseModel, Field

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class Counts(BaseModel):
    framework: str | None = Field(default=None, description="The runner whose summary was recognized, if any.")
    passed: int | None = None
    failed: int | None = Field(default=None, description="Failures plus errors.")
    skipped: int | None = None


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


def _num(pattern: str, text: str) -> int:
    return sum(int(m) for m in re.findall(pattern, text))


_PYTEST_WORDS = r"(?:passed|failed|errors?|skipped|xfailed|xpassed|deselected)"
_PYTEST_LINE = re.compile(r"^=*\s*(?=.*\b\d+ " + _PYTEST_WORDS + r"\b).*\bin [\d.]+s")


def _pytest(lines: list[str]) -> Counts | None:
    for line in reversed(lines):
        if _PYTEST_LINE.search(line) or re.match(r"^=+ no tests ran\b", line):
            return Counts(
                framework="pytest",
                passed=_num(r"(\d+) passed", line),
                failed=_num(r"(\d+) failed", line) + _num(r"(\d+) errors?\b", line),
                skipped=_num(r"(\d+) skipped", line),
            )
    return None


def _summary_line(lines: list[str], pattern: str, framework: str, skipped: str) -> Counts | None:
    """Runners that print one totals line (jest's ``Tests:``, vitest's ``Tests``): the last one wins."""
    for line in reversed(lines):
        match = re.match(pattern, line)
        if match:
            body = match.group(1)
            return Counts(
                framework=framework,
                passed=_num(r"(\d+) passed", body),
                failed=_num(r"(\d+) failed", body),
                skipped=_num(rf"(\d+) (?:{skipped})", body),
            )
    return None


def _jest(lines: list[str]) -> Counts | None:
    return _summary_line(lines, r"^\s*Tests:\s+(.*\d+ total.*)$", "jest", "skipped|todo|pending")


def _vitest(lines: list[str]) -> Counts | None:
    return _summary_line(lines, r"^\s*Tests\s{2,}(.*\(\d+\))", "vitest", "skipped|todo")


def _cargo(lines: list[str]) -> Counts | None:
    results = [ln for ln in lines if re.match(r"^test result: (ok|FAILED)\.", ln)]
    if not results:
        return None
    body = "\n".join(results)
    return Counts(
        framework="cargo",
        passed=_num(r"(\d+) passed", body),
        failed=_num(r"(\d+) failed", body),
        skipped=_num(r"(\d+) ignored", body),
    )


def _go(lines: list[str]) -> Counts | None:
    passed = sum(1 for ln in lines if re.match(r"^\s*--- PASS: ", ln))
    failed = sum(1 for ln in lines if re.match(r"^\s*--- FAIL: ", ln))
    skipped = sum(1 for ln in lines if re.match(r"^\s*--- SKIP: ", ln))
    packages_ok = sum(1 for ln in lines if re.match(r"^ok\s+\S+\s+(\(cached\)|[\d.]+s)", ln))
    packages_failed = sum(1 for ln in lines if re.match(r"^FAIL\s+\S+\s+([\d.]+s|\[)", ln))
    if not (passed or failed or skipped or packages_ok or packages_failed):
        return None
    # Without -v, go prints only failing tests: the number of passing tests is unknown, not zero.
    return Counts(
        framework="go",
        passed=passed if (passed or not packages_ok) else None,
        failed=failed or packages_failed,
        skipped=skipped,
    )


def _unittest(lines: list[str]) -> Counts | None:
    for i in range(len(lines) - 1, -1, -1):
        ran = re.match(r"^Ran (\d+) tests? in ", lines[i])
        if ran:
            verdict = " ".join(lines[i + 1 : i + 4])
            failed = _num(r"failures=(\d+)", verdict) + _num(r"errors=(\d+)", verdict)
            skipped = _num(r"skipped=(\d+)", verdict)
            passed = int(ran.group(1)) - failed - skipped
            return Counts(framework="unittest", passed=passed, failed=failed, skipped=skipped)
    return None


def _mocha(lines: list[str]) -> Counts | None:
    passing = [ln for ln in lines if re.match(r"^\s*\d+ passing\b", ln)]
    if not passing:
        return None
    body = "\n".join(ln for ln in lines if re.match(r"^\s*\d+ (passing|failing|pending)\b", ln))
    return Counts(
        framework="mocha",
        passed=_num(r"(\d+) passing", body),
        failed=_num(r"(\d+) failing", body),
        skipped=_num(r"(\d+) pending", body),
    )


PARSERS: tuple[Callable[[list[str]], Counts | None], ...] = (_cargo, _pytest, _jest, _vitest, _go, _unittest, _mocha)


def parse(lines: Iterable[str]) -> Counts:
    clean = [strip_ansi(ln.rstrip("\r\n")) for ln in lines]
    for parser in PARSERS:
        found = parser(clean)
        if found is not None:
            return found
    return Counts()
