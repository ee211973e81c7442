"""Named registry of target models (after open_clip's `factory.py`): `load_model(spec)`."""
from __future__ import annotations

from collections.abc import Callable

import torch

from .base import ModelError, Samples, TextToImageModel

# spec prefix -> (loader taking the text after the prefix, one-line help)
_REGISTRY: dict[str, tuple[Callable[[str, str], TextToImageModel], str]] = {}


def register(prefix: str, help_text: str):
    def deco(fn: Callable[[str, str], TextToImageModel]):
        _REGISTRY[prefix] = (fn, help_text)
        return fn
    return deco


def model_specs() -> list[str]:
    return [f"{p} ({h})" for p, (_, h) in sorted(_REGISTRY.items())]


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"expected a CUDA device for --device {device}, got none on this machine (use --device cpu)")


def load_model(spec: str, device: str = "cpu") -> TextToImageModel:
    """Load a model by spec, e.g. 'demo'; the error for an unknown spec lists the valid ones."""
    _check_device(device)
    name, _, arg = spec.partition(":")
    key = name if name in _REGISTRY and not arg else f"{name}:"
    if key not in _REGISTRY:
        raise ModelError(f"expected a model spec among {', '.join(model_specs())}; got {spec!r}")
    return _REGISTRY[key][0](arg, device)


@register("demo", "the embedded tiny text-to-image model")
def _demo(arg: str, device: str) -> TextToImageModel:
    from .demo import DemoModel
    return DemoModel.load(device=device)


__all__ = ["ModelError", "Samples", "TextToImageModel", "load_model", "model_specs", "register"]
