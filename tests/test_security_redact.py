"""redact() is linear and masks remembered secrets in every spelling; file writes mask them too."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from dmig import fsutil
from dmig.redact import redact, remember_secret

PASSWORDS = ["p@ss:w/rd%1", "s p a c e+plus", "ünïcødé-пароль", "abcd", "x" * 64, 'q"uo\\te']


@pytest.mark.parametrize("pw", PASSWORDS)
@pytest.mark.parametrize("form", [lambda p: p, lambda p: quote(p, safe=""), lambda p: quote_plus(p, safe=""),
                                  lambda p: json.dumps(p)[1:-1]])  # fmt: skip
def test_remembered_secret_is_masked_in_every_spelling(pw: str, form) -> None:
    remember_secret(pw)
    assert form(pw) not in redact(f"the agent wrote {form(pw)} here")


@pytest.mark.parametrize(
    "text", ["postgresql://u:se@cr@et@h/db", "x PGPASSWORD=hunter22 y", '{"password": "hunter22"}']
)
def test_shapes_are_masked(text: str) -> None:
    out = redact(text)
    assert "hunter22" not in out and "se@cr" not in out


@pytest.mark.parametrize(
    "text", ["a" * 10_000_000, "ab://" * 2_000_000, "password=" * 1_100_000, "x://u:" + "@" * 10**7]
)
def test_redact_is_linear_on_ten_megabytes(text: str) -> None:
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 5.0


@pytest.mark.parametrize("pw", PASSWORDS[:3])
def test_file_writes_mask_secrets(tmp_path: Path, pw: str) -> None:
    remember_secret(pw)
    fsutil.register_root(tmp_path)
    fsutil.atomic_write_text(tmp_path / "a.md", f"note {pw}\n")
    fsutil.append_line(tmp_path / "b.jsonl", json.dumps({"text": f"x {pw}"}, ensure_ascii=False))
    for name in ("a.md", "b.jsonl"):
        assert pw not in (tmp_path / name).read_text()
