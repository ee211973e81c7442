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
from store.command import run_command
from store.terminal import echo, terminal_safe

from attack.errors import AttackError
from attack.kinds import DEMO_STORE, DUP_RMSE_MAX, DUP_RMSE_MIN, MULTI_SEED, PRESET_NAMES, SCORE_NAMES, split_kind
from attack.progress import progress_bars, say



def _run_ingest(args: argparse.Namespace) -> int:
    from attack.ingest.run import apply_ingest, prepare_ingest

    def warn(msg: str) -> None:
        say(f"warning: {msg}")

    # before touching the store; a caption list is read in batches as it is written (one transaction)
    prepared = prepare_ingest(args.file, args.images, args.metadata, args.format, stream=True, shards=args.shards)
    for line in prepared.captions.recognised() if prepared.captions else ():
        echo(line)
    update, close = progress_bars()
    try:
        with Store.open(args.store) as store:
            report = apply_ingest(store, prepared, warn=warn, progress=update)
    finally:
        close()
    echo(report.summary())
    return 0


def add_ingest(sub: argparse._SubParsersAction) -> None:
    from attack.ingest.run import FORMATS
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
    p.set_defaults(func=_run_ingest, interrupted=UNCHANGED)


# benchmark name -> module under attack.bench exposing main(argv) -> int
BENCHES = {"memorization": "memorization", "ranking": "ranking", "throughput": "throughput", "labels": "labels",
           "detectors": "detectors", "scale": "scale", "all": "all"}


def _run_bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"attack.bench.{BENCHES[args.name]}")
    return module.main(args.rest)


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="benchmarks; the last line printed is one JSON object",
                       description="memorization: does the demo model copy what it should; "
                                   "ranking: scores and auto labels of the demo store vs its planted truth; "
                                   "throughput: batched vs per-caption DCS/ECS; "
                                   "labels: labels, masks and flags on the realistic 256/512-px fixture world; "
                                   "detectors: every one-step detector and rank fusions on the demo world; "
                                   "scale: 2 M-caption ingest, store timings at that size, local vs Ray DCS; "
                                   "all: every bench (store and review too), written to docs/benchmarks.md. "
                                   "Options after NAME go to the benchmark (NAME --help lists them).")
    p.add_argument("name", choices=sorted(BENCHES))
    p.add_argument("rest", nargs=argparse.REMAINDER, help="the benchmark's own options, e.g. --json")
    p.set_defaults(func=_run_bench)


# -- model stages: score, generate, carlini, run ----------------------------------------------
def _load(args: argparse.Namespace):
    """The model, loaded (and the device checked) before the store is touched, on one line:
    'loading SPEC ... (N parameters, dtype, device) in T s'."""
    import time

    import torch

    from attack.models import load_model

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    t0 = time.perf_counter()
    sys.stderr.write(terminal_safe(f"loading {args.model} ... ", keep_newlines=False))
    sys.stderr.flush()
    try:
        model = load_model(args.model, device, dtype=args.dtype, config=args.config, variant=args.variant)
    except BaseException:
        sys.stderr.write("failed\n")
        raise
    n = model.parameter_count()
    size = f"{n / 1e9:.2f}B" if n >= 1e9 else f"{n / 1e6:.1f}M"
    sys.stderr.write(f"({size} parameters, {str(model.dtype).removeprefix('torch.')}, {model.device}) "
                     f"in {time.perf_counter() - t0:.1f} s\n")
    return model


def _open_existing(path: Path) -> Store:
    return Store.open(path, create=False)


def _selection(store: Store, args: argparse.Namespace):
    from attack.ingest.run import parse_caption_file
    from attack.selection import select_captions

    texts = None
    if args.captions is not None:
        texts = [r.text for r in parse_caption_file(args.captions, args.format).rows]
    return select_captions(store, texts)


SCORE_HELP = (f"comma-separated among {', '.join(SCORE_NAMES)}; {', '.join(MULTI_SEED)} take n generations as a "
              f"suffix (wen4); default dcs")


