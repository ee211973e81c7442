"""What each command does: parse nothing, load what it needs, call the library, print summaries.

Heavy modules (torch) are imported inside each command, so `ingest` and --help stay fast.
"""
from __future__ import annotations

import argparse
import errno
import json
import sys
from pathlib import Path
from typing import Optional

from attack.progress import progress_bars, say
from attack.scores import MULTI_SEED
from store import Store
from store.terminal import echo, terminal_safe

# what an interrupted command leaves: ingest writes in one transaction, the others batch by batch
UNCHANGED = "nothing was written, the store is as it was"
RESUMABLE = "what was computed is kept and the run is marked interrupted; run the same command again to resume"
RESUMABLE_FAILED = "what was computed is kept and the run is marked failed; the same command resumes it"


def input_bytes(prepared) -> int:
    """The size of an ingest's input files: about the room its images and rows take in the store."""
    files = [prepared.file] if prepared.file else []
    files += [e.abs_path for e in prepared.scan.entries] if prepared.scan else []
    files += list(prepared.shards.shards) if prepared.shards else []
    return sum(f.stat().st_size for f in files if f.is_file())


def run_ingest(args: argparse.Namespace) -> int:
    from attack.ingest import apply_ingest, prepare_ingest

    def warn(msg: str) -> None:
        say(f"warning: {msg}")

    # before touching the store; a caption list is read in batches as it is written (one transaction)
    prepared = prepare_ingest(args.file, args.images, args.metadata, args.format, stream=True, shards=args.shards,
                              max_side=args.max_side or None)
    for line in prepared.captions.recognised() if prepared.captions else ():
        echo(line)
    update, close = progress_bars()
    try:
        with Store.open(args.store) as store:
            report = apply_ingest(store, prepared, warn=warn, progress=update)
    except OSError as e:
        if e.errno == errno.ENOSPC:      # the disk-full message says how much room the ingest wanted
            e.needed_bytes = input_bytes(prepared)
        raise
    finally:
        close()
    echo(report.summary())
    return 0


# benchmark name -> module under attack.bench exposing main(argv) -> int
BENCHES = {"memorization": "memorization", "ranking": "ranking", "throughput": "throughput", "labels": "labels",
           "detectors": "detectors", "scale": "scale", "mitigation": "mitigation", "all": "all"}


def run_bench(args: argparse.Namespace) -> int:
    import importlib

    module = importlib.import_module(f"attack.bench.{BENCHES[args.name]}")
    return module.main(args.rest)


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
    from attack.ingest import parse_caption_file
    from attack.selection import select_captions

    texts = None
    if args.captions is not None:
        texts = [r.text for r in parse_caption_file(args.captions, args.format).rows]
    return select_captions(store, texts)


def _engine(args: argparse.Namespace, model=None, device: Optional[str] = None):
    """--engine as the stages take it (attack.engine.choose_engine); model None: the retrieval stage."""
    from attack.engine import choose_engine

    return choose_engine(args.engine, model=model, device=device, address=args.address, workers=args.workers,
                         dtype=getattr(args, "dtype", None), config=getattr(args, "config", None),
                         variant=getattr(args, "variant", None), warn=lambda m: say(f"warning: {m}"))


def _gen_params(args: argparse.Namespace, model):
    from attack.pipeline import generate_defaults

    return generate_defaults(model, args.top_k, args.seeds, args.steps, args.guidance)


def run_score(args: argparse.Namespace) -> int:
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


def run_generate(args: argparse.Namespace) -> int:
    from attack.pipeline import default_by
    from attack.stages.generate import generate_stage

    model = _load(args)
    params = _gen_params(args, model)
    with _open_existing(args.store) as store:
        sel = _selection(store, args)
        by = None if args.by == "none" else (args.by or default_by(store, model))
        update, close = progress_bars()
        try:
            report = generate_stage(store, model, sel, params, by=by, model_id=model.spec,
                                    batch_size=args.batch_size, offset=args.offset, limit=args.limit, progress=update,
                                    engine=_engine(args, model))
        finally:
            close()
    echo(report.summary())
    return 0


def run_carlini(args: argparse.Namespace) -> int:
    from attack.scores.carlini import CarliniParams
    from attack.stages.carlini import carlini_stage

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


