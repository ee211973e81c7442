"""python -m store info|export|bench: thin wrappers over the library.

Errors go to stderr; bad input exits 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .bench import BenchConfig, result_json, run_bench
from .errors import StoreError
from .export import DEFAULT_LABELS, FORMATS, export
from .store import Store

EXIT_BAD_INPUT = 2


def _info(args: argparse.Namespace) -> int:
    with Store.open(args.store, create=False) as store:
        info = store.info()
    if args.json:
        print(json.dumps(info, sort_keys=True))
    else:
        print(f"store {info['path']} (schema v{info['schema_version']})")
        for table, n in info["tables"].items():
            print(f"  {table:16s} {n}")
        print(f"  candidates       {info['candidates']}")
        print("  labels: " + ", ".join(f"{k} {v}" for k, v in info["labels"].items()))
    return 0


def _export(args: argparse.Namespace) -> int:
    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    with Store.open(args.store, create=False) as store:
        result = export(store, args.out, args.format, labels=labels, make_parents=args.parents)
    skipped = f", {len(result.skipped_without_image)} without a generated image left out of the zip" \
        if result.skipped_without_image else ""
    print(f"exported {result.rows} rows ({','.join(sorted(set(labels)))}) to {result.path} "
          f"[{result.format}, sha256 {result.sha256[:12]}]{skipped}")
    return 0


def _bench(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:7.1f}s] {msg}", file=sys.stderr, flush=True)

    cfg = BenchConfig(captions=args.captions, candidates=args.candidates, tries=args.tries,
                      seed=args.seed, dir=args.dir, keep=args.keep)
    if cfg.candidates > cfg.captions or cfg.captions < 1:
        raise StoreError(f"bench: expected 1 <= candidates <= captions, got {cfg.candidates} > {cfg.captions}")
    result = run_bench(cfg, log)
    if not args.json:
        for k, v in json.loads(result_json(result)).items():
            print(f"{k:28s} {v}")
    print(result_json(result))  # last line: one JSON object
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m store", description="Verbatim evidence store")
    sub = p.add_subparsers(dest="command", required=True)

    info = sub.add_parser("info", help="counts per table and per current human label")
    info.add_argument("--store", type=Path, required=True)
    info.add_argument("--json", action="store_true", help="print one JSON object")
    info.set_defaults(func=_info)

    ex = sub.add_parser("export", help="export the human-confirmed verbatims")
    ex.add_argument("--store", type=Path, required=True)
    ex.add_argument("--out", type=Path, required=True, help="output file (written atomically)")
    ex.add_argument("--format", choices=FORMATS, default=None, help="default: from the --out extension")
    ex.add_argument("--labels", default=",".join(DEFAULT_LABELS), help="current labels to export (default MV,TV,RV)")
    ex.add_argument("--parents", action="store_true", help="create missing parent folders of --out")
    ex.set_defaults(func=_export)

    b = sub.add_parser("bench", help="page/label/search latency on a synthetic store")
    b.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    b.add_argument("--captions", type=int, default=1_000_000)
    b.add_argument("--candidates", type=int, default=100_000)
    b.add_argument("--tries", type=int, default=60, help="timed calls per operation (medians reported)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--dir", type=Path, default=None, help="build here (reused if it holds the same sizes)")
    b.add_argument("--keep", action="store_true", help="keep the synthetic store")
    b.set_defaults(func=_bench)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