def _score_kinds(text: str) -> tuple[str, ...]:
    """Score kinds as the registry knows them (attack.kinds); checked without importing torch,
    so a typo answers at once."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if split_kind(k) is None]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list among {', '.join(SCORE_NAMES)} "
                                         f"(optionally with n generations: wen4), got {text!r}")
    return kinds


def _int_at_least(low: int) -> Callable[[str], int]:
    """An argparse type: an integer >= low, or an error saying what came instead."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {n}")
        return n
    return parse


_positive, _non_negative = _int_at_least(1), _int_at_least(0)


def _model_args(p: argparse.ArgumentParser, captions_help: str, captions_required: bool = False) -> None:
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--model", default="demo", help="model spec: demo, sd:<folder|hub id|file>, sd-random, images:<folder>")
    p.add_argument("--device", help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), help="model dtype (default: auto)")
    p.add_argument("--config", help="for a single-file sd: checkpoint, a local diffusers folder giving its configs")
    p.add_argument("--variant", help="sd: folder weights variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors); "
                                     "default: the plain files, else the one variant present")
    p.add_argument("--captions", type=Path, required=captions_required, help=captions_help)
    p.add_argument("--format", help="force the caption file's format or layout (see ingest)")
    p.add_argument("--batch-size", type=_positive, default=16, help="captions (generations) per network batch")
    p.add_argument("--offset", type=_non_negative, default=0, help="shard: skip this many items of the stage's list")
    p.add_argument("--limit", type=_positive, help="shard: at most this many items")


def _engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray Data actors (one model copy each) write parquet shards into "
                        "STORE/ray/ that this process merges; same values, resumable")
    p.add_argument("--address", help="--engine ray: join this cluster (`ray start --head` prints it); default: start "
                                     "a local one")
    p.add_argument("--workers", type=_positive, help="--engine ray: actors (default: one per GPU on CUDA, else the "
                                                     "number of CPU cores), one torch thread each on CPU")


def _engine(args: argparse.Namespace, model=None, device: Optional[str] = None):
    """None for the local engine, else the RayEngine the stages take (ray is imported only here);
    model None: the retrieval stage, whose actors load the embedder on `device`."""
    if args.engine != "ray":
        return None
    import os

    import torch

    from attack.engine.ray import RayEngine, RayOptions, as_model_spec

    device = str(model.device) if model is not None else device
    default = max(torch.cuda.device_count(), 1) if device.startswith("cuda") else (os.cpu_count() or 1)
    opts = RayOptions(address=args.address, workers=args.workers or default, device=device)
    spec = as_model_spec(model, args.dtype, args.config, args.variant) if model is not None else None
    return RayEngine(spec, opts, warn=lambda m: say(f"warning: {m}"))


def _generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", default=None, help="score kind that ranks captions for generation, a rank fusion of "
                                               "stored scores (dcs+anisotropy), or none (the captions in order); "
                                               "default: the first score computed (for run, the first of --scores)")
    p.add_argument("--top-k", type=_non_negative, default=None, help="captions to generate for (0 = all scored; "
                                                                      "default 100, images: every caption it has)")
    p.add_argument("--seeds", type=_positive, default=None, help="J: generations per caption, seeds 0..J-1 (default 4; "
                                                                  "images: the seeds its mapping holds)")
    p.add_argument("--steps", type=_positive, default=None, help="S: Heun steps on Karras sigmas (default 16; images: "
                                                                  "the largest steps its mapping holds)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")


def _gen_params(args: argparse.Namespace, model=None):
    """J seeds x S steps from the flags; a closed model (images:) not told otherwise takes the
    seeds its mapping holds and its largest steps (its full generations)."""
    from attack.stages.generate import GenerateParams

    closed = model is not None and not model.whitebox
    steps = args.steps if args.steps is not None else (max(model.steps_held) if closed else 16)
    seeds = tuple(range(args.seeds)) if args.seeds is not None else (() if closed else (0, 1, 2, 3))
    top_k = args.top_k if args.top_k is not None else (0 if closed else 100)   # a closed model: all it holds
    return GenerateParams(top_k=top_k, seeds=seeds, steps=steps, guidance=args.guidance)


