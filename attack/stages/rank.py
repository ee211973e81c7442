"""Ranking a selection of captions by a stored score (or a rank fusion of stored scores)."""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from attack.errors import ScoreInputError
from attack.selection import Selection
from store import Store


def top_k(scores: Sequence[float] | torch.Tensor, k: int) -> list[int]:
    """Indices of the k highest scores, highest first; ties keep list order, NaN ranks last."""
    vals = [float(s) for s in (scores.tolist() if isinstance(scores, torch.Tensor) else scores)]
    if k < 0:
        raise ScoreInputError(f"expected top_k >= 0, got {k}")
    order = sorted(range(len(vals)), key=lambda i: (math.isnan(vals[i]), -vals[i] if not math.isnan(vals[i]) else 0.0, i))
    return order[: k or len(order)]


def latest_scores(store: Store, kind: str, model_id: str) -> dict[int, float]:
    """caption id -> value of the newest `score` run of this kind and model (a fingerprint, or a
    label naming the weights that last ran under it; never a merge of two models' runs)."""
    return store.latest_scores(kind, model_id, "score")


@dataclass(frozen=True)
class Ranked:
    rank: int  # 0 = highest score among the selection
    caption_id: int
    text: str
    score: float | None  # None: not ranked by a score


def rank_captions(store: Store, captions: Selection, by: str | None, model_id: str, k: int,
                  label: str | None = None) -> list[Ranked]:
    """The top-k (0 = all) captions of the selection by their stored `by` score of one model
    (model_id: its fingerprint, or a label naming the weights that last ran under it; label: how
    messages name it); by=None keeps the selection's own order (a closed model's images for every
    caption it has)."""
    if by is None:
        items = list(zip(captions.ids, captions.texts))[: k or None]
        return [Ranked(r, cid, t, None) for r, (cid, t) in enumerate(items)]
    if "+" in by:   # a rank fusion of stored scores (attack.scores.fusion): computed now, no network call
        from attack.scores.fusion import fuse
        fuse(store, by, model_id, label)
        scores = store.latest_scores(by, store.model_fingerprint(model_id) or model_id, "fuse")
    else:
        scores = latest_scores(store, by, model_id)
    scored = [(cid, t, scores[cid]) for cid, t in zip(captions.ids, captions.texts) if cid in scores]
    if not scored:
        raise ScoreInputError(f"expected {by} scores of model {label or model_id!r} for the selected captions, got "
                              f"none (run `python -m attack score --scores {by}` first)")
    order = top_k([v for _, _, v in scored], k)
    return [Ranked(r, scored[i][0], scored[i][1], scored[i][2]) for r, i in enumerate(order)]
