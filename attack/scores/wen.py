"""Wen et al. (ICLR 2024) detection score: ||eps(x_t, c) - eps(x_t, empty)||_2 over the first sampling step(s), averaged over generations.

As in their public code (local_sd_pipeline.py, track_noise_norm) the norm is the plain L2 norm
of the whole text-conditional noise difference of one generation (not a mean), averaged here
over the first `steps` sampling steps and the generations. Here eps comes from the Karras
denoiser, eps = (x - D(x; sigma)) / sigma, so eps_c - eps_u = (D_u - D_c) / sigma, and
generation starts at x_T = sigma_max * noise(seed) like DCS and ECS. Wen et al. sampled with
DDIM (50 steps); between steps this advances with guided Euler steps on the model's Karras
schedule of `schedule_steps` sigmas, which is DDIM written in sigma (one call per step).
At the first step all rows of a seed share x_T, so their unconditional outputs are computed once
per seed (TextToImageModel.denoise_pair_shared).
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attack.models.base import TextToImageModel
from attack.sampling import karras_sigmas
from attack.scores.base import ScoreInputError, ScoreResult, check_seeded, chunks, seed_rows


@dataclass(frozen=True)
class WenParams:
    """seeds: one generation per seed (the published setting is 1 generation, 1 step);
    steps: first sampling steps averaged; schedule_steps: length of the schedule those steps are
    taken from; guidance: CFG scale used to advance between steps."""
    seeds: tuple[int, ...] = (0,)
    steps: int = 1
    schedule_steps: int = 50
    guidance: float = 7.5


def wen(model: TextToImageModel, captions: Sequence[str], params: WenParams = WenParams(),
        *, batch_size: int = 16) -> ScoreResult:
    """Wen et al. (ICLR 2024): mean over generations and first steps of ||eps_c - eps_u||_2;
    batch_size captions (batch_size * len(seeds) generations) per network call."""
    captions, batch_size, seeds = check_seeded(model, captions, batch_size, params.seeds, "the Wen et al. score")
    if not 1 <= params.steps <= params.schedule_steps:
        raise ScoreInputError(f"expected 1 <= steps <= schedule_steps, got steps={params.steps}, "
                              f"schedule_steps={params.schedule_steps}")
    j = len(seeds)
    sigmas = karras_sigmas(params.schedule_steps, model.sigma_min, model.sigma_max)
    unc = model.uncond(1)
    values = torch.empty(len(captions), dtype=torch.float32)
    start = model.evals
    for sl in chunks(len(captions), batch_size):
        chunk = captions[sl]
        caps, rows, cond = seed_rows(model, chunk, seeds)
        u = unc.expand(len(caps), *unc.shape[1:])
        x = model.noise(caps, rows) * float(sigmas[0])
        total = torch.zeros(len(caps), device=x.device)
        for i in range(params.steps):
            s, s_next = float(sigmas[i]), float(sigmas[i + 1])
            sig = x.new_full((len(caps),), s)
            # first step: x is the seeds' shared starting noise, so the unconditional rows are shared
            du, dc = model.denoise_pair_shared(x, sig, rows, cond) if i == 0 else model.denoise_pair(x, sig, cond, u)
            total += ((du - dc) / s).flatten(1).norm(dim=1)
            if i + 1 < params.steps:
                d = du + params.guidance * (dc - du)
                x = x + (x - d) / s * (s_next - s)
        values[sl] = (total / params.steps).view(-1, j).mean(1).float().cpu()
    return ScoreResult("wen", values, (model.evals - start) / len(captions), params)