def _default_by(store: Store, model) -> Optional[str]:
    """--by when not given: the first score computed for this model (a run that finished: a
    failed one ranks nothing); none for a closed model with no scores (its images are taken for
    every caption it has), else dcs."""
    runs = store.runs(stage="score", fingerprint=model.fingerprint(store.digest_cache()))
    done = [r for r in runs if r.status == "done"]
    if done:
        return done[0].params.get("score")
    return None if not model.whitebox else "dcs"


def _run_scores(args: argparse.Namespace, model) -> tuple[str, ...]:
    """run's --scores when not given: dcs for a model with weights; for a closed model, ECS when
    its mapping holds one-step (steps=1) images, else none (generation then takes every caption
    it has images for)."""
    if args.scores is not None:
        return args.scores
    if model.whitebox:
        return ("dcs",)
    return ("ecs",) if 1 in model.steps_held else ()


def _run_score(args: argparse.Namespace) -> int:
    from attack.stages.score import score_stage

    kinds = tuple(f"{k}{args.seeds}" if args.seeds and args.seeds > 1 and k in MULTI_SEED else k for k in args.scores)
    model = _load(args)
    with _open_existing(args.store) as store:
        sel = _selection(store, args)
        update, close = progress_bars()
        try:
            reports = score_stage(store, model, sel, kinds, model_id=model.spec, batch_size=args.batch_size,
                                  offset=args.offset, limit=args.limit, progress=update, engine=_engine(args, model))
        finally:
            close()
    for r in reports:
        echo(r.summary())
    return 0


def _run_generate(args: argparse.Namespace) -> int:
    from attack.stages.score import generate_stage

    model = _load(args)
    params = _gen_params(args, model)
    with _open_existing(args.store) as store:
        sel = _selection(store, args)
        by = None if args.by == "none" else (args.by or _default_by(store, model))
        update, close = progress_bars()
        try:
            report = generate_stage(store, model, sel, params, by=by, model_id=model.spec,
                                    batch_size=args.batch_size, offset=args.offset, limit=args.limit, progress=update,
                                    engine=_engine(args, model))
        finally:
            close()
    echo(report.summary())
    return 0


def _run_carlini(args: argparse.Namespace) -> int:
    from attack.scores.carlini import CarliniParams
    from attack.stages.score import carlini_stage

    params = CarliniParams(n=args.n, steps=args.steps, guidance=args.guidance)
    model = _load(args)
    with _open_existing(args.store) as store:
        sel = _selection(store, args)
        update, close = progress_bars()
        try:
            report = carlini_stage(store, model, sel, params, by=args.by, top_k=args.top_k, model_id=model.spec,
                                   batch_size=args.batch_size, offset=args.offset, limit=args.limit,
                                   progress=update)
        finally:
            close()
    echo(report.summary())
    return 0


