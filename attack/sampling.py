"""Noise, sigma schedules and the Heun sampler (after k-diffusion's `sampling.py`).

Everything takes explicit generators or seeds; nothing here seeds torch globally.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # D(x, sigma[B]) -> x0 estimate


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> torch.Tensor:
    """Karras et al. (2022) eq. 5 schedule of n sigmas from sigma_max down to sigma_min, then 0.

    With n=1 it is [sigma_max, 0]: the paper's one-step setting."""
    if n < 1:
        raise ValueError(f"expected at least 1 sampling step, got {n}")
    ramp = torch.linspace(0, 1, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    sig = (hi + ramp * (lo - hi)) ** rho
    if n == 1:
        sig = torch.tensor([sigma_max], dtype=torch.float64)
    return torch.cat([sig, sig.new_zeros(1)]).float()


def caption_noise(captions: Sequence[str], seeds: Sequence[int], shape: Sequence[int]) -> torch.Tensor:
    """Standard normal noise [B, *shape] (float32, CPU); row i is drawn from a generator freshly
    seeded with seeds[i], so it depends on (seed, caption) alone and never on the batch.

    As in the paper's public code (a generator re-seeded for every caption), captions sampled with
    the same seed share the same starting noise, which keeps one-step scores comparable across
    captions. CPU generators make the noise identical on every device."""
    if len(captions) != len(seeds):
        raise ValueError(f"expected one seed per caption, got {len(seeds)} seeds for {len(captions)} captions")
    out = torch.empty(len(captions), *shape)
    cache: dict[int, torch.Tensor] = {}
    for i, s in enumerate(seeds):
        s = int(s)
        if s not in cache:
            cache[s] = torch.randn(*shape, generator=torch.Generator().manual_seed(s))
        out[i] = cache[s]
    return out


@torch.no_grad()
def sample_heun(denoiser: Denoiser, x: torch.Tensor, sigmas: torch.Tensor) -> torch.Tensor:
    """Heun's 2nd-order method (Karras et al. 2022, Alg. 1, no churn); the last step to
    sigma=0 is plain Euler. Costs 2n-1 denoiser calls for n steps."""
    s_in = x.new_ones(x.shape[0])
    for i in range(len(sigmas) - 1):
        s, s_next = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - denoiser(x, s * s_in)) / s
        dt = s_next - s
        x_next = x + d * dt
        if s_next > 0:
            d2 = (x_next - denoiser(x_next, s_next * s_in)) / s_next
            x_next = x + (d + d2) / 2 * dt
        x = x_next
    return x


def heun_evals(steps: int) -> int:
    """Denoiser calls Heun spends for `steps` steps."""
    return 2 * steps - 1
