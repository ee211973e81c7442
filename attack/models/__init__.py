"""Named registry of target models (after open_clip's `factory.py`): `load_model(spec)`.

Specs: `demo`, `sd:<folder | hub id in the local cache | file.safetensors>`, `sd-random`,
`images:<folder>`. Loaders take (text after the prefix, device, LoadOptions); older two-argument
loaders (arg, device) still register and load.
"""
from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from attack.models.base import ModelError, Samples, TextToImageModel


@dataclass(frozen=True)
class LoadOptions:
    """Options some loaders use: dtype (auto | float32 | float16 | bfloat16; auto = float16 on
    CUDA, float32 on CPU), config (for a single-file checkpoint: a local diffusers folder or a
    hub id in the local cache giving its component configs, tokenizer and scheduler) and variant
    (weights such as diffusion_pytorch_model.fp16.safetensors)."""
    dtype: str | None = None
    config: str | None = None
    variant: str | None = None


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


PATH_PREFIXES = ("sd:", "images:")


def canonical_spec(spec: str) -> str:
    """The spec a run records: a path argument of sd: / images: made absolute and resolved, so
    sd:DIR, sd:DIR/ and sd:./DIR are one model; hub ids and other specs unchanged. A
    `+mitigate:` suffix keeps its place, in its canonical form (cfg=3.0 -> cfg=3), after the
    canonical inner spec."""
    from attack.models.mitigate import SUFFIX, canonical_text

    if SUFFIX in spec:
        inner, _, text = spec.rpartition(SUFFIX)
        return canonical_spec(inner) + SUFFIX + canonical_text(text)
    for prefix in PATH_PREFIXES:
        if spec.startswith(prefix):
            arg = spec[len(prefix):]
            p = Path(arg).expanduser()
            if arg and p.exists():
                return prefix + str(p.resolve())
    return spec


def _suggestion(spec: str) -> str:
    """'; did you mean sd:X?' for a bare path that holds a model the registry can load."""
    p = Path(spec).expanduser()
    if not spec or not p.exists():
        return ""
    if p.is_dir() and (p / "unet").is_dir():
        return f"; did you mean sd:{spec}?"
    if p.is_dir() and any((p / n).is_file() for n in ("mapping.csv", "mapping.jsonl")):
        return f"; did you mean images:{spec}?"
    if p.is_file() and p.suffix in (".safetensors", ".ckpt"):
        return f"; did you mean sd:{spec} (with --config <diffusers folder>)?"
    return ""


def load_model(spec: str, device: str = "cpu", *, dtype: str | None = None, config: str | None = None,
               variant: str | None = None) -> TextToImageModel:
    """Load a model by spec, e.g. 'demo'; the error for an unknown spec lists the valid ones.
    `INNER+mitigate:TEXT` (e.g. demo+mitigate:cfg=3) loads INNER with the same device and options
    and wraps it in attack.models.mitigate.MitigatedModel; a bad suffix fails before any weights load.
    The model's ``spec`` is the canonical one (see canonical_spec)."""
    from attack.models.mitigate import FORMS, SUFFIX, MitigatedModel, parse_mitigation

    _check_device(device)
    if SUFFIX in spec:
        inner_spec, _, text = spec.rpartition(SUFFIX)
        mitigation = parse_mitigation(text, spec)
        inner = load_model(inner_spec, device, dtype=dtype, config=config, variant=variant)
        model = MitigatedModel(inner, mitigation)
        model.spec = canonical_spec(spec)
        return model
    name, _, arg = spec.partition(":")
    key = name if name in _REGISTRY and not arg else f"{name}:"
    if key not in _REGISTRY:
        raise ModelError(f"expected a model spec among {', '.join(model_specs())}, optionally followed by "
                         f"{SUFFIX}<mitigation> with <mitigation> one of {FORMS}; got {spec!r}{_suggestion(spec)}")
    fn = _REGISTRY[key][0]
    if len(inspect.signature(fn).parameters) == 2:  # a loader without options
        if dtype not in (None, "auto", "float32") or config or variant:
            raise ModelError(f"expected no --dtype/--config/--variant for {spec!r} (float32 only), got dtype={dtype}, "
                             f"config={config}, variant={variant}")
        model = fn(arg, device)
    else:
        model = fn(arg, device, LoadOptions(dtype=dtype, config=config, variant=variant))
    model.spec = canonical_spec(spec)
    return model


@register("demo", "the embedded tiny text-to-image model")
def _demo(arg: str, device: str) -> TextToImageModel:
    from attack.models.demo import DemoModel
    return DemoModel.load(device=device)


@register("sd:", "Stable Diffusion 1.x/2.x: a diffusers folder, a hub id in the local cache, or a "
                 ".safetensors/.ckpt file (with --config <diffusers folder>)")
def _sd(arg: str, device: str, opts: LoadOptions) -> TextToImageModel:
    from attack.models.sd import load_sd
    return load_sd(arg, device, opts.dtype, opts.config, opts.variant)


@register("sd-random", "a Stable-Diffusion-1.5-sized model with random weights, for speed measurements")
def _sd_random(arg: str, device: str, opts: LoadOptions) -> TextToImageModel:
    from attack.models.sd_random import build_sd_random
    return build_sd_random(device, opts.dtype)


@register("images:", "images generated elsewhere (closed models): a folder with mapping.csv/.jsonl of "
                     "caption, seed, steps, path; blackbox scores only")
def _images(arg: str, device: str, opts: LoadOptions) -> TextToImageModel:
    from attack.models.images import ImagesModel
    return ImagesModel.load(arg)


__all__ = ["LoadOptions", "ModelError", "Samples", "TextToImageModel", "canonical_spec", "load_model", "model_specs",
           "register"]
