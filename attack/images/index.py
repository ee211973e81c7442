"""faiss indexes of training images: built over a store's images and saved beside it, or an
existing autofaiss / clip-retrieval index (LAION scale) opened memory-mapped.

A store's index lives in `<store>/index/<embedder slug>/`: `image.index` (faiss), `ids.npy`
(row -> training image id) and `index.json` (embedder spec, factory string, what it covers).
Rows are distinct images (sha256): a picture stored under 25 captions is one row, so a kNN list
is not filled with copies of one image; its id is the lowest training image id of that sha.
The default factory "Flat" is exact inner product (cosine on unit vectors), fine up to ~1M
rows; pass an IVF-PQ factory string (e.g. "IVF4096,PQ64") for more.

The autofaiss layout: a folder with `image.index` and metadata rows in index order, as
`metadata/*.parquet` (concatenated by file name), `metadata.parquet` or an Arrow IPC file
(`*.arrow`, memory-mapped), with at least `url` and `caption` columns.
"""
from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from attack.errors import AttackError
from attack.images.embed import Embedder
from attack.images.metrics import COMPARE_SIZE
from attack.paths import inside
from attack.progress import Progress
from store import Store

if TYPE_CHECKING:
    from store.images import ImageFiles

INDEX_DIR = "index"
INDEX_FILE = "image.index"


class RetrievalError(AttackError):
    """An index cannot be built, loaded or searched as asked."""


