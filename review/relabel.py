"""Recompute a caption's automatic label from its current masks, right after a mask edit:
attack.stages.labels.relabel does it (and writes it as a new auto label); this keeps what the view shows."""
from __future__ import annotations

from dataclasses import dataclass

from store import Store

SHOWN = ("tv", "mv", "rv")   # masked RMSE, RMSE to the own image, RMSE to any neighbour


@dataclass(frozen=True)
class Relabel:
    label: str
    distances: dict


def relabel(store: Store, caption_id: int) -> Relabel:
    from attack.stages.labels import relabel as attack_relabel  # imported when a mask is saved (alignment, scikit-image)

    r = attack_relabel(store, caption_id)   # writes the new auto label (a 'relabel' run)
    return Relabel(r.label, {k: r.distances.get(k) for k in SHOWN})
