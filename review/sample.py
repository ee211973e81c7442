"""A small synthetic store for trying the app and for its tests: candidates with scores,
J generations, their own training image, retrieved neighbours, template masks and automatic
labels, built through the Store API only (no model)."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from store import CaptionRow, Neighbour, Store

SCRIPT_CAPTION = '<script>window.__vb_pwned = 1</script><img src=x onerror="window.__vb_pwned = 2"> red sofa'


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")


@lru_cache(maxsize=None)
def _source(name: str) -> np.ndarray:
    import skimage.data
    return np.ascontiguousarray(getattr(skimage.data, name)()[..., :3])


def _photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random crop of one of scikit-image's bundled photos, at size x size in [0, 1]."""
    from PIL import Image

    a = _source(PHOTOS[int(rng.integers(0, len(PHOTOS)))])
    side = int(min(a.shape[:2]) * rng.uniform(0.3, 0.7))
    y, x = int(rng.integers(0, a.shape[0] - side)), int(rng.integers(0, a.shape[1] - side))
    crop = Image.fromarray(np.ascontiguousarray(a[y:y + side, x:x + side])).resize((size, size), Image.LANCZOS)
    return np.asarray(crop, dtype=np.float64) / 255.0


def _noisy(rng: np.random.Generator, base: np.ndarray, amount: float) -> np.ndarray:
    return np.clip(base + rng.normal(0, amount, base.shape), 0, 1)


def _distances(rows: list, tid: int, mask_id) -> dict:
    """The automatic label's distances in the labeller's shape (attack.stages.labels): the best TV / MV /
    RV pair with its generation and training image, every own pair, the thresholds."""
    g_mv, d_mv, _ = min(rows, key=lambda r: r[1])
    out = {"mv": d_mv, "mv_generation_id": g_mv, "mv_train_image_id": tid,
           "rv": d_mv, "rv_generation_id": g_mv, "rv_train_image_id": tid, "rv_rank": 0,
           "mv_pairs": [[g, tid, d] for g, d, _ in rows], "thresholds": {"tv": 0.12, "mv": 0.12, "rv": 0.12},
           "tv": None}
    if mask_id is not None:
        g_tv, _, d_tv = min(rows, key=lambda r: r[2])
        out.update({"tv": d_tv, "tv_generation_id": g_tv, "tv_train_image_id": tid, "tv_rank": 0,
                    "tv_mask_id": mask_id, "tv_mask_version": 1})
    return out


def build_sample_store(store: Store, n: int = 30, size: int = 32, seeds: int = 4, seed: int = 0) -> list[int]:
    """n candidates (caption ids returned in DCS order, highest first); every 5th is a copy
    (MV), every 7th a template (TV, with an auto mask), the rest not copies. The first caption
    holds HTML/script text."""
    rng = np.random.default_rng(seed)
    score_run = store.start_run("score", "sample", {"kinds": ["dcs", "ecs", "wen"]})
    gen_run = store.start_run("generate", "sample", {"seeds": seeds})
    label_run = store.start_run("label", "sample", {"delta": 0.12})
    texts = [SCRIPT_CAPTION] + [f"sample caption {i} {w}" for i, w in
                                zip(range(1, n), ("carpet", "poster", "sofa", "mug", "lamp", "shirt") * n)]
    ids = store.add_captions([CaptionRow(t, url=f"https://example.com/{i}.jpg", dup_count=int(1 + (i * 37) % 400),
                                         source="sample") for i, t in enumerate(texts)])
    dcs = np.sort(rng.random(n))[::-1] * 10
    with store.transaction():
        store.add_scores(score_run, "dcs", list(zip(ids, dcs.tolist())))
        store.add_scores(score_run, "ecs", list(zip(ids, rng.random(n).tolist())))
        store.add_scores(score_run, "wen", list(zip(ids, (rng.random(n) * 5).tolist())))
    others = [store.add_training_image(store.put_image(_photo(rng, size)), None, f"other/{k}.png")
              for k in range(4)]
    for i, cid in enumerate(ids):
        kind = "MV" if i % 5 == 0 else "TV" if i % 7 == 0 else "N"
        base = _photo(rng, size)
        tid = store.add_training_image(store.put_image(base), cid, f"train/{i}.png", {"index": i})
        mask = None
        if kind == "TV":
            mask = np.zeros((size, size), bool)
            mask[: size // 2] = True
            mid = store.add_mask(tid, store.put_mask(mask), source="auto")
        rows = []                          # (generation id, RMSE, masked RMSE) per seed
        for s in range(seeds):
            if kind == "MV":
                gen = _noisy(rng, base, 0.02)
            elif kind == "TV":
                gen = base.copy()
                gen[size // 2:] = _photo(rng, size)[size // 2:]
                gen = _noisy(rng, gen, 0.02)
            else:
                gen = _photo(rng, size)
            gid = store.add_generation(cid, gen_run, s, 1, "heun", store.put_image(gen))
            d = round(float(np.sqrt(((gen - base) ** 2).mean())), 6)
            md = round(float(np.sqrt(((gen - base) ** 2)[mask].mean())), 6) if mask is not None else None
            rows.append((gid, d, md))
            store.add_neighbours(gid, [Neighbour(0, tid, 0.95, d, md, mid if mask is not None else None)]
                                 + [Neighbour(r + 1, others[(i + r) % 4], 0.5 - 0.1 * r, 0.4, None)
                                    for r in range(2)])
        flags = ["suspect:texture"] if i % 6 == 3 else []
        store.add_auto_label(cid, label_run, kind, _distances(rows, tid, mid if mask is not None else None), flags)
    for r in (score_run, gen_run, label_run):
        store.finish_run(r, evals=n)
    return ids
