"""The evidence a copy label rests on: the closest pairs and their distances, and the second
witnesses a pair under its delta needs under the `verbatim` preset: structural agreement
(attack.images.structure), alignment for crops, rescales and mirrors (attack.stages.align), and
an optional second embedder's opinion."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attack.images.compare import ComparePixels
from attack.images.flags import FlagParams, suspect_flags
from attack.images.metrics import compare_mask, pixel_masked_rmse, pixel_rmse, unit_float
from attack.images.structure import StructureParams, agreement, agrees, band, detail_patches, residual_shift
from attack.stages.align import AlignParams, align, features, warp_onto
from store import Store

if TYPE_CHECKING:      # attack.images.embed imports torch; the labeller does not, unless a second opinion is asked for
    from attack.images.embed import Embedder

from attack.stages.rules import ORDER, Thresholds


@dataclass(frozen=True)
class CaptionLabel:
    """An automatic label as written: the label, every distance (and what gave it), flags."""
    caption_id: int
    label: str
    distances: dict
    flags: tuple[str, ...]
    run_id: int
    auto_label_id: int


def _best(cands: list[tuple[float, dict]]) -> tuple[float | None, dict]:
    if not cands:
        return None, {}
    d, info = min(cands, key=lambda c: c[0])
    return round(float(d), 6), info


def caption_distances(store: Store, caption_id: int, images: ComparePixels | None = None,
                      refresh: bool = True) -> dict[str, Any]:
    """The TV / MV / RV distances of a caption from its stored generations, neighbours and the
    current mask of each retrieved image (a neighbour whose stored masked distance used an older
    mask version is recomputed and, with refresh, updated in the store). None where no pair
    exists (no own image, no masked neighbour)."""
    return pair_distances(caption_pairs(store, caption_id, images, refresh))


def caption_pairs(store: Store, caption_id: int, images: ComparePixels | None = None,
                  refresh: bool = True) -> dict[str, Any]:
    """Every TV / MV / RV pair of a caption as (distance, info) lists, and its generation count."""
    images = images or ComparePixels(store)
    gens = store.generations(caption_id)
    own = {t.sha256: t.id for t in store.training_images_for(caption_id)}
    tv, mv, rv = [], [], []
    masks: dict[int, Any] = {}
    for g in gens:
        gi = images.pixels(g.image_sha)
        for sha, tid in own.items():
            mv.append((pixel_rmse(gi, images.pixels(sha)), {"generation_id": g.id, "train_image_id": tid}))
        for n in store.neighbours(g.id):
            info = {"generation_id": g.id, "train_image_id": n.train_image_id, "rank": n.rank}
            if n.rmse is not None:
                rv.append((n.rmse, info))
            if n.train_image_id not in masks:
                masks[n.train_image_id] = store.current_mask(n.train_image_id)
            m = masks[n.train_image_id]
            if m is None:
                continue
            md = n.masked_rmse
            if n.mask_id != m.id or md is None:  # edited since retrieval: recompute under the current mask
                sha = store.get_training_image(n.train_image_id).sha256
                md = pixel_masked_rmse(gi, images.pixels(sha), compare_mask(store.load_mask(m.image_sha)))
                if refresh:
                    store.set_neighbour_mask(g.id, n.rank, md, m.id)
            tv.append((md, {**info, "mask_id": m.id, "mask_version": m.version,
                            "mask_siblings": list(m.meta.get("siblings", [])) if m.source == "auto" else None}))
    return {"generations": len(gens), "tv": tv, "mv": mv, "rv": rv}


def pair_distances(pairs: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"generations": pairs["generations"]}
    for key in ("tv", "mv", "rv"):
        d, info = _best(pairs[key])
        out[key] = d
        out.update({f"{key}_{k}": v for k, v in info.items()})
    # every own pair, so a view shows each generation's distance as the label measured it
    out["mv_pairs"] = [[i["generation_id"], i["train_image_id"], round(d, 6)] for d, i in pairs["mv"]]
    return out


class StructureCheck:
    """Structural agreement of a caption's pairs (attack.images.structure), band-passed images kept by
    sha (the most recent max_items)."""

    def __init__(self, store: Store, images: ComparePixels, params: StructureParams, max_items: int = 2048):
        self.store, self.images, self.params, self.max_items = store, images, params, max_items
        self._band: dict[str, np.ndarray] = {}

    def band(self, sha: str) -> np.ndarray:
        hit = self._band.get(sha)
        if hit is None:
            if len(self._band) >= self.max_items:
                self._band.pop(next(iter(self._band)))
            hit = self._band[sha] = band(self.images.pixels(sha), self.params)
        return hit

    def pair(self, gen_sha: str, train_sha: str, where: np.ndarray | None = None) -> float | None:
        return agreement(self.band(gen_sha), self.band(train_sha), where, self.params)


STRUCTURE_TRIES = 8     # pairs under a label's delta checked, closest first, before the next label


def structural_decide(store: Store, caption_id: int, pairs: Mapping[str, Any], distances: dict,
                      thresholds: Thresholds, check: StructureCheck) -> tuple[str, list]:
    """TV, then MV, then RV: the first label with a pair under its delta that also agrees
    structurally (a TV pair on the kept pixels of its mask); its distance and ids replace the
    closest pair's in distances (the label rests on that pair). Returns (label, every pair
    checked as [label, generation_id, train_image_id, distance, agreement])."""
    gen_sha = {g.id: g.image_sha for g in store.generations(caption_id)}
    checked: list = []
    for label in ORDER:
        key, delta = label.lower(), getattr(thresholds, label.lower())
        for d, info in sorted(pairs[key], key=lambda c: c[0])[:STRUCTURE_TRIES]:
            if d > delta:
                break
            where = None
            if label == "TV":
                where = compare_mask(store.load_mask(store.get_mask(info["mask_id"]).image_sha))
            value = check.pair(gen_sha[info["generation_id"]], store.get_training_image(info["train_image_id"]).sha256,
                               where)
            checked.append([label, info["generation_id"], info["train_image_id"], round(float(d), 6),
                            None if value is None else round(value, 4)])
            if agrees(value, check.params):
                distances[key] = round(float(d), 6)
                distances.update({f"{key}_{k}": v for k, v in info.items()})
                distances[f"{key}_structure"] = None if value is None else round(value, 4)
                return label, checked
    return "N", checked


ALIGN_CACHE_ITEMS = 2048    # training images whose keypoints a label stage keeps (oldest dropped first)


def chw(u8: np.ndarray) -> np.ndarray:
    """A compare image as suspect_flags takes it: [1,3,S,S] in [0,1]."""
    return unit_float(u8).transpose(2, 0, 1)[None]


def aligned_structure(gen: np.ndarray, train_u8: np.ndarray, a, train_band: np.ndarray,
                      params: StructureParams) -> tuple[float | None, float | None]:
    """(agreement, content RMSE) of gen [S,S,3] in [0,1] warped by the alignment a onto the
    training image: the warp is registered to the pixel first (residual_shift), the agreement
    taken over the overlap, and the RMSE over the detailed patches only: a plain surround two
    different products share cannot carry the distance, their colours must agree too."""
    warped, inside = warp_onto(gen, a.matrix, train_u8.shape[:2])
    wb = band(warped, params)
    dy, dx = residual_shift(wb, train_band, inside)
    if dy or dx:
        warped, inside = np.roll(warped, (-dy, -dx), (0, 1)), np.roll(inside, (-dy, -dx), (0, 1))
        wb = np.roll(wb, (-dy, -dx), (0, 1))
    value = agreement(wb, train_band, inside, params)
    if value is None:
        return None, None
    where = detail_patches(wb, train_band, inside, params)
    diff = warped[where] - unit_float(train_u8)[where]
    return value, float(np.sqrt(np.mean(diff ** 2)))


def aligned_distance(store: Store, caption_id: int, distances: Mapping[str, Any], images: ComparePixels,
                     params: AlignParams = AlignParams(), thresholds: Thresholds = Thresholds(),
                     flag_params: FlagParams = FlagParams(), cache: dict | None = None,
                     check: StructureCheck | None = None) -> dict | None:
    """The best alignment of the caption's closest own pair (MV) and closest retrieved pair (RV),
    as stored evidence: {label, generation_id, train_image_id, aligned_rmse, overlap, mirrored,
    inliers, scale, spread, transform, structure, passed}; None when neither pair aligns. passed:
    the overlap and the aligned RMSE pass (min_overlap, the label's delta) on an unflagged
    training image and, with a structural check, the inliers span min_spread of the image and
    the warped generation agrees structurally with the training image on the overlap (a
    similarity transform fitted to a few matches aligns any two portraits well enough for the
    RMSE alone)."""
    cache = {} if cache is None else cache       # training-image features, by sha
    gens = {g.id: g for g in store.generations(caption_id)}
    gen_features: dict[int, dict] = {}           # a generation in both pairs is described once
    best = None
    seen: set[tuple[int, int]] = set()
    for label in ("MV", "RV"):
        gid, tid = distances.get(f"{label.lower()}_generation_id"), distances.get(f"{label.lower()}_train_image_id")
        if gid is None or tid is None or (gid, tid) in seen:
            continue
        seen.add((gid, tid))
        sha = store.get_training_image(tid).sha256
        train = images.pixels(sha)
        if sha not in cache:
            if len(cache) >= ALIGN_CACHE_ITEMS:      # ~130 KB each: keep memory flat on a big store
                cache.pop(next(iter(cache)))
            cache[sha] = features(unit_float(train), params)
        a = align(unit_float(images.pixels(gens[gid].image_sha)), unit_float(train), params, cache[sha],
                  gen_features.setdefault(gid, {}))
        if a is None:
            continue
        delta = getattr(thresholds, label.lower())
        flag = suspect_flags(chw(train), flag_params)[0]
        # a texture aligns with a shifted copy of itself anywhere; a backdrop has no structure to
        # agree with (structure None is refused below), so with the check on only textures are out
        passed = a.rmse <= delta and not (flag if check is None else "suspect:texture" in flag)
        structure = content = None
        if check is not None:
            structure, content = aligned_structure(unit_float(images.pixels(gens[gid].image_sha)), train, a,
                                                   check.band(sha), check.params)
            passed = passed and a.spread >= check.params.min_spread and structure is not None \
                and agrees(structure, check.params) and content <= delta
        cand = {"label": label, "generation_id": gid, "train_image_id": tid, **a.as_json(),
                "structure": None if structure is None else round(structure, 4),
                "content_rmse": None if content is None else round(content, 6), "passed": passed}
        if best is None or (passed, -a.rmse) > (best["passed"], -best["aligned_rmse"]):
            best = cand
    return best


def second_opinion_of(store: Store, images: ComparePixels, embedder: Embedder, generation_id: int,
                      train_image_id: int, caption_id: int) -> dict:
    """A second embedder's cosine similarity (e.g. SSCD's) for the pair a label rests on, on the
    compare images; recorded for the reviewer, never deciding."""
    gen = next(g for g in store.generations(caption_id) if g.id == generation_id)
    pair = np.stack([unit_float(images.pixels(gen.image_sha)),
                     unit_float(images.pixels(store.get_training_image(train_image_id).sha256))]).transpose(0, 3, 1, 2)
    v = embedder.embed(pair).numpy()
    return {"embedder": embedder.spec, "similarity": round(float(v[0] @ v[1]), 4),
            "generation_id": generation_id, "train_image_id": train_image_id}
