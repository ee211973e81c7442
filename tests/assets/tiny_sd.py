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



# --- original (LDM / CompVis) single-file layout, to test `sd:<file.safetensors>` ----------

_UNET_RESNET = [("norm1", "in_layers.0"), ("conv1", "in_layers.2"), ("norm2", "out_layers.0"),
                ("conv2", "out_layers.3"), ("time_emb_proj", "emb_layers.1"), ("conv_shortcut", "skip_connection")]
_VAE_ATTN = [("group_norm.", "norm."), ("to_q.", "q."), ("to_k.", "k."), ("to_v.", "v."), ("to_out.0.", "proj_out.")]


def _sub(key: str, pairs) -> str:
    for new, old in pairs:
        key = key.replace(new, old)
    return key


def _unet_key(k: str, lpb: int) -> str:
    """A diffusers UNet2DConditionModel key -> its CompVis `model.diffusion_model.` key."""
    top = {"time_embedding.linear_1": "time_embed.0", "time_embedding.linear_2": "time_embed.2",
           "conv_in": "input_blocks.0.0", "conv_norm_out": "out.0", "conv_out": "out.2"}
    head, _, leaf = k.rpartition(".")
    if head in top:
        return f"{top[head]}.{leaf}"
    p = k.split(".")
    if p[0] == "down_blocks":
        b = int(p[1])
        if p[2] == "downsamplers":  # down_blocks.b.downsamplers.0.conv.x
            return f"input_blocks.{b * (lpb + 1) + lpb + 1}.0.op.{p[-1]}"
        i = b * (lpb + 1) + int(p[3]) + 1
        rest = ".".join(p[4:])
        return f"input_blocks.{i}.0.{_sub(rest, _UNET_RESNET)}" if p[2] == "resnets" else f"input_blocks.{i}.1.{rest}"
    if p[0] == "mid_block":
        rest = ".".join(p[3:])
        if p[1] == "resnets":
            return f"middle_block.{2 * int(p[2])}.{_sub(rest, _UNET_RESNET)}"
        return f"middle_block.1.{rest}"
    if p[0] == "up_blocks":
        b = int(p[1])
        if p[2] == "upsamplers":  # after the block's last resnet (and attention, if any)
            return f"up:{b}:{p[-1]}"  # resolved by the caller, which knows about attentions
        i = b * (lpb + 1) + int(p[3])
        rest = ".".join(p[4:])
        return f"output_blocks.{i}.0.{_sub(rest, _UNET_RESNET)}" if p[2] == "resnets" else f"output_blocks.{i}.1.{rest}"
    raise KeyError(k)


def _vae_key(k: str, n_up: int) -> str:
    p = k.split(".")
    if p[1] in ("down_blocks", "up_blocks"):
        i = int(p[2])
        j = i if p[1] == "down_blocks" else n_up - 1 - i
        part = "down" if p[1] == "down_blocks" else "up"
        if p[3] in ("downsamplers", "upsamplers"):
            return f"{p[0]}.{part}.{j}.{'downsample' if part == 'down' else 'upsample'}.conv.{p[-1]}"
        return f"{p[0]}.{part}.{j}.block.{p[4]}." + ".".join(p[5:]).replace("conv_shortcut", "nin_shortcut")
    if p[1] == "mid_block":
        if p[2] == "resnets":
            return f"{p[0]}.mid.block_{int(p[3]) + 1}." + ".".join(p[4:]).replace("conv_shortcut", "nin_shortcut")
        return f"{p[0]}.mid.attn_1." + _sub(".".join(p[4:]), _VAE_ATTN)
    return k.replace("conv_norm_out", "norm_out")


def to_ldm_checkpoint(pipe) -> dict[str, torch.Tensor]:
    """The pipeline's weights in the original single-file layout (model.diffusion_model.*,
    first_stage_model.*, cond_stage_model.transformer.text_model.*)."""
    out: dict[str, torch.Tensor] = {}
    lpb = pipe.unet.config.layers_per_block
    attn_up = {int(k.split(".")[1]) for k in pipe.unet.state_dict() if k.startswith("up_blocks.") and ".attentions." in k}
    for k, v in pipe.unet.state_dict().items():
        key = _unet_key(k, lpb)
        if key.startswith("up:"):
            _, b, leaf = key.split(":")
            b = int(b)
            key = f"output_blocks.{b * (lpb + 1) + lpb}.{2 if b in attn_up else 1}.conv.{leaf}"
        out["model.diffusion_model." + key] = v
    n_up = len(pipe.vae.config.up_block_types)
    for k, v in pipe.vae.state_dict().items():
        key = _vae_key(k, n_up)
        if ".mid.attn_1." in key and v.ndim == 2:  # the original VAE attention is 1x1 convolutions
            v = v[:, :, None, None]
        out["first_stage_model." + key] = v
    for k, v in pipe.text_encoder.state_dict().items():
        if k.endswith("position_ids"):
            continue
        out["cond_stage_model.transformer." + (k if k.startswith("text_model.") else "text_model." + k)] = v
    return {k: v.detach().contiguous().clone() for k, v in out.items()}
