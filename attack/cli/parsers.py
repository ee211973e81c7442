"""The command line's commands and their arguments (`python -m attack NAME --help`)."""
from __future__ import annotations

import argparse
from pathlib import Path

from attack.cli import commands as run
from attack.cli.options import (
    PRESET_HELP,
    SCORE_HELP,
    engine_args,
    generate_args,
    model_args,
    non_negative,
    positive,
    retrieve_args,
    score_kinds,
)
from attack.kinds import DEMO_STORE, PRESET_NAMES
from attack.scores import SCORE_NAMES


def add_ingest(sub: argparse._SubParsersAction) -> None:
    from attack.ingest import FORMATS
    from attack.ingest.images import MAX_SIDE
    p = sub.add_parser("ingest", help="add a caption list and/or a folder of training images",
                       description="Caption lists: parquet, CSV, JSONL or text; the paper's, Wen et al.'s, "
                                   "NeMo's and MemBench's layouts are recognised. Bad input changes nothing.")
    p.add_argument("--store", type=Path, required=True, help="store folder (created if missing)")
    p.add_argument("file", type=Path, nargs="?", help="caption list")
    p.add_argument("--images", type=Path, help="folder of training images")
    p.add_argument("--metadata", type=Path, help="metadata file for --images (default: DIR/metadata.{jsonl,csv,parquet})")
    p.add_argument("--shards", type=Path, help="img2dataset output: a webdataset .tar shard or a folder of them "
                                               "(jpg/png/webp + txt/json per key, NNNNN.parquet beside), streamed")
    p.add_argument("--format", choices=FORMATS, help="force the caption file's format or layout")
    p.add_argument("--max-side", type=int, default=MAX_SIDE, metavar="PX",
                   help="store training images with their longest side at most PX, downscaling larger ones "
                        f"(each named, its original size kept in its metadata; default: {MAX_SIDE}; 0: keep every "
                        "image whole)")
    p.set_defaults(func=run.run_ingest, interrupted=run.UNCHANGED)


def add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=f"score the store's captions ({', '.join(SCORE_NAMES)}); resumable",
                       description="One run per score kind; a repeated call with the same model and parameters "
                                   "continues that run and skips captions it already scored.")
    model_args(p, "only the captions of this file (already ingested), in its order; default: all, by id")
    engine_args(p)
    p.add_argument("--scores", type=score_kinds, default=("dcs",), help=SCORE_HELP)
    p.add_argument("--seeds", type=positive, default=None,
                   help="n generations for wen, sharpness and anisotropy (stored as wenN, ...; default 1)")
    p.set_defaults(func=run.run_score)


def add_fuse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="rank fusion of stored scores (e.g. dcs+anisotropy); no network call",
                       description="Ranks captions by the mean of their rank percentiles under each named score "
                                   "(the model's latest scores) and stores it as a score kind of its own, which "
                                   "the review app's queue and Stats tab offer, and `generate --by` can use.")
    p.add_argument("fusion", help="two or more stored score kinds joined by +, e.g. dcs+anisotropy")
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--model", default="demo", help="the model spec the scores were computed with")
    p.set_defaults(func=run.run_fuse)


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="J seeds x S steps for the top-K captions by a stored score; resumable",
                       description="--offset/--limit shard the ranked top-K list.")
    model_args(p, "rank only the captions of this file (already ingested); default: all")
    engine_args(p)
    generate_args(p)
    p.set_defaults(func=run.run_generate)


def add_carlini(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("carlini", help="Carlini et al. post-filter: largest clique of near-copies among N generations",
                       description="Stores score kinds carlini (clique size) and carlini_flag (1 when flagged).")
    model_args(p, "only the captions of this file (already ingested); default: all")
    p.add_argument("--n", type=positive, default=500, help="generations per caption (paper: 500)")
    p.add_argument("--steps", type=positive, default=16, help="Heun steps per generation")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--by", help="only the top-K captions by this stored score")
    p.add_argument("--top-k", type=non_negative, default=0, help="with --by: how many (0 = all scored)")
    p.set_defaults(func=run.run_carlini)


def add_retrieve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrieve", help="kNN training images of every generation, RMSE, auto template masks; resumable",
                       description="Builds (or reuses) a faiss index of the store's training images in STORE/index/, "
                                   "or searches --index; generations that already have neighbours are skipped.")
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--captions", type=Path, help="only the generations of these captions (already ingested)")
    p.add_argument("--format", help="force the caption file's format or layout (see ingest)")
    p.add_argument("--batch-size", type=positive, default=64, help="generations per embedding batch")
    p.add_argument("--device", help="where the embedder runs: cpu or cuda[:N] (default: cuda when available)")
    engine_args(p)
    retrieve_args(p)
    p.set_defaults(func=run.run_retrieve)


