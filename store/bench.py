"""``python -m store bench``: build a synthetic store, time what the review app does.

The synthetic store is built through the Store API inside a few large
transactions (nested calls become savepoints), so the build exercises the
same triggers and checks as real stages. The timed operations are exactly
the app's calls: ``Store.page``, ``Store.add_label`` (durable commit) and
``Store.search``, each on a fresh random input, reported as medians.
"""
from __future__ import annotations

import json
import shutil
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .errors import StoreError
from .records import CaptionRow, Neighbour, PageQuery
from .stats import percentile
from .store import Store

KINDS = ("dcs", "ecs", "wen")
BENCH_META_KEY = "bench_sizes"


@dataclass(frozen=True)
class BenchConfig:
    captions: int = 1_000_000
    candidates: int = 100_000
    tries: int = 60
    seed: int = 0
    dir: Optional[Path] = None       # where to build; a temporary folder if None
    keep: bool = False               # keep the store afterwards (it is reused if sizes match)


@dataclass(frozen=True)
class BenchResult:
    captions: int
    candidates: int
    page_query_ms: float
    label_write_ms: float
    search_ms: float
    label_write_not_durable_ms: float
    build_s: float
    page_query_p90_ms: float
    label_write_p90_ms: float
    search_p90_ms: float
    page_variants_ms: dict
    tries: int
    store: Optional[str]


def _vocabulary(rng: np.random.Generator, n: int = 20_000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in ("a", "e", "i", "o", "u", "ai", "ou")]
    words = set()
    while len(words) < n:
        k = int(rng.integers(1, 4))
        words.add("".join(syllables[i] for i in rng.integers(0, len(syllables), k)))
    return sorted(words)


def _captions(rng: np.random.Generator, n: int, vocab: list[str]) -> list[str]:
    """Unique captions of 4-13 Zipf-distributed words (a few very common, most rare)."""
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.05
    weights /= weights.sum()
    out, seen = [], set()
    while len(out) < n:
        m = n - len(out)
        lengths = rng.integers(4, 14, m)
        idx = rng.choice(len(vocab), int(lengths.sum()), p=weights)
        pos = 0
        for length in lengths:
            text = " ".join(vocab[i] for i in idx[pos:pos + length])
            pos += length
            if text not in seen:
                seen.add(text)
                out.append(text)
    return out


