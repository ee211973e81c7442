"""The demo text-to-image network: caption encoder + diffusers UNet in pixel space.

Images are 32x32 RGB in [-1, 1], folded 2x2 into a 12x16x16 "latent" (space-to-depth: lossless,
no learned autoencoder) so the UNet runs at 16x16. The UNet is wrapped with Karras et al.'s
(EDM) preconditioning so that D(x; sigma) is the denoised estimate directly; sigmas follow
Stable Diffusion's own discrete training schedule (scaled-linear betas, 1000 steps), hence the
same sigma range as SD v1: [0.0292, 14.6146].
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from safetensors.torch import load_file, save_file

from attack.demo.text import CaptionEncoder, WordTokenizer

WEIGHTS_DIR = Path(__file__).with_name("weights")


@dataclass(frozen=True)
class DemoConfig:
    resolution: int = 32
    fold: int = 2  # space-to-depth factor
    block_out_channels: tuple[int, ...] = (64, 128, 128)
    text_dim: int = 128
    text_layers: int = 2
    max_length: int = 16
    sigma_data: float = 0.5
    beta_start: float = 0.00085
    beta_end: float = 0.012
    train_steps_schedule: int = 1000
    vocab: tuple[str, ...] = field(default=(), repr=False)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        return (3 * self.fold ** 2, self.resolution // self.fold, self.resolution // self.fold)

    def to_json(self) -> str:
        d = asdict(self)
        d["block_out_channels"] = list(d["block_out_channels"])
        d["vocab"] = list(d["vocab"])
        return json.dumps(d, indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DemoConfig":
        d = json.loads(text)
        d["block_out_channels"] = tuple(d["block_out_channels"])
        d["vocab"] = tuple(d["vocab"])
        return cls(**d)


def discrete_sigmas(cfg: DemoConfig) -> torch.Tensor:
    """Stable Diffusion's training sigmas: sqrt((1 - abar) / abar) for scaled-linear betas."""
    betas = torch.linspace(cfg.beta_start ** 0.5, cfg.beta_end ** 0.5, cfg.train_steps_schedule, dtype=torch.float64) ** 2
    abar = torch.cumprod(1.0 - betas, 0)
    return ((1 - abar) / abar).sqrt().float()


class DemoNet(torch.nn.Module):
    def __init__(self, cfg: DemoConfig):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = WordTokenizer(cfg.vocab, cfg.max_length)
        self.text = CaptionEncoder(len(cfg.vocab), cfg.text_dim, cfg.text_layers, max_length=cfg.max_length)
        c, h, _ = cfg.latent_shape
        n = len(cfg.block_out_channels)
        self.unet = UNet2DConditionModel(
            sample_size=h, in_channels=c, out_channels=c, layers_per_block=1,
            block_out_channels=cfg.block_out_channels,
            down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
            up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
            cross_attention_dim=cfg.text_dim, attention_head_dim=8, norm_num_groups=16,
        )
        self.register_buffer("sigmas", discrete_sigmas(cfg), persistent=False)
        self.register_buffer("log_sigmas", self.sigmas.log(), persistent=False)

    # --- pixels <-> latent
    def fold(self, images: torch.Tensor) -> torch.Tensor:
        """[B,3,H,W] in [0,1] -> latent [B,C,h,w] in [-1,1]."""
        return F.pixel_unshuffle(images * 2 - 1, self.cfg.fold)

    def unfold(self, latents: torch.Tensor) -> torch.Tensor:
        """latent -> [B,3,H,W] in [0,1]."""
        return (F.pixel_shuffle(latents, self.cfg.fold) * 0.5 + 0.5).clamp(0, 1)

    # --- text
    def encode(self, captions: list[str]) -> torch.Tensor:
        ids = self.tokenizer(captions).to(self.sigmas.device)
        return self.text(ids)

    # --- denoiser
    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Continuous timestep by interpolating log-sigma in the discrete table (k-diffusion style)."""
        ls = sigma.clamp(self.sigmas[0], self.sigmas[-1]).log()
        idx = torch.searchsorted(self.log_sigmas, ls.contiguous()).clamp(1, len(self.log_sigmas) - 1)
        lo, hi = self.log_sigmas[idx - 1], self.log_sigmas[idx]
        w = (ls - lo) / (hi - lo)
        return (idx - 1).to(ls.dtype) + w

    def denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """D(x; sigma, cond) with EDM preconditioning; sigma has shape [B]."""
        sd = self.cfg.sigma_data
        s = sigma.to(x.dtype).view(-1, 1, 1, 1)
        c_skip = sd ** 2 / (s ** 2 + sd ** 2)
        c_out = s * sd / (s ** 2 + sd ** 2).sqrt()
        c_in = 1 / (s ** 2 + sd ** 2).sqrt()
        f = self.unet(c_in * x, self.sigma_to_t(sigma.float()), encoder_hidden_states=cond).sample
        return c_skip * x + c_out * f

    # --- weights
    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(self.cfg.to_json() + "\n", encoding="utf-8")
        state = {k: v.detach().to(torch.float16).contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt", "dtype": "float16"})

    @classmethod
    def load(cls, folder: Path = WEIGHTS_DIR) -> "DemoNet":
        cfg_path, w_path = folder / "config.json", folder / "model.safetensors"
        for p in (cfg_path, w_path):
            if not p.is_file():
                raise FileNotFoundError(f"expected demo model file {p}, got nothing there")
        net = cls(DemoConfig.from_json(cfg_path.read_text(encoding="utf-8")))
        state = {k: v.float() for k, v in load_file(str(w_path)).items()}
        net.load_state_dict(state)
        return net.eval().requires_grad_(False)