def add_label(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="automatic labels TV -> MV -> RV -> N with suspect flags; resumable",
                       description="Labels every caption with generations from the stored neighbours and the current "
                                   "mask versions; every distance is stored with the label.")
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--captions", type=Path, help="only these captions (already ingested)")
    p.add_argument("--format", help="force the caption file's format or layout (see ingest)")
    p.add_argument("--preset", choices=PRESET_NAMES, default="verbatim",
                   help=PRESET_HELP)
    p.add_argument("--recompute", action="store_true", help="label every candidate again even when its evidence "
                                                            "did not change (earlier labels stay in the history)")
    p.add_argument("--no-align", action="store_true",
                   help="no crop / rescale / mirror check (evidence kind 'aligned') for captions the distances "
                        "leave at N (--preset paper drops it too)")
    p.add_argument("--second-opinion", metavar="EMBEDDER",
                   help="also record this embedder's similarity (e.g. sscd:/path/sscd_disc_mixup.torchscript.pt) for "
                        "the pair each label rests on, as a second opinion in its evidence (it decides nothing)")
    p.add_argument("--allow-stale", action="store_true",
                   help="label candidates whose retrieval searched fewer training images than the store holds "
                        "(refused by default: run retrieve first)")
    p.set_defaults(func=run.run_label)


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="before and after: the captions attacked under two models, copies "
                                       "removed / persisting / new",
                       description="Labels each model's side of every caption generated under both from that "
                                   "model's own generations (nothing is written as an automatic label), takes the "
                                   "store's human labels on the side of the model audited there (the store's first "
                                   "to generate), and writes the comparison as a compare run.")
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--model", action="append", default=[], metavar="SPEC",
                   help="a model as its runs name it (e.g. demo, demo+mitigate:cfg=3) or its fingerprint; twice: "
                        "A (before) then B (after)")
    p.add_argument("--by", default="dcs", help="the score that ranks each side (default dcs)")
    p.add_argument("--top-k", type=positive, help="only captions within the top K of either model by --by")
    p.add_argument("--preset", choices=PRESET_NAMES, default="verbatim", help=PRESET_HELP)
    p.add_argument("--out", type=Path, help="also write the rows to this .csv, .jsonl or .parquet file, or "
                                            "the evidence to this .zip (a page per caption with both models' "
                                            "generations)")
    p.add_argument("--plot", type=Path, help="also write both models' precision-vs-found curves to this .svg file")
    p.add_argument("--force", action="store_true", help="replace an existing --out / --plot file")
    p.add_argument("--json", action="store_true", help="print the counts as one JSON object")
    p.set_defaults(func=run.run_compare)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="ingest a caption list, score it, generate for the top-K, retrieve and label",
                       description="Every stage resumes: rerunning the same command continues where a killed "
                                   "run stopped. --offset/--limit make it score one shard only: generation ranks "
                                   "every caption, so it runs once all shards are scored (`generate`).")
    model_args(p, "caption list to ingest and attack", captions_required=True)
    engine_args(p)
    p.add_argument("--scores", type=score_kinds, default=None,
                   help=SCORE_HELP.replace("default dcs", "default dcs; images: ecs when its mapping holds steps=1 "
                                                          "images, else none"))
    generate_args(p)
    p.add_argument("--no-generate", action="store_true", help="stop after scoring (no retrieval or labels either)")
    retrieve_args(p)
    p.add_argument("--preset", choices=PRESET_NAMES, default="verbatim", help=PRESET_HELP)
    p.set_defaults(func=run.run_all)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the demo store end to end (a few minutes on a CPU; progress on stderr)",
                       description="Ingest the demo world, score every attack caption (the scores are kept in each run's "
                                   "params), generate for "
                                   "the top K, retrieve, build masks and label. Running it again reuses what is done.")
    p.add_argument("--store", type=Path, default=DEMO_STORE, help=f"store folder (default {DEMO_STORE})")
    p.set_defaults(func=run.run_demo)


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks; the last line printed is one JSON object",
                       description="memorization: does the demo model copy what it should; "
                                   "ranking: scores and auto labels of the demo store vs its planted truth; "
                                   "throughput: batched vs per-caption DCS/ECS; "
                                   "labels: labels, masks and flags on the realistic 256/512-px fixture world; "
                                   "detectors: every one-step detector and rank fusions on the demo world; "
                                   "scale: 2 M-caption ingest, store timings at that size, local vs Ray DCS; "
                                   "mitigation: the demo model against each inference-time mitigation; "
                                   "all: every bench (store and review too), written to docs/benchmarks.md. "
                                   "Options after NAME go to the benchmark (NAME --help lists them).")
    p.add_argument("name", choices=sorted(run.BENCHES))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options, e.g. --json")
    p.set_defaults(func=run.run_bench)
