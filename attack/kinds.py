"""Names and defaults the command line needs, torch-free, so it checks a typo (and answers --help)
before loading anything: score kinds (attack.stages.score maps each name to its batched function,
pipeline.SCORES), label presets (attack.stages.labels.PRESETS), the template masks' near-duplicate window
(attack.stages.masks.MaskParams) and the demo store's folder."""
from __future__ import annotations

import math
import re
from pathlib import Path

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


# label threshold presets; attack.stages.labels.PRESETS holds their values
PRESET_NAMES = ("onestep-code", "paper", "verbatim")
# near-duplicate RMSE window of template masks: the paper code's SSE 1e2..1e3 on 256x256x3
DUP_RMSE_MIN = math.sqrt(1e2 / (3 * 256 * 256))
DUP_RMSE_MAX = math.sqrt(1e3 / (3 * 256 * 256))
DEMO_STORE = Path("data/demo")
