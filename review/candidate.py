"""The evidence for one candidate as a view model: plain data read from the store (and the
pictures derived from it), no HTML. review/templates.py renders it; views.candidate_view
puts the two together with the mask editor."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from store import AutoLabel, Caption, CaptionReviews, Generation, LabelEntry, Mask, Neighbour, Store, TrainingImage
from store.reviews import caption_reviews

from . import imaging, queries
from .explain import explain

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
    rmse_own: Optional[float]          # the labeller's stored distance to the caption's closest own image
    in_match: bool                     # the generation the strip's match compares


@dataclass(frozen=True)
class OwnItem:
    train: TrainingImage
    picture: Picture


@dataclass(frozen=True)
class NeighbourItem:
    """A retrieved training image, by its best (generation, neighbour) row."""
    number: int                        # 1.. in the order shown (unique)
    neighbour: Neighbour               # .rank: its rank among the neighbours of that generation
    train: TrainingImage
    picture: Picture
    own: bool                          # it is also one of the caption's own training images
    seed: int                          # the generation that row compares


@dataclass(frozen=True)
class Match:
    """The pair the automatic label rests on (else the closest stored pair): the generation,
    the training image, the stored distance the label used, and the pictures that show it."""
    kind: str                          # 'TV', 'MV', 'RV', 'aligned MV' / 'aligned RV', or 'closest'
    generation: Generation
    generation_picture: Picture
    train: TrainingImage
    train_picture: Picture
    distance: Optional[float]          # stored (labeller or retrieval); never recomputed here
    distance_name: str                 # 'masked RMSE', 'RMSE', 'aligned RMSE'
    heatmap: np.ndarray                # uint8 RGB |generation - training| at the training image's size
    mask: Optional[Mask]               # the training image's current mask (a TV match rests on it)
    overlay: Optional[np.ndarray]      # uint8 RGB of the mask over the training image
    kept: Optional[float]              # fraction of pixels the mask keeps
    own: bool                          # the training image is one of the caption's own


@dataclass(frozen=True)
class OtherPair:
    """A distance of the automatic label that is not the match's: its pair, small."""
    kind: str
    distance: Optional[float]
    generation: Generation
    generation_picture: Picture
    train: TrainingImage
    train_picture: Picture


@dataclass(frozen=True)
class AlignedItem:
    """The automatic label's crop / rescale / mirror check (attack.stages.align): the generation warped
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
    match: Optional[Match]
    others: tuple[OtherPair, ...]      # the label's other distances, with their pairs
    aligned: Optional[AlignedItem]     # the latest automatic label's alignment, when it found one
    auto: Optional[AutoLabel]          # the latest automatic label
    explanation: tuple[str, ...]       # why the automatic label is what it is, in sentences
    history: tuple[LabelEntry, ...]    # oldest first (blind: the viewer's own entries only)
    editor: Optional[MaskSubject]
    mask_choices: tuple[tuple[str, int], ...]   # (label, training image id) the editor can switch to
    reviews: Optional[CaptionReviews] = None   # each reviewer's label and the adjudication (None: unlabelled)
    reviews_needed: int = 1            # blind reviews per candidate (1: the newest label counts)
    blind: bool = False                # others' labels are hidden from the viewer until they label
    latest_entry: int = 0              # the newest label entry's id, hidden or not (0: none)
    votes_in: int = 0                  # reviewers who labelled it (shown even when blind)


class _Loader:
    """Per-view caches: each image file decoded, each training image and mask read once."""

    def __init__(self, store: Store):
        self.store = store
        self._images: dict[str, Image.Image] = {}
        self._train: dict[int, TrainingImage] = {}
        self._masks: dict[int, Optional[Mask]] = {}
        self._keeps: dict[int, Optional[np.ndarray]] = {}

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

    def keep(self, tid: int) -> Optional[np.ndarray]:
        """The pixels of the training image's current mask (decoded once), None without one."""
        if tid not in self._keeps:
            cur = self.mask(tid)
            self._keeps[tid] = self.store.load_mask(cur.image_sha) if cur is not None else None
        return self._keeps[tid]


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


