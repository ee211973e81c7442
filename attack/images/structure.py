"""Structural agreement: the second witness a copy label needs besides the pixel RMSE.

At real resolution the paper's RMSE at delta 0.12 passes two different smooth photos of one kind
(two landscapes, two skies, two portraits on similar backdrops): their colours are close, their
content is not. A copy, re-encoded, colour-shifted or noisy, keeps its edges where they were. So
both images' luminance is band-passed on the compare grid (a difference of Gaussians, sigma 1
and 4 px: JPEG noise and the overall colour cast are gone, edges and texture stay), cut into
patches, and each patch's normalised cross-correlation measured where either image has detail.
The agreement is the mean over those patches: a copy scores near 1 (a colour shift does not
move it: the correlation is normalised), two different photos near 0. An image pair with no
detailed patch (plain backdrops, smooth gradients) has no structure to witness: agreement None,
and the RMSE decides alone (the suspect:background flag warns).

Thresholds were chosen on the development world (attack/bench/realworld.py): min_agreement sits
half-way between the agreement of its least-agreeing copy pair and of its most-agreeing pair of
unrelated images (`python -m attack bench labels` reports both worlds).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attack.errors import AttackError


class StructureInputError(AttackError):
    """Images or parameters a structural check cannot take."""


@dataclass(frozen=True)
class StructureParams:
    """sigma_fine / sigma_coarse: the band-pass (pixels of the compare grid); patch: patch side
    in pixels; detail: a patch counts when the band-passed luminance std of either image is at
    least this; min_agreement: the mean patch correlation a copy must reach; min_spread: an
    alignment's inliers must span at least this share of the training image (convex hull area),
    so matches from one small patch do not align two different pictures."""
    sigma_fine: float = 1.0
    sigma_coarse: float = 4.0
    patch: int = 32
    detail: float = 0.004
    min_agreement: float = 0.6
    min_spread: float = 0.005

    def __post_init__(self) -> None:
        if not 0 < self.sigma_fine < self.sigma_coarse:
            raise StructureInputError(f"expected 0 < sigma_fine < sigma_coarse, got {self.sigma_fine}, {self.sigma_coarse}")
        if self.patch < 4:
            raise StructureInputError(f"StructureParams.patch: expected at least 4 px, got {self.patch}")
        if not -1 <= self.min_agreement <= 1:
            raise StructureInputError(f"StructureParams.min_agreement: expected a correlation in [-1, 1], got {self.min_agreement}")


def band(image: np.ndarray, params: StructureParams = StructureParams()) -> np.ndarray:
    """The band-passed luminance [S,S] float32 of an image [S,S,3] (uint8, or float in [0,1])."""
    from scipy.ndimage import gaussian_filter

    x = np.asarray(image)
    if x.ndim != 3 or x.shape[-1] != 3:
        raise StructureInputError(f"expected an image [S,S,3], got {x.shape}")
    x = x.astype(np.float32) / (255 if x.dtype == np.uint8 else 1)
    lum = 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    return gaussian_filter(lum, params.sigma_fine) - gaussian_filter(lum, params.sigma_coarse)


def _patches(x: np.ndarray, p: int) -> np.ndarray:
    n = x.shape[0] // p
    return x[: n * p, : n * p].reshape(n, p, n, p).transpose(0, 2, 1, 3).reshape(n * n, p * p)


def _centred(a: np.ndarray, b: np.ndarray, params: StructureParams) -> tuple[np.ndarray, np.ndarray]:
    if a.shape != b.shape or a.ndim != 2:
        raise StructureInputError(f"expected two band-passed images [S,S] of one shape, got {a.shape} and {b.shape}")
    pa, pb = _patches(a, params.patch), _patches(b, params.patch)
    return pa - pa.mean(1, keepdims=True), pb - pb.mean(1, keepdims=True)


def detail_patches(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None,
                   params: StructureParams = StructureParams()) -> np.ndarray:
    """[S,S] bool: the pixels of the patches the agreement is measured on (detail in either
    band-passed image, wholly inside where)."""
    pa, pb = _centred(a, b, params)
    use = (pa.std(1) >= params.detail) | (pb.std(1) >= params.detail)
    if where is not None:
        use &= _patches(np.asarray(where, dtype=bool), params.patch).all(1)
    n, p = a.shape[0] // params.patch, params.patch
    out = np.zeros(a.shape, bool)
    out[: n * p, : n * p] = np.kron(use.reshape(n, n), np.ones((p, p), bool)).astype(bool)
    return out


def agreement(a: np.ndarray, b: np.ndarray, where: np.ndarray | None = None,
              params: StructureParams = StructureParams()) -> float | None:
    """Mean normalised cross-correlation of band-passed patches of a and b (band() outputs
    [S,S], one shape) over the patches with detail in either, and, with where [S,S] bool, lying
    wholly inside it (a template's kept pixels, an alignment's overlap); None when no patch
    qualifies."""
    pa, pb = _centred(a, b, params)
    sa, sb = pa.std(1), pb.std(1)
    use = (sa >= params.detail) | (sb >= params.detail)
    if where is not None:
        use &= _patches(np.asarray(where, dtype=bool), params.patch).all(1)
    if not use.any():
        return None
    ncc = (pa * pb).mean(1)[use] / np.maximum(sa[use] * sb[use], 1e-12)
    return float(ncc.mean())


def residual_shift(a: np.ndarray, b: np.ndarray, where: np.ndarray, most: int = 4) -> tuple[int, int]:
    """The integer (dy, dx), each within +-most px, that best registers band-passed a onto b over
    where (phase correlation): an alignment fitted to keypoints on a coarser grid can be off by a
    pixel or two, which a band-pass at sigma 1 sees."""
    w = np.asarray(where, dtype=np.float32)
    fa, fb = np.fft.rfft2(a * w), np.fft.rfft2(b * w)
    cross = fa * np.conj(fb)
    corr = np.fft.irfft2(cross / np.maximum(np.abs(cross), 1e-9), s=a.shape)
    corr = np.roll(corr, (most, most), (0, 1))[: 2 * most + 1, : 2 * most + 1]
    dy, dx = np.unravel_index(int(np.argmax(corr)), corr.shape)
    return int(dy) - most, int(dx) - most


def agrees(value: float | None, params: StructureParams = StructureParams()) -> bool:
    """A pair passes when its agreement reaches min_agreement, or when neither image has the
    detail to witness anything (value None: the RMSE decides)."""
    return value is None or value >= params.min_agreement
