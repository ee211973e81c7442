"""Recompute a caption's automatic label from its current masks, right after a mask edit.

attack.labels.relabel is the authority when it exists (it applies the attack's own comparison
conventions); until then a local fallback applies the design's rules to the stored pairs at the
training image's size: TV if the best masked RMSE <= delta, else MV if the best RMSE to the
caption's own image <= delta_v, else RV if the best RMSE to any neighbour <= delta, else N.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from store import Store

from . import imaging

DELTA = 0.12      # the paper's delta = delta_V
SHOWN = ("tv", "mv", "rv")   # masked RMSE, RMSE to the own image, RMSE to any neighbour


@dataclass(frozen=True)
class Relabel:
    label: str
    distances: dict
    source: str                      # 'attack.labels' or 'review fallback'


def relabel(store: Store, caption_id: int) -> Relabel:
    try:
        from attack.labels import relabel as attack_relabel  # helper A's implementation, when present
    except ImportError:
        return fallback_relabel(store, caption_id)
    r = attack_relabel(store, caption_id)   # also writes the new auto label (a 'relabel' run)
    distances = dict(getattr(r, "distances", {}) or {})
    return Relabel(str(r.label), {k: distances.get(k) for k in SHOWN}, "attack.labels")


def fallback_relabel(store: Store, caption_id: int, delta: float = DELTA, delta_v: float = DELTA) -> Relabel:
    own = {t.id for t in store.training_images_for(caption_id)}
    images: dict = {}

    def arr(sha: str, size=None):
        key = (sha, size)
        if key not in images:
            im = store.load_image(sha)
            images[key] = imaging.to_float(imaging.match_size(im, size) if size else im)
        return images[key]

    best: dict[str, Optional[float]] = {"tv": None, "mv": None, "rv": None}

    def keep(name: str, d: Optional[float]) -> None:
        if d is not None and (best[name] is None or d < best[name]):
            best[name] = d

    masks: dict = {}
    for g in store.generations(caption_id):
        for n in store.neighbours(g.id):
            t = store.get_training_image(n.train_image_id)
            ref = arr(t.sha256)
            gen = arr(g.image_sha, (ref.shape[1], ref.shape[0]))
            d = imaging.rmse(gen, ref)
            keep("rv", d)
            if t.id in own:
                keep("mv", d)
            if t.id not in masks:
                m = store.current_mask(t.id)
                masks[t.id] = None if m is None else store.load_mask(m.image_sha)
            mask = masks[t.id]
            if mask is not None and mask.shape == ref.shape[:2]:
                keep("tv", imaging.rmse(gen, ref, mask))
    if best["tv"] is not None and best["tv"] <= delta:
        label = "TV"
    elif best["mv"] is not None and best["mv"] <= delta_v:
        label = "MV"
    elif best["rv"] is not None and best["rv"] <= delta:
        label = "RV"
    else:
        label = "N"
    return Relabel(label, best, "review fallback")