def _own_distances(auto: Optional[AutoLabel]) -> dict[int, float]:
    """Each generation's smallest stored distance to an own image (the labeller's mv_pairs)."""
    out: dict[int, float] = {}
    for gid, _tid, d in (auto.distances.get("mv_pairs") or []) if auto is not None else []:
        out[gid] = min(d, out.get(gid, d))
    return out


def _heatmap(load: _Loader, g: Generation, t: TrainingImage) -> np.ndarray:
    ref = load.image(t.sha256)
    return imaging.abs_diff_heatmap(imaging.to_float(imaging.match_size(load.image(g.image_sha), ref.size)),
                                    imaging.to_float(ref))


def labelled_pair(auto: Optional[AutoLabel], by_id: dict[int, Generation]) -> Optional[tuple[str, int, int]]:
    """(kind, generation id, training image id) of the pair the automatic label rests on; for an N,
    its closest own or retrieved pair."""
    if auto is None:
        return None
    d = auto.distances
    kinds = [auto.label] if auto.label in ("TV", "MV", "RV") and d.get("evidence_kind") != "aligned" else []
    if not kinds:
        kinds = sorted((k for k in ("MV", "RV") if d.get(k.lower()) is not None), key=lambda k: d[k.lower()])
    for k in kinds:
        gid, tid = d.get(f"{k.lower()}_generation_id"), d.get(f"{k.lower()}_train_image_id")
        if gid in by_id and tid is not None:
            return k, gid, tid
    return None


def _match(load: _Loader, auto: Optional[AutoLabel], gens: list[Generation], rows: list[dict],
           own: list[TrainingImage], aligned: Optional["AlignedItem"]) -> Optional[Match]:
    by_id = {g.id: g for g in gens}
    own_ids = {t.id for t in own}
    if aligned is not None and aligned.evidence.get("passed") and auto is not None and auto.label != "N":
        g, t = aligned.generation, aligned.train
        return Match(f"aligned {aligned.evidence.get('label')}", g, load.picture(g.image_sha), t,
                     load.picture(t.sha256), aligned.evidence.get("aligned_rmse"), "aligned RMSE",
                     aligned.heatmap, None, None, None, t.id in own_ids)
    pair = labelled_pair(auto, by_id)
    if pair is not None:
        kind, gid, tid = pair
        distance, name = auto.distances.get(kind.lower()), "masked RMSE" if kind == "TV" else "RMSE"
    elif rows:     # no automatic label yet: the closest stored neighbour row
        r = min(rows, key=lambda r: (r["n"].rmse is None, r["n"].rmse or 0.0, r["n"].rank))
        kind, gid, tid, distance, name = "closest", r["gen"].id, r["n"].train_image_id, r["n"].rmse, "RMSE"
    elif own and gens:
        kind, gid, tid, distance, name = "closest", gens[0].id, own[0].id, None, "RMSE"
    else:
        return None
    g, t = by_id[gid], load.train(tid)
    train = imaging.to_float(load.image(t.sha256))
    cur, keep = (load.mask(t.id), load.keep(t.id)) if kind == "TV" else (None, None)
    if keep is not None and keep.shape != train.shape[:2]:
        cur = keep = None
    return Match(kind, g, load.picture(g.image_sha), t, load.picture(t.sha256), distance, name, _heatmap(load, g, t),
                 cur, None if keep is None else imaging.mask_overlay(train, keep),
                 None if keep is None else float(keep.mean()), t.id in own_ids)


def _others(load: _Loader, auto: Optional[AutoLabel], gens: list[Generation], match: Optional[Match]) -> list:
    """The label's TV / MV / RV pairs that are not the match's, smallest distance first."""
    if auto is None:
        return []
    by_id, d, out = {g.id: g for g in gens}, auto.distances, []
    for k in ("TV", "MV", "RV"):
        gid, tid = d.get(f"{k.lower()}_generation_id"), d.get(f"{k.lower()}_train_image_id")
        if gid not in by_id or tid is None or (match is not None and match.kind == k):
            continue
        g, t = by_id[gid], load.train(tid)
        out.append(OtherPair(k, d.get(k.lower()), g, load.picture(g.image_sha), t, load.picture(t.sha256)))
    return sorted(out, key=lambda o: (o.distance is None, o.distance or 0.0))


