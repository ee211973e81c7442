"""Image distances under DESIGN's convention: 256x256 RGB in [0,1] (Lanczos), RMSE over all
values compared (over the kept pixels for a mask).

Two forms of one distance: rmse / masked_rmse on torch batches (scoring and retrieval, CPU or
GPU) and pixel_rmse / pixel_masked_rmse on two 8-bit compare images with numpy (labels, which
import no torch). Both take the float32 values k/255 and their float32 squared differences; the
numpy form sums them in float64 (exact far below float32 rounding) where torch sums in float32
in an order that depends on its threads and CPU, so the two agree to float32 rounding
(tests/test_labels.py). torch is imported only by the functions that take or make tensors.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from attack.errors import AttackError

if TYPE_CHECKING:
    import torch

COMPARE_SIZE = 256


class DistanceInputError(AttackError):
    """Images or masks a distance cannot compare."""


def resize_u8(images: torch.Tensor | np.ndarray, size: int = COMPARE_SIZE) -> np.ndarray:
    """[B,3,H,W] float in [0,1] (or [B,H,W,3] / [H,W,3] uint8) -> [B,size,size,3] uint8: the
    8-bit image resized with PIL's Lanczos, as the paper's code does."""
    import torch

    if isinstance(images, torch.Tensor):
        arr = (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    else:
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
    if arr.shape[1:3] == (size, size):
        return np.array(arr, dtype=np.uint8)  # a copy the caller's array cannot alias
    out = np.empty((arr.shape[0], size, size, 3), np.uint8)

    def some(images: range) -> None:
        for i in images:
            out[i] = np.asarray(Image.fromarray(arr[i]).resize((size, size), Image.LANCZOS))

    # Pillow releases the GIL while resampling: a batch spreads over torch's CPU threads, each
    # thread one stride of it (a task per image spent more on futures than on a 32-px resize)
    workers = min(torch.get_num_threads(), len(arr) // 4)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(some, [range(k, len(arr), workers) for k in range(workers)]))
    else:
        some(range(len(arr)))
    return out


def u8_to_float(u8: torch.Tensor) -> torch.Tensor:
    """[N,H,W,3] uint8 -> [N,3,H,W] float32 in [0,1], contiguous (x / 255 in float32)."""
    import torch

    return u8.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def to_compare(images: torch.Tensor | np.ndarray, size: int = COMPARE_SIZE) -> torch.Tensor:
    """[B,3,H,W] float in [0,1] (or [B,H,W,3] uint8) -> [B,3,size,size] float32 in [0,1], Lanczos."""
    import torch

    return u8_to_float(torch.from_numpy(resize_u8(images, size)))


def compare_mask(mask: np.ndarray, size: int = COMPARE_SIZE) -> np.ndarray:
    """A boolean keep-mask [H,W] -> [size,size] bool (nearest neighbour: a mask stays binary)."""
    m = np.asarray(mask, dtype=np.uint8) * 255
    if m.shape != (size, size):
        m = np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST))
    return m > 127


def mask_to_compare(mask: np.ndarray | torch.Tensor, size: int = COMPARE_SIZE) -> torch.Tensor:
    """compare_mask as a torch bool tensor."""
    import torch

    return torch.from_numpy(compare_mask(np.asarray(mask), size))


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise-aligned RMSE: a, b [B,3,S,S] -> [B]."""
    return (a - b).pow_(2).flatten(1).mean(1).sqrt()


def masked_rmse(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """RMSE over the pixels `keep` [S,S] (or [B,S,S]) keeps, all channels: [B]."""
    k = keep.to(a.dtype)
    if k.ndim == 2:
        k = k.expand(a.shape[0], *k.shape)
    k = k[:, None]
    n = (k.flatten(1).sum(1) * a.shape[1]).clamp_min(1)
    return (a - b).pow_(2).mul_(k).flatten(1).sum(1).div(n).sqrt()


def unit_float(u8: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0,1]: x / 255 in float32, the values torch's compare images hold."""
    return np.asarray(u8).astype(np.float32) / np.float32(255)


def _squared(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.dtype != np.uint8 or b.dtype != np.uint8:
        raise DistanceInputError(f"expected two uint8 images of one shape, got {a.dtype} {a.shape} and "
                                 f"{b.dtype} {b.shape}")
    d = unit_float(a) - unit_float(b)
    return d * d


def pixel_rmse(a: np.ndarray, b: np.ndarray) -> float:
    """rmse of two uint8 images [S,S,3] (any layout, one shape): the float32 mean of the squared
    float32 differences (summed in float64), then its float32 square root."""
    sq = _squared(a, b)
    return float(np.sqrt(np.float32(sq.sum(dtype=np.float64)) / np.float32(sq.size)))


def pixel_masked_rmse(a: np.ndarray, b: np.ndarray, keep: np.ndarray) -> float:
    """masked_rmse of two uint8 images [S,S,3] over the pixels keep [S,S] keeps (all channels)."""
    sq = _squared(a, b)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != sq.shape[:2]:
        raise DistanceInputError(f"expected a keep-mask of shape {sq.shape[:2]}, got {keep.shape}")
    n = np.float32(max(int(keep.sum()) * sq.shape[2], 1))
    return float(np.sqrt(np.float32(sq[keep].sum(dtype=np.float64)) / n))
