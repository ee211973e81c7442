"""The command line's shared options and argument types (torch-free: a typo answers at once)."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from attack.kinds import DUP_RMSE_MAX, DUP_RMSE_MIN
from attack.scores import MULTI_SEED, SCORE_NAMES, split_kind

SCORE_HELP = (f"comma-separated among {', '.join(SCORE_NAMES)}; {', '.join(MULTI_SEED)} take n generations as a "
              f"suffix (wen4); default dcs")


def score_kinds(text: str) -> tuple[str, ...]:
    """Score kinds as the registry knows them (attack.kinds); checked without importing torch,
    so a typo answers at once."""
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    bad = [k for k in kinds if split_kind(k) is None]
    if bad or not kinds:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list among {', '.join(SCORE_NAMES)} "
                                         f"(optionally with n generations: wen4), got {text!r}")
    return kinds


def int_at_least(low: int) -> Callable[[str], int]:
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


positive, non_negative = int_at_least(1), int_at_least(0)


def model_args(p: argparse.ArgumentParser, captions_help: str, captions_required: bool = False) -> None:
    p.add_argument("--store", type=Path, required=True, help="store folder")
    p.add_argument("--model", default="demo",
                   help="model spec: demo, sd:<folder|hub id|file>, sd-random, images:<folder>; append "
                   "+mitigate:cfg=G, +mitigate:rta=N or +mitigate:wen[=target:T,lr:L,steps:S,noises:N] for an "
                   "inference-time mitigation (e.g. demo+mitigate:cfg=3)")
    p.add_argument("--device", help="cpu or cuda[:N] (default: cuda when available, else cpu)")
    p.add_argument("--dtype", choices=("auto", "float32", "float16", "bfloat16"), help="model dtype (default: auto)")
    p.add_argument("--config", help="for a single-file sd: checkpoint, a local diffusers folder giving its configs")
    p.add_argument("--variant", help="sd: folder weights variant, e.g. fp16 (diffusion_pytorch_model.fp16.safetensors); "
                                     "default: the plain files, else the one variant present")
    p.add_argument("--captions", type=Path, required=captions_required, help=captions_help)
    p.add_argument("--format", help="force the caption file's format or layout (see ingest)")
    p.add_argument("--batch-size", type=positive, default=16, help="captions (generations) per network batch")
    p.add_argument("--offset", type=non_negative, default=0, help="shard: skip this many items of the stage's list")
    p.add_argument("--limit", type=positive, help="shard: at most this many items")


def engine_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: Ray Data actors (one model copy each) write parquet shards into "
                        "STORE/ray/ that this process merges; same values, resumable")
    p.add_argument("--address", help="--engine ray: join this cluster (`ray start --head` prints it); default: start "
                                     "a local one")
    p.add_argument("--workers", type=positive, help="--engine ray: actors (default: one per GPU on CUDA, else the "
                                                     "number of CPU cores), one torch thread each on CPU")


def generate_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--by", default=None, help="score kind that ranks captions for generation, a rank fusion of "
                                               "stored scores (dcs+anisotropy), or none (the captions in order); "
                                               "default: the first score computed (for run, the first of --scores)")
    p.add_argument("--top-k", type=non_negative, default=None, help="captions to generate for (0 = all scored; "
                                                                      "default 100, images: every caption it has)")
    p.add_argument("--seeds", type=positive, default=None, help="J: generations per caption, seeds 0..J-1 (default 4; "
                                                                  "images: the seeds its mapping holds)")
    p.add_argument("--steps", type=positive, default=None, help="S: Heun steps on Karras sigmas (default 16; images: "
                                                                  "the largest steps its mapping holds)")
    p.add_argument("--guidance", type=float, default=7.5, help="classifier-free guidance scale")


def retrieve_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--embedder", default="pixel", help="pixel (thumbnail descriptor, default), "
                                                       "clip:<arch>:<pretrained tag in the local cache | checkpoint file> "
                                                       "or sscd:<TorchScript file> (a copy-detection descriptor: the "
                                                       "choice for a real audit)")
    p.add_argument("--k", type=positive, default=10, help="neighbours per generation (default 10)")
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


PRESET_HELP = ("label rule: verbatim (default: the paper's 0.12 plus a structural check on every copy and aligned "
               "evidence for crops, rescales and mirrors), paper (the paper's rule alone: 0.12 for all), "
               "onestep-code (the public code's rule alone: 0.113 TV/MV, 0.124 RV)")