def _run_all(args: argparse.Namespace) -> int:
    from attack.ingest.run import apply_ingest, prepare_ingest
    from attack.stages.score import generate_stage, score_stage, select_captions, shard
    from attack.scores.base import ScoreInputError

    prepared = prepare_ingest(args.captions, None, None, args.format)  # bad input fails before any write
    for line in prepared.parsed.recognised():
        echo(line)
    texts = list(dict.fromkeys(r.text for r in prepared.parsed.rows))
    shard(texts, args.offset, args.limit)  # an empty shard fails before any write
    if not args.no_generate:
        from attack.images.embed import load_embedder
        from attack.stages.labels import preset

        preset(args.preset)
        embedder = load_embedder(args.embedder, _embed_device(args.device))  # a missing checkpoint fails before any write
    sharded = args.offset > 0 or args.limit is not None
    model = _load(args)
    scores = _run_scores(args, model)
    by = args.by or (scores[0] if scores else "none")
    if not args.no_generate and by != "none" and not set(by.split("+")) <= set(scores):
        raise ScoreInputError(f"--by: expected one of the scores this run computes ({','.join(scores) or 'none'}), "
                              f"a fusion of them (dcs+anisotropy) or none, got {by!r}")
    params = _gen_params(args, model)
    with Store.open(args.store) as store:
        if all(store.caption_id(t) is not None for t in texts):
            # a rerun (resume) of the same list: ingesting again would only bump each caption's count
            echo(f"ingest: all {len(texts)} captions already in the store, skipped")
        else:
            echo(apply_ingest(store, prepared, warn=lambda m: say(f"warning: {m}")).summary())
        sel = select_captions(store, texts)
        engine = _engine(args, model)
        update, close = progress_bars()
        try:
            if not scores:
                echo(f"score: skipped, {model.spec} holds no one-step (steps=1) images for ECS and no weights for "
                     f"the whitebox scores; every caption it has images for is generated")
            for r in score_stage(store, model, sel, scores, model_id=model.spec, batch_size=args.batch_size,
                                 offset=args.offset, limit=args.limit, progress=update,
                                 engine=engine) if scores else ():
                echo(r.summary())
            if sharded and not args.no_generate:
                # the top-K is over every caption: a shard cannot know it, so it only scores
                echo(f"generate, retrieve, label: skipped, this call scored a shard (--offset {args.offset}"
                     f"{f' --limit {args.limit}' if args.limit else ''}); once every shard is scored, run "
                     f"`python -m attack generate --store {args.store} --model {args.model} --by {by} "
                     f"--top-k {params.top_k}` (on any machine, with its own path to these weights: runs are keyed "
                     f"by the weights' content), then retrieve and label")
                return 0
            if not args.no_generate:
                echo(generate_stage(store, model, sel, params, by=None if by == "none" else by, model_id=model.spec,
                                     batch_size=args.batch_size, progress=update, engine=engine).summary())
            n_train = store.training_set_version().count
            if not args.no_generate and not n_train and args.index is None:
                echo("retrieve, label: skipped, the store holds no training images to compare with "
                      "(add them with `ingest --images`, or pass --index)")
            elif not args.no_generate:
                from attack.stages.labels import label_stage
                from attack.stages.retrieve import retrieve_stage

                ret = retrieve_stage(store, _retrieve_params(args), caption_ids=list(sel.ids), external=args.index,
                                     embedder=embedder, batch_size=args.batch_size, recompute=args.recompute,
                                     progress=update,
                                     engine=engine and _engine(args, device=_embed_device(args.device)))
                echo(ret.summary())
                echo(label_stage(store, args.preset, caption_ids=list(sel.ids), recompute=args.recompute,
                                 progress=update).summary())
        finally:
            close()
    return 0


# -- retrieval, labels, demo ----------------------------------------------------------------------
def _retrieve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", default="pixel", help="pixel (thumbnail descriptor, default), "
                                                       "clip:<arch>:<pretrained tag in the local cache | checkpoint file> "
                                                       "or sscd:<TorchScript file> (a copy-detection descriptor: the "
                                                       "choice for a real audit)")
    p.add_argument("--k", type=_positive, default=10, help="neighbours per generation (default 10)")
    p.add_argument("--factory", default="Flat", help="faiss factory for the store's index: Flat (exact, default) "
                                                     "or e.g. IVF4096,PQ64 past ~1M images")
    p.add_argument("--index", type=Path, help="search an existing autofaiss / clip-retrieval index folder "
                                              "(image.index + parquet/arrow metadata with url, caption) instead")
    p.add_argument("--dup-rmse", type=float, nargs=2, metavar=("MIN", "MAX"), default=(DUP_RMSE_MIN, DUP_RMSE_MAX),
                   help=f"template masks: MIN is the RMSE below which a neighbour is a copy, not a sibling; MAX "
                        f"bounds the siblings under --mask-rule window (default {DUP_RMSE_MIN:.4f} "
                        f"{DUP_RMSE_MAX:.4f}: the paper code's SSE 1e2..1e3 on 256x256)")
    p.add_argument("--mask-rule", choices=("region", "window"), default="region",
                   help="how template siblings are found among a training image's neighbours: region (default: "
                        "most of the picture unchanged, with detail, and one region changed, at any RMSE) or "
                        "window (the paper's: RMSE inside --dup-rmse)")
    p.add_argument("--recompute", action="store_true", help="search (and label) again even when nothing they rest on "
                                                            "changed; the old results stay in the history")


def _embed_device(device: Optional[str]) -> str:
    import torch

    from attack.images.embed import EmbedderError

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EmbedderError(f"expected a CUDA device for --device {device}, got none on this machine (use --device cpu)")
    return device


