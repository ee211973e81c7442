"""python -m attack <stage>: argparse front end; each stage's work lives in its module.

To add a stage: write ``add_<stage>(subparsers)`` here that registers its
arguments and a ``func(args) -> int``, import heavy modules (torch) inside
``func`` so ``ingest`` stays fast, and list it in STAGES.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable, Optional, Sequence

from store import Store, StoreError

EXIT_BAD_INPUT = 2


def _run_ingest(args: argparse.Namespace) -> int:
    from .ingest import apply_ingest, prepare_ingest

    def warn(msg: str) -> None:
        print(f"warning: {msg}", file=sys.stderr)

    prepared = prepare_ingest(args.file, args.images, args.metadata, args.format)  # before touching the store
    with Store.open(args.store) as store:
        report = apply_ingest(store, prepared, warn=warn)
    print(report.summary())
    return 0


def add_ingest(sub: argparse._SubParsersAction) -> None:
    from .ingest import FORMATS
    p = sub.add_parser("ingest", help="add a caption list and/or a folder of training images",
                       description="Caption lists: parquet, CSV, JSONL or text; the paper's, Wen et al.'s, "
                                   "NeMo's and MemBench's layouts are recognised. Bad input changes nothing.")
    p.add_argument("--store", type=Path, required=True, help="store folder (created if missing)")
    p.add_argument("file", type=Path, nargs="?", help="caption list")
    p.add_argument("--images", type=Path, help="folder of training images")
    p.add_argument("--metadata", type=Path, help="metadata file for --images (default: DIR/metadata.{jsonl,csv,parquet})")
    p.add_argument("--format", choices=FORMATS, help="force the caption file's format or layout")
    p.set_defaults(func=_run_ingest)


# benchmark name -> module under attack.bench exposing main(argv) -> int
BENCHES = {"memorization": "memorization", "throughput": "throughput"}


def _run_bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"attack.bench.{BENCHES[args.name]}")
    return module.main(args.rest)


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks; the last line printed is one JSON object",
                       description="memorization: does the demo model copy what it should; "
                                   "throughput: batched vs per-caption DCS/ECS. "
                                   "Options after NAME go to the benchmark (NAME --help lists them).")
    p.add_argument("name", choices=sorted(BENCHES))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options, e.g. --json")
    p.set_defaults(func=_run_bench)


STAGES: list[Callable[[argparse._SubParsersAction], None]] = [add_ingest, add_bench]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attack", description="Verbatim extraction stages")
    sub = p.add_subparsers(dest="command", required=True)
    for add in STAGES:
        add(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoreError as e:  # IngestError and friends: bad input, store untouched
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
