"""The retrieval stage: k nearest training images of every generation, with their RMSE and, for
retrieved images that have near-duplicates, an auto template mask and the masked RMSE.

Resumable: generations that already have neighbours are skipped. One write transaction per
batch of generations. Masks are built before the neighbours that use them are written, so a
neighbour row carries the masked distance under the mask version it was computed with.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from attack.images.compare import ComparePixels, Lru
from attack.images.embed import Embedder, load_embedder
from attack.images.index import (
    RetrievalError,
    TrainIndex,
    embed_tensors,
    image_tensor,
    load_autofaiss,
    on_threads,
    store_index,
    unit_chw,
)
from attack.images.metrics import COMPARE_SIZE, mask_to_compare, masked_rmse, rmse
from attack.paths import resolve_inside
from attack.progress import Progress
from attack.stages.claims import shared_batches
from attack.stages.masks import (
    MaskParams,
    block_means,
    denoise,
    mask_grid,
    possible_siblings,
    resize_mask,
    template_mask,
)
from store import Neighbour, Store


@dataclass(frozen=True)
class RetrieveParams:
    """embedder: spec (attack.images.embed); k: neighbours per generation; factory / nprobe: the faiss
    index over the store's training images; masks: near-duplicate window and mask morphology."""
    embedder: str = "pixel"
    k: int = 10
    factory: str = "Flat"
    nprobe: int = 16
    masks: MaskParams = field(default_factory=MaskParams)

    def __post_init__(self) -> None:
        if self.k < 1:
            raise RetrievalError(f"expected k >= 1 neighbours, got {self.k}")


