"""`python -m attack bench ranking --json`: the demo store's scores and auto labels vs planted truth.

The truth is the demo world's (attack/demo/truth.json); the store is built first when absent.

What counts (stated here because the numbers mean nothing without it):
- Captions: the demo attack list (every planted group's attack captions + 600 uniques).
- Ranking positives: captions of planted exact duplicates, template families and retrieval
  verbatims (the three kinds the paper counts as verbatims). Negatives: the uniques AND the
  planted textures / plain backgrounds, which the paper treats as false positives (pruned by
  hand), so a score that ranks them high is penalised here.
- auc: area under the ROC of each ranking (ties count one half); tpr_at_1pct_fpr: the largest
  true-positive rate at a false-positive rate <= 1%; precision_at_planted: precision among the
  top N captions, N = the number of positives.
- dcs_then_ecs: the paper's Fig. 3 blackbox setting: pre-filter by the whitebox DCS (the top K
  the demo build generates for, the paper's "top 30K"), then sort those by ECS; the rest follow
  in DCS order.
- evals_per_verbatim: guided denoiser calls spent by the ranking over the whole list (the runs'
  stored counts; for dcs_then_ecs, DCS on all plus ECS on the pre-filtered K) divided by the
  positives it ranks in its top N (null if none).
- label_precision / label_recall per label: a caption's current automatic label against its
  planted kind (exact -> MV, template -> TV, retrieval -> RV), counting every proposal, flagged
  or not (a flag is shown to the reviewer; it removes nothing). A planted texture or backdrop
  labelled MV counts as a wrong MV: the demo treats them as the paper's false positives.
  Recall's denominator is every planted caption of the kind, generated for or not. The
  precision among unflagged labels only is printed beside it, on the line before the JSON.
- textures_flagged: fraction of planted textures and backgrounds whose automatic label is N or
  carries a suspect:* flag (one never generated for, i.e. never proposed, counts as N);
  flag_precision: fraction of flagged labels whose caption is a planted texture or backdrop.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from attack.demo.build import DEFAULT_STORE, DemoParams, build_demo_store

TRUTH = Path(__file__).resolve().parent.parent / "demo" / "truth.json"
POSITIVE = {"exact": "MV", "template": "TV", "retrieval": "RV"}
FALSE_POSITIVE_KINDS = ("texture",)
SCORES = ("dcs", "ecs", "wen", "dcs_then_ecs")


def auc(pos: Sequence[float], neg: Sequence[float]) -> float:
    """P(score of a random positive > that of a random negative), ties one half (scikit-learn's
    roc_auc_score)."""
    from sklearn.metrics import roc_auc_score

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    return float(roc_auc_score([1] * len(pos) + [0] * len(neg), list(pos) + list(neg)))


def tpr_at_fpr(pos: Sequence[float], neg: Sequence[float], fpr: float = 0.01) -> float:
    """Largest TPR over thresholds whose FPR (scores >= threshold) stays <= fpr (scikit-learn's
    roc_curve, every threshold kept)."""
    from sklearn.metrics import roc_curve

    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    f, t, _ = roc_curve([1] * len(pos) + [0] * len(neg), list(pos) + list(neg), drop_intermediate=False)
    return float(t[f <= fpr + 1e-12].max())


def precision_at(values: dict[int, float], positives: set[int], n: int) -> tuple[float, int]:
    top = sorted(values, key=lambda c: -values[c])[:n]
    hits = sum(c in positives for c in top)
    return hits / max(1, len(top)), hits


def _run_evals(store, kind: str) -> tuple[float, int]:
    """(guided calls per caption, captions scored) of the newest demo score run of this kind."""
    run = [r for r in store.runs(stage="score", model="demo") if r.params.get("score") == kind][-1]
    n = store.score_count(run.id, kind)
    return run.evals / max(1, n), n


def evaluate(store, truth: dict, prefilter: int) -> tuple[dict, dict]:
    """(the benchmark's JSON object, extra figures) for an opened demo store."""
    from attack.stages.rank import latest_scores

    attack = truth["attack"]
    ids = {a["caption"]: store.caption_id(a["caption"]) for a in attack}
    missing = [c for c, i in ids.items() if i is None]
    if missing:
        raise SystemExit(f"error: expected the demo attack captions in the store, got {len(missing)} missing "
                         f"(e.g. {missing[0]!r}); build it with python -m attack demo")
    kind = {ids[a["caption"]]: a["kind"] for a in attack}
    positives = {c for c, k in kind.items() if k in POSITIVE}
    scores = {k: latest_scores(store, k, "demo") for k in ("dcs", "ecs", "wen")}
    dcs = scores["dcs"]
    top = sorted(dcs, key=lambda c: -dcs[c])[:prefilter]
    dcs_rank = {c: r for r, c in enumerate(sorted(dcs, key=lambda c: -dcs[c]))}
    combo = {c: (2.0 + scores["ecs"].get(c, 0.0)) if c in set(top) else 1.0 - dcs_rank[c] / (len(dcs) + 1) for c in dcs}
    scores["dcs_then_ecs"] = combo
    per_caption = {k: _run_evals(store, k) for k in ("dcs", "ecs", "wen")}
    spent = {k: per_caption[k][0] * per_caption[k][1] for k in ("dcs", "ecs", "wen")}
    spent["dcs_then_ecs"] = spent["dcs"] + per_caption["ecs"][0] * min(prefilter, len(dcs))
    out: dict = {"auc": {}, "tpr_at_1pct_fpr": {}, "precision_at_planted": {}, "evals_per_verbatim": {}}
    for name in SCORES:
        vals = {c: v for c, v in scores[name].items() if c in kind}
        pos = [v for c, v in vals.items() if c in positives]
        neg = [v for c, v in vals.items() if c not in positives]
        out["auc"][name] = round(auc(pos, neg), 4)
        out["tpr_at_1pct_fpr"][name] = round(tpr_at_fpr(pos, neg), 4)
        prec, hits = precision_at(vals, positives, len(positives))
        out["precision_at_planted"][name] = round(prec, 4)
        out["evals_per_verbatim"][name] = round(spent[name] / hits, 2) if hits else None
    latest = {a.caption_id: (a.label, list(a.flags)) for a in store.auto_label_states()}
    prec, rec, prec_unflagged = {}, {}, {}
    for label in ("MV", "TV", "RV"):
        truth_set = {c for c, k in kind.items() if POSITIVE.get(k) == label}
        proposed = {c for c, (lab, _) in latest.items() if c in kind and lab == label}
        unflagged = {c for c, (lab, fl) in latest.items() if c in kind and lab == label and not fl}
        prec[label] = round(len(proposed & truth_set) / len(proposed), 4) if proposed else None
        rec[label] = round(len(proposed & truth_set) / len(truth_set), 4) if truth_set else None
        prec_unflagged[label] = round(len(unflagged & truth_set) / len(unflagged), 4) if unflagged else None
    fps = [c for c, k in kind.items() if k in FALSE_POSITIVE_KINDS]
    ok = [c for c in fps if c not in latest or latest[c][0] == "N" or latest[c][1]]
    flagged = [c for c, (_, fl) in latest.items() if c in kind and fl]
    out["label_precision"], out["label_recall"] = prec, rec
    out["textures_flagged"] = round(len(ok) / len(fps), 4) if fps else None
    out["flag_precision"] = round(sum(kind[c] in FALSE_POSITIVE_KINDS for c in flagged) / len(flagged), 4) \
        if flagged else None
    flagged_true = [c for c, (lab, fl) in latest.items() if c in kind and POSITIVE.get(kind[c]) == lab and fl]
    extra = {"label_precision_unflagged": prec_unflagged,
             "textures_generated": sum(c in latest for c in fps), "textures": len(fps),
             "true_labels_flagged": len(flagged_true), "positives": len(positives), "negatives": len(kind) - len(positives),
             "prefilter": prefilter, "labelled": sum(c in latest for c in kind),
             "labels": {lab: sum(1 for c, (lb, _) in latest.items() if c in kind and lb == lab) for lab in ("TV", "MV", "RV", "N")}}
    extra["template_mask_iou"] = _mask_iou(store, truth)
    return out, extra


def _mask_iou(store, truth: dict) -> dict | None:
    """Auto masks of the planted template images against the family's true keep-mask (IoU):
    how many template images got a mask, and the median and minimum IoU."""
    masks = truth.get("template_masks") or {}
    image_group = {i: g["group"] for g in truth["groups"] if g["kind"] == "template" for i in g["images"]}
    ious = []
    for t in store.masked_training_images():
        tid, k = t.id, t.meta.get("image_index")
        if k not in image_group or image_group[k] not in masks:
            continue
        want = np.array([[c == "1" for c in row] for row in masks[image_group[k]]])
        got = store.load_mask(store.current_mask(tid).image_sha)
        if got.shape == want.shape:
            ious.append(float((got & want).sum() / max(1, (got | want).sum())))
    if not ious:
        return None
    return {"masked_template_images": len(ious), "of": len(image_group),
            "median": round(float(np.median(ious)), 4), "min": round(min(ious), 4)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench ranking", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the figures and the JSON result")
    ap.add_argument("--store", type=Path, default=DEFAULT_STORE, help=f"demo store (default {DEFAULT_STORE}; built or "
                                                                         "finished first, every stage resumes)")
    ap.add_argument("--no-build", action="store_true", help="evaluate the store as it is")
    ap.add_argument("--fresh", action="store_true", help="build a new store in a temporary folder (timed from "
                                                         "scratch: build_s is the whole demo build), then delete it")
    a = ap.parse_args(argv)
    if a.fresh and a.no_build:
        ap.error("expected one of --fresh and --no-build, got both")
    if not a.fresh:
        return _bench(a.store, a.no_build, a.json)
    with tempfile.TemporaryDirectory(prefix="verbatim-ranking-") as tmp:
        return _bench(Path(tmp) / "demo", a.no_build, a.json)


def _bench(store_dir: Path, no_build: bool, json_only: bool) -> int:
    from store import Store

    params = DemoParams()
    existed, build_s = (store_dir / "store.db").exists(), None
    if not no_build:
        def progress(stage: str, done: int, total: int) -> None:
            if not json_only and done == total:
                print(f"{stage}: {done}/{total}", file=sys.stderr)
        t0 = time.perf_counter()
        build_demo_store(store_dir, progress=progress, params=params)
        build_s = round(time.perf_counter() - t0, 1)
    truth = json.loads(TRUTH.read_text(encoding="utf-8"))
    with Store.open(store_dir, readonly=True) as store:
        out, extra = evaluate(store, truth, params.generate.top_k)
    # build_s: the demo build's wall time in this call (from scratch when the store did not exist)
    out = {**out, "build_s": build_s, "store_existed": existed}
    if not json_only:
        for k in ("auc", "tpr_at_1pct_fpr", "precision_at_planted", "evals_per_verbatim"):
            print(f"{k:22s} " + "  ".join(f"{s}={out[k][s]}" for s in SCORES))
    print(json.dumps(extra))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
