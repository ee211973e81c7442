"""The `demo` model: the embedded tiny text-to-image network behind the adapter interface."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from attack.demo.net import WEIGHTS_DIR, DemoNet
from attack.models.base import ModelError, TextToImageModel
from attack.models.fingerprint import files_digest


class DemoModel(TextToImageModel):
    name = "demo"

    def __init__(self, net: DemoNet, device: str | torch.device = "cpu", folder: Path | None = None):
        super().__init__()
        # channels-last UNet: oneDNN's convolutions run NHWC natively, so no layout reorder per conv
        # (bench throughput); scores move by float rounding only (attack.scores.base)
        self.net = net.to(device)
        self.net.unet.to(memory_format=torch.channels_last)
        self._device = torch.device(device)
        self._empty: torch.Tensor | None = None
        self.folder = folder        # where the weights came from (None: built in memory)

    @classmethod
    def load(cls, folder: Path = WEIGHTS_DIR, device: str | torch.device = "cpu") -> "DemoModel":
        try:
            return cls(DemoNet.load(Path(folder)), device, Path(folder))
        except FileNotFoundError as e:
            raise ModelError(str(e)) from None

    def identity(self, cache: Any = None) -> dict:
        if self.folder is None:
            return super().identity(cache)
        files = [self.folder / "config.json", self.folder / "model.safetensors"]
        return {"name": "demo", "files": files_digest(files, cache=cache), "dtype": "float32"}

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return self.net.cfg.latent_shape

    @property
    def sigma_min(self) -> float:
        return float(self.net.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.net.sigmas[-1])

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def vocabulary(self) -> list[str]:
        """The words its tokenizer knows (special tokens left out): what random token addition draws."""
        return [w for w in self.net.tokenizer.vocab if not (w.startswith("<") and w.endswith(">"))]

    @torch.no_grad()
    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        return self.net.encode(list(captions))

    def uncond(self, n: int) -> torch.Tensor:
        if self._empty is None:
            self._empty = self.encode([""])
        return self._empty.expand(n, *self._empty.shape[1:])

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.net.denoise(x, sigma, cond)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.net.unfold(latents.float())
