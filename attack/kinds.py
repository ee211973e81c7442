"""Score kind names, torch-free, so the command line checks a typo before loading anything.
attack.pipeline maps each name to its batched function (pipeline.SCORES)."""
from __future__ import annotations

import re

SCORE_NAMES = ("dcs", "ecs", "wen", "sharpness", "anisotropy")
# these also come with n generations each, as '<kind><n>': wen4 is Wen et al. with four seeds
MULTI_SEED = ("wen", "sharpness", "anisotropy")
_WITH_N = re.compile(r"(%s)([1-9][0-9]?)" % "|".join(MULTI_SEED))


def split_kind(kind: object) -> tuple[str, int | None] | None:
    """'wen4' -> ('wen', 4), 'dcs' -> ('dcs', None); None for a name no score has."""
    if not isinstance(kind, str):
        return None
    if kind in SCORE_NAMES:
        return kind, None
    m = _WITH_N.fullmatch(kind)
    return (m[1], int(m[2])) if m else None