def _aligned(load: _Loader, auto: Optional[AutoLabel], gens: list[Generation]) -> Optional[AlignedItem]:
    """The aligned pair of the automatic label's evidence, warped at the training image's size."""
    from attack.stages.align import warp_onto

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
    """Every training image the evidence shows can be masked: the one the label rests on, the
    caption's own, then the neighbours."""
    choices: dict[int, str] = {}
    own_ids = {t.id for t in own}
    if editor is not None:
        tid = editor.train_image_id
        choices[tid] = f"training image {tid} ({'own, ' if tid in own_ids else ''}the match)"
    for t in own:
        choices.setdefault(t.id, f"training image {t.id} (own)")
    for i, r in enumerate(top, 1):
        tid = r["n"].train_image_id
        choices.setdefault(tid, f"training image {tid} (neighbour #{i})")
    return tuple((label, tid) for tid, label in choices.items())


def _editor(load: _Loader, match: Optional[Match]) -> Optional[MaskSubject]:
    """The editor opens on the training image the label rests on (the match's)."""
    if match is None:
        return None
    t = match.train
    return MaskSubject(t.id, load.image(t.sha256), load.mask(t.id), load.keep(t.id))


def _blind(reviews: Optional[CaptionReviews], k: int, viewer: str) -> bool:
    """With k > 1 blind reviews, a pending candidate's labels are hidden from whoever has not voted
    (a conflict is open to all: its adjudicator must see both sides)."""
    return k > 1 and (reviews is None or (reviews.state == "pending" and viewer not in reviews.votes))


def candidate_data(store: Store, caption_id: int, viewer: str = "") -> CandidateData:
    """Everything a reviewer needs to decide one candidate, read once; ``viewer`` decides what a
    blind review hides."""
    cap = store.get_caption(caption_id)
    load = _Loader(store)
    scores = store.scores_for(caption_id)
    ranks = queries.ranks(store, scores)
    gens = store.generations(caption_id)
    own = store.training_images_for(caption_id)
    rows = _rows(store, gens)
    top = _top_neighbours(rows)
    history = store.label_history(caption_id)
    k = store.reviews_per_candidate()
    reviews = caption_reviews(caption_id, history, k) if history else None
    blind = _blind(reviews, k, viewer)
    shown = [e for e in history if e.reviewer == viewer] if blind else history
    autos = store.auto_labels(caption_id)
    auto = autos[-1] if autos else None
    neighbours = [NeighbourItem(i, r["n"], t, load.picture(t.sha256), t.caption_id == caption_id, r["gen"].seed)
                  for i, r in enumerate(top, 1) for t in (load.train(r["n"].train_image_id),)]
    aligned = _aligned(load, auto, gens)
    match = _match(load, auto, gens, rows, own, aligned)
    own_d = _own_distances(auto)
    editor = _editor(load, match)
    return CandidateData(
        caption=cap, label=None if blind or reviews is None else reviews.label,
        scores=tuple(ScoreLine(k, v, *ranks[k]) for k, v in sorted(scores.items())),
        generations=tuple(GenerationItem(g, load.picture(g.image_sha), own_d.get(g.id),
                                         match is not None and match.generation.id == g.id) for g in gens),
        own=tuple(OwnItem(t, load.picture(t.sha256)) for t in own[:4]),
        neighbours=tuple(neighbours), match=match, others=tuple(_others(load, auto, gens, match)),
        aligned=aligned, auto=auto, explanation=explain(auto, {g.id: g.seed for g in gens}),
        history=tuple(shown), editor=editor, mask_choices=_mask_choices(own, top, editor),
        reviews=None if blind else reviews, reviews_needed=k, blind=blind,
        latest_entry=history[-1].id if history else 0, votes_in=len(reviews.votes) if reviews else 0)