@dataclass
class TrainIndex:
    """A faiss index over image embeddings and what its rows are.

    ids: row -> training image id (store indexes; -1 for rows of an external index, whose
    images are not in the store); meta: for an external index, its metadata table (pyarrow),
    one row per index row."""
    index: Any
    ids: np.ndarray
    embedder: str
    factory: str
    info: dict = field(default_factory=dict)
    meta: Any = None

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    def search(self, vectors: np.ndarray | torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(similarities [N,k] float32, rows [N,k] int64; -1 where fewer than k rows exist)."""
        if isinstance(vectors, torch.Tensor):
            vectors = vectors.numpy()
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.index.d:
            raise RetrievalError(f"expected query vectors [N,{self.index.d}] ({self.embedder}), got {vectors.shape}")
        if k < 1:
            raise RetrievalError(f"expected k >= 1 neighbours, got {k}")
        sims, rows = self.index.search(vectors, min(k, max(1, self.ntotal)))
        return sims, rows

    def meta_row(self, row: int) -> dict:
        """An external index's metadata for one row (url, caption, ...)."""
        if self.meta is None:
            return {}
        return {name: self.meta.column(name)[row].as_py() for name in self.meta.column_names}


# -- images from the store -----------------------------------------------------------------------
def image_tensor(store: Store, sha: str) -> torch.Tensor:
    """A stored image as [3,H,W] float32 in [0,1], as retrieval sees it: at its own size up to
    the compare size, and as its cached 256x256 compare view when larger (a 512-px image is
    decoded once per store, not at every comparison)."""
    return torch.from_numpy(image_array(store, sha))


def image_array(store: Store, sha: str) -> np.ndarray:
    """image_tensor's values as a numpy array [3,H,W] (no torch: decoding threads call it)."""
    w, h = store.image_size(sha)
    arr = store.compare_pixels(sha) if max(w, h) >= COMPARE_SIZE else np.asarray(store.load_image(sha))
    return unit_chw(arr)


def unit_chw(arr: np.ndarray) -> np.ndarray:
    """uint8 [H,W,3] -> float32 [3,H,W] in [0,1], contiguous: x / 255 in float32, the values of
    attack.images.metrics.u8_to_float."""
    chw = np.ascontiguousarray(arr.transpose(2, 0, 1), dtype=np.float32)
    chw /= np.float32(255)
    return chw


T = TypeVar("T")


def on_threads(fn: Callable[[str], T], shas: Sequence[str], workers: int | None = None) -> list[T]:
    """[fn(sha) for sha in shas] on workers threads (default: torch's CPU threads): Pillow releases
    the GIL while it decodes and resizes, the bulk of a cold store's first look at an image."""
    workers = min(workers or torch.get_num_threads(), len(shas))
    if workers < 2:
        return [fn(s) for s in shas]
    pool = ThreadPoolExecutor(workers)
    try:
        return list(pool.map(fn, shas))
    finally:        # on an error or Ctrl-C, the images not started yet are dropped
        pool.shutdown(cancel_futures=True)


def image_tensors(store: Store, shas: Sequence[str]) -> list[torch.Tensor]:
    """image_tensor of each sha, decoded on_threads."""
    return [torch.from_numpy(a) for a in on_threads(functools.partial(image_array, store), shas)]


def file_tensor(files: "ImageFiles", sha: str) -> torch.Tensor:
    """image_tensor from the store's image files alone (a Ray actor holds no database connection);
    the compare cache is read but not written (actors on other nodes may not write the store)."""
    from PIL import Image

    with Image.open(files.require(sha)) as im:
        w, h = im.size
    arr = files.compare_pixels(sha, write=False) if max(w, h) >= COMPARE_SIZE else np.asarray(files.load_image(sha))
    return torch.from_numpy(arr.astype(np.float32) / 255.0).permute(2, 0, 1).contiguous()


def embed_tensors(embedder: Embedder, images: Sequence[torch.Tensor], batch_size: int = 64) -> np.ndarray:
    """Embed images of possibly different sizes: runs of equal shape are batched together."""
    out, i = [], 0
    while i < len(images):
        j = i + 1
        while j < len(images) and j - i < batch_size and images[j].shape == images[i].shape:
            j += 1
        out.append(embedder.embed(torch.stack(list(images[i:j])), batch_size=batch_size).numpy())
        i = j
    return np.concatenate(out) if out else np.zeros((0, embedder.dim), np.float32)


def distinct_images(store: Store) -> list[tuple[int, str]]:
    """(lowest training image id, sha) per distinct training image, by id."""
    return store.distinct_training_images()


def _coverage(store: Store) -> dict:
    v = store.training_set_version()
    return {"training_images": v.count, "max_training_image_id": v.max_id}


# -- building, saving, loading ---------------------------------------------------------------------
def new_faiss_index(dim: int, factory: str, vectors: np.ndarray, nprobe: int = 16):
    import faiss

    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        raise RetrievalError(f"expected a faiss factory string such as 'Flat' or 'IVF4096,PQ64', got {factory!r} ({e})") from e
    if not index.is_trained:
        if len(vectors) < 1:
            raise RetrievalError(f"factory {factory!r} needs training vectors, got none")
        try:
            index.train(vectors)
        except RuntimeError as e:
            raise RetrievalError(f"factory {factory!r}: expected enough vectors to train it, got {len(vectors)} ({e})") from e
    index.add(vectors)
    if hasattr(index, "nprobe"):
        index.nprobe = nprobe
    else:
        try:
            faiss.extract_index_ivf(index).nprobe = nprobe
        except RuntimeError:
            pass  # not an IVF index
    return index


def build_store_index(store: Store, embedder: Embedder, factory: str = "Flat", *, nprobe: int = 16,
                      batch_size: int = 256, progress: Progress | None = None, engine: Any = None) -> TrainIndex:
    """Embed every distinct training image of the store and index it; engine: an
    attack.engine.ray.RayEngine embeds on Ray actors instead (the same batches, the same vectors)."""
    rows = distinct_images(store)
    if not rows:
        raise RetrievalError(f"{store.path}: expected training images to index (ingest --images), got none")
    if engine is not None:
        key = hashlib.sha256(json.dumps([embedder.spec, _coverage(store)], sort_keys=True).encode()).hexdigest()
        vectors = engine.embed(store, embedder.spec, rows, batch_size, key[:16])
    else:
        parts = []
        for b in range(0, len(rows), batch_size):
            chunk = rows[b:b + batch_size]
            parts.append(embed_tensors(embedder, image_tensors(store, [s for _, s in chunk]), batch_size))
            if progress:
                progress("index", b + len(chunk), len(rows))
        vectors = np.concatenate(parts)
    index = new_faiss_index(vectors.shape[1], factory, vectors, nprobe)
    ids = np.asarray([i for i, _ in rows], np.int64)
    info = {"embedder": embedder.spec, "factory": factory, "nprobe": nprobe, "rows": len(rows), "dim": int(vectors.shape[1]),
            **_coverage(store)}
    return TrainIndex(index, ids, embedder.spec, factory, info)


def save_index(idx: TrainIndex, folder: Path) -> Path:
    """Write image.index, ids.npy and index.json into `folder` (replacing an older index)."""
    import faiss

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (INDEX_FILE + ".tmp")
    faiss.write_index(idx.index, str(tmp))
    np.save(folder / "ids.npy", idx.ids)
    tmp.replace(folder / INDEX_FILE)  # the index last: a reader never sees new ids with an old index
    (folder / "index.json").write_text(json.dumps(idx.info, sort_keys=True, indent=1) + "\n", encoding="utf-8")
    return folder


def _read_faiss(path: Path, mmap: bool):
    import faiss

    if not path.is_file():
        raise RetrievalError(f"{path}: expected a faiss index file, got no such file")
    try:
        return faiss.read_index(str(path), faiss.IO_FLAG_MMAP if mmap else 0)
    except RuntimeError as e:
        raise RetrievalError(f"{path}: expected a faiss index, got an unreadable file ({str(e).splitlines()[0]})") from e


def load_index(folder: Path, mmap: bool = True) -> TrainIndex:
    """An index written by save_index (memory-mapped by default)."""
    folder = Path(folder)
    meta_path = folder / "index.json"
    if not meta_path.is_file():
        raise RetrievalError(f"{folder}: expected an index folder with index.json, got none")
    info = json.loads(meta_path.read_text(encoding="utf-8"))
    index = _read_faiss(folder / INDEX_FILE, mmap)
    ids = np.load(folder / "ids.npy")
    if len(ids) != index.ntotal:
        raise RetrievalError(f"{folder}: expected {index.ntotal} ids for the index rows, got {len(ids)}")
    if hasattr(index, "nprobe") and "nprobe" in info:
        index.nprobe = int(info["nprobe"])
    return TrainIndex(index, ids, info.get("embedder", ""), info.get("factory", ""), info)


def index_folder(store: Store, embedder_spec: str) -> Path:
    slug = re.sub(r"[^A-Za-z0-9._-]+", "_", embedder_spec).strip("_")[:80] or "index"
    return store.path / INDEX_DIR / slug


def store_index(store: Store, embedder: Embedder, factory: str = "Flat", *, nprobe: int = 16,
                rebuild: bool = False, progress: Progress | None = None, engine: Any = None) -> TrainIndex:
    """The store's saved index for this embedder, rebuilt when the training images or the
    factory changed since it was written (or when asked)."""
    folder = index_folder(store, embedder.spec)
    if not rebuild and (folder / "index.json").is_file():
        idx = load_index(folder)
        if (idx.embedder == embedder.spec and idx.factory == factory
                and all(idx.info.get(k) == v for k, v in _coverage(store).items())):
            return idx
    idx = build_store_index(store, embedder, factory, nprobe=nprobe, progress=progress, engine=engine)
    save_index(idx, folder)
    return load_index(folder)


# -- autofaiss / clip-retrieval layout -----------------------------------------------------------------
REQUIRED_META = ("url", "caption")


def _require_inside(folder: Path, files: Sequence[Path]) -> None:
    """The index folder's files must be in it (symlinks resolved): nothing outside is read."""
    for f in files:
        if not inside(folder, f):
            raise RetrievalError(f"{f}: expected a file inside the index folder {folder}, got a symlink to "
                                 f"{f.resolve()} (nothing outside the named folder is read; name that folder instead)")


def _read_metadata(folder: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = sorted((folder / "metadata").glob("*.parquet")) if (folder / "metadata").is_dir() else []
    arrows = sorted(folder.glob("*.arrow")) + (sorted((folder / "metadata").glob("*.arrow"))
                                               if (folder / "metadata").is_dir() else [])
    if arrows:
        _require_inside(folder, arrows)
        tables = []
        for p in arrows:
            source = pa.memory_map(str(p), "r")  # zero-copy: LAION metadata is tens of GB
            try:
                tables.append(pa.ipc.open_file(source).read_all())
            except pa.ArrowInvalid:
                tables.append(pa.ipc.open_stream(pa.memory_map(str(p), "r")).read_all())
        return pa.concat_tables(tables), [str(p) for p in arrows]
    if not parts and (folder / "metadata.parquet").is_file():
        parts = [folder / "metadata.parquet"]
    _require_inside(folder, arrows + parts)
    if not parts:
        raise RetrievalError(f"{folder}: expected metadata beside {INDEX_FILE} (metadata/*.parquet, "
                             f"metadata.parquet or *.arrow), got none")
    try:
        return pa.concat_tables([pq.read_table(p, memory_map=True) for p in parts]), [str(p) for p in parts]
    except (pa.ArrowInvalid, OSError) as e:
        raise RetrievalError(f"{folder}: expected readable parquet metadata, got {e}") from e


def load_autofaiss(folder: Path, embedder_spec: str, mmap: bool = True) -> TrainIndex:
    """An existing autofaiss / clip-retrieval index folder; the embedder that made it must be
    named (the layout does not record it) so queries are embedded the same way."""
    folder = Path(folder)
    _require_inside(folder, [folder / INDEX_FILE])
    index = _read_faiss(folder / INDEX_FILE, mmap)
    table, files = _read_metadata(folder)
    missing = [c for c in REQUIRED_META if c not in table.column_names]
    if missing:
        raise RetrievalError(f"{folder}: expected metadata columns {', '.join(REQUIRED_META)}, got "
                             f"{', '.join(table.column_names)} (missing {', '.join(missing)})")
    if table.num_rows != index.ntotal:
        raise RetrievalError(f"{folder}: expected one metadata row per index row ({index.ntotal}), got {table.num_rows}")
    info = {"embedder": embedder_spec, "factory": "external", "rows": int(index.ntotal), "dim": int(index.d),
            "folder": str(folder), "metadata": files}
    return TrainIndex(index, np.full(index.ntotal, -1, np.int64), embedder_spec, "external", info, table)
