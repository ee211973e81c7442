"""The evidence for one candidate as a view model: plain data read from the store (and the
pictures derived from it), no HTML. review/templates.py renders it; views.candidate_view
puts the two together with the mask editor."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from store import AutoLabel, Caption, Generation, LabelEntry, Mask, Neighbour, Store, TrainingImage

from . import imaging, queries

TOP_NEIGHBOURS = 6


@dataclass(frozen=True)
class Picture:
    """A store image: its file (served by the app's file route) and pixel size."""
    path: Path
    size: tuple[int, int]


@dataclass(frozen=True)
class ScoreLine:
    kind: str
    value: float
    rank: int
    total: int


@dataclass(frozen=True)
class GenerationItem:
    generation: Generation
    picture: Picture
    rmse_own: Optional[float]          # RMSE to the caption's first own training image


@dataclass(frozen=True)
class OwnItem:
    train: TrainingImage
    picture: Picture


@dataclass(frozen=True)
class NeighbourItem:
    """A retrieved training image, by its best (generation, neighbour) row."""
    neighbour: Neighbour
    train: TrainingImage
    picture: Picture
    own: bool                          # it is also one of the caption's own training images
    seed: int                          # the generation that row compares


@dataclass(frozen=True)
class PairItem:
    """A generation beside a training image: difference heatmap, mask overlay, both RMSEs."""
    title: str                         # 'Closest pair' or 'Masked (template) pair'
    generation: Generation
    generation_picture: Picture
    train: TrainingImage
    train_picture: Picture
    heatmap: np.ndarray                # uint8 RGB, the training image's size
    rmse: Optional[float]
    mask: Optional[Mask]               # the current mask, when it fits the training image
    keep: Optional[np.ndarray]         # its pixels (bool, the training image's size)
    overlay: Optional[np.ndarray]      # uint8 RGB of the mask over the training image
    kept: Optional[float]              # fraction of pixels the mask keeps
    masked_rmse: Optional[float]


@dataclass(frozen=True)
class AlignedItem:
    """The automatic label's crop / rescale / mirror check (attack.align): the generation warped
    onto the training image by the stored transform, with what the check measured."""
    generation: Generation
    generation_picture: Picture
    train: TrainingImage
    train_picture: Picture
    warped: np.ndarray                 # uint8 RGB at the training image's size, grey outside the overlap
    heatmap: np.ndarray                # |warped - training| on the overlap, black outside
    evidence: dict                     # aligned_rmse, overlap, mirrored, scale, inliers, label, passed
    threshold: Optional[float]         # the delta of evidence['label']


@dataclass(frozen=True)
class MaskSubject:
    """The training image the mask editor opens on, with what the view already loaded of it."""
    train_image_id: int
    image: Image.Image
    mask: Optional[Mask]
    keep: Optional[np.ndarray]


@dataclass(frozen=True)
class CandidateData:
    caption: Caption
    label: Optional[str]               # current human label
    scores: tuple[ScoreLine, ...]
    generations: tuple[GenerationItem, ...]
    own: tuple[OwnItem, ...]           # at most 4
    neighbours: tuple[NeighbourItem, ...]
    pairs: tuple[PairItem, ...]
    aligned: Optional[AlignedItem]     # the latest automatic label's alignment, when it found one
    auto: Optional[AutoLabel]          # the latest automatic label
    history: tuple[LabelEntry, ...]    # oldest first
    editor: Optional[MaskSubject]
    mask_choices: tuple[tuple[str, int], ...]   # (label, training image id) the editor can switch to


class _Loader:
    """Per-view caches: each image file decoded, each training image and mask read once."""

    def __init__(self, store: Store):
        self.store = store
        self._images: dict[str, Image.Image] = {}
        self._train: dict[int, TrainingImage] = {}
        self._masks: dict[int, Optional[Mask]] = {}

    def image(self, sha: str) -> Image.Image:
        if sha not in self._images:
            self._images[sha] = self.store.load_image(sha)
        return self._images[sha]

    def picture(self, sha: str) -> Picture:
        return Picture(self.store.image_path(sha), self.image(sha).size)

    def train(self, tid: int) -> TrainingImage:
        if tid not in self._train:
            self._train[tid] = self.store.get_training_image(tid)
        return self._train[tid]

    def mask(self, tid: int) -> Optional[Mask]:
        if tid not in self._masks:
            self._masks[tid] = self.store.current_mask(tid)
        return self._masks[tid]


def _rows(store: Store, gens: list[Generation]) -> list[dict]:
    """Every (generation, neighbour) row with its sort key: masked distance first, else plain."""
    rows = []
    for g in gens:
        for n in store.neighbours(g.id):
            d = n.masked_rmse if n.masked_rmse is not None else n.rmse
            rows.append({"gen": g, "n": n, "key": (d is None, d if d is not None else 0.0, n.rank)})
    return rows


def _top_neighbours(rows: list[dict]) -> list[dict]:
    """The top neighbours by training image (the best row of each)."""
    best: dict[int, dict] = {}
    for r in sorted(rows, key=lambda r: r["key"]):
        best.setdefault(r["n"].train_image_id, r)
    return sorted(best.values(), key=lambda r: (r["n"].rank, r["key"]))[:TOP_NEIGHBOURS]


def _generations(load: _Loader, gens: list[Generation], own: list[TrainingImage]) -> list[GenerationItem]:
    out = []
    for g in gens:
        im = load.image(g.image_sha)
        d = None
        if own:
            ref = load.image(own[0].sha256)
            d = imaging.rmse(imaging.to_float(imaging.match_size(im, ref.size)), imaging.to_float(ref))
        out.append(GenerationItem(g, load.picture(g.image_sha), d))
    return out


def _pair(load: _Loader, title: str, g: Generation, t: TrainingImage) -> PairItem:
    ref = load.image(t.sha256)
    a = imaging.to_float(imaging.match_size(load.image(g.image_sha), ref.size))
    b = imaging.to_float(ref)
    cur = load.mask(t.id)
    keep = load.store.load_mask(cur.image_sha) if cur is not None else None
    if keep is not None and keep.shape != a.shape[:2]:
        keep = None
    return PairItem(title, g, load.picture(g.image_sha), t, load.picture(t.sha256), imaging.abs_diff_heatmap(a, b),
                    imaging.rmse(a, b), cur if keep is not None else None, keep,
                    None if keep is None else imaging.mask_overlay(b, keep),
                    None if keep is None else float(keep.mean()),
                    None if keep is None else imaging.rmse(a, b, keep))


def _pairs(load: _Loader, rows: list[dict], gens: list[Generation],
           own: list[TrainingImage]) -> list[tuple[str, Generation, TrainingImage]]:
    """The closest pair (plain RMSE) and, when a retrieved image has a mask and it is another
    pair, the best masked pair."""
    closest = masked = None
    if rows:
        b = min(rows, key=lambda r: (r["n"].rmse is None, r["n"].rmse or 0.0, r["n"].rank))
        closest = (b["gen"], load.train(b["n"].train_image_id))
        with_mask = [r for r in rows if load.mask(r["n"].train_image_id) is not None]
        if with_mask:
            m = min(with_mask, key=lambda r: (r["n"].masked_rmse is None, r["n"].masked_rmse or 0.0, r["n"].rank))
            masked = (m["gen"], load.train(m["n"].train_image_id))
    elif own and gens:
        closest = (gens[0], own[0])
    out = [("Closest pair",) + closest] if closest is not None else []
    if masked is not None and masked != closest:
        out.append(("Masked (template) pair",) + masked)
    return out


def _aligned(load: _Loader, auto: Optional[AutoLabel], gens: list[Generation]) -> Optional[AlignedItem]:
    """The aligned pair of the automatic label's evidence, warped at the training image's size."""
    from attack.align import warp_onto

    ev = (auto.distances.get("aligned") if auto is not None else None) or None
    by_id = {g.id: g for g in gens}
    if not isinstance(ev, dict) or ev.get("generation_id") not in by_id or len(ev.get("transform") or ()) != 9:
        return None
    g, t = by_id[ev["generation_id"]], load.train(ev["train_image_id"])
    ref = load.image(t.sha256)
    w, h = ref.size
    scale = np.diag([w / 256, h / 256, 1.0])          # the transform is on the 256-px compare grid
    m = scale @ np.asarray(ev["transform"], float).reshape(3, 3) @ np.linalg.inv(scale)
    gen = imaging.to_float(imaging.match_size(load.image(g.image_sha), ref.size))
    warped, inside = warp_onto(gen, m, (h, w))
    train = imaging.to_float(ref)
    shown = np.where(inside[..., None], warped, 0.5)
    heat = imaging.abs_diff_heatmap(np.where(inside[..., None], warped, train), train)
    thresholds = auto.distances.get("thresholds") or {}
    return AlignedItem(g, load.picture(g.image_sha), t, load.picture(t.sha256),
                       (shown * 255).round().astype(np.uint8), heat, ev,
                       thresholds.get(str(ev.get("label", "")).lower()))


def _mask_choices(own: list[TrainingImage], top: list[dict], editor: Optional[MaskSubject]) -> tuple:
    """Every training image the evidence shows can be masked: the caption's own, then the neighbours."""
    choices: dict[int, str] = {}
    for t in own:
        choices[t.id] = f"training image {t.id} (own)"
    for r in top:
        tid = r["n"].train_image_id
        choices.setdefault(tid, f"training image {tid} (neighbour #{r['n'].rank})")
    if editor is not None:
        choices.setdefault(editor.train_image_id, f"training image {editor.train_image_id}")
    return tuple((label, tid) for tid, label in choices.items())


def candidate_data(store: Store, caption_id: int) -> CandidateData:
    """Everything a reviewer needs to decide one candidate, read once."""
    cap = store.get_caption(caption_id)
    load = _Loader(store)
    scores = store.scores_for(caption_id)
    ranks = queries.ranks(store, scores)
    gens = store.generations(caption_id)
    own = store.training_images_for(caption_id)
    rows = _rows(store, gens)
    top = _top_neighbours(rows)
    history = store.label_history(caption_id)
    autos = store.auto_labels(caption_id)
    neighbours = [NeighbourItem(r["n"], t, load.picture(t.sha256), t.caption_id == caption_id, r["gen"].seed)
                  for r in top for t in (load.train(r["n"].train_image_id),)]
    pairs = [_pair(load, title, g, t) for title, g, t in _pairs(load, rows, gens, own)]
    # the editor shows the masked pair's image when there is one, else the closest pair's
    editor = None
    if pairs:
        p = pairs[-1]
        editor = MaskSubject(p.train.id, load.image(p.train.sha256), load.mask(p.train.id), p.keep)
    return CandidateData(
        caption=cap, label=history[-1].label if history else None,
        scores=tuple(ScoreLine(k, v, *ranks[k]) for k, v in sorted(scores.items())),
        generations=tuple(_generations(load, gens, own)),
        own=tuple(OwnItem(t, load.picture(t.sha256)) for t in own[:4]),
        neighbours=tuple(neighbours), pairs=tuple(pairs), aligned=_aligned(load, autos[-1] if autos else None, gens),
        auto=autos[-1] if autos else None,
        history=tuple(history), editor=editor, mask_choices=_mask_choices(own, top, editor))
