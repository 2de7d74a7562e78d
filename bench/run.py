"""``make bench``: run every benchmark script of this folder (``bench/*_bench.py``) with its default sizes.

Scripts are found by name, so a benchmark added later is picked up without touching this file.
Each runs as its own process (``python -m bench.<name>``), one after the other (they would
disturb each other's timings), and a failing one does not stop the next.

    python -m bench.run [--only copy,diff] [--list] [-- ARGS passed to every script]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scripts() -> list[str]:
    return sorted(p.stem for p in HERE.glob("*_bench.py"))


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated names (copy, diff, ...) to run")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(own)
    names = scripts()
    if args.list:
        print("\n".join(names))
        return 0
    wanted = {w.strip().removesuffix("_bench") for w in args.only.split(",") if w.strip()}
    if wanted:
        unknown = wanted - {n.removesuffix("_bench") for n in names}
        if unknown:
            print(f"unknown benchmark(s): {', '.join(sorted(unknown))}; have: {', '.join(names)}", file=sys.stderr)
            return 2
        names = [n for n in names if n.removesuffix("_bench") in wanted]
    failed = []
    for name in names:
        cmd = [sys.executable, "-m", f"bench.{name}", *passthrough]
        print(f"== {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        started = time.monotonic()
        code = subprocess.run(cmd, cwd=HERE.parent).returncode
        print(f"== {name}: exit {code} after {time.monotonic() - started:.0f}s", file=sys.stderr, flush=True)
        if code:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
