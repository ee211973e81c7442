"""`python -m attack bench memorization --json`: does the demo model copy what it should?

For each planted group (and a seeded subset of the uniques) the fraction of attack captions whose
best of J full samplings lies within RMSE 0.12 (256x256, Lanczos) of a training image of the right
kind: its own image for exact duplicates and textures, any family variant under the family's
keep-mask for templates, the duplicated image for retrieval verbatims, its own image for uniques.

Negative control of the template rows (template_negative_control): the same generations under
the same family keep-mask against every training image of no family of the kind. A mask that
keeps too little lets unrelated images pass too; the rate says how often one does.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from attack.demo.net import WEIGHTS_DIR
from attack.demo.world import AttackCaption, World, build_world
from attack.images.metrics import mask_to_compare, masked_rmse, rmse, to_compare
from attack.models.demo import DemoModel


@dataclass(frozen=True)
class MemorizationParams:
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    steps: int = 16
    guidance: float = 7.5
    threshold: float = 0.12
    unique_limit: int = 200  # uniques evaluated (seeded subset); 0 = all of the attack list's
    batch_size: int = 64
    kinds: tuple[str, ...] = ()  # restrict to these kinds (quick checks); () = all


@dataclass(frozen=True)
class CaptionResult:
    caption: str
    kind: str
    group: str
    best_rmse: float
    copied: bool
    unrelated_rmse: float | None = None   # templates: best masked RMSE to an unrelated training image


def unrelated_images(world: World) -> list[int]:
    """Training images of no template family (the negative control's references)."""
    family = {r.image_index for r in world.rows if r.kind == "template"}
    return sorted({r.image_index for r in world.rows} - family)

def evaluate(model: DemoModel, world: World, p: MemorizationParams) -> tuple[list[CaptionResult], float]:
    """Sample every selected attack caption J times; returns results and images per second."""
    attack = [a for a in world.attack if a.kind != "unique"]
    uniques = [a for a in world.attack if a.kind == "unique"]
    if p.unique_limit and len(uniques) > p.unique_limit:
        pick = np.random.default_rng(1234).permutation(len(uniques))[: p.unique_limit]
        uniques = [uniques[i] for i in sorted(pick)]
    attack += uniques
    if p.kinds:
        attack = [a for a in attack if a.kind in p.kinds]
    refs = to_compare(np.stack(world.images))
    masks = {g: mask_to_compare(m) for g, m in world.masks.items()}
    unrelated = refs[unrelated_images(world)]
    results, n_images, t_sample = [], 0, 0.0
    per_batch = max(1, p.batch_size // len(p.seeds))
    for i in range(0, len(attack), per_batch):
        chunk = attack[i:i + per_batch]
        caps = [a.caption for a in chunk for _ in p.seeds]
        seeds = [s for _ in chunk for s in p.seeds]
        t0 = time.perf_counter()
        out = model.sample(caps, seeds, steps=p.steps, guidance=p.guidance)
        t_sample += time.perf_counter() - t0
        n_images += len(caps)
        gen = to_compare(out.images).view(len(chunk), len(p.seeds), 3, *refs.shape[-2:])
        for a, g in zip(chunk, gen):
            best = best_distance(g, a, refs, masks)
            control = None
            if a.kind == "template":
                control = min(float(masked_rmse(g, u.expand_as(g), masks[a.group]).min()) for u in unrelated)
            results.append(CaptionResult(a.caption, a.kind, a.group, best, best <= p.threshold, control))
    return results, n_images / max(t_sample, 1e-9)


def best_distance(gen: torch.Tensor, a: AttackCaption, refs: torch.Tensor, masks: dict[str, torch.Tensor]) -> float:
    """Best over J generations [J,3,S,S] and the caption's target images of the RMSE (masked by
    the family's keep-mask for templates), all at the compare size."""
    best = float("inf")
    for k in a.target_images:
        ref = refs[k].expand_as(gen)
        d = masked_rmse(gen, ref, masks[a.group]) if a.kind == "template" else rmse(gen, ref)
        best = min(best, float(d.min()))
    return best


def _control(results: list[CaptionResult], threshold: float) -> dict | None:
    """Template generations vs unrelated training images under the family mask: how many pass."""
    d = [x.unrelated_rmse for x in results if x.unrelated_rmse is not None]
    if not d:
        return None
    return {"unrelated_pass_rate": round(sum(v <= threshold for v in d) / len(d), 4),
            "min_unrelated_masked_rmse": round(min(d), 4), "median_unrelated_masked_rmse": round(float(np.median(d)), 4),
            "captions": len(d)}


def run(weights: Path = WEIGHTS_DIR, params: MemorizationParams = MemorizationParams(),
        device: str = "cpu") -> dict:
    model = DemoModel.load(weights, device)
    world = build_world(0)
    results, ips = evaluate(model, world, params)

    def rate(kind: str) -> float | None:
        r = [x.copied for x in results if x.kind == kind]
        return round(sum(r) / len(r), 4) if r else None

    log = json.loads((weights / "train_log.json").read_text()) if (weights / "train_log.json").is_file() else {}
    by_group: dict[str, list[float]] = {}
    for x in results:
        if x.group:
            by_group.setdefault(x.group, []).append(x.best_rmse)
    return {
        "params": asdict(params),
        "groups": {g: {"copied": sum(v <= params.threshold for v in d), "of": len(d),
                       "median_best_rmse": round(float(np.median(d)), 4)} for g, d in sorted(by_group.items())},
        "unique_median_best_rmse": (round(float(np.median(u)), 4) if (u := [x.best_rmse for x in results if x.kind == "unique"]) else None),
        "exact_copy_rate": rate("exact"),
        "template_copy_rate": rate("template"),
        "retrieval_copy_rate": rate("retrieval"),
        "texture_copy_rate": rate("texture"),
        "unique_copy_rate": rate("unique"),
        "template_negative_control": _control(results, params.threshold),
        "train_minutes": log.get("train_minutes"),
        "weights_mb": round(sum(f.stat().st_size for f in weights.glob("*.safetensors")) / 2 ** 20, 2),
        "sample_images_per_s": round(ips, 2),
    }


def main(argv: list[str] | None = None) -> int:
    torch.set_flush_denormal(True)  # subnormal activations slow CPU inference several-fold
    ap = argparse.ArgumentParser(prog="python -m attack bench memorization", description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print only the JSON result")
    ap.add_argument("--weights", type=Path, default=WEIGHTS_DIR)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--unique-limit", type=int, default=MemorizationParams.unique_limit)
    ap.add_argument("--steps", type=int, default=MemorizationParams.steps)
    ap.add_argument("--seeds", type=int, default=len(MemorizationParams.seeds), help="J full samplings per caption")
    ap.add_argument("--kinds", default="", help="comma-separated kinds to evaluate (default: all)")
    ap.add_argument("--guidance", type=float, default=MemorizationParams.guidance)
    a = ap.parse_args(argv)
    params = MemorizationParams(seeds=tuple(range(a.seeds)), unique_limit=a.unique_limit, steps=a.steps, guidance=a.guidance,
                                kinds=tuple(k for k in a.kinds.split(",") if k))
    res = run(a.weights, params, a.device)
    if not a.json:
        for g, d in res["groups"].items():
            print(f"{g:28s} {d['copied']:3d}/{d['of']:<3d} median best RMSE {d['median_best_rmse']:.3f}")
    print(json.dumps({k: v for k, v in res.items() if k not in ("groups", "params")} | {"params": res["params"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