def _retrieve_params(args: argparse.Namespace):
    from attack.stages.masks import MaskParams
    from attack.stages.retrieve import RetrieveParams

    lo, hi = args.dup_rmse
    return RetrieveParams(embedder=args.embedder, k=args.k, factory=args.factory,
                          masks=MaskParams(rmse_min=lo, rmse_max=hi, rule=args.mask_rule))


def _caption_ids(store: Store, args: argparse.Namespace) -> Optional[list[int]]:
    return None if args.captions is None else list(_selection(store, args).ids)


def _run_retrieve(args: argparse.Namespace) -> int:
    from attack.images.embed import load_embedder
    from attack.stages.retrieve import retrieve_stage

    params = _retrieve_params(args)
    # a missing checkpoint or CUDA fails before the store is touched
    embedder = load_embedder(params.embedder, _embed_device(args.device))
    with _open_existing(args.store) as store:
        ids = _caption_ids(store, args)
        update, close = progress_bars()
        try:
            report = retrieve_stage(store, params, caption_ids=ids, external=args.index, embedder=embedder,
                                    batch_size=args.batch_size, recompute=args.recompute, progress=update,
                                    engine=_engine(args, device=_embed_device(args.device)))
        finally:
            close()
    echo(report.summary())
    return 0


def _run_label(args: argparse.Namespace) -> int:
    from attack.stages.align import AlignParams
    from attack.stages.labels import label_stage, preset

    preset(args.preset)
    second = None
    if args.second_opinion:
        from attack.images.embed import load_embedder

        second = load_embedder(args.second_opinion)      # a missing file fails before any write
    with _open_existing(args.store) as store:
        ids = _caption_ids(store, args)
        update, close = progress_bars()
        try:
            report = label_stage(store, args.preset, caption_ids=ids, recompute=args.recompute, progress=update,
                                 align_params=None if args.no_align else AlignParams(),
                                 allow_stale=args.allow_stale, second_opinion=second)
        finally:
            close()
    echo(report.summary())
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    import time

    from attack.demo.build import build_demo_store

    t0 = time.perf_counter()
    echo(f"building the demo store in {args.store} (every stage resumes if interrupted)")
    update, close = progress_bars()
    try:
        out = build_demo_store(args.store, progress=update)
    finally:
        close()
    for line in out["summaries"]:
        echo(line)
    echo(f"demo store ready: {args.store} ({out['captions']} captions, labels {out['labels']['counts'] or 'unchanged'}) "
          f"in {time.perf_counter() - t0:.0f} s")
    return 0


def add_retrieve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("retrieve", help="kNN training images of every generation, RMSE, auto template masks; resumable",
                       description="Builds (or reuses) a faiss index of the store's training images in STORE/index/, "
                                   "or searches --index; generations that already have neighbours are skipped.")
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--captions", type=Path, help="only the generations of these captions (already ingested)")
    p.add_argument("--format", help="force the caption file's format or layout (see ingest)")
    p.add_argument("--batch-size", type=_positive, default=64, help="generations per embedding batch")
    p.add_argument("--device", help="where the embedder runs: cpu or cuda[:N] (default: cuda when available)")
    _engine_args(p)
    _retrieve_args(p)
    p.set_defaults(func=_run_retrieve)


PRESET_HELP = ("label rule: verbatim (default: the paper's 0.12 plus a structural check on every copy and aligned "
               "evidence for crops, rescales and mirrors), paper (the paper's rule alone: 0.12 for all), "
               "onestep-code (the public code's rule alone: 0.113 TV/MV, 0.124 RV)")


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
    p.set_defaults(func=_run_label)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="build the demo store end to end (a few minutes on a CPU; progress on stderr)",
                       description="Ingest the demo world, score every attack caption (the scores are kept in each run's "
                                   "params), generate for "
                                   "the top K, retrieve, build masks and label. Running it again reuses what is done.")
    p.add_argument("--store", type=Path, default=DEMO_STORE, help=f"store folder (default {DEMO_STORE})")
    p.set_defaults(func=_run_demo)


