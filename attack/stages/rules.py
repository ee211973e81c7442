"""The label rule: its order (TV, MV, RV), thresholds and their presets, and the decision on distances."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from attack.errors import AttackError
from attack.images.structure import StructureParams
from attack.kinds import PRESET_NAMES
from attack.stages.align import AlignParams

ORDER = ("TV", "MV", "RV")  # the public code's order: the first label whose distance passes wins


# part of every label's evidence: bump it when the labelling rules change, so stores relabel
LABELLER_VERSION = 6   # 6: the structural check (attack.images.structure) and the alignment's inlier spread


class LabelInputError(AttackError):
    """Thresholds, presets or captions the labeller cannot use."""


@dataclass(frozen=True)
class Thresholds:
    """delta per label (RMSE at 256x256 in [0,1]); the paper uses 0.12 for all."""
    tv: float = 0.12
    mv: float = 0.12
    rv: float = 0.12

    def __post_init__(self) -> None:
        for k, v in asdict(self).items():
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise LabelInputError(f"Thresholds.{k}: expected an RMSE in (0, 1], got {v!r}")


# The public code thresholds SSE on 256x256x3: 2.5e3 (TV, MV) and 3e3 (RV) -> RMSE 0.113 / 0.124.
# "verbatim" (the default) keeps the paper's deltas and asks more of a copy: a structural check
# beside every distance, and aligned evidence for crops, rescales and mirrors; "paper" and
# "onestep-code" are the paper's rule alone, so they give the paper's labels.
PRESETS: dict[str, Thresholds] = {
    "verbatim": Thresholds(),
    "paper": Thresholds(),
    "onestep-code": Thresholds(tv=0.113, mv=0.113, rv=0.124),
}


BEYOND_PAPER = ("verbatim",)        # presets that add the structural check and aligned evidence


assert tuple(sorted(PRESETS)) == PRESET_NAMES, "attack.kinds names every preset"


def preset(name: str) -> Thresholds:
    if name not in PRESETS:
        raise LabelInputError(f"expected a threshold preset among {', '.join(PRESETS)}, got {name!r}")
    return PRESETS[name]


def resolve(thresholds: Thresholds | str, structure: StructureParams | None,
            align_params: AlignParams | None) -> tuple[Thresholds, StructureParams | None, AlignParams | None]:
    """A preset name or thresholds, with the checks it implies: a paper preset by name drops the
    structural check and the alignment (the paper's labels); thresholds given as values keep the
    checks as passed."""
    if isinstance(thresholds, str):
        th = preset(thresholds)
        if thresholds not in BEYOND_PAPER:
            return th, None, None
        return th, structure, align_params
    return thresholds, structure, align_params


def decide(distances: Mapping[str, Any], thresholds: Thresholds = Thresholds()) -> str:
    """TV, then MV, then RV: the first whose distance is <= its delta; else N."""
    for label in ORDER:
        d = distances.get(label.lower())
        if d is not None and d <= getattr(thresholds, label.lower()):
            return label
    return "N"
