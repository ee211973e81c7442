"""python -m review bench [--json] [--candidates N]: the review app's server-time benchmark."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store import StoreError
from store.command import run_command
from store.terminal import echo

from .bench import ReviewBenchConfig, result_json, run_bench


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m review", description="Verbatim review app tools")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="server time to open a candidate and to label one (100,000 candidates)")
    b.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    b.add_argument("--candidates", type=_positive, default=100_000)
    b.add_argument("--captions", type=_positive, default=None, help="default: 2 x candidates")
    b.add_argument("--tries", type=_positive, default=60)
    b.add_argument("--dir", type=Path, default=None,
                   help="bench store folder (default data/bench/review-...; reused when it exists)")
    a = ap.parse_args(argv)
    return run_command(lambda: _bench(a), bad_input=(StoreError,), interrupted="the bench store may be incomplete")


def _bench(a: argparse.Namespace) -> int:
    result = run_bench(ReviewBenchConfig(candidates=a.candidates, captions=a.captions, tries=a.tries, dir=a.dir),
                       lambda s: echo(s, sys.stderr))
    if a.json:
        print(result_json(result))
    else:
        print(f"{result.candidates:,} candidates: open {result.open_candidate_ms} ms, label {result.label_ms} ms "
              f"(medians of {result.tries})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
