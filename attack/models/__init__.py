"""Named registry of target models (after open_clip's `factory.py`): `load_model(spec)`.

Specs: `demo`, `sd:<folder | hub id in the local cache | file.safetensors>`, `sd-random`,
`images:<folder>`. Loaders take (text after the prefix, device, LoadOptions); older two-argument
loaders (arg, device) still register and load.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .base import ModelError, Samples, TextToImageModel


@dataclass(frozen=True)
class LoadOptions:
    """Options some loaders use: dtype (auto | float32 | float16 | bfloat16; auto = float16 on
    CUDA, float32 on CPU) and config (for a single-file checkpoint: a local diffusers folder or a
    hub id in the local cache giving its component configs, tokenizer and scheduler)."""
    dtype: str | None = None
    config: str | None = None


Loader = Callable[..., TextToImageModel]
# spec prefix -> (loader taking the text after the prefix, one-line help)
_REGISTRY: dict[str, tuple[Loader, str]] = {}


def register(prefix: str, help_text: str):
    def deco(fn: Loader):
        _REGISTRY[prefix] = (fn, help_text)
        return fn
    return deco


def model_specs() -> list[str]:
    return [f"{p} ({h})" for p, (_, h) in sorted(_REGISTRY.items())]


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"expected a CUDA device for --device {device}, got none on this machine (use --device cpu)")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelError(f"expected --device cpu or cuda[:N], got {device!r}")


def load_model(spec: str, device: str = "cpu", *, dtype: str | None = None, config: str | None = None) -> TextToImageModel:
    """Load a model by spec, e.g. 'demo'; the error for an unknown spec lists the valid ones."""
    _check_device(device)
    name, _, arg = spec.partition(":")
    key = name if name in _REGISTRY and not arg else f"{name}:"
    if key not in _REGISTRY:
        raise ModelError(f"expected a model spec among {', '.join(model_specs())}; got {spec!r}")
    fn = _REGISTRY[key][0]
    if len(inspect.signature(fn).parameters) == 2:  # a loader without options
        if dtype not in (None, "auto", "float32") or config:
            raise ModelError(f"expected no --dtype/--config for {spec!r} (float32 only), got dtype={dtype}, config={config}")
        return fn(arg, device)
    return fn(arg, device, LoadOptions(dtype=dtype, config=config))


@register("demo", "the embedded tiny text-to-image model")
def _demo(arg: str, device: str) -> TextToImageModel:
    from .demo import DemoModel
    return DemoModel.load(device=device)


@register("sd:", "Stable Diffusion 1.x/2.x: a diffusers folder, a hub id in the local cache, or a "
                 ".safetensors/.ckpt file (with --config <diffusers folder>)")
def _sd(arg: str, device: str, opts: LoadOptions) -> TextToImageModel:
    from .sd import load_sd
    return load_sd(arg, device, opts.dtype, opts.config)


@register("sd-random", "a Stable-Diffusion-1.5-sized model with random weights, for speed measurements")
def _sd_random(arg: str, device: str, opts: LoadOptions) -> TextToImageModel:
    from .sd_random import build_sd_random
    return build_sd_random(device, opts.dtype)


@register("images:", "images generated elsewhere (closed models): a folder with mapping.csv/.jsonl of "
                     "caption, seed, steps, path; blackbox scores only")
def _images(arg: str, device: str, opts: LoadOptions) -> TextToImageModel:
    from .images import ImagesModel
    return ImagesModel.load(arg)


__all__ = ["LoadOptions", "ModelError", "Samples", "TextToImageModel", "load_model", "model_specs", "register"]
