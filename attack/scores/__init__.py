"""The detectors: one module per score (a pure batched function and its frozen params), and this
registry, the only list of score kinds.

Torch-free: the command line checks a kind (and answers --help) before loading anything; a
score's module is imported when `score_spec` is first asked for it. A score registered here is
offered by `attack score --scores`, ranked by `generate --by`, fused by `fuse` and computed on Ray.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import replace
from typing import Any, Callable, NamedTuple

from attack.errors import ScoreInputError

# kind -> (module under attack.scores, its batched function, its params class, needs the denoiser)
_REGISTRY: dict[str, tuple[str, str, str, bool]] = {
    "dcs": ("dcs", "dcs", "DCSParams", True),
    "ecs": ("ecs", "ecs", "ECSParams", False),
    "wen": ("wen", "wen", "WenParams", True),
    "sharpness": ("sharpness", "sharpness", "SharpnessParams", True),
    "anisotropy": ("anisotropy", "anisotropy", "AnisotropyParams", True),
}
SCORE_NAMES = tuple(_REGISTRY)
# these also come with n generations each, as '<kind><n>': wen4 is Wen et al. with four seeds
MULTI_SEED = ("wen", "sharpness", "anisotropy")
_WITH_N = re.compile(r"(%s)([1-9][0-9]?)" % "|".join(MULTI_SEED))


class ScoreSpec(NamedTuple):
    """A score kind resolved: its batched function, default params and whether it needs the denoiser."""
    fn: Callable[..., Any]
    params: Any
    whitebox: bool


def split_kind(kind: object) -> tuple[str, int | None] | None:
    """'wen4' -> ('wen', 4), 'dcs' -> ('dcs', None); None for a name no score has."""
    if not isinstance(kind, str):
        return None
    if kind in SCORE_NAMES:
        return kind, None
    m = _WITH_N.fullmatch(kind)
    return (m[1], int(m[2])) if m else None


def score_spec(kind: str) -> ScoreSpec:
    """The function, default params (n seeds for '<kind><n>') and denoiser need of a score kind."""
    split = split_kind(kind)
    if split is None:
        raise ScoreInputError(f"expected a score kind among {', '.join(SCORE_NAMES)} (or {', '.join(MULTI_SEED)} "
                              f"with a number of generations, e.g. wen4), got {kind!r}")
    module, fn, params_cls, whitebox = _REGISTRY[split[0]]
    mod = importlib.import_module(f"attack.scores.{module}")
    params = getattr(mod, params_cls)()
    if split[1] is not None:
        params = replace(params, seeds=tuple(range(split[1])))
    return ScoreSpec(getattr(mod, fn), params, whitebox)
