"""What every score shares: its result type, input checks and the whitebox guard.

A score is a pure batched function `score(model, captions, params) -> ScoreResult`: explicit
seeds in `params`, nothing seeded globally, values in caption order, and the network
evaluations it spent, so a run can store its parameters (`params_json`) beside its values.

Batch invariance: every row's noise, text embedding and denoiser output depend on its own
caption and seed only, so a caption scores the same alone, batched or in any order up to float32
rounding. Not bit for bit: BLAS and convolution kernels pick blocking and algorithms by batch
shape and row position (MKL's remainder rows, oneDNN / cuDNN algorithm choice), which moves the
last bits (relative ~1e-6 for DCS; an ECS pixel sitting on the 1.5 threshold can flip).
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import torch

from attack.errors import ScoreInputError
from attack.models.base import ModelError, TextToImageModel


@dataclass(frozen=True)
class ScoreResult:
    """One value per caption (float32 [B], CPU, caption order) and what it cost."""
    name: str
    values: torch.Tensor
    # guided denoiser calls per caption, in pairs of network rows (cond + uncond = 1); a batch
    # shares each seed's unconditional row at the first step, so it can be below the loop's
    evals_per_caption: float
    params: Any  # the frozen params dataclass the score ran with

    def meta(self) -> dict[str, Any]:
        """Everything but the values, JSON-ready: to store beside them."""
        return {"score": self.name, "params": asdict(self.params), "evals_per_caption": self.evals_per_caption}


def params_json(params: Any) -> str:
    """A params dataclass as canonical JSON (sorted keys, tuples as lists)."""
    if not is_dataclass(params):
        raise ScoreInputError(f"expected a params dataclass, got {type(params).__name__}")
    return json.dumps(asdict(params), sort_keys=True)


def check_captions(captions: Sequence[str]) -> tuple[str, ...]:
    """A non-empty tuple of strings, or a ScoreInputError saying what came instead."""
    if isinstance(captions, str):
        raise ScoreInputError("expected a list of captions, got a single string")
    captions = tuple(captions)
    if not captions:
        raise ScoreInputError("expected at least one caption, got an empty list")
    bad = [type(c).__name__ for c in captions if not isinstance(c, str)]
    if bad:
        raise ScoreInputError(f"expected captions as str, got {bad[0]}")
    return captions


def check_batch_size(batch_size: int) -> int:
    if int(batch_size) < 1:
        raise ScoreInputError(f"expected a batch size of at least 1, got {batch_size}")
    return int(batch_size)


def require_whitebox(model: TextToImageModel, score: str) -> None:
    """Whitebox scores need the denoiser; a model known only by its images cannot give it."""
    if not getattr(model, "whitebox", True):
        raise ModelError(
            f"expected a whitebox model for {score}: it needs the denoiser D(x; sigma, c) on seeded noise, "
            f"got {model.name!r}, known only by its images; run a blackbox score (ecs, carlini) on it instead")


def check_seeded(model: TextToImageModel, captions: Sequence[str], batch_size: int, seeds: Sequence[int],
                 score: str) -> tuple[tuple[str, ...], int, tuple[int, ...]]:
    """The shared checks of a whitebox score over n seeded generations: (captions, batch size,
    seeds), or the named error of the first that fails."""
    require_whitebox(model, score)
    captions, batch_size = check_captions(captions), check_batch_size(batch_size)
    if not seeds:
        raise ScoreInputError(f"expected at least one seed for {score}, got none")
    return captions, batch_size, tuple(int(s) for s in seeds)


def chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


def seed_rows(model: Any, chunk: Sequence[str], seeds: Sequence[int]) -> tuple[list[str], list[int], torch.Tensor]:
    """One row per (caption, seed), caption-major: (captions, seeds, conditional embeddings)."""
    caps = [c for c in chunk for _ in seeds]
    rows = [int(s) for _ in chunk for s in seeds]
    return caps, rows, model.encode(list(chunk)).repeat_interleave(len(seeds), 0)
