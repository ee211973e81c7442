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
from typing import TYPE_CHECKING

from attack.images.compare import ComparePixels
from attack.images.flags import FlagParams, suspect_flags
from attack.images.metrics import compare_mask
from attack.images.structure import StructureParams
from attack.progress import Progress
from attack.stages.align import AlignParams
from attack.stages.claims import shared_batches
from store import Store

if TYPE_CHECKING:      # attack.images.embed imports torch; the labeller does not, unless a second opinion is asked for
    from attack.images.embed import Embedder

from attack.stages.rules import LABELLER_VERSION, LabelInputError, Thresholds, decide, resolve
from attack.stages.witness import (
    CaptionLabel,
    StructureCheck,
    aligned_distance,
    caption_pairs,
    chw,
    pair_distances,
    second_opinion_of,
    structural_decide,
)


def label_caption(store: Store, caption_id: int, run_id: int, thresholds: Thresholds = Thresholds(),
                  flag_params: FlagParams = FlagParams(), images: ComparePixels | None = None,
                  evidence: Evidence | None = None, align_params: AlignParams | None = AlignParams(),
                  align_cache: dict | None = None, structure: StructureParams | None = StructureParams(),
                  check: StructureCheck | None = None, second_opinion: Embedder | None = None) -> CaptionLabel:
    """Compute and write one caption's auto label under run_id, with the evidence it rests on.
    align_params None: no aligned evidence for an N; structure None: the distances alone (with
    both None, the paper's rule). distances['paper_label'] is what the paper's rule gives."""
    label, distances, flags = caption_label(store, caption_id, thresholds, flag_params, images, evidence,
                                            align_params, align_cache, structure, check, second_opinion)
    auto_id = store.add_auto_label(caption_id, run_id, label, distances, list(flags))
    return CaptionLabel(caption_id, label, distances, tuple(flags), run_id, auto_id)


def caption_label(store: Store, caption_id: int, thresholds: Thresholds = Thresholds(),
                  flag_params: FlagParams = FlagParams(), images: ComparePixels | None = None,
                  evidence: Evidence | None = None, align_params: AlignParams | None = AlignParams(),
                  align_cache: dict | None = None, structure: StructureParams | None = StructureParams(),
                  check: StructureCheck | None = None,
                  second_opinion: Embedder | None = None) -> tuple[str, dict, tuple[str, ...]]:
    """(label, distances, flags) of a caption as label_caption decides it, written nowhere (a
    comparison labels each model's side this way, inside Store.only_runs)."""
    images = images or ComparePixels(store)
    evidence = evidence or caption_evidence(store, caption_id, thresholds, flag_params, align_params, structure)
    pairs = caption_pairs(store, caption_id, images)
    distances = pair_distances(pairs)
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
        flags = list(suspect_flags(chw(image), flag_params, keep)[0])
        if second_opinion is not None:
            gid = (distances["aligned"]["generation_id"] if distances["evidence_kind"] == "aligned"
                   else distances.get(f"{label.lower()}_generation_id"))
            distances["second_opinion"] = second_opinion_of(store, images, second_opinion, gid, tid, caption_id)
    distances["thresholds"] = asdict(thresholds)
    return label, distances, tuple(flags)


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


LABEL_BATCH = 16         # captions claimed at a time when several processes label one store


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
    # labelled in this run on other evidence (another process labelling on the same evidence is not "again")
    again = {c for c in store.auto_labelled_ids(run_id) & set(todo) if recompute or
             _labelled_with(store, c) != evidence[c].key}
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
        done = 0                 # another process on the store labels what it claims

        def labelled(keys: Sequence[str]) -> set[str]:
            return {str(c) for c in store.auto_labelled_among(run_id, [int(k) for k in keys])}

        for chunk in shared_batches(store, run_id, todo, str, LABEL_BATCH, labelled):
            for cid in chunk:
                res = label_caption(store, cid, run_id, th, flag_params, images, evidence[cid], align_params,
                                    align_cache, structure, check, second_opinion)
                counts[res.label] = counts.get(res.label, 0) + 1
                flagged += bool(res.flags)
                done += 1
                if progress:
                    progress("label", done, len(todo))
        store.finish_run(run_id, 0, "done")
    return LabelReport(run_id, resumed, done, len(cands) - done - len(waiting) - len(held), counts,
                       flagged, len(waiting), "\n  ".join(notes), stale=len(held))
