"""Content-addressed image files: canonical lossless PNG named by its sha256.

Canonical form: RGB uint8 (masks: single-channel 0/255), PNG with fixed
settings and no metadata, so the same pixels always give the same bytes and
hence the same hash (for a given zlib build).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from .errors import DamagedImageError, MissingImageError, StoreError, check_hint

SHA_RE = re.compile(r"^[0-9a-f]{64}$")
PNG_COMPRESS_LEVEL = 6       # masks, and the images of stores made before schema v11 (see schema.V11)


def check_sha(sha: str) -> str:
    """A sha is the only thing that becomes a path, so it must be exactly 64 hex digits."""
    if not isinstance(sha, str) or not SHA_RE.match(sha):
        raise StoreError(f"expected a sha256 of 64 lowercase hex digits, got {sha!r}")
    return sha


def to_rgb_array(img: "Image.Image | np.ndarray") -> np.ndarray:
    """HxWx3 uint8 from a PIL image or an array (HxWx3 or HxW, uint8 or float in [0, 1])."""
    if isinstance(img, Image.Image):
        return np.asarray(img.convert("RGB"), dtype=np.uint8)
    if not isinstance(img, np.ndarray):
        raise StoreError(f"expected a PIL image or numpy array, got {type(img).__name__}")
    arr = img
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise StoreError(f"expected an HxWx3 (or HxW) image array, got shape {img.shape}")
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        lo, hi = float(np.min(arr)), float(np.max(arr))
        if not (np.isfinite(lo) and np.isfinite(hi)) or lo < 0.0 or hi > 1.0:
            raise StoreError(f"expected float pixel values in [0, 1], got min {lo} max {hi}")
        return np.round(arr * 255.0).astype(np.uint8)
    raise StoreError(f"expected a uint8 or float image array, got dtype {arr.dtype}")


def to_mask_array(mask: "Image.Image | np.ndarray") -> np.ndarray:
    """HxW bool from a bool/0-1/0-255 array or a PIL image (nonzero = kept)."""
    if isinstance(mask, Image.Image):
        arr = np.asarray(mask.convert("L"))
    elif isinstance(mask, np.ndarray):
        arr = mask
        if arr.ndim == 3 and arr.shape[2] in (1, 3):
            arr = arr[:, :, 0]
    else:
        raise StoreError(f"expected a mask as PIL image or numpy array, got {type(mask).__name__}")
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise StoreError(f"expected an HxW mask, got shape {getattr(mask, 'shape', None) or mask.size}")
    return np.asarray(arr) != 0


def encode_png(arr: np.ndarray, level: int = PNG_COMPRESS_LEVEL) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False, compress_level=level)
    return buf.getvalue()


@contextmanager
def signals_deferred() -> Iterator[None]:
    """Ctrl-C and SIGTERM wait until the block is done (main thread): a KeyboardInterrupt raised
    between mkstemp and its cleanup would leave a stray temp file in images/. The Python-level
    handlers are swapped for a recorder, not the signal mask: the kernel hands a process-directed
    signal to any thread that does not block it (tqdm's monitor, a thread pool), and Python then
    runs the handler in the main thread anyway. A recorded signal is raised again afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    got: list[int] = []
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    old = {s: h for s, h in old.items() if h is not None}     # None: a handler set outside Python, left alone
    for s in old:
        signal.signal(s, lambda signum, frame: got.append(signum))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        for s in dict.fromkeys(got):
            signal.raise_signal(s)                           # handled now, by the handler restored


def atomic_write(path: Path, data: bytes, durable: bool = True) -> None:
    """tmp file in the same folder + fsync + rename: readers see all or nothing (durable=False:
    no fsync, for caches that can be rebuilt). A signal arriving meanwhile is handled after."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with signals_deferred():
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                if durable:
                    f.flush()
                    os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            if os.path.exists(tmp):
                os.unlink(tmp)
            if isinstance(e, OSError) and e.filename is None:     # a write's ENOSPC names no file: name it
                raise OSError(e.errno, e.strerror, str(path)) from e
            raise
    if not durable:
        return
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


COMPARE_SIZE = 256     # DESIGN: every comparison is at 256x256, Lanczos from the 8-bit image
CACHE_DIR = "cache"


def compare_resize(arr: "np.ndarray | Image.Image", size: int = COMPARE_SIZE) -> np.ndarray:
    """HxWx3 uint8 (or an RGB image, resized without a round trip through numpy: two copies of
    the full-size picture) -> size x size x 3 uint8, PIL Lanczos (the paper code's resize)."""
    if _height_width(arr) == (size, size):
        return np.array(arr, dtype=np.uint8)   # a writable copy (PIL's arrays are read-only)
    img = Image.fromarray(arr) if isinstance(arr, np.ndarray) else arr
    return np.asarray(img.resize((size, size), Image.LANCZOS), dtype=np.uint8)


def _height_width(arr: "np.ndarray | Image.Image") -> tuple[int, int]:
    return arr.shape[:2] if isinstance(arr, np.ndarray) else (arr.height, arr.width)


class ImageFiles:
    """The images/ folder of a store: images/ab/abcdef...png; and cache/compare256/ab/abcdef.npy,
    each image decoded once at the compare size (a cache: deleting it loses nothing)."""

    def __init__(self, root: Path, cache: Optional[Path] = None, png_level: int = PNG_COMPRESS_LEVEL) -> None:
        self.root = root
        self.png_level = png_level   # the store's level for images (schema.V11); masks always PNG_COMPRESS_LEVEL
        self.cache = cache if cache is not None else root.parent / CACHE_DIR / f"compare{COMPARE_SIZE}"
        self.compare_view_s = 0.0   # spent making compare views in put_image (the labels bench reports it)

    def path(self, sha: str) -> Path:
        check_sha(sha)
        return self.root / sha[:2] / f"{sha}.png"

    def exists(self, sha: str) -> bool:
        return self.path(sha).is_file()

    def put_bytes(self, png: bytes, created: Optional[list] = None) -> str:
        """Write once under its sha256 (idempotent: same bytes, same name). ``created``, when
        given, gets the sha appended *before* a new file is written, so a caller interrupted
        mid-write still knows which files may be its own."""
        sha = hashlib.sha256(png).hexdigest()
        path = self.path(sha)
        if not path.exists():
            if created is not None:
                created.append(sha)
            atomic_write(path, png)
        return sha

    def put_image(self, img: "Image.Image | np.ndarray", created: Optional[list] = None,
                  compare_view: bool = False) -> str:
        """Write the image's PNG; compare_view: also its compare view (the cache compare_pixels
        reads), made here from the pixels in hand: identical to one made from the file later (PNG
        is lossless), without decoding the file again."""
        arr = to_rgb_array(img)
        sha = self.put_bytes(encode_png(arr, self.png_level), created)
        if compare_view and max(arr.shape[:2]) > COMPARE_SIZE and not (self.cache / sha[:2] / f"{sha}.npy").is_file():
            t = time.perf_counter()
            self._cache_compare(sha, arr)
            self.compare_view_s += time.perf_counter() - t
        return sha

    def _cache_compare(self, sha: str, arr: "np.ndarray | Image.Image") -> np.ndarray:
        """The compare view of arr, cached when arr is larger than it (a small image is decoded
        and resized faster than a cached 196 KB array is read, and needs no disk)."""
        small = compare_resize(arr)
        if max(_height_width(arr)) <= COMPARE_SIZE:
            return small
        cached = self.cache / sha[:2] / f"{sha}.npy"
        buf = io.BytesIO()
        np.save(buf, small, allow_pickle=False)
        try:
            atomic_write(cached, buf.getvalue(), durable=False)
        except OSError:
            pass  # a cache that cannot be written is only slower
        return small

    def remove(self, sha: str) -> None:
        path = self.path(sha)
        if path.is_file():
            path.unlink()
        (self.cache / sha[:2] / f"{sha}.npy").unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # only when empty
        except OSError:
            pass

    def put_mask(self, mask: "Image.Image | np.ndarray") -> str:
        return self.put_bytes(encode_png(to_mask_array(mask).astype(np.uint8) * 255))

    def require(self, sha: str) -> Path:
        path = self.path(sha)
        if not path.is_file():
            raise MissingImageError(f"{path}: expected the stored image file of sha {sha[:12]}..., got no such "
                                    f"file; {check_hint(self.root.parent)}", path)
        return path

    def _decoded(self, sha: str, mode: str) -> Image.Image:
        """The stored file decoded in ``mode``; a truncated or overwritten file is a DamagedImageError
        naming it (PIL raises several types for one)."""
        path = self.require(sha)
        try:
            with Image.open(path) as im:
                return im.convert(mode)
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            raise DamagedImageError(f"{path}: expected the stored PNG of sha {sha[:12]}..., got a damaged file "
                                    f"({type(e).__name__}: {e}); {check_hint(self.root.parent)}", path) from e

    def load_image(self, sha: str) -> Image.Image:
        return self._decoded(sha, "RGB")

    def verified_bytes(self, sha: str) -> bytes:
        """The stored file's bytes, checked to hash to its name: MissingImageError or DamagedImageError
        (naming the file) when they cannot be read or do not."""
        path = self.require(sha)
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != sha:
            raise DamagedImageError(f"{path}: damaged: its bytes do not hash to its name (truncated or overwritten); "
                                    f"{check_hint(self.root.parent)}", path)
        return data

    def compare_pixels(self, sha: str, write: bool = True) -> np.ndarray:
        """The image at the compare size (256x256x3 uint8). An image larger than that is decoded
        and resized once per store: later calls read the cached array (a fraction of a
        millisecond instead of a PNG or JPEG decode and a Lanczos resize). write=False (a
        read-only store) computes without caching."""
        cached = self.cache / sha[:2] / f"{check_sha(sha)}.npy"
        try:
            arr = np.load(cached, allow_pickle=False)
            if arr.shape == (COMPARE_SIZE, COMPARE_SIZE, 3) and arr.dtype == np.uint8:
                return arr
        except (OSError, ValueError):
            pass
        img = self.load_image(sha)
        return self._cache_compare(sha, img) if write else compare_resize(img)

    def load_mask(self, sha: str) -> np.ndarray:
        return np.asarray(self._decoded(sha, "L")) > 127
