"""Asthana & Belagiannis (ICLR 2026, arXiv 2601.20642) anisotropy: gamma_1 N + gamma_2 A, denoising-free.

From pure noise z (no sampling step taken): N = ||eps(x, c) - eps(x, empty)||_2 at the first
noise level (x = sigma_max z, the Wen et al. first-step norm: how strongly the caption pulls),
and A = the cosine between the unconditional prediction and the guidance direction,
cos(eps_u, eps_c - eps_u), taken across the latent channels at every position and averaged
over positions, at a low noise level (their code: DDIM timestep 41 of 1000, sigma ~ 0.2, with
the same noise fed as the latent, x = sqrt(1 + sigma^2) z in the Karras parametrisation): a
memorised caption pushes along the direction the unconditional model already points to. With
D the Karras denoiser, eps = (x - D) / sigma. Averaged over the seeds; gamma_1 = 1, gamma_2 = 2
are the authors' Stable Diffusion v1 weights. Both noise levels share the unconditional rows
per seed: about one guided call per generation.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from attack.models.base import TextToImageModel
from attack.scores.base import ScoreInputError, ScoreResult, check_seeded, chunks, seed_rows

# sigma of DDIM timestep 41 on Stable Diffusion v1's training schedule (scaled_linear betas
# 0.00085..0.012, 1000 steps): sqrt((1 - abar_41) / abar_41)
SD_T41_SIGMA = 0.2014


@dataclass(frozen=True)
class AnisotropyParams:
    """seeds: one noise each (n = len); cosine_sigma: the low noise level of the angle term;
    gamma_norm, gamma_cos: the weights of N and A."""
    seeds: tuple[int, ...] = (0,)
    cosine_sigma: float = SD_T41_SIGMA
    gamma_norm: float = 1.0
    gamma_cos: float = 2.0


def eps_pair(model: TextToImageModel, x: torch.Tensor, sigma: float, cond: torch.Tensor,
             seeds: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """(eps_u, eps_c) at one noise level for rows whose x is their seed's noise (shared uncond)."""
    s = x.new_full((x.shape[0],), sigma)
    du, dc = model.denoise_pair_shared(x, s, seeds, cond)
    return (x - du) / sigma, (x - dc) / sigma


def anisotropy(model: TextToImageModel, captions: Sequence[str], params: AnisotropyParams = AnisotropyParams(),
               *, batch_size: int = 16) -> ScoreResult:
    """Asthana & Belagiannis 2026 (anisotropy): mean over seeds of gamma_1 ||eps_c - eps_u|| + gamma_2 cos(eps_u, eps_c - eps_u)."""
    captions, batch_size, seeds = check_seeded(model, captions, batch_size, params.seeds, "the anisotropy score")
    if not model.sigma_min <= params.cosine_sigma < model.sigma_max:
        raise ScoreInputError(f"expected cosine_sigma inside the model's range [{model.sigma_min:.4g}, "
                              f"{model.sigma_max:.4g}), got {params.cosine_sigma}")
    j = len(seeds)
    values = torch.empty(len(captions), dtype=torch.float32)
    start = model.evals
    for sl in chunks(len(captions), batch_size):
        chunk = captions[sl]
        caps, rows, cond = seed_rows(model, chunk, seeds)
        z = model.noise(caps, rows).float()
        eu, ec = eps_pair(model, z * model.sigma_max, model.sigma_max, cond, rows)
        norm = (ec - eu).flatten(1).norm(dim=1)
        low = params.cosine_sigma
        eu, ec = eps_pair(model, z * (1 + low * low) ** 0.5, low, cond, rows)
        angle = F.cosine_similarity(eu, ec - eu, dim=1).flatten(1).mean(1)
        score = params.gamma_norm * norm + params.gamma_cos * angle
        values[sl] = score.view(-1, j).mean(1).float().cpu()
    return ScoreResult("anisotropy", values, (model.evals - start) / len(captions), params)