def build(store: Store, cfg: BenchConfig, log: Callable[[str], None]) -> None:
    rng = np.random.default_rng(cfg.seed)
    vocab = _vocabulary(rng)
    texts = _captions(rng, cfg.captions, vocab)
    log(f"captions generated ({len(texts)})")
    batch = 200_000
    ids: list[int] = []
    for start in range(0, len(texts), batch):
        ids += store.add_captions(CaptionRow(t, url=f"https://example.com/{i}.jpg", dup_count=int(d), source="bench")
                                  for i, (t, d) in enumerate(zip(texts[start:start + batch],
                                                                  rng.integers(1, 5000, batch)), start))
        log(f"captions {len(ids)}")
    id_arr = np.array(ids)

    score_run = store.start_run("score", "bench", {"kinds": list(KINDS)})
    values = {k: rng.random(len(ids)) for k in KINDS}
    for k in KINDS:
        store.add_scores(score_run, k, zip(id_arr.tolist(), values[k].tolist()))
        log(f"scores {k}")
    store.finish_run(score_run, evals=len(ids))

    # candidates = top-K by DCS, as the attack picks them
    top = id_arr[np.argsort(-values["dcs"], kind="stable")[:cfg.candidates]].tolist()
    shas = [store.put_image(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)) for _ in range(16)]
    gen_run = store.start_run("generate", "bench", {"seeds": 1})
    label_run = store.start_run("label", "bench", {"delta": 0.12})
    with store.transaction():
        train = [store.add_training_image(shas[i % 16], cid, f"train/{cid}.png") for i, cid in enumerate(top)]
    log("training images")
    with store.transaction():
        gens = [store.add_generation(cid, gen_run, 0, 1, "heun", shas[i % 16]) for i, cid in enumerate(top)]
    log("generations")
    with store.transaction():
        for i, g in enumerate(gens):
            others = rng.integers(0, len(train), 3)
            store.add_neighbours(g, [Neighbour(0, train[i], 0.99, float(rng.random() * 0.3), None)] +
                                 [Neighbour(r + 1, train[int(o)], 0.9, float(rng.random() * 0.3),
                                            float(rng.random() * 0.3)) for r, o in enumerate(others)])
    log("neighbours")
    flags = ("suspect:texture", "suspect:background")
    with store.transaction():
        for cid in top:
            u = rng.random()
            label = "MV" if u < 0.02 else "TV" if u < 0.05 else "RV" if u < 0.06 else "N"
            f = [flags[int(rng.integers(0, 2))]] if rng.random() < 0.05 else []
            store.add_auto_label(cid, label_run, label, {"rmse": float(rng.random())}, f)
    log("auto labels")
    labelled = rng.choice(top, len(top) // 5, replace=False).tolist()
    with store.transaction():
        for cid in labelled:
            store.add_label(int(cid), "N" if rng.random() < 0.9 else "MV", "bench")
            if rng.random() < 0.1:
                store.add_label(int(cid), "TV", "bench2", note="second opinion")
    log("labels")
    store.finish_run(gen_run, evals=len(top))
    store.finish_run(label_run, evals=0)
    store.set_meta(BENCH_META_KEY, json.dumps([cfg.captions, cfg.candidates, cfg.seed]))
    store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def _page_variants(rng: np.random.Generator) -> list[tuple[str, Callable[[], PageQuery]]]:
    """What a reviewer clicks: the default queue, filtered queues, a deeper page."""
    def off() -> int:
        return int(rng.integers(0, 10)) * 50
    return [
        ("unlabelled_by_dcs", lambda: PageQuery("dcs", True, human_label="unlabelled", offset=off())),
        ("auto_MV_unlabelled_by_ecs", lambda: PageQuery("ecs", True, auto_label="MV", human_label="unlabelled")),
        ("flag_texture_by_dcs", lambda: PageQuery("dcs", True, flags=["suspect:texture"])),
        ("human_MV_by_wen_asc", lambda: PageQuery("wen", False, human_label="MV")),
        ("all_by_dcs_asc_page20", lambda: PageQuery("dcs", False, offset=1000)),
    ]


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return (time.perf_counter() - t) * 1000


def measure(store: Store, cfg: BenchConfig) -> dict:
    rng = np.random.default_rng(cfg.seed + 1)
    conn = store.conn
    candidates = [r[0] for r in conn.execute("SELECT caption_id FROM caption_state WHERE n_generations > 0")]
    n_captions = conn.execute("SELECT max(id) FROM captions").fetchone()[0] or 0
    if not candidates:
        raise StoreError(f"{store.path}: expected a bench store with candidates, got none")

    variants = _page_variants(rng)
    for _, make in variants:  # warm the page cache once, as a running app would be
        store.page(make())
    per_variant: dict[str, list[float]] = {name: [] for name, _ in variants}
    page_ms = []
    for i in range(cfg.tries):
        name, make = variants[i % len(variants)]
        q = make()  # built outside the timing
        ms = _time(lambda: store.page(q))
        per_variant[name].append(ms)
        page_ms.append(ms)

    labels = ("MV", "TV", "RV", "N", "FP:texture", "skip")
    targets = [int(c) for c in rng.choice(np.array(candidates), 2 * cfg.tries)]  # picked outside the timing
    write_ms = [_time(lambda: store.add_label(targets[i], labels[i % len(labels)], "bench-writer"))
                for i in range(cfg.tries)]
    # for reference: the same call on a Store opened with durable=False (no fsync per commit)
    with Store.open(store.path, create=False, durable=False) as fast:
        fast_ms = [_time(lambda: fast.add_label(targets[cfg.tries + i], labels[i % len(labels)], "bench-writer"))
                   for i in range(cfg.tries)]

    search_queries = []
    for _ in range(cfg.tries):  # two words of a random caption: the search always has hits
        words = store.get_caption(int(rng.integers(1, n_captions + 1))).text.split()
        search_queries.append(" ".join(words[int(p)] for p in rng.choice(len(words), 2, replace=False)))
    search_ms = [_time(lambda: store.search(q, 20)) for q in search_queries]
    return {
        "page_query_ms": statistics.median(page_ms), "page_query_p90_ms": percentile(page_ms, 90),
        "label_write_ms": statistics.median(write_ms), "label_write_p90_ms": percentile(write_ms, 90),
        "label_write_not_durable_ms": statistics.median(fast_ms),
        "search_ms": statistics.median(search_ms), "search_p90_ms": percentile(search_ms, 90),
        "page_variants_ms": {k: round(statistics.median(v), 3) for k, v in per_variant.items()},
    }


def run_bench(cfg: BenchConfig, log: Callable[[str], None] = lambda s: None) -> BenchResult:
    if cfg.tries < 1:
        raise StoreError(f"bench tries: expected >= 1, got {cfg.tries}")
    tmp = None
    folder = cfg.dir
    if folder is None:
        tmp = tempfile.mkdtemp(prefix="verbatim-bench-")
        folder = Path(tmp) / "store"
    elif not Path(folder).exists() and not cfg.keep:
        tmp = str(folder)  # we create it, so we may remove it
    try:
        build_s = 0.0
        with Store.open(folder) as store:
            sizes = store.get_meta(BENCH_META_KEY)
            if sizes is None or json.loads(sizes) != [cfg.captions, cfg.candidates, cfg.seed]:
                if store.caption_count():
                    raise StoreError(f"{folder}: expected an empty folder or a bench store of the same sizes, "
                                     f"got a store with other contents")
                t = time.perf_counter()
                build(store, cfg, log)
                build_s = time.perf_counter() - t
            else:
                log("reusing the bench store")
            n_candidates, n_captions = store.candidate_count(), store.caption_count()
            m = measure(store, cfg)
        return BenchResult(captions=n_captions, candidates=n_candidates, build_s=round(build_s, 2),
                           tries=cfg.tries, store=str(folder) if (cfg.keep or cfg.dir) else None,
                           **{k: (round(v, 3) if isinstance(v, float) else v) for k, v in m.items()})
    finally:
        if tmp is not None and not cfg.keep:
            shutil.rmtree(tmp, ignore_errors=True)


def result_json(result: BenchResult) -> str:
    return json.dumps(asdict(result), sort_keys=False)
