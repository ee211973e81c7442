"""Denoising Confidence Score, Webster 2023 eq. 1: DCS(c) = ||sigma_1 eps - D(sigma_1 eps, c)||^2."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attack.models.base import TextToImageModel
from attack.sampling import karras_sigmas, sample_heun
from attack.scores.base import ScoreResult, check_batch_size, check_captions, chunks, require_whitebox


@dataclass(frozen=True)
class DCSParams:
    """seed: every caption starts from the same noise (the public code re-seeds one generator with
    this seed for each caption); guidance: classifier-free guidance scale of D."""
    seed: int = 0
    guidance: float = 7.5


def dcs(model: TextToImageModel, captions: Sequence[str], params: DCSParams = DCSParams(),
        *, batch_size: int = 32) -> ScoreResult:
    """Webster 2023 eq. 1 (DCS), batched: mean over the latent of (x_T - x_0)^2 after one Heun step."""
    require_whitebox(model, "DCS")
    captions = check_captions(captions)
    batch_size = check_batch_size(batch_size)
    # Karras schedule with n=1 is [sigma_max, 0]: the Heun step to sigma=0 is a plain Euler
    # step, so x_0 = D(x_T): one guided call per caption, whose unconditional half is shared by
    # the whole batch (same seed, same x_T): (B + 1) / 2B guided-call equivalents per caption.
    sigmas = karras_sigmas(1, model.sigma_min, model.sigma_max)
    values = torch.empty(len(captions), dtype=torch.float32)
    start = model.evals
    for sl in chunks(len(captions), batch_size):
        caps = captions[sl]
        seeds = [params.seed] * len(caps)
        x_t = model.noise(caps, seeds) * float(sigmas[0])
        d = model.shared_denoiser(seeds, model.encode(caps), params.guidance)
        x_0 = sample_heun(d, x_t, sigmas)
        values[sl] = (x_t.float() - x_0.float()).pow(2).flatten(1).mean(1).cpu()
    return ScoreResult("dcs", values, (model.evals - start) / len(captions), params)
