"""Image distances under DESIGN's convention: 256x256 RGB in [0,1] (Lanczos), RMSE over all
values compared (over the kept pixels for a mask)."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image

COMPARE_SIZE = 256


def resize_u8(images: torch.Tensor | np.ndarray, size: int = COMPARE_SIZE) -> np.ndarray:
    """[B,3,H,W] float in [0,1] (or [B,H,W,3] / [H,W,3] uint8) -> [B,size,size,3] uint8: the
    8-bit image resized with PIL's Lanczos, as the paper's code does."""
    if isinstance(images, torch.Tensor):
        arr = (images.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy() * 255).round().astype(np.uint8)
    else:
        arr = np.asarray(images)
        if arr.ndim == 3:
            arr = arr[None]
    if arr.shape[1:3] == (size, size):
        return np.array(arr, dtype=np.uint8)  # a copy the caller's array cannot alias
    out = np.empty((arr.shape[0], size, size, 3), np.uint8)

    def one(i: int) -> None:
        out[i] = np.asarray(Image.fromarray(arr[i]).resize((size, size), Image.LANCZOS))

    # Pillow releases the GIL while resampling: a batch spreads over torch's CPU threads
    workers = min(torch.get_num_threads(), len(arr) // 4)
    if workers > 1:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(one, range(len(arr))))
    else:
        for i in range(len(arr)):
            one(i)
    return out


def u8_to_float(u8: torch.Tensor) -> torch.Tensor:
    """[N,H,W,3] uint8 -> [N,3,H,W] float32 in [0,1], contiguous (x / 255 in float32)."""
    return u8.permute(0, 3, 1, 2).to(torch.float32, memory_format=torch.contiguous_format).div_(255.0)


def to_compare(images: torch.Tensor | np.ndarray, size: int = COMPARE_SIZE) -> torch.Tensor:
    """[B,3,H,W] float in [0,1] (or [B,H,W,3] uint8) -> [B,3,size,size] float32 in [0,1], Lanczos."""
    return u8_to_float(torch.from_numpy(resize_u8(images, size)))


def mask_to_compare(mask: np.ndarray | torch.Tensor, size: int = COMPARE_SIZE) -> torch.Tensor:
    """A boolean keep-mask [H,W] -> [size,size] bool (nearest neighbour: a mask stays binary)."""
    m = np.asarray(mask, dtype=np.uint8) * 255
    if m.shape != (size, size):
        m = np.asarray(Image.fromarray(m).resize((size, size), Image.NEAREST))
    return torch.from_numpy(m > 127)


def rmse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise-aligned RMSE: a, b [B,3,S,S] -> [B]."""
    return (a - b).pow(2).flatten(1).mean(1).sqrt()


def masked_rmse(a: torch.Tensor, b: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """RMSE over the pixels `keep` [S,S] (or [B,S,S]) keeps, all channels: [B]."""
    k = keep.to(a.dtype)
    if k.ndim == 2:
        k = k.expand(a.shape[0], *k.shape)
    k = k[:, None]
    n = (k.flatten(1).sum(1) * a.shape[1]).clamp_min(1)
    return (((a - b) ** 2) * k).flatten(1).sum(1).div(n).sqrt()
