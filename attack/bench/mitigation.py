"""`python -m attack bench mitigation --json`: the demo model before and after each inference-time mitigation.

On a new store of the demo world, the demo model and each mitigated model (MITIGATIONS:
demo+mitigate:cfg=3, +mitigate:rta=4, +mitigate:wen) generate J full samplings of every planted
memorized attack caption (exact, template, retrieval) and of a seeded subset of the uniques, in
the selection's order (no score ranks them); retrieval and the demo model's labels follow, then
`attack compare` of the demo model with each mitigation labels each side from its own
generations. Figures per model:
- copies: among the planted captions of each kind, how many its side labels as that kind's copy
  (exact -> MV, template -> TV, retrieval -> RV), and how many as any copy;
- unique_median_own_rmse: the uniques' median distance to their own training image (min over the
  J generations): how far a mitigation moves ordinary generations (the demo model's is the base);
- evals_per_caption: guided denoiser calls of its generate run per caption, and extra_evals_per_caption
  over the demo model's (wen's embedding adjustment, in the same units);
and per mitigation the compare outcomes against the demo model (removed / persisting / new / neither).
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

BASE = "demo"
MITIGATIONS = ("demo+mitigate:cfg=3", "demo+mitigate:rta=4", "demo+mitigate:wen")
PLANTED = {"exact": "MV", "template": "TV", "retrieval": "RV"}


def _captions(world, uniques: int, per_kind: int | None = None) -> dict[str, list[str]]:
    import numpy as np

    out = {k: [a.caption for a in world.attack if a.kind == k][:per_kind] for k in PLANTED}
    pool = [a.caption for a in world.attack if a.kind == "unique"]
    pick = np.random.default_rng(1234).permutation(len(pool))[:uniques]
    out["unique"] = [pool[i] for i in sorted(pick)]
    return out


def _side_figures(rows, side: str, kinds: dict[int, str]) -> dict:
    copies = {k: {"planted": 0, "as_kind": 0, "any_copy": 0} for k in PLANTED}
    own = []
    for r in rows:
        s, kind = getattr(r, side), kinds.get(r.caption_id)
        if kind in PLANTED:
            c = copies[kind]
            c["planted"] += 1
            c["as_kind"] += s.label == PLANTED[kind]
            c["any_copy"] += s.copy
        elif kind == "unique" and s.own_distance is not None:
            own.append(s.own_distance)
    return {"copies": copies, "unique_median_own_rmse": round(statistics.median(own), 4) if own else None}


def bench(folder: Path, uniques: int = 24, seeds: tuple[int, ...] = (0, 1), steps: int = 16,
          models: tuple[str, ...] = MITIGATIONS, per_kind: int | None = None, log=lambda s: None) -> dict:
    """The figures above; per_kind: only the first N planted captions of each kind (None: all)."""
    import torch

    from attack.compare import compare_models
    from attack.demo.build import DEMO_MASKS
    from attack.demo.ingest import ingest_world
    from attack.demo.world import build_world
    from attack.models import load_model
    from attack.pipeline import Pipeline, PipelineParams
    from attack.stages.generate import GenerateParams
    from attack.stages.retrieve import RetrieveParams
    from store import Store

    torch.set_flush_denormal(True)
    world = build_world(0)
    groups = _captions(world, uniques, per_kind)
    texts = [c for k in (*PLANTED, "unique") for c in groups[k]]
    gen = GenerateParams(top_k=len(texts), seeds=tuple(seeds), steps=steps)
    params = PipelineParams(scores=(), by="none", generate=gen, retrieve=RetrieveParams(masks=DEMO_MASKS))
    out: dict = {"captions": {k: len(v) for k, v in groups.items()}, "seeds": len(seeds), "steps": steps,
                 "models": {}, "compare": {}}
    with Store.open(folder / "store") as store:
        ingest_world(store, world)
        kinds = {store.caption_id(c): k for k, cs in groups.items() for c in cs}
        evals, seconds = {}, {}
        for spec in (BASE, *models):           # the demo model first: the store's audited model
            t = time.perf_counter()
            model = load_model(spec)
            stages = ("generate", "retrieve", "label") if spec == BASE else ("generate", "retrieve")
            Pipeline(store, model, params).run(texts, stages=stages)
            seconds[spec] = round(time.perf_counter() - t, 1)
            (run,) = [r for r in store.runs(stage="generate", fingerprint=model.fingerprint(store.digest_cache()))]
            evals[spec] = run.evals / len(texts)
            log(f"{spec}: generated, retrieved in {seconds[spec]} s")
        for spec in models:
            result = compare_models(store, BASE, spec)
            if BASE not in out["models"]:
                out["models"][BASE] = {**_side_figures(result.rows, "a", kinds),
                                       "evals_per_caption": round(evals[BASE], 2), "extra_evals_per_caption": 0.0,
                                       "seconds": seconds[BASE]}
            out["models"][spec] = {**_side_figures(result.rows, "b", kinds),
                                   "evals_per_caption": round(evals[spec], 2),
                                   "extra_evals_per_caption": round(evals[spec] - evals[BASE], 2),
                                   "seconds": seconds[spec]}
            out["compare"][spec] = {"outcomes": result.counts(), "by_type": result.by_type(),
                                    "compare_run": result.run_id}
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m attack bench mitigation", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="only the JSON line on stdout")
    ap.add_argument("--uniques", type=int, default=24, help="unique captions sampled (seeded subset)")
    ap.add_argument("--seeds", type=int, default=2, help="generations per caption (seeds 0..J-1)")
    ap.add_argument("--steps", type=int, default=16, help="Heun steps of each generation")
    ap.add_argument("--per-kind", type=int, help="only the first N planted captions of each kind (default: all)")
    ap.add_argument("--model", action="append", help="only this mitigated model (repeatable; default: "
                                                     + ", ".join(MITIGATIONS) + ")")
    ap.add_argument("--dir", type=Path, help="keep the store here (default: a temporary folder)")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="verbatim-mitigation-") as tmp:
        folder = a.dir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        out = bench(folder, a.uniques, tuple(range(a.seeds)), a.steps, tuple(a.model or MITIGATIONS), a.per_kind,
                    log=lambda s: print(s, file=sys.stderr, flush=True))
    out["seconds"] = round(time.perf_counter() - t, 1)
    out["caches"] = "cold: a new store, every model generated, retrieved and compared in this run"
    if not a.json:
        for spec, m in out["models"].items():
            print(spec, json.dumps(m))
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
