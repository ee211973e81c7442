"""A tiny random Stable Diffusion pipeline, built from configs and saved as a diffusers folder.

Nothing is downloaded: the tokenizer is a byte-level BPE with CLIP's special tokens, its 256 byte
symbols (plus their end-of-word forms) and a few merges written here; the UNet, VAE and text
encoder are random and small enough to run in milliseconds on a CPU.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

MERGES = ["a t</w>", "c at</w>", "d o", "do g</w>", "t h", "th e</w>", "o n</w>", "r e", "s t"]
LATENT = 8  # latent side; the VAE doubles it (16x16 images)


def byte_symbols() -> list[str]:
    """GPT-2 / CLIP byte-to-unicode table: 256 printable stand-ins for the bytes."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    out, extra = {b: b for b in keep}, 0
    for b in range(256):
        if b not in out:
            out[b] = 256 + extra
            extra += 1
    return [chr(out[b]) for b in range(256)]


def write_tokenizer(folder: Path, max_length: int = 16):
    """vocab.json + merges.txt in `folder`; returns the loaded CLIPTokenizer."""
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    sym = byte_symbols()
    vocab = sym + [s + "</w>" for s in sym] + ["".join(m.split()) for m in MERGES] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(vocab)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(MERGES) + "\n", encoding="utf-8")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=max_length,
                         pad_token="<|endoftext|>")


def tiny_pipeline(folder: Path, prediction_type: str = "epsilon", seed: int = 0):
    """A random tiny StableDiffusionPipeline (no safety checker)."""
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    tok = write_tokenizer(folder / "_vocab")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNet2DConditionModel(
            sample_size=LATENT, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
            down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
            cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32)
        vae = AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), layers_per_block=1,
            down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
            norm_num_groups=32, sample_size=2 * LATENT)
        text = CLIPTextModel(CLIPTextConfig(
            vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=tok.model_max_length, bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    sched = DDIMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                          prediction_type=prediction_type, clip_sample=False, set_alpha_to_one=False,
                          steps_offset=1)
    return StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched,
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)


def save_tiny_sd(folder: Path, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """Write a tiny random SD pipeline as a diffusers folder; returns the folder."""
    tiny_pipeline(folder, prediction_type, seed).save_pretrained(str(folder))
    return folder


_FOLDERS: dict[tuple[str, int], Path] = {}


def tiny_sd_folder(tmp_path_factory, prediction_type: str = "epsilon", seed: int = 0) -> Path:
    """One saved tiny SD folder per (prediction type, seed) per test session."""
    key = (prediction_type, seed)
    if key not in _FOLDERS:
        _FOLDERS[key] = save_tiny_sd(tmp_path_factory.mktemp(f"sd_{prediction_type}_{seed}"), prediction_type, seed)
    return _FOLDERS[key]

