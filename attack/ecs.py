"""Edge Consistency Score, Webster 2023 eq. 3: fraction of pixels whose Sobel edge recurs over J one-step generations.

Edge convention (the paper's public code, utils/processing_utils.py, get_edge_img /
get_edge_intersection_score): each generation is resized to 256x256 with Lanczos from its 8-bit
RGB image and scaled to [0, 1]; the gradient along each spatial axis is scipy.ndimage.sobel on
the H x W x 3 array, i.e. the unnormalised [-1, 0, 1] derivative along that axis and the
[1, 2, 1] smoothing along *both* other axes, the channel axis included, with 'reflect' borders
(which, for a 3-tap kernel, repeats the edge sample); the per-channel magnitude hypot(gx, gy) is
summed over the 3 channels and thresholded (> 1.5); the J binary maps are averaged and
thresholded (> 0.5, so 3 of 4 for J=4); ECS is the fraction of pixels set.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .metrics import to_compare
from .models.base import TextToImageModel
from .scores import ScoreInputError, ScoreResult, check_batch_size, check_captions, chunks


@dataclass(frozen=True)
class ECSParams:
    """seeds: the J generations per caption (the same seeds for every caption, as the public
    code); steps: sampler steps of each generation (T=1 in the paper); guidance: CFG scale;
    edge_threshold: on the channel-summed Sobel magnitude; vote: on the mean of the J edge maps;
    size: comparison size (256, Lanczos)."""
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    steps: int = 1
    guidance: float = 7.5
    edge_threshold: float = 1.5
    vote: float = 0.5
    size: int = 256


def _shift(x: torch.Tensor, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(x[i-1], x[i+1]) along dim, repeating the edge sample (scipy 'reflect' for a 3-tap kernel)."""
    n = x.shape[dim]
    prev = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)
    nxt = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)
    return prev, nxt


def _smooth(x: torch.Tensor, dim: int) -> torch.Tensor:
    p, n = _shift(x, dim)
    return p + 2 * x + n


def _diff(x: torch.Tensor, dim: int) -> torch.Tensor:
    p, n = _shift(x, dim)
    return n - p


def sobel_magnitude(images: torch.Tensor) -> torch.Tensor:
    """[N,3,H,W] -> [N,H,W]: sum over channels of hypot(sobel_H, sobel_W), as scipy.ndimage.sobel
    computes them on an H x W x 3 array (the derivative axis first, then smoothing along the
    other two in axis order)."""
    if images.ndim != 4:
        raise ScoreInputError(f"expected images [N,C,H,W], got shape {tuple(images.shape)}")
    x = images.float()
    c, h, w = 1, 2, 3  # tensor dims of the array's channel, row and column axes
    g_rows = _smooth(_smooth(_diff(x, h), w), c)
    g_cols = _smooth(_smooth(_diff(x, w), h), c)
    return torch.hypot(g_rows, g_cols).sum(c)


def edge_maps(images: torch.Tensor, threshold: float = 1.5) -> torch.Tensor:
    """Binary edge maps [N,H,W] (bool) of images [N,3,H,W] in [0, 1]."""
    return sobel_magnitude(images) > threshold


def ecs_from_images(images: torch.Tensor, params: ECSParams = ECSParams()) -> torch.Tensor:
    """Blackbox ECS of already generated images [B,J,3,H,W] in [0, 1] -> float32 [B]."""
    if images.ndim != 5 or images.shape[2] != 3:
        raise ScoreInputError(f"expected generations [B,J,3,H,W], got shape {tuple(images.shape)}")
    b, j = images.shape[:2]
    if b == 0 or j == 0:
        raise ScoreInputError(f"expected at least one caption and one generation, got shape {tuple(images.shape)}")
    small = to_compare(images.flatten(0, 1), params.size)  # 8-bit, Lanczos: the public code's PIL path
    maps = edge_maps(small, params.edge_threshold).view(b, j, params.size, params.size)
    consistent = maps.float().mean(1) > params.vote
    return consistent.flatten(1).float().mean(1)


def ecs(model: TextToImageModel, captions: Sequence[str], params: ECSParams = ECSParams(),
        *, batch_size: int = 8) -> ScoreResult:
    """Webster 2023 eq. 3 (ECS) with J one-step generations per caption, batch_size captions
    (batch_size * J generations) per network call."""
    captions = check_captions(captions)
    batch_size = check_batch_size(batch_size)
    if not params.seeds:
        raise ScoreInputError("expected at least one seed for ECS, got none")
    seeds, j = tuple(int(s) for s in params.seeds), len(params.seeds)
    values = torch.empty(len(captions), dtype=torch.float32)
    start = model.evals
    for sl in chunks(len(captions), batch_size):
        caps = captions[sl]
        gen = model.sample([c for c in caps for _ in seeds], [s for _ in caps for s in seeds],
                           steps=params.steps, guidance=params.guidance)
        values[sl] = ecs_from_images(gen.images.view(len(caps), j, *gen.images.shape[1:]), params)
    return ScoreResult("ecs", values, (model.evals - start) / len(captions), params)
