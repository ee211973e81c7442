"""python -m store info|export|check|gold|bench: thin wrappers over the library.

Errors go to stderr as one line (store/command.py); bad input exits 2. info opens the store
read-only; export writes its file under store/outputs.py's rules (--format evidence runs
`python -m review export`, which draws the pages).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .bench import BenchConfig, result_json, run_bench
from .command import run_command
from .errors import ExportError, StoreError
from .export import DEFAULT_LABELS, FORMATS
from .gold import DEFAULT_MIN_ACCURACY, DEFAULT_MIN_ANSWERS, GoldImport
from .store import Store, open_for_export
from .terminal import echo, terminal_safe


def _info(args: argparse.Namespace) -> int:
    with Store.open(args.store, readonly=True) as store:
        info = store.info()
    if args.json:
        print(json.dumps(info, sort_keys=True))  # JSON escapes control characters itself
    else:
        echo(f"store {info['path']} (schema v{info['schema_version']})")
        for table, n in info["tables"].items():
            echo(f"  {table:16s} {n}")
        echo(f"  candidates       {info['candidates']}")
        echo("  labels: " + ", ".join(f"{k} {v}" for k, v in info["labels"].items()))
    return 0


def _check(args: argparse.Namespace) -> int:
    from .check import check_store

    try:
        # writable when the user may write it (the search index's check is an INSERT), read-only otherwise
        store = Store.open(args.store, create=False) if args.repair else open_for_export(args.store)
    except StoreError as e:
        if not (Path(args.store) / "store.db").is_file():
            raise
        echo(f"integrity: {Path(args.store) / 'store.db'}: expected a database the store can open, got {e}; not "
             f"repairable here: restore store.db from a backup, or salvage its rows with `sqlite3 store.db .recover`")
        return 2
    with store:
        report = check_store(store, repair=args.repair, quick=args.quick)
    if args.json:
        echo(report.as_json())
    else:
        for line in report.lines():
            echo(line)
    return 0 if report.ok else 2


def _export(args: argparse.Namespace) -> int:
    labels = [s.strip() for s in args.labels.split(",") if s.strip()]
    if args.format == "evidence":
        return _evidence(args)
    with open_for_export(args.store) as store:
        result = store.export(args.out, args.format, labels=labels, make_parents=args.parents, force=args.force,
                        raw_csv=args.raw_csv, auto=args.auto)
    skipped = f", {len(result.skipped_without_image)} without a generated image left out of the zip" \
        if result.skipped_without_image else ""
    unrecorded = " (not recorded in the store: it is read-only)" if result.export_id is None else ""
    what = ("every candidate, with its automatic label, flags, distances and scores beside any human label"
            if args.auto else f"captions whose current human label is {','.join(sorted(set(labels)))}; "
                              f"automatic labels are not exported without --auto")
    echo(f"exported {result.rows} rows ({what}) to {terminal_safe(result.path, keep_newlines=False)} "
         f"[{result.format}, sha256 {result.sha256[:12]}]{skipped}{unrecorded}")
    if result.warning:
        echo(f"warning: {result.warning}", sys.stderr)
    if result.unreadable:
        echo(f"warning: {result.unreadable_warning()}", sys.stderr)
    return 0


def _evidence(args: argparse.Namespace) -> int:
    """The pages are drawn from the review app's candidate view (review/, a layer above store/, which
    store/ never imports): run its command, `python -m review export`, in a child process."""
    if args.auto or args.raw_csv:
        raise ExportError(f"--format evidence: expected no {'--auto' if args.auto else '--raw-csv'} (evidence "
                          "pages are for human-confirmed copies and hold no spreadsheet cells), got it")
    root = Path(__file__).resolve().parents[1]        # where the review package lies beside store/
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "review", "export", "--store", str(args.store), "--out", str(args.out),
           "--labels", args.labels] + ["--parents"] * args.parents + ["--force"] * args.force
    return subprocess.run(cmd, env=env).returncode


def _gold_import(what: str, r: GoldImport) -> str:
    skipped = ""
    if r.skipped:
        why = sorted({w for _, w in r.skipped})
        skipped = f"; {len(r.skipped)} row(s) left out ({', '.join(why)}; the first: {r.skipped[0][0]!r})"
    return f"gold from {what}: {r.added} added, {r.replaced} replaced (label changed), {r.unchanged} unchanged{skipped}"


def _gold(args: argparse.Namespace) -> int:
    """Manage gold candidates: one action per call; --list and --stats open the store read-only."""
    if args.list or args.stats:
        with Store.open(args.store, readonly=True) as store:
            if args.list:
                items = store.gold_items()
                if args.json:
                    print(json.dumps([vars(i) for i in items], sort_keys=True))
                    return 0
                echo(f"{len(items)} gold candidate(s)")
                for i in items:
                    echo(f"  {i.caption_id:>8}  {i.label:14s} {i.answers:>4} answer(s)  from {terminal_safe(i.source)}")
                return 0
            rows = store.gold_stats(args.min_accuracy, args.min_answers)
        if args.json:
            print(json.dumps([_stats_json(r) for r in rows], sort_keys=True))
            return 0
        for r in rows:
            acc = "-" if r.accuracy is None else f"{r.accuracy:.1%} (95% CI {r.ci.low:.1%} to {r.ci.high:.1%})"
            sec = "-" if r.median_seconds_per_label is None else f"{r.median_seconds_per_label:.1f} s"
            flag = f"  BELOW {args.min_accuracy:.0%}" if r.flagged else ""
            echo(f"  {terminal_safe(r.reviewer)}: {r.correct}/{r.answers} correct on gold, {acc}; "
                 f"median {sec} per label{flag}")
        return 0
    with Store.open(args.store, create=False) as store:
        if args.remove is not None:
            r = store.remove_gold(args.remove, force=args.force)
            also = f" and its {r.answers_removed} answer(s)" if r.answers_removed else ""
            echo(f"removed gold candidate {r.caption_id} ({r.label}){also}")
        elif args.from_labels:
            echo(_gold_import("decided labels", store.gold_from_labels()))
        elif args.from_reference:
            echo(_gold_import("reference labels", store.gold_from_reference(args.limit)))
        else:
            echo(_gold_import(terminal_safe(str(args.from_file), keep_newlines=False),
                              store.gold_from_file(args.from_file, skip_missing=args.skip_missing)))
    return 0


def _stats_json(r) -> dict:
    d = {k: v for k, v in vars(r).items() if k not in ("ci", "confusion")}
    d["ci"] = None if r.ci is None else [r.ci.low, r.ci.high]
    d["confusion"] = [[c.gold, c.answered, c.n] for c in r.confusion]
    return d


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
    ex.add_argument("--format", choices=FORMATS + ("evidence",), default=None,
                    help="default: from the --out extension (evidence: the pages for counsel, drawn by "
                         "python -m review export)")
    ex.add_argument("--labels", default=",".join(DEFAULT_LABELS), help="current labels to export (default MV,TV,RV)")
    ex.add_argument("--parents", action="store_true", help="create missing parent folders of --out")
    ex.add_argument("--force", action="store_true", help="replace an existing --out file (atomically, keeping "
                                                          "its permissions)")
    ex.add_argument("--auto", action="store_true", help="every candidate (the whole ranking) with its automatic "
                                                         "label, flags and distances, not only human-confirmed ones")
    ex.add_argument("--raw-csv", action="store_true", help="CSV: keep text cells exactly, without neutralising "
                                                            "ones a spreadsheet would run as formulas (=, +, -, @)")
    ex.set_defaults(func=_export)

    ck = sub.add_parser("check", help="is the store whole: SQLite's integrity check, every image present with the "
                                      "bytes its name says, the derived tables equal to their sources",
                        description="Exit 0: no problem (or every one repaired); 2: problems, one line each.")
    ck.add_argument("--store", type=Path, required=True)
    ck.add_argument("--repair", action="store_true", help="fix what is safe: temporary files, the search index, "
                                                          "the derived tables (nothing a person made is touched)")
    ck.add_argument("--quick", action="store_true", help="SQLite's quick_check, every image file present, a sample "
                                                         "hashed (what the review app runs at start)")
    ck.add_argument("--json", action="store_true", help="print one JSON object")
    ck.set_defaults(func=_check)

    g = sub.add_parser("gold", help="gold candidates (known labels mixed blind into reviewers' queues: "
                                    "python app.py --gold-rate R)")
    g.add_argument("--store", type=Path, required=True)
    act = g.add_mutually_exclusive_group(required=True)
    act.add_argument("--from-labels", action="store_true", help="add/replace gold from the decided labels (blind "
                                                                  "review: agreed and adjudicated ones only)")
    act.add_argument("--from", dest="from_file", type=Path, metavar="FILE",
                     help="add/replace gold from a CSV or JSONL file: caption_id or caption, and label (or the "
                          "paper's overfit_type column; VM/TM read as MV/TV; an empty label leaves the row out)")
    act.add_argument("--from-reference", action="store_true",
                     help="add/replace gold from the candidates' reference labels (the demo's planted truth)")
    act.add_argument("--list", action="store_true", help="list the gold candidates")
    act.add_argument("--stats", action="store_true", help="each reviewer's accuracy on gold")
    act.add_argument("--remove", type=int, metavar="ID", help="take this caption id out of gold")
    g.add_argument("--limit", type=int, default=None, help="--from-reference: at most N, every label represented")
    g.add_argument("--skip-missing", action="store_true", help="--from: leave out rows naming captions the store "
                                                                 "does not hold (default: refuse the file)")
    g.add_argument("--force", action="store_true", help="--remove: also remove its recorded answers")
    g.add_argument("--min-accuracy", type=float, default=DEFAULT_MIN_ACCURACY,
                   help="--stats: flag reviewers under this gold accuracy (default %(default)s)")
    g.add_argument("--min-answers", type=int, default=DEFAULT_MIN_ANSWERS,
                   help="--stats: ... once they gave at least this many gold answers (default %(default)s)")
    g.add_argument("--json", action="store_true", help="--list / --stats: print one JSON value")
    g.set_defaults(func=_gold)

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
    note = "the store is as it was" if args.command != "bench" else "the bench store may be incomplete"
    return run_command(lambda: args.func(args), bad_input=(StoreError,), interrupted=note)


if __name__ == "__main__":
    sys.exit(main())
