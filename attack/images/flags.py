"""Flags for likely false positives of a copy label (the paper pruned them by hand):
`suspect:background` for plain or near-uniform images, `suspect:texture` for stationary
textures. numpy only, computed as torch's antialiased bilinear resize would (tests/test_labels.py
checks it against a torch reference)."""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from attack.errors import AttackError


class FlagInputError(AttackError):
    """Images the flags cannot judge."""


@dataclass(frozen=True)
class FlagParams:
    """Heuristics for likely false positives, on a size x size luminance thumbnail (of the
    256-px compare image). A tile has *detail* when its luminance std is at least detail_std.
    background: at most background_detail of the background_tiles^2 tiles have detail (nothing
    but backdrop; a photo on a plain surround keeps its photo's tiles, so it is no background).
    texture: at least texture_detail of the texture_tiles^2 (coarser) tiles have detail and they
    are alike: the spread of their stds relative to the mean std, and the spread of their means
    relative to the global std, are both at most texture_spread (a photo's regions differ).
    Chosen on the development world (attack/bench/realworld.py): detail_std sits near the geometric
    mean of the tile stds of its backdrops and of its textures at the compare size, and the
    thumbnail is the full compare image, so a fine grain (sand, noise, a weave) is not averaged
    away into a backdrop. See tests/test_realworld.py and `python -m
    attack bench labels`, which reports flag precision and recall per kind on both worlds."""
    size: int = 256
    detail_std: float = 0.01
    background_tiles: int = 8
    background_detail: float = 0.1
    texture_tiles: int = 4
    texture_detail: float = 0.9
    texture_spread: float = 0.25


def _tile_stats(lum: np.ndarray, tiles: int) -> tuple[np.ndarray, np.ndarray]:
    """(std, mean) of each of tiles x tiles tiles of lum [N,S,S]: two [N, tiles^2] arrays (std
    with Bessel's correction, as torch.std)."""
    n, s = lum.shape[0], lum.shape[-1] // tiles
    t = lum.reshape(n, tiles, s, tiles, s).transpose(0, 1, 3, 2, 4).reshape(n, tiles * tiles, s * s)
    return t.std(2, ddof=1), t.mean(2)


@functools.lru_cache(maxsize=16)
def _aa_taps(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """(source index [n_out, taps], weight [n_out, taps]) of a bilinear resize with antialiasing
    as torch's interpolate(mode="bilinear", antialias=True, align_corners=False) builds them: a
    triangle filter widened by the scale when shrinking, cut at the border and renormalised."""
    scale = n_in / n_out
    support, inv = (scale, 1 / scale) if scale >= 1 else (1.0, 1.0)
    taps = int(np.ceil(support)) * 2 + 1
    index, weight = np.zeros((n_out, taps), np.int64), np.zeros((n_out, taps))
    for i in range(n_out):
        center = scale * (i + 0.5)
        lo, hi = max(int(center - support + 0.5), 0), min(int(center + support + 0.5), n_in)
        row = np.clip(1 - np.abs((np.arange(lo, hi) - center + 0.5) * inv), 0, None)
        index[i, :hi - lo], weight[i, :hi - lo] = np.arange(lo, hi), row / row.sum() if row.sum() else row
    return index, weight


def _resize_aa(x: np.ndarray, size: int) -> np.ndarray:
    """[N,C,H,W] -> [N,C,size,size]: columns, then rows (torch's order), float64. An axis already
    of that size is left as it is: its taps are (1, 0, ...), which give back every value exactly."""
    if x.shape[3] != size:
        index, weight = _aa_taps(x.shape[3], size)
        x = (x[..., index] * weight).sum(-1)
    if x.shape[2] != size:
        index, weight = _aa_taps(x.shape[2], size)
        x = (x[:, :, index] * weight[:, :, None]).sum(3)
    return x


def _nearest(n_in: int, n_out: int) -> np.ndarray:
    """Source index of each output pixel of torch's interpolate(mode="nearest") (float32 scale)."""
    scale = np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64), n_in - 1)


def _kept_tiles(keep: np.ndarray | None, n: int, size: int, tiles: int) -> np.ndarray:
    """[n, tiles^2] bool: the tiles a keep-mask [n,H,W] (or [H,W]) mostly keeps; all without one."""
    if keep is None:
        return np.ones((n, tiles * tiles), dtype=bool)
    k = np.asarray(keep, dtype=np.float64).reshape(-1, *np.shape(keep)[-2:])
    k = k[:, _nearest(k.shape[1], size)][:, :, _nearest(k.shape[2], size)]
    return _tile_stats(np.broadcast_to(k, (n, size, size)), tiles)[1] >= 0.5


def _share(values: np.ndarray, where: np.ndarray) -> np.ndarray:
    """Fraction of `where` tiles whose value is true, per row."""
    return (values & where).sum(1) / np.maximum(where.sum(1), 1)


def suspect_flags(images: Any, params: FlagParams = FlagParams(), keep: Any = None) -> list[tuple[str, ...]]:
    """Flags per image [N,3,H,W] in [0,1] (a numpy array or a CPU tensor): () or one of
    suspect:background, suspect:texture. keep: a template keep-mask; then only the tiles it keeps
    are judged for a backdrop (a TV match rests on those pixels alone, so a plain kept region is
    a backdrop match whatever the rest shows); texture is judged on the whole image. Computed in
    float64 on a thumbnail resized as torch's antialiased bilinear interpolate resizes (_aa_taps)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[1] != 3:
        raise FlagInputError(f"expected images [N,3,H,W], got {tuple(images.shape)}")
    x = np.clip(images.astype(np.float32), 0, 1).astype(np.float64)
    x = _resize_aa(x, params.size)
    n = x.shape[0]
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    b_std, _ = _tile_stats(lum, params.background_tiles)
    b_in = _kept_tiles(keep, n, params.size, params.background_tiles)
    backdrop = _share(b_std >= params.detail_std, b_in) <= params.background_detail
    t_std, t_mean = _tile_stats(lum, params.texture_tiles)
    detailed = (t_std >= params.detail_std).mean(1) >= params.texture_detail
    spread = np.maximum(t_std.std(1, ddof=1) / np.maximum(t_std.mean(1), 1e-6),
                        t_mean.std(1, ddof=1) / np.maximum(lum.reshape(n, -1).std(1, ddof=1), 1e-6))
    stationary = detailed & (spread <= params.texture_spread)
    return [("suspect:background",) if bool(b) else ("suspect:texture",) if bool(t) else ()
            for b, t in zip(backdrop, stationary)]
