"""The model adapter: the only surface scoring code sees (after k-diffusion's `external.py`).

A model encodes captions, runs the classifier-free-guided denoiser D(x; sigma, cond), exposes
the sigma range of its own training schedule and its latent shape, and decodes latents to RGB in
[0, 1]. Scores never touch diffusers or the demo network directly.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from attack.errors import AttackError
from attack.sampling import caption_noise, heun_evals, karras_sigmas, sample_heun


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
    spec: str = ""         # the registry spec it was loaded from, normalised (see attack.models.load_model)

    def __init__(self) -> None:
        self._evals = 0.0
        self._fingerprint: str | None = None

    def identity(self, cache: Any = None) -> dict:
        """What identifies this model's outputs (weights, configs, dtype): subclasses that know
        their files say so (hashing them through `cache`, a fingerprint.DigestCache); the default
        hashes every parameter of the torch modules it holds."""
        from attack.models.fingerprint import module_digest

        modules = [v for _, v in sorted(vars(self).items()) if isinstance(v, torch.nn.Module)]
        return {"name": self.name, "parameters": module_digest(*modules), "dtype": str(self.dtype)}

    def parameter_count(self) -> int:
        """Parameters of every torch module the adapter holds (0 for a model known by its images)."""
        modules = [v for v in vars(self).values() if isinstance(v, torch.nn.Module)]
        return sum(p.numel() for m in modules for p in m.parameters())

    def fingerprint(self, cache: Any = None) -> str:
        """sha256 of identity(), computed once: a run is keyed by it, so new weights at the same
        path, another config or another dtype start a new run instead of resuming the old one, and
        the same weights under two paths are one model. `cache` keeps file digests across processes
        (the store's: Store.digest_cache())."""
        if self._fingerprint is None:
            from attack.models.fingerprint import combine

            self._fingerprint = combine(self.identity(cache))
        return self._fingerprint

    @property
    def evals(self) -> float:
        """Guided denoiser calls spent so far (a cond + uncond pair is one); only the adapter
        counts them, in the methods that call the network."""
        return self._evals

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
        d = self._rows(torch.cat([x, x]), torch.cat([sigma, sigma]), torch.cat([uncond, cond]))
        self._evals += b
        return d[:b], d[b:]

    def _rows(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """One unguided network call on the model's device and dtype, float32 out."""
        with torch.no_grad():
            return self._denoise(x.to(self.device, self.dtype), sigma.to(self.device, torch.float32),
                                 cond.to(self.device, self.dtype)).float()

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor, guidance: float = 7.5,
                uncond: torch.Tensor | None = None) -> torch.Tensor:
        """Classifier-free-guided denoiser: D_u + g (D_c - D_u), float32."""
        du, dc = self.denoise_pair(x, sigma, cond, uncond)
        return du + guidance * (dc - du)

    def denoise_pair_shared(self, x: torch.Tensor, sigma: torch.Tensor, seeds: Sequence[int],
                            cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(D(x; sigma, empty), D(x; sigma, cond)) for rows whose x is the starting noise of their seed.

        Rows with the same seed have the same x_T = sigma_max * noise(seed) (the public code's
        convention), so their unconditional output is the same: it is computed once per distinct
        seed, in the same network call as the B conditional rows (B + seeds rows instead of 2B).
        Exact, not an approximation: a per-caption loop recomputes the identical row each time.
        evals grows by (B + seeds) / 2, in guided-pair units."""
        seeds = [int(s) for s in seeds]
        distinct = sorted(set(seeds))
        first = [seeds.index(s) for s in distinct]
        where = torch.tensor([distinct.index(s) for s in seeds])
        u = self.uncond(1)
        k, b = len(distinct), x.shape[0]
        d = self._rows(torch.cat([x[first], x]), torch.cat([sigma[first], sigma]),
                       torch.cat([u.expand(k, *u.shape[1:]), cond]))
        self._evals += (k + b) / 2
        return d[:k][where.to(d.device)], d[k:]

    def shared_denoiser(self, seeds: Sequence[int], cond: torch.Tensor,
                        guidance: float) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        """A guided D(x, sigma) for a sampler started at x_T = sigma_max * noise(seeds): its first
        call shares the unconditional rows (denoise_pair_shared), later calls are ordinary pairs."""
        u = self.uncond(1)
        calls = [0]

        def denoise(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
            calls[0] += 1
            if calls[0] > 1:
                return self.denoise(x, sigma, cond, guidance, u.expand(x.shape[0], *u.shape[1:]))
            du, dc = self.denoise_pair_shared(x, sigma, seeds, cond)
            return du + guidance * (dc - du)

        return denoise

    def noise(self, captions: Sequence[str], seeds: Sequence[int]) -> torch.Tensor:
        """Unit noise for each (caption, seed), independent of batching, on the model's device."""
        return caption_noise(captions, seeds, self.latent_shape).to(self.device)

    def images(self, captions: Sequence[str], seeds: Sequence[int], steps: int = 16,
               guidance: float = 7.5) -> list[np.ndarray]:
        """One generation per (caption, seed) as HxWx3 uint8 at the model's native size: what the
        generate stage stores."""
        out = self.sample(captions, seeds, steps=steps, guidance=guidance)
        return [(img.clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for img in out.images]

    def guidance_for(self, guidance: float) -> float:
        """The guidance scale a call asking for `guidance` runs at (a mitigation may fix its own:
        attack.models.mitigate); what generations record."""
        return guidance

    def seeds_for(self, caption: str, steps: int) -> list[int] | None:
        """The seeds this model can answer for a caption (None: any seed)."""
        return None

    @property
    def sampler(self) -> str:
        return "heun-karras"

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