def add_score(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=f"score the store's captions ({', '.join(SCORE_NAMES)}); resumable",
                       description="One run per score kind; a repeated call with the same model and parameters "
                                   "continues that run and skips captions it already scored.")
    _model_args(p, "only the captions of this file (already ingested), in its order; default: all, by id")
    _engine_args(p)
    p.add_argument("--scores", type=_score_kinds, default=("dcs",), help=SCORE_HELP)
    p.add_argument("--seeds", type=_positive, default=None,
                   help="n generations for wen, sharpness and anisotropy (stored as wenN, ...; default 1)")
    p.set_defaults(func=_run_score)


def add_generate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="J seeds x S steps for the top-K captions by a stored score; resumable",
                       description="--offset/--limit shard the ranked top-K list.")
    _model_args(p, "rank only the captions of this file (already ingested); default: all")
    _engine_args(p)
    _generate_args(p)
    p.set_defaults(func=_run_generate)


def add_carlini(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("carlini", help="Carlini et al. post-filter: largest clique of near-copies among N generations",
                       description="Stores score kinds carlini (clique size) and carlini_flag (1 when flagged).")
    _model_args(p, "only the captions of this file (already ingested); default: all")
    p.add_argument("--n", type=_positive, default=500, help="generations per caption (paper: 500)")
    p.add_argument("--steps", type=_positive, default=16, help="Heun steps per generation")
    p.add_argument("--guidance", type=float, default=7.5)
    p.add_argument("--by", help="only the top-K captions by this stored score")
    p.add_argument("--top-k", type=_non_negative, default=0, help="with --by: how many (0 = all scored)")
    p.set_defaults(func=_run_carlini)


def add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="ingest a caption list, score it, generate for the top-K, retrieve and label",
                       description="Every stage resumes: rerunning the same command continues where a killed "
                                   "run stopped. --offset/--limit make it score one shard only: generation ranks "
                                   "every caption, so it runs once all shards are scored (`generate`).")
    _model_args(p, "caption list to ingest and attack", captions_required=True)
    _engine_args(p)
    p.add_argument("--scores", type=_score_kinds, default=None,
                   help=SCORE_HELP.replace("default dcs", "default dcs; images: ecs when its mapping holds steps=1 "
                                                          "images, else none"))
    _generate_args(p)
    p.add_argument("--no-generate", action="store_true", help="stop after scoring (no retrieval or labels either)")
    _retrieve_args(p)
    p.add_argument("--preset", choices=PRESET_NAMES, default="verbatim", help=PRESET_HELP)
    p.set_defaults(func=_run_all)


def _run_fuse(args: argparse.Namespace) -> int:
    from attack.scores.fusion import fuse, fusion_kinds

    fusion_kinds(args.fusion)       # a malformed name answers before the store is opened
    with _open_existing(args.store) as store:
        echo(fuse(store, args.fusion, args.model).summary())
    return 0


def add_fuse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("fuse", help="rank fusion of stored scores (e.g. dcs+anisotropy); no network call",
                       description="Ranks captions by the mean of their rank percentiles under each named score "
                                   "(the model's latest scores) and stores it as a score kind of its own, which "
                                   "the review app's queue and Stats tab offer, and `generate --by` can use.")
    p.add_argument("fusion", help="two or more stored score kinds joined by +, e.g. dcs+anisotropy")
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--model", default="demo", help="the model spec the scores were computed with")
    p.set_defaults(func=_run_fuse)


STAGES: list[Callable[[argparse._SubParsersAction], None]] = [add_ingest, add_score, add_fuse, add_generate,
                                                               add_carlini, add_retrieve, add_label, add_run,
                                                               add_demo, add_bench]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attack", description="Verbatim extraction stages")
    sub = p.add_subparsers(dest="command", required=True)
    for add in STAGES:
        add(sub)
    return p


# what an interrupted stage leaves: ingest writes in one transaction, the others batch by batch
UNCHANGED = "nothing was written, the store is as it was"
RESUMABLE = "what was computed is kept and the run is marked interrupted; run the same command again to resume"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    # bad input (IngestError, ModelError, ScoreInputError, ...): exit 2, store untouched
    return run_command(lambda: args.func(args), bad_input=(StoreError, AttackError),
                       interrupted=getattr(args, "interrupted", RESUMABLE))
