"""The model adapter: the only surface scoring code sees (after k-diffusion's `external.py`).

A model encodes captions, runs the classifier-free-guided denoiser D(x; sigma, cond), exposes
the sigma range of its own training schedule and its latent shape, and decodes latents to RGB in
[0, 1]. Scores never touch diffusers or the demo network directly.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..errors import AttackError
from ..sampling import caption_noise, heun_evals, karras_sigmas, sample_heun


class ModelError(AttackError):
    """A model cannot be loaded or cannot do what was asked."""


@dataclass(frozen=True)
class Samples:
    """Full samplings: images [B,3,H,W] in [0,1] (float32, CPU) and what produced them."""
    images: torch.Tensor
    captions: tuple[str, ...]
    seeds: tuple[int, ...]
    steps: int
    sampler: str
    guidance: float
    evals: int  # guided denoiser calls per image


class TextToImageModel(ABC):
    """A text-to-image diffusion model seen as a Karras denoiser."""

    name: str = "model"
    whitebox: bool = True  # False for models known only by their outputs (images:)

    def __init__(self) -> None:
        self.evals = 0  # guided denoiser calls spent, per caption (a cond+uncond pair is one)

    # --- what a model must provide
    @property
    @abstractmethod
    def latent_shape(self) -> tuple[int, int, int]: ...

    @property
    @abstractmethod
    def sigma_min(self) -> float: ...

    @property
    @abstractmethod
    def sigma_max(self) -> float: ...

    @property
    @abstractmethod
    def device(self) -> torch.device: ...

    @property
    @abstractmethod
    def dtype(self) -> torch.dtype: ...

    @abstractmethod
    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        """Caption embeddings [B, ...] (the empty caption is the unconditional input)."""

    @abstractmethod
    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """Unguided D(x; sigma, cond) in the model's dtype; sigma is [B]."""

    @abstractmethod
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Latents [B,C,h,w] -> RGB [B,3,H,W] in [0, 1], float32."""

    # --- shared behaviour
    def uncond(self, n: int) -> torch.Tensor:
        """The empty caption's embedding, repeated n times."""
        e = self.encode([""])
        return e.expand(n, *e.shape[1:])

    def denoise_pair(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor,
                     uncond: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(D(x; sigma, empty), D(x; sigma, cond)) from one network call on a batch of 2B."""
        b = x.shape[0]
        if uncond is None:
            uncond = self.uncond(b)
        xx = torch.cat([x, x]).to(self.device, self.dtype)
        ss = torch.cat([sigma, sigma]).to(self.device, torch.float32)
        cc = torch.cat([uncond, cond]).to(self.device, self.dtype)
        with torch.no_grad():
            d = self._denoise(xx, ss, cc).float()
        self.evals += b
        return d[:b], d[b:]

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, guidance: float = 7.5,
                uncond: torch.Tensor | None = None) -> torch.Tensor:
        """Classifier-free-guided denoiser: D_u + g (D_c - D_u), float32."""
        du, dc = self.denoise_pair(x, sigma, cond, uncond)
        return du + guidance * (dc - du)

    def noise(self, captions: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Unit noise for each (caption, seed), independent of batching, on the model's device."""
        return caption_noise(captions, seeds, self.latent_shape).to(self.device)

    def sample(self, captions: Sequence[str], seeds: Sequence[int], steps: int = 16,
               guidance: float = 7.5, decode: bool = True) -> Samples:
        """Full sampling: Heun on Karras sigmas from sigma_max, one image per (caption, seed)."""
        captions, seeds = tuple(captions), tuple(int(s) for s in seeds)
        cond = self.encode(captions)
        unc = self.uncond(len(captions))
        sigmas = karras_sigmas(steps, self.sigma_min, self.sigma_max)
        x = self.noise(captions, seeds) * self.sigma_max
        x = sample_heun(lambda z, s: self.denoise(z, s, cond, guidance, unc), x, sigmas)
        images = self.decode(x).float().cpu() if decode else x.float().cpu()
        return Samples(images, captions, seeds, steps, "heun-karras", guidance, heun_evals(steps))
