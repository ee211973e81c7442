"""Jeon, Kim & No (ICML 2025, arXiv 2412.04140) initial-step sharpness: ||H_delta(x_T) s_delta(x_T)||_2.

s_delta(x) = s(x, c) - s(x, empty) is the conditional-minus-unconditional score at the first
sampling step and H_delta its Jacobian (the Hessian of log p(x|c) - log p(x)); memorised prompts
sit at sharp peaks, where H_delta amplifies s_delta. With the Karras denoiser,
s(x; sigma, c) = (D(x; sigma, c) - x) / sigma^2, so s_delta = (D_c - D_u) / sigma^2. The
Hessian-vector product is a forward finite difference along u = s_delta / ||s_delta||:
H_delta s_delta ~ ||s_delta|| (s_delta(x + h u) - s_delta(x)) / h, with h = fd_step * ||x||
(the authors' code takes the exact forward-mode product; tests/test_detectors.py checks the two
agree). One value per generation x_T = sigma_max * noise(seed), averaged over the seeds
(n = 1 or 4 in the paper). The first pair shares its unconditional rows per seed; the shifted
pair does not (each caption moves x its own way): about 1.5 guided calls per generation.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attack.models.base import TextToImageModel
from attack.scores.base import ScoreInputError, ScoreResult, check_seeded, chunks, seed_rows


@dataclass(frozen=True)
class SharpnessParams:
    """seeds: one generation each (n = len); fd_step: the finite-difference step as a fraction
    of ||x_T|| (1e-3 of the noise: small against the curvature, far above float32 rounding)."""
    seeds: tuple[int, ...] = (0,)
    fd_step: float = 1e-3


def score_difference(model: TextToImageModel, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                     seeds: Sequence[int] | None = None) -> torch.Tensor:
    """s(x, c) - s(x, empty) = (D_c - D_u) / sigma^2, float32 [B,...]; seeds: x is each seed's
    starting noise, so the unconditional rows are shared (TextToImageModel.denoise_pair_shared)."""
    du, dc = model.denoise_pair_shared(x, sigma, seeds, cond) if seeds is not None else model.denoise_pair(x, sigma, cond)
    return (dc - du) / sigma.view(-1, *[1] * (x.ndim - 1)).to(dc) ** 2


def sharpness(model: TextToImageModel, captions: Sequence[str], params: SharpnessParams = SharpnessParams(),
              *, batch_size: int = 16) -> ScoreResult:
    """Jeon et al. 2025 (initial-step sharpness): mean over seeds of ||H_delta(x_T) s_delta(x_T)||_2, batched."""
    captions, batch_size, seeds = check_seeded(model, captions, batch_size, params.seeds, "the sharpness score")
    if not 0 < params.fd_step < 1:
        raise ScoreInputError(f"expected 0 < fd_step < 1, got {params.fd_step}")
    j = len(seeds)
    values = torch.empty(len(captions), dtype=torch.float32)
    start = model.evals
    for sl in chunks(len(captions), batch_size):
        chunk = captions[sl]
        caps, rows, cond = seed_rows(model, chunk, seeds)
        x = model.noise(caps, rows).float() * model.sigma_max
        sigma = x.new_full((len(caps),), model.sigma_max)
        v = score_difference(model, x, sigma, cond, rows)
        v_norm = v.flatten(1).norm(dim=1).clamp_min(1e-12)
        h = params.fd_step * x.flatten(1).norm(dim=1)
        shift = (h / v_norm).view(-1, *[1] * (x.ndim - 1))
        moved = score_difference(model, x + shift * v, sigma, cond)
        hv = (moved - v) / shift          # ||v|| (s(x + h u) - s(x)) / h with u = v / ||v||
        values[sl] = hv.flatten(1).norm(dim=1).view(-1, j).mean(1).float().cpu()
    return ScoreResult("sharpness", values, (model.evals - start) / len(captions), params)
