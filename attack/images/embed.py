"""Image embedders for retrieval: a named registry, `load_embedder(spec)`.

Specs:
- `pixel`: a 16x16 RGB thumbnail, centred at 0.5 and unit-normalised. It finds near pixel
  copies (what a verbatim is) and nothing semantic; it is the demo's default because the demo's
  32x32 images are far below what CLIP was trained on, and it needs no weights.
- `clip:<arch>:<pretrained tag | local checkpoint file>` through open_clip (ViT-B-32, ViT-L-14,
  ...). A tag's weights must already be in open_clip's local cache (Hugging Face cache or
  ~/.cache/clip): nothing is ever downloaded; a tag that is not cached is an EmbedderError.
- `sscd:<TorchScript file>`: a copy-detection descriptor (SSCD, Pizzi et al. CVPR 2022, as used
  by Somepalli et al. 2023 and Wen et al. 2024 to find copies), loaded from a local file such
  as sscd_disc_mixup.torchscript.pt: images resized to 320x320 (the square resize of SSCD's
  README), ImageNet mean / std. Trained to match an image to its edited copies, it is the
  choice for retrieval in a real audit; `label --second-opinion` also records its similarity for
  the pair a label rests on.

Every embedder maps images [N,3,H,W] float in [0,1] to unit vectors [N,D] float32 (CPU), in
batches, each row depending on its own image only.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from attack.errors import AttackError


class EmbedderError(AttackError):
    """An embedder spec cannot be loaded, or its input cannot be embedded."""


@dataclass(frozen=True)
class Embeddings:
    """Unit vectors [N,D] (float32, CPU) and the spec of the embedder that made them."""
    vectors: torch.Tensor
    spec: str

    def numpy(self) -> np.ndarray:
        return np.ascontiguousarray(self.vectors.numpy(), dtype=np.float32)


def check_images(images: Any) -> torch.Tensor:
    """[N,3,H,W] float in [0,1], or an EmbedderError saying what came instead."""
    if isinstance(images, np.ndarray):
        images = torch.from_numpy(images)
    if not isinstance(images, torch.Tensor) or images.ndim != 4 or images.shape[1] != 3 or images.shape[0] == 0:
        got = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise EmbedderError(f"expected images [N,3,H,W] with N >= 1, got {got}")
    if not images.is_floating_point():
        raise EmbedderError(f"expected float images in [0,1], got dtype {images.dtype}")
    return images.float()


class Embedder:
    """Batched image -> unit vector map. Subclasses implement `_embed` on one batch."""
    spec: str = ""
    dim: int = 0

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, images: torch.Tensor | np.ndarray, batch_size: int = 64) -> Embeddings:
        images = check_images(images)
        if batch_size < 1:
            raise EmbedderError(f"expected a batch size >= 1, got {batch_size}")
        out = []
        with torch.no_grad():
            for i in range(0, images.shape[0], batch_size):
                v = self._embed(images[i:i + batch_size]).float()
                out.append(F.normalize(v, dim=1).cpu())
        return Embeddings(torch.cat(out), self.spec)


class PixelEmbedder(Embedder):
    """16x16 RGB thumbnail (antialiased), minus 0.5, unit norm: cosine ~ pixel correlation."""

    def __init__(self, size: int = 16):
        self.size = size
        self.spec = "pixel" if size == 16 else f"pixel:{size}"
        self.dim = 3 * size * size

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        t = F.interpolate(images.clamp(0, 1), size=(self.size, self.size), mode="bilinear",
                          antialias=True, align_corners=False)
        # + a tiny constant so a uniform mid-grey image is not the zero vector
        return (t - 0.5).flatten(1) + 1e-4


class ClipEmbedder(Embedder):
    """An open_clip model's image tower with its own resize / crop / normalisation, done on
    tensors (shortest side to image_size, bicubic antialiased, centre crop)."""

    def __init__(self, model: torch.nn.Module, spec: str, device: str = "cpu"):
        import open_clip

        self.model = model.eval().to(device)
        self.device = device
        self.spec = spec
        cfg = open_clip.get_model_preprocess_cfg(model)
        size = cfg.get("size", 224)
        self.size = size if isinstance(size, int) else int(size[0])
        self.mean = torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)).view(1, 3, 1, 1)
        self.std = torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD)).view(1, 3, 1, 1)
        with torch.no_grad():
            self.dim = int(self.model.encode_image(torch.zeros(1, 3, self.size, self.size, device=device)).shape[1])

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        h, w = images.shape[-2:]
        scale = self.size / min(h, w)
        nh, nw = max(self.size, round(h * scale)), max(self.size, round(w * scale))
        t = F.interpolate(images.clamp(0, 1), size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
        top, left = (nh - self.size) // 2, (nw - self.size) // 2
        t = t[..., top:top + self.size, left:left + self.size].clamp(0, 1)
        t = ((t - self.mean) / self.std).to(self.device)
        return self.model.encode_image(t)


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


class TorchScriptEmbedder(Embedder):
    """A TorchScript descriptor network (SSCD's release format): square resize, ImageNet
    normalisation, the module's output as the descriptor."""

    def __init__(self, module: torch.jit.ScriptModule, spec: str, size: int = 320, device: str = "cpu"):
        self.model, self.spec, self.size, self.device = module.eval().to(device), spec, size, device
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        with torch.no_grad():
            out = self.model(torch.zeros(1, 3, size, size, device=device))
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 1:
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise EmbedderError(f"{spec}: expected the network to return descriptors [N,D], got {got}")
        self.dim = int(out.shape[1])

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        t = F.interpolate(images.clamp(0, 1), size=(self.size, self.size), mode="bilinear", antialias=True,
                          align_corners=False)
        return self.model(((t - self.mean) / self.std).to(self.device))


def load_torchscript(path: str, device: str = "cpu") -> TorchScriptEmbedder:
    """sscd:<file>: a local TorchScript file; a missing or unreadable one is an EmbedderError."""
    spec = f"sscd:{path}"
    if not path or not Path(path).is_file():
        raise EmbedderError(f"{spec}: expected a TorchScript file (e.g. sscd_disc_mixup.torchscript.pt) on this "
                            f"machine, got no such file; Verbatim never downloads weights")
    try:
        with warnings.catch_warnings():   # SSCD is released as TorchScript, which torch now calls deprecated
            warnings.simplefilter("ignore", FutureWarning)
            module = torch.jit.load(path, map_location=device)
    except Exception as e:  # torch raises RuntimeError, ValueError or pickle errors for a bad file
        raise EmbedderError(f"{spec}: expected a TorchScript module, got a file torch.jit cannot load ({e})") from e
    return TorchScriptEmbedder(module, spec, device=device)


def cached_clip_weights(arch: str, tag: str) -> Path:
    """The local file holding open_clip's weights for (arch, tag), never downloading."""
    import open_clip
    from open_clip import pretrained as ocp

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    if not cfg:
        raise EmbedderError(f"clip:{arch}:{tag}: expected a pretrained tag of {arch} "
                            f"({', '.join(ocp.list_pretrained_tags_by_model(arch)) or 'none known'}) "
                            f"or an existing checkpoint file, got neither")
    looked: list[str] = []
    if cfg.get("file"):
        return Path(cfg["file"])
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        repo, filename = os.path.split(hub)  # open_clip's convention: a trailing / means its default file
        filename = filename or ocp.HF_WEIGHTS_NAME
        names = list(ocp._get_safe_alternatives(filename)) + [filename]
        for n in names:
            hit = try_to_load_from_cache(repo_id=repo, filename=n)
            if isinstance(hit, str) and os.path.isfile(hit):
                return Path(hit)
            looked.append(f"hf://{repo}/{n}")
    url = cfg.get("url", "")
    if url:
        p = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if p.is_file():
            return p
        looked.append(str(p))
    raise EmbedderError(f"clip:{arch}:{tag}: expected the weights in the local cache ({'; '.join(looked)}), "
                        f"got none; Verbatim never downloads weights: copy them there or pass a checkpoint "
                        f"file as clip:{arch}:/path/to/weights")


def load_clip(arch: str, pretrained: str, device: str = "cpu") -> ClipEmbedder:
    import open_clip

    if arch not in open_clip.list_models():
        raise EmbedderError(f"clip:{arch}: expected an open_clip architecture (e.g. ViT-B-32, ViT-L-14), got {arch!r}")
    path = Path(pretrained)
    weights = path if path.is_file() else cached_clip_weights(arch, pretrained)
    try:
        model = open_clip.create_model(arch, pretrained=str(weights), device=device)
    except Exception as e:  # torch, safetensors and open_clip each raise their own types for a bad file
        raise EmbedderError(f"clip:{arch}:{pretrained}: expected a loadable {arch} checkpoint, got {e}") from e
    return ClipEmbedder(model, f"clip:{arch}:{pretrained}", device)


# spec name -> (loader(arg, device), one-line help)
_REGISTRY: dict[str, tuple[Callable[[str, str], Embedder], str]] = {
    "pixel": (lambda arg, device: PixelEmbedder(int(arg) if arg else 16),
              "16x16 RGB thumbnail descriptor (near pixel copies only; the demo default)"),
    "clip": (lambda arg, device: load_clip(*_clip_args(arg), device=device),
             "clip:<arch>:<pretrained tag in the local cache | checkpoint file> via open_clip"),
    "sscd": (lambda arg, device: load_torchscript(arg, device),
             "sscd:<TorchScript file>: a copy-detection descriptor such as SSCD (the choice for real audits)"),
}


def _clip_args(arg: str) -> tuple[str, str]:
    arch, sep, pretrained = arg.partition(":")
    if not arch or not sep or not pretrained:
        raise EmbedderError(f"expected clip:<arch>:<pretrained tag or checkpoint file>, got clip:{arg}")
    return arch, pretrained


def embedder_specs() -> list[str]:
    return [f"{name} ({help_text})" for name, (_, help_text) in sorted(_REGISTRY.items())]


def load_embedder(spec: str, device: str = "cpu") -> Embedder:
    """An embedder by spec; an unknown spec's error lists the valid ones."""
    if not isinstance(spec, str):
        raise EmbedderError(f"expected an embedder spec string, got {type(spec).__name__}")
    name, _, arg = spec.partition(":")
    if name not in _REGISTRY:
        raise EmbedderError(f"expected an embedder spec among {'; '.join(embedder_specs())}, got {spec!r}")
    if name == "pixel" and arg and not (arg.isdigit() and 2 <= int(arg) <= 256):
        raise EmbedderError(f"expected pixel or pixel:<size 2..256>, got {spec!r}")
    return _REGISTRY[name][0](arg, device)
