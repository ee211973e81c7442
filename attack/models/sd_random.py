"""`sd-random`: a Stable-Diffusion-1.5-sized model with random weights, built from configs.

For speed measurements only (UNet evals/s, VAE decodes/s): the architecture, latent size
(4x64x64), text length (77) and schedule of SD v1.5, no weights, nothing downloaded. Captions go
through a hashing word tokenizer, since CLIP's BPE vocabulary is not available offline.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import torch

from attack.models.sd import StableDiffusionModel, resolve_dtype

# SD v1.5's component configs (diffusers layout), written out so nothing is fetched.
UNET_CONFIG = dict(
    sample_size=64, in_channels=4, out_channels=4, layers_per_block=2,
    block_out_channels=(320, 640, 1280, 1280),
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=768, attention_head_dim=8, norm_num_groups=32,
)
VAE_CONFIG = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, sample_size=512,
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
    scaling_factor=0.18215,
)
TEXT_CONFIG = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
                   num_attention_heads=12, max_position_embeddings=77, hidden_act="quick_gelu",
                   bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
SCHEDULER_CONFIG = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                        beta_schedule="scaled_linear", prediction_type="epsilon")


class HashTokens:
    """Words -> stable ids by hashing, CLIP-shaped: <bos> words <eos> padded with <eos> to 77."""

    def __init__(self, vocab_size: int = 49408, max_length: int = 77, bos: int = 49406, eos: int = 49407):
        self.vocab_size, self.max_length, self.bos, self.eos = vocab_size, max_length, bos, eos

    def __call__(self, captions: Sequence[str]) -> torch.Tensor:
        out = torch.full((len(captions), self.max_length), self.eos, dtype=torch.long)
        for i, c in enumerate(captions):
            ids = [int.from_bytes(hashlib.blake2b(w.encode(), digest_size=4).digest(), "little") % (self.bos - 1)
                   for w in re.findall(r"\w+", c.lower())][: self.max_length - 2]
            out[i, : len(ids) + 1] = torch.tensor([self.bos, *ids])
        return out


def build_sd_random(device: str = "cpu", dtype: str | torch.dtype | None = None, seed: int = 0,
                    with_vae: bool = True) -> StableDiffusionModel:
    """SD-1.5-sized UNet (+ VAE, text encoder) with random weights, initialised on `device`."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    dt = resolve_dtype(dtype, device)
    dev = torch.device(device)
    cuda = [dev.index or 0] if dev.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):  # seeded weights without touching the caller's RNG state
        torch.manual_seed(seed)
        with dev:
            unet = UNet2DConditionModel(**UNET_CONFIG)
            vae = AutoencoderKL(**VAE_CONFIG) if with_vae else None
            text = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    # built from these configs and this seed: that is its identity (hashing 1B random parameters would cost seconds)
    return StableDiffusionModel(unet, vae, text, HashTokens(), SCHEDULER_CONFIG, device=device, dtype=dt,
                                source="sd-random", files={"sd-random": {"seed": seed, "vae": with_vae}})
