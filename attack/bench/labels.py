"""`python -m attack bench labels --json`: automatic labels, masks and flags on the realistic
fixture world (attack/realworld.py) at 256 or 512 px, through the closed-model path.

The world's training images and captions are ingested, its `images:` folder gives the
generations (every caption it has, every seed its mapping holds), then retrieval (pixel
embedder, template masks) and labels run. Figures count every proposal, flagged or not (a flag
is shown to a reviewer; it removes nothing):
- precision / recall per label (MV, TV, RV) against the planted truth;
- flag precision / recall (a suspect flag on the labels whose case is a texture or a backdrop);
- mask IoU of every auto mask on a family member against the family's planted keep-mask;
- tv_attribution: the fraction of TV labels whose mask was built on the right family;
- aligned_recall: the crop / rescale / mirror cases (the paper's pixel-distance misses) labelled
  MV on aligned evidence; aligned_false: aligned labels on any other case (they count in the
  precision above too);
- ms_per_generation: retrieval + masks + labels, wall time per generation, caches cold (the store
  is new: every image is decoded once, inside the timed stages).
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


from ..realworld import KNOWN_MISSES, RealWorld, build_world

LABELS = ("MV", "TV", "RV")


def run_world(world: RealWorld, store_dir: Path, progress=None) -> dict:
    """Ingest the world, generate from its closed model, retrieve and label; returns the timings."""
    from store import Store

    from ..generate import GenerateParams
    from ..ingest import ingest
    from ..labels import label_stage
    from ..models import load_model
    from ..pipeline import generate_stage, select_captions
    from ..retrieve import RetrieveParams, retrieve_stage

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
    n = gen.computed + gen.skipped
    return {"generations": n, "ingest_generate_s": round(t1 - t0, 2), "retrieve_s": round(t2 - t1, 2),
            "label_s": round(t3 - t2, 2), "ms_per_generation": round(1000 * (t3 - t1) / max(1, n), 1),
            "masks_built": ret.masks_built, "labelled": lab.labelled}


def _ratio(num: int, den: int) -> float | None:
    return round(num / den, 4) if den else None


def evaluate(store, world: RealWorld) -> dict:
    """The figures above, from the store's latest automatic labels and auto masks."""
    cases = {store.caption_id(c.caption): c for c in world.cases}
    autos = {cid: store.auto_labels(cid)[-1] for cid in cases if store.auto_labels(cid)}
    file_of = {t.id: Path(t.path_or_url).name for cid in cases for t in store.training_images_for(cid)}
    family_of = {m: fam for fam, f in world.families.items() for m in f["members"]}

    def train_file(tid):
        if tid not in file_of:
            file_of[tid] = Path(store.get_training_image(tid).path_or_url or "").name
        return file_of[tid]

    precision, recall = {}, {}
    for label in LABELS:
        proposed = [c for c, a in autos.items() if a.label == label]
        truth = [c for c, case in cases.items() if case.expected == label]
        right = [c for c in proposed if cases[c].expected == label]
        precision[label] = _ratio(len(right), len(proposed))
        recall[label] = _ratio(len([c for c in truth if c in autos and autos[c].label == label]), len(truth))
    flagged = [c for c, a in autos.items() if a.flags]
    should = [c for c, case in cases.items() if case.flag]
    flag_right = [c for c in flagged if cases[c].flag in autos[c].flags]
    tv = [c for c, a in autos.items() if a.label == "TV"]
    attributed = [c for c in tv if family_of.get(train_file(autos[c].distances.get("tv_train_image_id"))) == cases[c].family]
    ious = []
    for fam, info in world.families.items():
        want = world.keep_mask(fam)
        for t in store.masked_training_images():
            if train_file(t.id) in info["members"]:
                m = store.current_mask(t.id)
                got = store.load_mask(m.image_sha)
                ious.append(float((got & want).sum() / max(1, (got | want).sum())))
    confusion: dict[str, dict[str, int]] = {}
    for c, case in cases.items():
        got = autos[c].label if c in autos else "unlabelled"
        confusion.setdefault(case.kind, {}).setdefault(got, 0)
        confusion[case.kind][got] += 1
    misses = [c for c, case in cases.items() if case.kind in KNOWN_MISSES]
    aligned = {c for c, a in autos.items() if a.distances.get("evidence_kind") == "aligned"}
    return {
        "precision": precision, "recall": recall,
        "flag_precision": _ratio(len(flag_right), len(flagged)), "flag_recall": _ratio(len(flag_right), len(should)),
        "mask_iou_median": round(statistics.median(ious), 4) if ious else None,
        "mask_iou_min": round(min(ious), 4) if ious else None, "masked_family_members": len(ious),
        "family_members": sum(len(f["members"]) for f in world.families.values()),
        "tv_attribution": _ratio(len(attributed), len(tv)),
        "aligned_recall": _ratio(sum(1 for c in misses if c in aligned and autos[c].label == cases[c].expected),
                                 len(misses)),
        "aligned_false": len([c for c in aligned if cases[c].kind not in KNOWN_MISSES]),
        "geometric_cases": len(misses),
        "labels_by_kind": confusion,
    }


def bench(size: int = 512, seed: int = 0, folder: Path | None = None, log=lambda s: None) -> dict:
    from store import Store

    with tempfile.TemporaryDirectory(prefix="verbatim-labels-") as tmp:
        root = Path(folder) if folder else Path(tmp)
        t = time.perf_counter()
        world = build_world(root / "world", size=size, seed=seed)
        log(f"world of {len(world.cases)} captions at {size} px built in {time.perf_counter() - t:.1f} s")
        timings = run_world(world, root / "store")
        with Store.open(root / "store", readonly=True) as store:
            figures = evaluate(store, world)
    return {**figures, **timings, "size": size, "seed": seed, "captions": len(world.cases),
            "caches": "cold: a new store, every image decoded once inside the timed stages",
            "thresholds": "paper (0.12)", "embedder": "pixel", "mask_window": "paper (SSE 1e2..1e3)"}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench labels", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    ap.add_argument("--size", type=int, choices=(256, 512), default=512)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, default=None, help="keep the world and store here (default: a temporary folder)")
    a = ap.parse_args(argv)
    out = bench(a.size, a.seed, a.dir, log=lambda s: print(s, file=sys.stderr, flush=True))
    if not a.json:
        for k, v in out.items():
            print(f"{k:24s} {v}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
