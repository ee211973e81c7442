"""Automatic labels (paper section 4, in the order of its public code): TV, then MV, then RV, else N.

- TV: min over the caption's generations and their retrieved training images that have a mask
  of the masked RMSE (kept pixels only) <= delta_TV;
- MV: min over generations and the caption's own training images of the RMSE <= delta_V;
- RV: min over generations and retrieved training images of the RMSE <= delta_RV.
Distances are RMSE at 256x256 in [0,1] (attack.images.metrics). Every distance, and which generation,
training image and mask gave it, is stored with the label: a label is a proposal for a human.
Under the default `verbatim` preset a pair under its delta must also agree structurally
(attack.images.structure: two different smooth photos of one kind pass the RMSE at 512 px, not the
structure); `paper` and `onestep-code` are the paper's rule alone. paper_label records what the
paper's rule gives either way.

Likely false positives are flagged, never dropped (attack.images.flags): `suspect:background` for
plain or near-uniform images and `suspect:texture` for stationary textures (the paper pruned
both by hand). A flag is computed on the training image the label rests on; an N rests on none and
carries no flag. A TV label names the siblings its mask was built from (tv_mask_siblings).

No torch: distances, flags and alignment run on numpy (and scikit-image), so `python -m attack
label` starts fast; attack.images.metrics says how its distances agree with the torch ones.

Beyond the paper (its section 5.4 miss): a caption the distances leave at N is checked for a copy
under a crop, a rescale or a mirror (attack.stages.align). The closest own pair and the closest
retrieved pair are aligned by a similarity transform (mirroring included); when the warped
generation covers at least min_overlap of the training image and the aligned RMSE on that
overlap is under the label's delta, the label is MV (own) or RV (retrieved) with evidence kind
`aligned`, the transform stored beside the plain distances. A training image flagged as a
texture gives no aligned evidence (repeating content aligns anywhere); under `verbatim` the
aligned pair must also agree structurally, its inliers span the image and its detailed patches
pass the delta, so a plain backdrop, with nothing to agree, gives none either (without the
structural check a backdrop flag refuses it, as before).
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from store import Store

from attack.stages.align import AlignParams, align, features, warp_onto
from attack.images.compare import ComparePixels
from attack.errors import AttackError
from attack.images.flags import FlagParams, suspect_flags
from attack.kinds import PRESET_NAMES
from attack.images.metrics import compare_mask, pixel_masked_rmse, pixel_rmse, unit_float
from attack.progress import Progress
from attack.images.structure import StructureParams, agreement, agrees, band, detail_patches, residual_shift

if TYPE_CHECKING:      # attack.images.embed imports torch; the labeller does not, unless a second opinion is asked for
    from attack.images.embed import Embedder

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
    return _distances(caption_pairs(store, caption_id, images, refresh))


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


def _distances(pairs: Mapping[str, Any]) -> dict[str, Any]:
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


def _chw(u8: np.ndarray) -> np.ndarray:
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
        flag = suspect_flags(_chw(train), flag_params)[0]
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


def label_caption(store: Store, caption_id: int, run_id: int, thresholds: Thresholds = Thresholds(),
                  flag_params: FlagParams = FlagParams(), images: ComparePixels | None = None,
                  evidence: Evidence | None = None, align_params: AlignParams | None = AlignParams(),
                  align_cache: dict | None = None, structure: StructureParams | None = StructureParams(),
                  check: StructureCheck | None = None, second_opinion: Embedder | None = None) -> CaptionLabel:
    """Compute and write one caption's auto label under run_id, with the evidence it rests on.
    align_params None: no aligned evidence for an N; structure None: the distances alone (with
    both None, the paper's rule). distances['paper_label'] is what the paper's rule gives."""
    images = images or ComparePixels(store)
    evidence = evidence or caption_evidence(store, caption_id, thresholds, flag_params, align_params, structure)
    pairs = caption_pairs(store, caption_id, images)
    distances = _distances(pairs)
    if evidence is not None:
        distances["evidence"], distances["evidence_key"] = evidence.as_json(), evidence.key
    label = distances["paper_label"] = decide(distances, thresholds)
    if structure is not None:
        check = check or StructureCheck(store, images, structure)
        label, checked = structural_decide(store, caption_id, pairs, distances, thresholds, check)
        distances["structure"] = {"min_agreement": structure.min_agreement, "checked": checked}
    distances["evidence_kind"] = "masked" if label == "TV" else "pixel" if label != "N" else None
    if label == "N" and align_params is not None:
        aligned = aligned_distance(store, caption_id, distances, images, align_params, thresholds, flag_params,
                                   align_cache, check if structure is not None else None)
        distances["aligned"] = aligned
        if aligned is not None and aligned["passed"]:
            label, distances["evidence_kind"] = aligned["label"], "aligned"
    # a flag warns about the training image a label rests on; an N rests on none
    flags: list[str] = []
    if label != "N":
        tid = (distances["aligned"]["train_image_id"] if distances["evidence_kind"] == "aligned"
               else distances.get(f"{label.lower()}_train_image_id"))
        image = images.pixels(store.get_training_image(tid).sha256)
        keep = None
        if label == "TV":   # a TV match rests on the kept pixels only
            keep = compare_mask(store.load_mask(store.get_mask(distances["tv_mask_id"]).image_sha))
        flags = list(suspect_flags(_chw(image), flag_params, keep)[0])
        if second_opinion is not None:
            gid = (distances["aligned"]["generation_id"] if distances["evidence_kind"] == "aligned"
                   else distances.get(f"{label.lower()}_generation_id"))
            distances["second_opinion"] = second_opinion_of(store, images, second_opinion, gid, tid, caption_id)
    distances["thresholds"] = asdict(thresholds)
    auto_id = store.add_auto_label(caption_id, run_id, label, distances, flags)
    return CaptionLabel(caption_id, label, distances, tuple(flags), run_id, auto_id)


def relabel(store: Store, caption_id: int, thresholds: Thresholds | str = "verbatim", *,
            flag_params: FlagParams = FlagParams(), align_params: AlignParams | None = AlignParams(),
            structure: StructureParams | None = StructureParams()) -> CaptionLabel:
    """Recompute a caption's auto label from its stored generations, neighbours and the CURRENT
    mask versions (e.g. right after a reviewer saved an edited mask) and write it as a new auto
    label (a new `relabel` run, so it becomes the caption's latest). Returns what was written;
    distances['tv'] is the masked RMSE under the current mask."""
    th, structure, align_params = resolve(thresholds, structure, align_params)
    store.get_caption(caption_id)  # NotFoundError for an unknown id, before any write
    run_id = store.start_run("relabel", "", {"thresholds": asdict(th), "flags": asdict(flag_params),
                                             "align": _align_json(align_params),
                                             "structure": _align_json(structure), "caption_id": caption_id})
    with store.running(run_id):
        ev = caption_evidence(store, caption_id, th, flag_params, align_params, structure)
        out = label_caption(store, caption_id, run_id, th, flag_params, evidence=ev, align_params=align_params,
                            structure=structure)
    store.finish_run(run_id, 0, "done")
    return out


@dataclass(frozen=True)
class Evidence:
    """What a caption's automatic label rests on: the retrieval run of each generation's
    neighbours, the current mask of every training image compared, the caption's own images
    and the thresholds. Equal keys mean the label would come out the same."""
    neighbour_runs: dict
    masks: dict
    own: tuple
    key: str

    def as_json(self) -> dict:
        return {"neighbour_runs": {str(k): v for k, v in self.neighbour_runs.items()},
                "masks": {str(k): v for k, v in self.masks.items()}, "own": list(self.own)}


def _align_json(params: AlignParams | StructureParams | None) -> dict | None:
    return None if params is None else asdict(params)


def caption_evidence(store: Store, caption_id: int, thresholds: Thresholds,
                     flag_params: FlagParams, align_params: AlignParams | None = AlignParams(),
                     structure: StructureParams | None = StructureParams(),
                     second_opinion: str | None = None) -> Evidence | None:
    """The caption's evidence now; None when a generation has no neighbours yet (a label then
    would miss every retrieval and template verbatim)."""
    runs: dict[int, int] = {}
    masks: dict[int, int | None] = {}
    own = tuple(sorted(t.id for t in store.training_images_for(caption_id)))
    for g in store.generations(caption_id):
        run = store.neighbour_run(g.id)
        if run is None:
            return None
        runs[g.id] = run
        for n in store.neighbours(g.id):
            if n.train_image_id not in masks:
                m = store.current_mask(n.train_image_id)
                masks[n.train_image_id] = None if m is None else m.id
    ev = {"neighbour_runs": sorted(runs.items()), "masks": sorted(masks.items()), "own": own,
          "thresholds": asdict(thresholds), "flags": asdict(flag_params), "align": _align_json(align_params),
          "structure": _align_json(structure), "labeller": LABELLER_VERSION,
          **({"second_opinion": second_opinion} if second_opinion else {})}
    return Evidence(runs, masks, own, hashlib.sha256(json.dumps(ev, sort_keys=True).encode()).hexdigest())


def _labelled_with(store: Store, caption_id: int) -> str | None:
    """The evidence key of the caption's latest automatic label (None: none, or one written
    before keys were recorded)."""
    autos = store.auto_labels(caption_id)
    return autos[-1].distances.get("evidence_key") if autos else None


@dataclass(frozen=True)
class LabelReport:
    run_id: int | None      # None: nothing was labelled (no evidence yet)
    resumed: bool
    labelled: int
    skipped: int            # their evidence is what their current label rests on
    counts: dict = field(default_factory=dict)
    flagged: int = 0
    no_evidence: int = 0    # candidates left unlabelled: no training images, or no neighbours yet
    note: str = ""
    stale: int = 0          # candidates not labelled: their retrieval searched fewer training images than the store holds

    def summary(self) -> str:
        how = "resumed" if self.resumed else "new"
        c = ", ".join(f"{k} {v}" for k, v in sorted(self.counts.items()))
        head = (f"label: run {self.run_id} ({how}), " if self.run_id is not None else "label: ")
        waiting = f", {self.no_evidence} left unlabelled without evidence" if self.no_evidence else ""
        waiting += f", {self.stale} held back on an older retrieval" if self.stale else ""
        return (f"{head}{self.labelled} captions labelled ({c or 'none'}), {self.flagged} flagged suspect, "
                f"{self.skipped} already done{waiting}" + (f"\n  {self.note}" if self.note else ""))


def stale_candidates(store: Store, neighbour_runs: Mapping[int, Iterable[int | None]]) -> list[int]:
    """Of caption id -> its generations' retrieval runs: the candidates some generation of which
    rests on a retrieval that searched fewer training images than the store holds now (an
    external index's runs are not counted: they search its files, not the store's images)."""
    now = store.training_set_version().count
    searched = {r.id: (r.params.get("training_set") or {}).get("training_images") for r in store.runs(stage="retrieve")}
    return [cid for cid, runs in neighbour_runs.items()
            if any((n := searched.get(run_id)) is not None and n < now for run_id in set(runs))]


def _ids_text(ids: Sequence[int], most: int = 10) -> str:
    shown = ", ".join(str(i) for i in ids[:most])
    return shown + (f" and {len(ids) - most} more" if len(ids) > most else "")


def _stale_note(store: Store, caption_ids: Sequence[int] | None, scope: set[int]) -> str:
    """With a subset in scope: the other candidates whose labels rest on an older retrieval."""
    if caption_ids is None:
        return ""
    # only the retrieval runs are needed here, not the whole evidence (masks, own images)
    others = {c: [store.neighbour_run(g.id) for g in store.generations(c)]
              for c in store.candidate_ids() if c not in scope}
    stale = stale_candidates(store, others)
    if not stale:
        return ""
    return (f"{len(stale)} other candidates (captions {_ids_text(stale)}) rest on a retrieval that searched fewer "
            f"training images than the store holds: run `python -m attack retrieve` on {store.path}, then label")


def label_stage(store: Store, thresholds: Thresholds | str = "verbatim", *, caption_ids: Sequence[int] | None = None,
                flag_params: FlagParams = FlagParams(), recompute: bool = False,
                progress: Progress | None = None, align_params: AlignParams | None = AlignParams(),
                allow_stale: bool = False, structure: StructureParams | None = StructureParams(),
                second_opinion: Embedder | None = None) -> LabelReport:
    """Auto-label every caption with generations (or those of caption_ids) whose evidence
    (neighbours, masks, own images, thresholds) differs from what its current label rests on;
    the others are skipped, so a killed run resumes. No label is written without evidence: with
    no training images, or before retrieval, a candidate stays unlabelled. A caption labelled
    again gets its new label in a new run; the old one stays in its history. No label rests
    silently on an older retrieval: a candidate whose neighbours were searched among fewer
    training images than the store holds is held back, and the report names it and the command
    to run (allow_stale labels them as they are, and says so). A preset named "paper" or
    "onestep-code" is the paper's rule alone (no structural check, no aligned evidence).
    second_opinion: an embedder (attack.images.embed) whose similarity for each copy label's pair is
    recorded beside it."""
    th, structure, align_params = resolve(thresholds, structure, align_params)
    cands = store.candidate_ids()
    if caption_ids is not None:
        wanted = set(caption_ids)
        cands = [c for c in cands if c in wanted]
    if not cands:
        raise LabelInputError(f"{store.path}: expected captions with generations to label (run `python -m attack "
                              f"generate` and `retrieve` first), got none")
    if not store.training_set_version().count:
        return LabelReport(None, False, 0, 0, no_evidence=len(cands),
                           note="no training images yet: every candidate stays unlabelled (add them with "
                                "`python -m attack ingest --images DIR`, then retrieve)")
    opinion = None if second_opinion is None else second_opinion.spec
    evidence = {c: caption_evidence(store, c, th, flag_params, align_params, structure, opinion) for c in cands}
    stale = stale_candidates(store, {c: e.neighbour_runs.values() for c, e in evidence.items() if e is not None})
    held = set() if allow_stale else set(stale)      # not labelled on an older retrieval: said below
    waiting = [c for c, e in evidence.items() if e is None]
    todo = [c for c, e in evidence.items()
            if e is not None and c not in held and (recompute or e.key != _labelled_with(store, c))]
    params = {"thresholds": asdict(th), "flags": asdict(flag_params), "align": _align_json(align_params),
              "structure": _align_json(structure), **({"second_opinion": opinion} if opinion else {})}
    run = store.open_run("label", "", params)
    run_id, resumed = run.id, run.resumed
    notes = [n for n in (_stale_note(store, caption_ids, set(cands)),) if n]
    if held:
        notes.append(f"{len(held)} candidates not labelled (captions {_ids_text(stale)}): their neighbours were "
                     f"searched among fewer training images than the store's {store.training_set_version().count}, "
                     f"so any label of theirs rests on an older retrieval; run `python -m attack retrieve` on "
                     f"{store.path} (it searches them again), then label (--allow-stale labels them as they are)")
    elif stale:
        notes.append(f"{len(stale)} candidates labelled on a retrieval that searched fewer training images than the "
                     f"store holds (--allow-stale): captions {_ids_text(stale)}")
    if waiting:
        notes.append(f"{len(waiting)} candidates have generations without neighbours yet: run `python -m attack "
                     f"retrieve`, then label again")
    again = store.auto_labelled_ids(run_id) & set(todo)
    if again:
        run_id, resumed = store.start_run("label", "", params), False
        notes.append(f"{len(again)} captions labelled again: " + ("--recompute" if recompute else
                     "their neighbours, masks or own images changed") + "; their earlier labels stay in the history")
    with store.running(run_id):
        images, align_cache = ComparePixels(store), {}
        check = StructureCheck(store, images, structure) if structure is not None else None
        counts: dict[str, int] = {}
        flagged = 0
        if progress:
            progress("label", 0, len(todo))
        for i, cid in enumerate(todo):
            res = label_caption(store, cid, run_id, th, flag_params, images, evidence[cid], align_params, align_cache,
                                structure, check, second_opinion)
            counts[res.label] = counts.get(res.label, 0) + 1
            flagged += bool(res.flags)
            if progress:
                progress("label", i + 1, len(todo))
        store.finish_run(run_id, 0, "done")
    return LabelReport(run_id, resumed, len(todo), len(cands) - len(todo) - len(waiting) - len(held), counts,
                       flagged, len(waiting), "\n  ".join(notes), stale=len(held))
