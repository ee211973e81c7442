"""Candidate generation (store-independent): the top-K captions by a score, J seeds x S steps each.

The paper generates for the captions its attack ranks highest and builds the ground truth only
for those (section 4, "Evaluation"). This module picks them and yields the generations batch by
batch, so a caller (the store's writer) can persist them as they come and resume by skipping
what it already has.
"""
from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch

from attack.models.base import TextToImageModel
from attack.scores.base import ScoreInputError, check_batch_size, check_captions


@dataclass(frozen=True)
class GenerateParams:
    """top_k captions (0 = all), one generation per seed, `steps` Heun steps with `guidance`.
    seeds=() takes, per caption, the seeds the model holds images for (a closed model)."""
    top_k: int = 100
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    steps: int = 16
    guidance: float = 7.5


@dataclass(frozen=True)
class Generation:
    """One generated image [3,H,W] (float32, [0,1], CPU) and where it came from."""
    caption: str
    caption_index: int  # position in the caption list that was ranked
    rank: int  # 0 = highest score
    score: float
    seed: int
    steps: int
    guidance: float
    image: torch.Tensor
    evals: int  # guided denoiser calls spent on this image (0 for stored images)


def top_k(scores: Sequence[float] | torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores, highest first; ties keep list order, NaN ranks last."""
    vals = [float(s) for s in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if k < 0:
        raise ScoreInputError(f"expected top_k >= 0, got {k}")
    order = sorted(range(len(vals)), key=lambda i: (math.isnan(vals[i]), -vals[i] if not math.isnan(vals[i]) else 0.0, i))
    return order[: k or len(order)]


def iter_generations(model: TextToImageModel, captions: Sequence[str], scores: Sequence[float] | torch.Tensor,
                     params: GenerateParams = GenerateParams(), *, batch_size: int = 16,
                     skip: set[tuple[str, int]] | None = None) -> Iterator[list[Generation]]:
    """Generate for the top-K captions, yielding one list per network batch (in rank order).

    `skip` holds (caption, seed) pairs already generated (to resume); they are not redone."""
    captions = check_captions(captions)
    batch_size = check_batch_size(batch_size)
    if len(scores) != len(captions):
        raise ScoreInputError(f"expected one score per caption, got {len(scores)} scores for {len(captions)} captions")
    if not params.seeds or params.steps < 1:
        raise ScoreInputError(f"expected at least one seed and one step, got seeds={params.seeds}, steps={params.steps}")
    vals = scores.tolist() if isinstance(scores, torch.Tensor) else list(scores)
    skip = skip or set()
    jobs = [(rank, i, s) for rank, i in enumerate(top_k(vals, params.top_k)) for s in params.seeds
            if (captions[i], int(s)) not in skip]
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b:b + batch_size]
        out = model.sample([captions[i] for _, i, _ in chunk], [s for _, _, s in chunk],
                           steps=params.steps, guidance=params.guidance)
        yield [Generation(captions[i], i, rank, float(vals[i]), int(s), params.steps, params.guidance,
                          out.images[n], int(out.evals)) for n, (rank, i, s) in enumerate(chunk)]


def generate_top_k(model: TextToImageModel, captions: Sequence[str], scores: Sequence[float] | torch.Tensor,
                   params: GenerateParams = GenerateParams(), *, batch_size: int = 16) -> list[Generation]:
    """All generations of `iter_generations`, in rank then seed order."""
    return [g for batch in iter_generations(model, captions, scores, params, batch_size=batch_size) for g in batch]
