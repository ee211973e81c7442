"""`python -m attack bench labels --json`: automatic labels, masks and flags through the
closed-model path on two worlds at 256 or 512 px: `dev`, the development world
(attack/bench/realworld.py: scikit-image's photos and textures, procedural drawings), where every
threshold is chosen, and `test`, the held-out world (attack/bench/heldout.py: other photos,
procedural scenes, rendered text, mock-up families, same-category hard negatives), where they
are only measured.

Each world's training images and captions are ingested, its `images:` folder gives the
generations (every caption it has, every seed its mapping holds), then retrieval (pixel
embedder, template masks) and labels (the default `verbatim` rule) run. Figures count every
proposal, flagged or not (a flag is shown to a reviewer; it removes nothing):
- precision / recall per label (MV, TV, RV) against the planted truth; copy_recall (a copy
  labelled MV or RV); precision_all_proposals (every label but N) and, beside it,
  precision_unflagged; negatives_called_copies (an N case labelled anything else);
- flag precision / recall, overall and per kind;
- mask IoU of every auto mask on a family member against the family's true keep-mask, per
  family too; masks_outside_families; tv_attribution: TV labels whose mask is the right family's;
- aligned_recall: the crop / rescale / mirror / rotation cases labelled on aligned evidence;
  aligned_false: aligned labels on any other case (they count in the precision above too);
- ms_per_generation: retrieval + masks + labels, wall time per generation, with retrieve_s and
  label_s, on a new store. Each image is decoded once, where it enters the store (ingest,
  generation), which also makes its compare view then (the cache retrieval reads), so the timed
  stages decode nothing; that cost is compare_views_s (inside ingest_generate_s), and
  ms_per_generation_with_compare_views counts it too.
The last line printed is one JSON object.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from attack.bench.realworld import KNOWN_MISSES, RealWorld, build_world

LABELS = ("MV", "TV", "RV")


def run_world(world: RealWorld, store_dir: Path, progress=None) -> dict:
    """Ingest the world, generate from its closed model, retrieve and label; returns the timings."""
    from attack.ingest import ingest
    from attack.models import load_model
    from attack.selection import select_captions
    from attack.stages.generate import GenerateParams, generate_stage
    from attack.stages.labels import label_stage
    from attack.stages.retrieve import RetrieveParams, retrieve_stage
    from store import Store

    model = load_model(f"images:{world.model_dir}")
    with Store.open(store_dir) as store:
        t0 = time.perf_counter()
        ingest(store, world.captions)
        ingest(store, images=world.train_dir)
        sel = select_captions(store, [c.caption for c in world.cases])
        gen = generate_stage(store, model, sel, GenerateParams(top_k=0, seeds=(), steps=world.steps), by=None,
                             progress=progress or (lambda *a: None))
        t1 = time.perf_counter()
        ret = retrieve_stage(store, RetrieveParams(), caption_ids=list(sel.ids), progress=progress)
        t2 = time.perf_counter()
        lab = label_stage(store, caption_ids=list(sel.ids), progress=progress)
        t3 = time.perf_counter()
        views = store.images.compare_view_s
    n = gen.computed + gen.skipped
    return {"generations": n, "ingest_generate_s": round(t1 - t0, 2), "compare_views_s": round(views, 2),
            "retrieve_s": round(t2 - t1, 2), "label_s": round(t3 - t2, 2),
            "ms_per_generation": round(1000 * (t3 - t1) / max(1, n), 1),
            "ms_per_generation_with_compare_views": round(1000 * (t3 - t1 + views) / max(1, n), 1),
            "masks_built": ret.masks_built, "labelled": lab.labelled}


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def _iou(got, want) -> float:
    return float((got & want).sum() / max(1, (got | want).sum()))


def evaluate(store, world: RealWorld, geometric: tuple[str, ...] = KNOWN_MISSES) -> dict:
    """The figures above, from the store's latest automatic labels and auto masks. A proposal is
    any label but N; it is right when the case is a copy (MV or RV expected) labelled MV or RV,
    or a template labelled TV. geometric: the kinds only the aligned evidence finds."""
    cases = {store.caption_id(c.caption): c for c in world.cases}
    autos = {cid: store.auto_labels(cid)[-1] for cid in cases if store.auto_labels(cid)}
    file_of = {t.id: Path(t.path_or_url).name for cid in cases for t in store.training_images_for(cid)}
    family_of = {m: fam for fam, f in world.families.items() for m in f["members"]}

    def train_file(tid):
        if tid not in file_of:
            file_of[tid] = Path(store.get_training_image(tid).path_or_url or "").name
        return file_of[tid]

    def label(c):
        return autos[c].label if c in autos else "unlabelled"

    precision, recall = {}, {}
    for lab in LABELS:
        proposed = [c for c, a in autos.items() if a.label == lab]
        truth = [c for c, case in cases.items() if case.expected == lab]
        precision[lab] = _ratio(len([c for c in proposed if cases[c].expected == lab]), len(proposed))
        recall[lab] = _ratio(len([c for c in truth if label(c) == lab]), len(truth))

    def right(c) -> bool:
        want, got = cases[c].expected, label(c)
        return (want in ("MV", "RV") and got in ("MV", "RV")) or (want == "TV" and got == "TV")

    proposals = [c for c in cases if label(c) not in ("N", "unlabelled")]
    unflagged = [c for c in proposals if not autos[c].flags]
    copies = [c for c, case in cases.items() if case.expected in ("MV", "RV")]
    negatives = [c for c, case in cases.items() if case.expected == "N"]
    flags: dict[str, dict] = {}
    for kind in sorted({case.flag for case in cases.values() if case.flag}):
        carried = [c for c, a in autos.items() if kind in a.flags]
        should = [c for c, case in cases.items() if case.flag == kind]
        hit = [c for c in carried if cases[c].flag == kind]
        flags[kind] = {"precision": _ratio(len(hit), len(carried)), "recall": _ratio(len(hit), len(should)),
                       "carried": len(carried), "cases": len(should)}
    flagged = [c for c, a in autos.items() if a.flags]
    should = [c for c, case in cases.items() if case.flag]
    flag_right = [c for c in flagged if cases[c].flag in autos[c].flags]
    tv = [c for c, a in autos.items() if a.label == "TV"]
    attributed = [c for c in tv if family_of.get(train_file(autos[c].distances.get("tv_train_image_id"))) == cases[c].family]
    ious, per_family = [], {}
    masked = {train_file(t.id): t.id for t in store.masked_training_images()}
    for fam, info in world.families.items():
        want = world.keep_mask(fam)
        got = [_iou(store.load_mask(store.current_mask(masked[m]).image_sha), want) for m in info["members"] if m in masked]
        ious += got
        per_family[fam] = {"masked": len(got), "members": len(info["members"]),
                           "iou_median": round(statistics.median(got), 4) if got else None}
    wrong_masks = [f for f, t in masked.items() if f not in family_of]
    confusion: dict[str, dict[str, int]] = {}
    for c, case in cases.items():
        confusion.setdefault(case.kind, {}).setdefault(label(c), 0)
        confusion[case.kind][label(c)] += 1
    misses = [c for c, case in cases.items() if case.kind in geometric]
    aligned = {c for c, a in autos.items() if a.distances.get("evidence_kind") == "aligned"}
    return {
        "precision": precision, "recall": recall,
        "copy_recall": _ratio(len([c for c in copies if label(c) in ("MV", "RV")]), len(copies)),
        "precision_all_proposals": _ratio(len([c for c in proposals if right(c)]), len(proposals)),
        "precision_unflagged": _ratio(len([c for c in unflagged if right(c)]), len(unflagged)),
        "proposals": len(proposals), "unflagged_proposals": len(unflagged),
        "negatives_called_copies": len([c for c in negatives if label(c) not in ("N", "unlabelled")]),
        "negatives": len(negatives),
        "flag_precision": _ratio(len(flag_right), len(flagged)), "flag_recall": _ratio(len(flag_right), len(should)),
        "flags": flags,
        "mask_iou_median": round(statistics.median(ious), 4) if ious else None,
        "mask_iou_min": round(min(ious), 4) if ious else None, "masked_family_members": len(ious),
        "family_members": sum(len(f["members"]) for f in world.families.values()),
        "masks_outside_families": len(wrong_masks), "families": per_family,
        "tv_attribution": _ratio(len(attributed), len(tv)),
        "aligned_recall": _ratio(sum(1 for c in misses if c in aligned and label(c) == cases[c].expected),
                                 len(misses)),
        "aligned_false": len([c for c in aligned if cases[c].kind not in geometric]),
        "geometric_cases": len(misses),
        "labels_by_kind": confusion,
    }


WORLDS = ("dev", "test")


def bench_world(which: str, size: int = 512, seed: int | None = None, folder: Path | None = None,
                log=lambda s: None) -> dict:
    """One world's figures: dev (attack/bench/realworld.py, where thresholds are chosen) or test (the
    held-out world, attack/bench/heldout.py, built from other sources and generators)."""
    from attack.bench.heldout import GEOMETRIC, build_heldout
    from store import Store

    if which not in WORLDS:
        raise ValueError(f"expected a world among {', '.join(WORLDS)}, got {which!r}")
    seed = (0 if which == "dev" else 1) if seed is None else seed
    with tempfile.TemporaryDirectory(prefix=f"verbatim-labels-{which}-") as tmp:
        root = Path(folder) / which if folder else Path(tmp)
        t = time.perf_counter()
        world = build_world(root / "world", size=size, seed=seed) if which == "dev" else \
            build_heldout(root / "world", size=size, seed=seed)
        log(f"{which} world of {len(world.cases)} captions at {size} px built in {time.perf_counter() - t:.1f} s")
        timings = run_world(world, root / "store")
        with Store.open(root / "store", readonly=True) as store:
            figures = evaluate(store, world, KNOWN_MISSES if which == "dev" else GEOMETRIC)
    return {**figures, **timings, "size": size, "seed": seed, "captions": len(world.cases),
            "world": "development (attack/bench/realworld.py)" if which == "dev" else "held-out (attack/bench/heldout.py)"}


def bench(size: int = 512, folder: Path | None = None, worlds: tuple[str, ...] = WORLDS, log=lambda s: None,
          seed: int | None = None) -> dict:
    """Both worlds (or those named); seed: the dev world's (default 0), the test world takes seed + 1."""
    seeds = {"dev": seed, "test": None if seed is None else seed + 1}
    out = {w: bench_world(w, size, seeds[w], folder=folder, log=log) for w in worlds}
    return {**out, "caches": "a new store per world: each image decoded once where it enters the store, its compare "
                      "view made then (compare_views_s); the timed stages decode none",
            "thresholds": "chosen on dev only", "embedder": "pixel"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench labels", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    ap.add_argument("--size", type=int, choices=(256, 512), default=512)
    ap.add_argument("--seed", type=int, default=None,
                    help="the dev world's seed (default 0); the test world's is this + 1 (default 1)")
    ap.add_argument("--world", choices=WORLDS, action="append",
                    help="only this world (repeatable; default: dev and test)")
    ap.add_argument("--dir", type=Path, default=None, help="keep the world and store here (default: a temporary folder)")
    a = ap.parse_args(argv)
    out = bench(a.size, a.dir, tuple(a.world or WORLDS), log=lambda s: print(s, file=sys.stderr, flush=True),
                seed=a.seed)
    if not a.json:
        for w in WORLDS:
            for k, v in out.get(w, {}).items():
                print(f"{w:5s} {k:24s} {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
