"""python -m review bench [--json] [--candidates N]: the review app's server-time benchmark;
python -m review bench --browser [--json] [--store DIR]: key to next candidate in Chromium;
python -m review export --store DIR --out X.zip: the evidence export (review/evidence.py), here
because its pages are drawn from the candidate view model, a layer above store/;
python -m review compare-export --store DIR --run N --out X.zip: a comparison's evidence
(review/compare_evidence.py; `python -m attack compare --out X.zip` runs it)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from store import StoreError
from store.command import run_command
from store.terminal import echo, terminal_safe

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
    b.add_argument("--candidates", type=_positive, default=None,
                   help="store size (default 100,000); with --browser, how many to triage (default 40)")
    b.add_argument("--captions", type=_positive, default=None, help="default: 2 x candidates")
    b.add_argument("--tries", type=_positive, default=60)
    b.add_argument("--dir", type=Path, default=None,
                   help="bench store folder (default data/bench/review-...; reused when it exists)")
    b.add_argument("--browser", action="store_true",
                   help="drive the app in Chromium over (a copy of) the demo store: key to next candidate rendered")
    b.add_argument("--store", type=Path, default=None, help="--browser: the store to copy (default data/demo)")
    b.add_argument("--chromium", default="/usr/bin/chromium", help="--browser: the Chromium executable")
    b.add_argument("--screenshots", type=Path, default=None,
                   help="--browser: also save grid.png and review.png in this folder (the README's are made so)")
    e = sub.add_parser("export", help="evidence pages (HTML + images + CSV + manifest, zipped) for counsel")
    e.add_argument("--store", type=Path, required=True)
    e.add_argument("--out", type=Path, required=True, help="output .zip (written atomically)")
    e.add_argument("--format", choices=("evidence",), default="evidence", help="the one format here")
    e.add_argument("--labels", default="MV,TV,RV", help="current human labels to export (default MV,TV,RV)")
    e.add_argument("--parents", action="store_true", help="create missing parent folders of --out")
    e.add_argument("--force", action="store_true", help="replace an existing --out file (atomically)")
    c = sub.add_parser("compare-export", help="a comparison's evidence: a page per caption with both models' "
                                              "generations (HTML + images + CSV + manifest, zipped)")
    c.add_argument("--store", type=Path, required=True)
    c.add_argument("--run", type=_positive, required=True, help="the compare run (python -m attack compare)")
    c.add_argument("--out", type=Path, required=True, help="output .zip (written atomically)")
    c.add_argument("--force", action="store_true", help="replace an existing --out file (atomically)")
    a = ap.parse_args(argv)
    if a.cmd == "export":
        return run_command(lambda: _export(a), bad_input=(StoreError,))
    if a.cmd == "compare-export":
        from attack.errors import AttackError

        return run_command(lambda: _compare_export(a), bad_input=(StoreError, AttackError))
    return run_command(lambda: _bench(a), bad_input=(StoreError,), interrupted="the bench store may be incomplete")


def _export(a: argparse.Namespace) -> int:
    from store.store import open_for_export

    from .evidence import export_evidence

    labels = [s.strip() for s in a.labels.split(",") if s.strip()]
    with open_for_export(a.store) as store:
        res = export_evidence(store, a.out, labels, make_parents=a.parents, force=a.force)
    unrecorded = " (not recorded in the store: it is read-only)" if res.export_id is None else ""
    echo(f"exported {res.rows} evidence pages (current human label {','.join(sorted(set(labels)))}) to "
         f"{terminal_safe(res.path, keep_newlines=False)} "
         f"[evidence, sha256 {res.sha256[:12]}]{unrecorded}")
    if res.warning:
        echo(f"warning: {res.warning}", sys.stderr)   # a valid request that found nothing: exit 0
    if res.unreadable:
        echo(f"warning: {res.unreadable_warning()}", sys.stderr)
    return 0


def _compare_export(a: argparse.Namespace) -> int:
    from attack.compare import load_compare
    from store import Store

    from .compare_evidence import write_compare_evidence

    with Store.open(a.store, create=False, readonly=True) as store:
        pages = write_compare_evidence(store, load_compare(store, a.run), a.out, force=a.force)
    echo(f"wrote the evidence of compare run {a.run}, {pages} captions, to "
         f"{terminal_safe(a.out, keep_newlines=False)} (a page each, both models' generations)")
    return 0


def _bench(a: argparse.Namespace) -> int:
    if a.browser:
        return _browser(a)
    cfg = ReviewBenchConfig(candidates=a.candidates or 100_000, captions=a.captions, tries=a.tries, dir=a.dir)
    result = run_bench(cfg, lambda s: echo(s, sys.stderr))
    if a.json:
        print(result_json(result))
    else:
        print(f"{result.candidates:,} candidates: open {result.open_candidate_ms} ms, label {result.label_ms} ms "
              f"(medians of {result.tries})")
    return 0


def _browser(a: argparse.Namespace) -> int:
    from .browser_bench import BrowserBenchConfig, run_browser_bench
    from .browser_bench import result_json as browser_json

    result = run_browser_bench(BrowserBenchConfig(store=a.store, candidates=a.candidates or 40, chromium=a.chromium,
                                                  screenshots=a.screenshots),
                               lambda s: echo(s, sys.stderr))
    if a.json:
        print(browser_json(result))
    else:
        print(f"key to next candidate: median {result.key_to_next_ms} ms, p90 {result.key_to_next_p90_ms} ms; "
              f"above the fold {result.above_fold_fraction:.0%} of {result.candidates} candidates")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