def run_all(args: argparse.Namespace) -> int:
    from attack.ingest import ingest_unless_present, prepare_ingest
    from attack.pipeline import STAGES, Pipeline, PipelineParams, check_plan
    from attack.selection import select_captions
    from attack.stages.runs import shard

    prepared = prepare_ingest(args.captions, None, None, args.format)  # bad input fails before any write
    for line in prepared.parsed.recognised():
        echo(line)
    texts = list(dict.fromkeys(r.text for r in prepared.parsed.rows))
    shard(texts, args.offset, args.limit)  # an empty shard fails before any write
    stages = ("score",) if args.no_generate else STAGES
    embedder = None
    if not args.no_generate:          # --preset is checked by argparse, the plan by check_plan below
        from attack.images.embed import load_embedder

        embedder = load_embedder(args.embedder, _embed_device(args.device))  # a missing checkpoint fails before any write
    model = _load(args)
    params = PipelineParams(scores=args.scores, by=args.by or "auto", generate=_gen_params(args, model),
                            retrieve=_retrieve_params(args), preset=args.preset, batch_size=args.batch_size,
                            retrieve_batch_size=args.batch_size)
    check_plan(model, params, stages)                      # a --by this run cannot rank by fails before any write
    with Store.open(args.store) as store:
        echo(ingest_unless_present(store, prepared, warn=lambda m: say(f"warning: {m}")))
        sel = select_captions(store, texts)
        engine = _engine(args, model)
        update, close = progress_bars()
        try:
            Pipeline(store, model, params, model_id=model.spec, embedder=embedder, engine=engine,
                     retrieve_engine=engine and _engine(args, device=_embed_device(args.device)), index=args.index,
                     recompute=args.recompute, progress=update, say=echo).run(sel, stages, offset=args.offset,
                                                                              limit=args.limit)
        finally:
            close()
    return 0


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


def run_retrieve(args: argparse.Namespace) -> int:
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


def run_label(args: argparse.Namespace) -> int:
    from attack.stages.align import AlignParams
    from attack.stages.labels import label_stage
    from attack.stages.rules import preset

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


def run_demo(args: argparse.Namespace) -> int:
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


def run_fuse(args: argparse.Namespace) -> int:
    from attack.scores.fusion import fuse, fusion_kinds

    fusion_kinds(args.fusion)       # a malformed name answers before the store is opened
    with _open_existing(args.store) as store:
        echo(fuse(store, args.fusion, args.model).summary())
    return 0


def _compare_evidence(args: argparse.Namespace, run_id: int) -> int:
    """The evidence pages are drawn by review/ (a layer above attack/, which attack/ never imports):
    run its command, `python -m review compare-export`, in a child process; its exit status."""
    import os
    import subprocess

    root = Path(__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p))
    cmd = [sys.executable, "-m", "review", "compare-export", "--store", str(args.store), "--run", str(run_id),
           "--out", str(args.out)] + ["--force"] * args.force
    return subprocess.run(cmd, env=env).returncode


def run_compare(args: argparse.Namespace) -> int:
    from attack.compare import CompareInputError, CompareParams, compare_models, write_compare, write_plot

    if len(args.model) != 2:
        raise CompareInputError(f"expected two --model (A, then B), got {len(args.model)}")
    params = CompareParams(by=args.by, top_k=args.top_k, preset=args.preset)
    with _open_existing(args.store) as store:
        result = compare_models(store, args.model[0], args.model[1], params)
        if args.out is not None and args.out.suffix.lower() != ".zip":
            fmt = write_compare(result, args.out, force=args.force)
            echo(f"wrote {len(result.rows)} rows to {args.out} ({fmt})")
    if args.out is not None and args.out.suffix.lower() == ".zip" and _compare_evidence(args, result.run_id):
        return 2
    if args.plot is not None:
        write_plot(result, args.plot, force=args.force)
        echo(f"wrote the precision-vs-found curves to {args.plot}")
    if args.json:
        echo(json.dumps(result.as_json()))
    else:
        echo(result.summary())
        for kind, by in result.by_type().items():
            if by:
                echo(f"  {kind}: " + ", ".join(f"{k} {v}" for k, v in sorted(by.items())))
    return 0
