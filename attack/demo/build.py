"""Build the demo store end to end: the demo world's captions and training images, DCS + ECS +
Wen for every attack caption, J full generations for the top K by DCS, retrieval (kNN + auto
template masks) and automatic labels. Every stage resumes, so a second call reuses what is done.

Budget: a few minutes on a laptop CPU, where the full samplings dominate; that fixes K x J x steps
below, and the choice is stored in each run's params. `python -m attack bench ranking` builds the
store and reports its time (docs/benchmarks.md).
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from attack.demo.ingest import ingest_world
from attack.errors import AttackError
from attack.kinds import DEMO_STORE
from attack.progress import Progress
from attack.selection import select_captions
from attack.stages.generate import GenerateParams
from attack.stages.masks import MaskParams
from attack.stages.retrieve import RetrieveParams
from store import Store

# The demo's template variants repaint a whole region of a 32x32 image (floor, wall, sofa...), so
# siblings lie further apart than LAION's near-duplicates: the window is the paper code's SSE 1e2
# up to RMSE 0.15, chosen so every planted variant gets a mask and no other demo image does
# (tests/test_demo_build.py checks it; the per-sibling min_keep guards the rest).
DEMO_MASKS = MaskParams(rule="window", rmse_max=0.15)
ATTACK_LIST = Path(__file__).resolve().parent / "attack_list.txt"
DEFAULT_STORE = DEMO_STORE


class DemoBuildError(AttackError):
    """The demo build was asked for something outside the demo world."""


@dataclass(frozen=True)
class DemoParams:
    """scores: computed for every attack caption (the paper's conventions, guidance 7.5);
    by: the score that picks the top K; generate: K captions x J seeds x S Heun steps; the
    budget sets K=112 (on the committed model, a larger K adds no planted caption DCS ranks
    high; `bench ranking` reports the recall) x J=2 (J=4 labelled the same captions) x the
    default 16 steps, at the paper's guidance 7.5.
    retrieve: embedder, k, masks; thresholds: label preset. fusions: rank fusions of the scores
    (no network call), so the queue can rank by one."""
    scores: tuple[str, ...] = ("dcs", "ecs", "wen", "anisotropy")
    fusions: tuple[str, ...] = ("dcs+anisotropy",)
    by: str = "dcs"
    generate: GenerateParams = GenerateParams(top_k=112, seeds=(0, 1), steps=16, guidance=7.5)
    retrieve: RetrieveParams = field(default_factory=lambda: RetrieveParams(masks=DEMO_MASKS))
    thresholds: str = "verbatim"
    batch_size: int = 32


def attack_captions() -> list[str]:
    return [line.strip() for line in ATTACK_LIST.read_text(encoding="utf-8").splitlines() if line.strip()]


def build_demo_store(store_dir: Path, *, progress: Progress | None = None,
                     captions: Sequence[str] | None = None, params: DemoParams = DemoParams()) -> dict:
    """Build (or finish building) the demo store in store_dir; returns a summary dict.

    captions: attack captions to score (default: the whole demo attack list; tests pass a few).
    progress(stage, done, total) is called as each stage advances."""
    import torch

    from attack.models import load_model
    from attack.pipeline import Pipeline, PipelineParams

    torch.set_flush_denormal(True)  # subnormal activations slow CPU inference several-fold
    say = progress or (lambda stage, done, total: None)
    t0 = time.perf_counter()
    known = attack_captions()
    texts = list(dict.fromkeys(captions if captions is not None else known))
    unknown = sorted(set(texts) - set(known))
    if not texts or unknown:
        got = "none" if not texts else f"{len(unknown)} other captions, e.g. {unknown[0]!r}"
        raise DemoBuildError(f"expected captions of the demo attack list ({ATTACK_LIST.name}), got {got}")
    model = load_model("demo", "cpu")  # before the store: a missing model or bad input changes nothing
    plan = PipelineParams(scores=params.scores, fusions=params.fusions, by=params.by, generate=params.generate,
                          retrieve=params.retrieve, preset=params.thresholds, batch_size=params.batch_size)
    with Store.open(Path(store_dir)) as store:
        say("ingest", 0, 1)
        ing = ingest_world(store)
        say("ingest", 1, 1)
        run_id = store.open_run("demo", "demo", {"demo": asdict(params), "captions": len(texts)}).id
        with store.running(run_id):
            sel = select_captions(store, texts)
            out = Pipeline(store, model, plan, model_id="demo", progress=say).run(sel)
        store.finish_run(run_id, 0, "done")
    gen, ret, lab = out.generate, out.retrieve, out.label
    return {
        "store": str(store_dir),
        "captions": len(sel),
        "training_images": ing.training_images,
        "ingested": not ing.already_present,
        "scores": {r.kind: {"run_id": r.run_id, "computed": r.computed, "evals": r.evals} for r in out.scores},
        "generate": {"run_id": gen.run_id, "computed": gen.computed, "skipped": gen.skipped},
        "retrieve": {"run_id": ret.run_id, "computed": ret.computed, "neighbours": ret.neighbours,
                     "masks_built": ret.masks_built},
        "labels": {"run_id": lab.run_id, "labelled": lab.labelled, "counts": lab.counts, "flagged": lab.flagged},
        "summaries": out.lines,
        "seconds": round(time.perf_counter() - t0, 1),
        "params": asdict(params),
    }