class CompareImages(ComparePixels):
    """ComparePixels as torch float32 [3,S,S] in [0,1] (to_compare's output is exactly k/255), with
    what retrieval derives from an image, made once per image and stage: the float tensor (turning
    8-bit pixels into floats at every comparison cost more than the comparisons), its block_means
    (the masks' near-duplicate test), its size and its image at the size masks are computed on."""

    def __init__(self, store: Store, max_items: int = 2048, max_floats: int = 384, workers: int | None = None):
        super().__init__(store, max_items)
        self.workers = workers or torch.get_num_threads()        # threads that decode (prefetch)
        self._floats: Lru[torch.Tensor] = Lru(max_floats)      # 768 KB each at 256 px
        self._soft: Lru[torch.Tensor] = Lru(max_items)          # 48 KB each
        self._denoised: Lru[torch.Tensor] = Lru(max_floats // 2)    # only family members get there
        self._natives: Lru[torch.Tensor] = Lru(max_items)       # images smaller than the compare size
        self._sizes: Lru[tuple[int, int]] = Lru(16 * max_items)
        self._shas: Lru[str] = Lru(16 * max_items)

    def get(self, sha: str) -> torch.Tensor:
        return self._floats.get(sha, lambda: torch.from_numpy(self._array(sha)))

    def _array(self, sha: str) -> np.ndarray:
        return unit_chw(self.store.compare_pixels(sha))

    def stack(self, shas: Sequence[str]) -> torch.Tensor:
        return torch.stack([self.get(s) for s in shas]) if shas else torch.zeros(0, 3, COMPARE_SIZE, COMPARE_SIZE)

    def prefetch(self, shas: Sequence[str]) -> None:
        """Decode the images not seen yet on_threads, ahead of their use."""
        todo = list(dict.fromkeys(s for s in shas if s not in self._floats))
        for sha, arr in zip(todo, on_threads(self._array, todo, self.workers)):
            self._floats.put(sha, torch.from_numpy(arr))

    def soft(self, sha: str) -> torch.Tensor:
        """block_means of the compare image [3,s,s]."""
        return self._soft.get(sha, lambda: block_means(self.get(sha)[None])[0])

    def denoised(self, sha: str) -> torch.Tensor:
        """denoise of the compare image [3,S,S]."""
        return self._denoised.get(sha, lambda: denoise(self.get(sha)[None])[0])

    def size(self, sha: str) -> tuple[int, int]:
        return self._sizes.get(sha, lambda: self.store.image_size(sha))

    def native(self, sha: str) -> torch.Tensor:
        """image_tensor(store, sha): the image at its own size up to the compare size, else its compare image."""
        if max(self.size(sha)) >= COMPARE_SIZE:
            return self.get(sha)
        return self._natives.get(sha, lambda: image_tensor(self.store, sha))

    def sha_of(self, train_image_id: int) -> str:
        return self._shas.get(train_image_id, lambda: self.store.get_training_image(train_image_id).sha256)


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """torch on one thread inside the block. Retrieval's tensors are a few 256-px images at a time:
    intra-op threads gain them little, and every op waits until its threads are scheduled, which on
    a busy machine costs milliseconds per op (threads fight); the block's distances then no longer
    depend on the thread count either. Decoding keeps its threads (CompareImages.workers)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@dataclass
class MaskBook:
    """Per stage call: the current mask (id, keep at compare size) of each training image seen,
    building an auto mask from near-duplicates when the image has none."""
    store: Store
    index: TrainIndex
    embedder: Embedder
    params: MaskParams
    images: CompareImages
    built: int = 0
    examined: int = 0
    _seen: dict[int, tuple[int, torch.Tensor] | None] = field(default_factory=dict)

    def get(self, train_image_id: int) -> tuple[int, torch.Tensor] | None:
        if train_image_id not in self._seen:
            self._seen[train_image_id] = self._current(train_image_id) or self._build(train_image_id)
        return self._seen[train_image_id]

    def _current(self, tid: int) -> tuple[int, torch.Tensor] | None:
        m = self.store.current_mask(tid)
        return None if m is None else (m.id, mask_to_compare(self.store.load_mask(m.image_sha)))

    def _grid(self, shas: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The images at their own size when they share one below the compare size (mask_grid);
        None otherwise, and when every image is at least that large: their own-size view is then
        the compare image itself, the grid template_mask falls back to."""
        if all(max(self.images.size(s)) >= COMPARE_SIZE for s in shas):
            return None
        natives = mask_grid([self.images.native(s) for s in shas])
        return None if natives is None else (natives[0], natives[1:])

    def _denoised(self, sha: str, shas: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """denoise of the compare images of sha and shas (a family's members meet again and again)."""
        return self.images.denoised(sha), torch.stack([self.images.denoised(s) for s in shas])

    def _build(self, tid: int) -> tuple[int, torch.Tensor] | None:
        if self.index.meta is not None:
            return None  # external index: near-duplicates are not in the store
        self.examined += 1
        sha = self.images.sha_of(tid)
        own = self.images.native(sha)
        _, rows = self.index.search(embed_tensors(self.embedder, [own]), self.params.candidates + 1)
        cand_ids = [int(self.index.ids[r]) for r in rows[0] if r >= 0 and int(self.index.ids[r]) != tid]
        keep = [(c, s) for c in cand_ids if (s := self.images.sha_of(c)) != sha][: self.params.candidates]
        if not keep:
            return None
        soft_ref, soft = self.images.soft(sha), torch.stack([self.images.soft(s) for _, s in keep])
        possible = possible_siblings(soft_ref, soft, self.params)
        if not possible:                    # most images: unrelated neighbours, no full-size look
            return None
        grid = self._grid([sha] + [s for _, s in keep])           # decided on every candidate, as before
        keep, soft = [keep[j] for j in possible], soft[possible]  # the others cannot change the mask
        shas = [s for _, s in keep]
        tm = template_mask(self.images.get(sha), self.images.stack(shas), self.params, [c for c, _ in keep],
                           None if grid is None else (grid[0], grid[1][possible]), (soft_ref, soft),
                           None if grid is not None else lambda picks: self._denoised(sha, [shas[j] for j in picks]))
        if tm is None:
            return None
        size = self.images.size(sha)
        provenance = {"siblings": list(tm.dups), "sibling_rmse": list(tm.dup_rmse),
                      "keep_fraction": round(tm.keep_fraction, 4), "method": "consistent siblings"}
        mask_id = self.store.save_mask(tid, resize_mask(tm.keep, size), source="auto", meta=provenance)
        self.built += 1
        stored = self.store.load_mask(self.store.get_mask(mask_id).image_sha)
        return mask_id, mask_to_compare(stored)


@dataclass(frozen=True)
class RetrieveReport:
    run_id: int
    resumed: bool
    computed: int  # generations given neighbours by this call
    skipped: int  # generations that already had them
    neighbours: int
    masks_built: int
    masks_examined: int
    unavailable: int = 0  # external-index hits without a local image
    note: str = ""  # why a new run replaced an older one (the training images changed, --recompute)

    def summary(self) -> str:
        how = "resumed" if self.resumed else "new"
        extra = f", {self.unavailable} hits without a local image" if self.unavailable else ""
        return (f"retrieve: run {self.run_id} ({how}), {self.computed} generations searched, {self.skipped} already "
                f"done, {self.neighbours} neighbours, {self.masks_built} auto masks from {self.masks_examined} "
                f"images examined{extra}" + (f"\n  {self.note}" if self.note else ""))


def _pending(store: Store, caption_ids: Sequence[int] | None, run_id: int) -> tuple[list[tuple[int, str]], int]:
    """(generations without neighbours from this run, how many have them); none at all is an error."""
    rows = store.generation_refs(caption_ids, retrieve_run=run_id)
    if not rows:
        raise RetrievalError(f"{store.path}: expected generations to retrieve neighbours for (run `python -m attack "
                             f"generate` first), got none{' for the selected captions' if caption_ids is not None else ''}")
    return [(g.id, g.image_sha) for g in rows if not g.has_neighbours], sum(g.has_neighbours for g in rows)


def _training_set(store: Store, external: Path | None) -> dict:
    """What the neighbours are searched among: the store's training images (their count and
    highest id change whenever images are added) or an external index's files."""
    if external is not None:
        from attack.models.fingerprint import file_digest

        folder = Path(external)
        return {"external": str(folder.resolve()),
                "files": {p.name: file_digest(p, store.digest_cache()) for p in sorted(folder.iterdir()) if p.is_file()}}
    v = store.training_set_version()
    return {"training_images": v.count, "max_training_image_id": v.max_id}


def _open_retrieval(store: Store, spec: str, run_params: dict, recompute: bool):
    """The retrieve run of these params over the current training set (a new one when forced),
    and a note saying why an older run is not reused."""
    if recompute:
        return store.start_run("retrieve", spec, run_params), False, "--recompute: a new run, the old neighbours " \
                                                                     "stay in the store's history"
    run = store.open_run("retrieve", spec, run_params)
    note = ""
    if not run.resumed:
        older = [r for r in store.runs(stage="retrieve", model=spec) if r.id != run.id
                 and r.params.get("retrieve") == run_params["retrieve"]]
        if older:
            before, now = older[-1].params.get("training_set", {}), run_params["training_set"]
            if "training_images" in now:
                note = (f"the training images changed since run {older[-1].id} ({before.get('training_images', '?')} "
                        f"then, {now['training_images']} now): every generation is searched again; the old "
                        f"neighbours stay in the store's history")
            else:
                note = f"the index changed since run {older[-1].id}: every generation is searched again"
    return run.id, run.resumed, note


def _external_image(store: Store, idx: TrainIndex, row: int) -> int | None:
    """The store's training image for an external index row, added on first use when the row's
    image is on disk inside the index folder (metadata column image_path / path, relative to it)
    and decodes; None otherwise (counted as a hit without a local image)."""
    meta = idx.meta_row(row)
    url = meta.get("url")
    hit = store.training_image_at(url) if url is not None else None
    if hit is not None:
        return hit.id
    rel = meta.get("image_path") or meta.get("path")
    if not rel or not isinstance(rel, str):
        return None
    # nothing outside the index folder is read (attack/paths.py)
    path = resolve_inside(Path(idx.info["folder"]), rel, allow_absolute=True)
    if path is None or not path.is_file():
        return None
    from PIL import Image
    try:
        with Image.open(path) as im:
            sha = store.put_image(im.convert("RGB"))
    except Exception:  # noqa: BLE001 - a corrupt image is a hit without a usable local image
        return None
    return store.add_training_image(sha, None, url, {"caption": meta.get("caption"), "index_row": row})


def retrieve_stage(store: Store, params: RetrieveParams = RetrieveParams(), *,
                   caption_ids: Sequence[int] | None = None, external: Path | None = None,
                   embedder: Embedder | None = None, batch_size: int = 64, recompute: bool = False,
                   progress: Progress | None = None, engine: Any = None) -> RetrieveReport:
    """kNN for every generation (of caption_ids, default all) that has no neighbours from the
    current retrieval yet. A retrieval is keyed by its params, embedder and the training set it
    searches: after training images are added (or with recompute) a new run searches every
    generation again, and the older neighbours stay as history.

    external: an autofaiss / clip-retrieval index folder to search instead of the store's own
    index (its hits become training images of the store when their image is on disk)."""
    if batch_size < 1:
        raise RetrievalError(f"expected a batch size >= 1, got {batch_size}")
    embedder = embedder or load_embedder(params.embedder)
    if embedder.spec != params.embedder:
        raise RetrievalError(f"expected an embedder for {params.embedder!r}, got one for {embedder.spec!r}")
    _pending(store, caption_ids, 0)  # fails early when there is nothing to retrieve for
    if external is not None:
        idx = load_autofaiss(Path(external), embedder.spec)
    else:
        if not store.training_set_version().count:
            raise RetrievalError(f"{store.path}: expected training images to search (add them with `python -m "
                                 f"attack ingest --images DIR`, or pass --index), got none")
        # engine (attack.engine.ray.RayEngine): the training images, the bulk of the work, embed on Ray actors
        idx = store_index(store, embedder, params.factory, nprobe=params.nprobe, progress=progress, engine=engine)
    if idx.index.d != embedder.dim:
        raise RetrievalError(f"expected an index of {embedder.dim}-d vectors ({embedder.spec}), got {idx.index.d}-d")
    run_params = {"retrieve": asdict(params), "external": str(external) if external else None,
                  "training_set": _training_set(store, external)}
    run_id, resumed, note = _open_retrieval(store, embedder.spec, run_params, recompute)
    todo, skipped = _pending(store, caption_ids, run_id)
    images = CompareImages(store)       # decodes on torch's threads, which the loop then leaves alone
    with store.running(run_id), one_torch_thread():
        book = MaskBook(store, idx, embedder, params.masks, images)
        n_neigh = unavailable = 0
        if progress:
            progress("retrieve", 0, len(todo))
        def searched(keys: Sequence[str]) -> set[str]:
            return {str(g) for g in store.neighboured_among(run_id, [int(k) for k in keys])}

        b = 0                    # another process on the store searches what it claims
        for chunk in shared_batches(store, run_id, todo, lambda gs: str(gs[0]), batch_size, searched):
            images.prefetch([s for _, s in chunk])
            gens = [images.native(s) for _, s in chunk]
            sims, rows = idx.search(embed_tensors(embedder, gens, batch_size), params.k)
            writes: list[tuple[int, list[Neighbour]]] = []
            for i, (gid, gen_sha) in enumerate(chunk):
                gen = images.get(gen_sha)[None]
                hits = []
                for sim, row in zip(sims[i], rows[i]):
                    if row < 0:
                        continue
                    tid = int(idx.ids[row]) if idx.meta is None else _external_image(store, idx, int(row))
                    if tid is None:
                        unavailable += 1
                        continue
                    hits.append((float(sim), tid))
                ref = images.stack([images.sha_of(t) for _, t in hits])
                g = gen.expand(len(hits), -1, -1, -1)
                dist = rmse(g, ref) if hits else torch.zeros(0)
                out = []
                for rank, ((sim, tid), d) in enumerate(zip(hits, dist)):
                    mask = book.get(tid)
                    md = float(masked_rmse(gen, ref[rank:rank + 1], mask[1])[0]) if mask else None
                    out.append(Neighbour(rank, tid, sim, float(d), md, mask[0] if mask else None))
                writes.append((gid, out))
                if progress:
                    progress("retrieve", b + i + 1, len(todo))   # per generation: mask building is slow
            with store.transaction():
                for gid, out in writes:
                    store.add_neighbours(gid, out, run_id)
                    n_neigh += len(out)
            b += len(chunk)
            if progress:
                progress("retrieve", b, len(todo))
        store.finish_run(run_id, store.get_run(run_id).evals, "done")
    return RetrieveReport(run_id, resumed, b, skipped + len(todo) - b, n_neigh, book.built, book.examined, unavailable,
                          note)
