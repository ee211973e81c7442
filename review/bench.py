"""``python -m review bench``: the review app's server time on a store of 100,000 candidates.

The store is store/bench.py's synthetic store (built once through the Store API and cached
under data/bench/), and the candidates opened are given the demo's shape first: J = 4
generations of 32x32 pixels, their own training image with an automatic template mask, and
three retrieved neighbours. Timed, as medians over fresh candidates:
- open_candidate_ms: move to the next candidate of the ranked queue and build its whole view
  (queries, ranks, images, heatmap, mask overlay, HTML, editor value): what the app's j key runs;
- label_ms: record a label (one durable commit) and find the next unlabelled candidate: what a
  digit key runs before the next view is built.
Gradio's own transport (websocket, JSON) is not included: it does not depend on the store.
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from store import Neighbour, Store, StoreError
from store.bench import BENCH_META_KEY, BenchConfig, build
from store.stats import percentile

from . import views

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / "data" / "bench"
ENRICHED = 200            # top candidates given the demo's shape
J = 4
SIZE = 32


@dataclass(frozen=True)
class ReviewBenchConfig:
    candidates: int = 100_000
    captions: Optional[int] = None      # default: 2 x candidates
    tries: int = 60
    seed: int = 0
    dir: Optional[Path] = None          # default: data/bench/review-<captions>-<candidates>


@dataclass(frozen=True)
class ReviewBenchResult:
    candidates: int
    open_candidate_ms: float
    label_ms: float
    open_candidate_p90_ms: float
    label_p90_ms: float
    captions: int
    tries: int
    build_s: float
    store: str


def _store_dir(cfg: ReviewBenchConfig) -> Path:
    captions = cfg.captions or 2 * cfg.candidates
    return Path(cfg.dir) if cfg.dir else DEFAULT_DIR / f"review-{captions}-{cfg.candidates}-{cfg.seed}"


def _enrich(store: Store, rng: np.random.Generator, log: Callable[[str], None]) -> None:
    """Give the top candidates by DCS the demo's shape (idempotent: skips ones already done)."""
    top = [r.caption_id for r in store.page(views.QueueFilter(human="any").query(0, ENRICHED)).rows]
    todo = [c for c in top if len(store.generations(c)) < J]
    if not todo:
        return
    run = store.start_run("generate", "review-bench", {"seeds": J, "size": SIZE})
    with store.transaction():
        for cid in todo:
            base = rng.random((SIZE, SIZE, 3))
            tid = store.add_training_image(store.put_image(base), cid, f"review-bench/{cid}.png")
            mask = np.zeros((SIZE, SIZE), bool)
            mask[: SIZE // 2] = True
            mid = store.add_mask(tid, store.put_mask(mask), source="auto")
            others = [store.add_training_image(store.put_image(rng.random((SIZE, SIZE, 3))), None, "other")
                      for _ in range(2)]
            for s in range(1, J):
                gen = np.clip(base + rng.normal(0, 0.03, base.shape), 0, 1)
                gid = store.add_generation(cid, run, s, 1, "heun", store.put_image(gen))
                store.add_neighbours(gid, [Neighbour(0, tid, 0.97, 0.03, 0.03, mid)]
                                     + [Neighbour(r + 1, o, 0.8, 0.3) for r, o in enumerate(others)])
    store.finish_run(run, evals=len(todo) * (J - 1))
    log(f"gave {len(todo)} candidates J={J} generations of {SIZE}x{SIZE}")


def run_bench(cfg: ReviewBenchConfig, log: Callable[[str], None] = lambda s: None) -> ReviewBenchResult:
    if cfg.tries < 1 or cfg.tries > ENRICHED - 1:
        raise StoreError(f"review bench tries: expected 1..{ENRICHED - 1}, got {cfg.tries}")
    captions = cfg.captions or 2 * cfg.candidates
    if not 1 <= cfg.candidates <= captions:
        raise StoreError(f"review bench: expected 1 <= candidates <= captions, got {cfg.candidates} > {captions}")
    folder = _store_dir(cfg)
    build_s = 0.0
    with Store.open(folder) as store:
        sizes = store.get_meta(BENCH_META_KEY)
        if sizes is None or json.loads(sizes) != [captions, cfg.candidates, cfg.seed]:
            if store.caption_count():
                raise StoreError(f"{folder}: expected an empty folder or a bench store of the same sizes, "
                                 f"got a store with other contents")
            log(f"building a store of {captions:,} captions, {cfg.candidates:,} candidates in {folder} (once)")
            t = time.perf_counter()
            build(store, BenchConfig(captions=captions, candidates=cfg.candidates, seed=cfg.seed), log)
            build_s = time.perf_counter() - t
        else:
            log(f"reusing the bench store {folder}")
        rng = np.random.default_rng(cfg.seed + 2)
        _enrich(store, rng, log)
        n_candidates = store.candidate_count()

        # open: j through the top of the DCS queue (the enriched candidates), one view each
        nav = views.nav_open(store, views.QueueFilter(human="any"), 0)
        views.candidate_view(store, nav.current, nav.position)     # warm caches as a running app would be
        open_ms = []
        for _ in range(cfg.tries):
            t = time.perf_counter()
            nav = views.nav_step(store, nav, 1)
            views.candidate_view(store, nav.current, nav.position)
            open_ms.append((time.perf_counter() - t) * 1000)

        # label: a digit key on the unlabelled queue, from a random depth
        labels = ("MV", "TV", "RV", "N", "FP:texture", "FP:background", "FP:other", "skip")
        filt = views.QueueFilter(human="unlabelled")
        depth = store.page(filt.query(0, 1)).total // 2
        nav = views.nav_open(store, filt, int(rng.integers(0, max(1, min(depth, 2000)))))
        label_ms = []
        for i in range(cfg.tries):
            t = time.perf_counter()
            _, nav, found = views.label_and_advance(store, nav, labels[i % len(labels)], "review-bench")
            label_ms.append((time.perf_counter() - t) * 1000)
            if not found:
                raise StoreError(f"{folder}: expected unlabelled candidates to label, got none left")
    return ReviewBenchResult(
        candidates=n_candidates, open_candidate_ms=round(statistics.median(open_ms), 3),
        label_ms=round(statistics.median(label_ms), 3), open_candidate_p90_ms=round(percentile(open_ms, 90), 3),
        label_p90_ms=round(percentile(label_ms, 90), 3), captions=captions, tries=cfg.tries, build_s=round(build_s, 2),
        store=str(folder))


def result_json(result: ReviewBenchResult) -> str:
    return json.dumps(asdict(result))
