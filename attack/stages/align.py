"""Copies that a crop, a rescale or a mirror hides from the pixel distance (the paper's §5.4 miss).

For a generation and a candidate training image, both at the compare size: ORB keypoints
(scikit-image) on their grey images, matches checked both ways, and a similarity transform
(rotation, scale, translation) fitted by RANSAC; the mirrored generation is tried too. The
generation is warped into the training image's frame and compared where it lands: the aligned
RMSE over the overlap, the overlap as a fraction of the training image, the transform. An
alignment needs min_inliers agreeing matches and min_overlap of the training image covered;
attack.stages.labels then asks for the aligned RMSE under the label's delta on an unflagged training
image, which is what unrelated pairs fail (tests/test_align.py, bench labels' aligned_false).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attack.errors import AttackError


class AlignError(AttackError):
    """Images an alignment cannot take."""


@dataclass(frozen=True)
class AlignParams:
    """size: the grid keypoints are found on; keypoints: ORB's budget per image; residual:
    RANSAC inlier tolerance in pixels of that grid; min_inliers: matches the transform must
    explain; min_overlap: the share of the training image the warped generation must cover;
    fast_threshold: ORB's corner threshold (lower finds corners in softer photos); scales: ORB's
    pyramid levels (5 covers the 0.6-1.6x rescales a copy shows, cheaper than 8); seed: RANSAC's
    generator (deterministic). Measured on the realistic fixture world: tests/test_align.py."""
    size: int = 128
    keypoints: int = 500
    residual: float = 1.5
    min_inliers: int = 6
    min_overlap: float = 0.5
    fast_threshold: float = 0.02
    scales: int = 5
    seed: int = 0


@dataclass(frozen=True)
class Alignment:
    rmse: float            # RMSE over the overlap, generation warped onto the training image (256 grid)
    overlap: float         # fraction of the training image the warped generation covers
    mirrored: bool
    inliers: int
    matrix: tuple          # 3x3 row-major: training-image coords (x, y) of a generation pixel, 256 grid
    scale: float
    spread: float = 0.0    # area of the inliers' convex hull (training-image frame) / the image's area

    def as_json(self) -> dict:
        return {"aligned_rmse": round(self.rmse, 6), "overlap": round(self.overlap, 4), "mirrored": self.mirrored,
                "inliers": self.inliers, "scale": round(self.scale, 4),
                "transform": [round(v, 5) for v in self.matrix], "spread": round(self.spread, 4)}


def _grey(img: np.ndarray, size: int) -> np.ndarray:
    from skimage.transform import resize

    g = _channel_mean(img.astype(np.float32, copy=False)) if img.ndim == 3 else img.astype(np.float32)
    return resize(g, (size, size), anti_aliasing=True)


def _channel_mean(img: np.ndarray) -> np.ndarray:
    """img.mean(-1) of float32 [H,W,3], summed left to right as numpy's reduction over three values
    is (tests/test_align.py), without its slow loop over a 3-long axis."""
    return (img[..., 0] + img[..., 1] + img[..., 2]) / np.float32(3)


def features(img: np.ndarray, params: AlignParams = AlignParams()) -> tuple[np.ndarray, np.ndarray] | None:
    """(keypoints [K,2] as (row, col) on the params.size grid, binary descriptors) of an image
    [H,W,3] in [0,1]; None when it has too little structure for ORB."""
    from attack.images.orb import GridORB  # scikit-image's ORB, faster (attack/images/orb.py)

    orb = GridORB(n_keypoints=params.keypoints, fast_threshold=params.fast_threshold, n_scales=params.scales)
    try:
        orb.detect_and_extract(_grey(img, params.size))
    except RuntimeError:      # no keypoints at all (a plain image)
        return None
    if len(orb.keypoints) < params.min_inliers:
        return None
    return orb.keypoints, orb.descriptors


def fit_similarity(src: np.ndarray, dst: np.ndarray, residual: float, trials: int = 256,
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """RANSAC for dst ~ a * src + b with complex a (rotation and scale) and b (translation): two
    matches fix a hypothesis, all hypotheses are scored at once (vectorised), the best one's
    inliers are refitted by least squares. (3x3 matrix, inlier mask), or None."""
    z, w = src[:, 0] + 1j * src[:, 1], dst[:, 0] + 1j * dst[:, 1]
    n = len(z)
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    i, j = rng.integers(0, n, trials), rng.integers(0, n, trials)
    ok = (i != j) & (np.abs(z[i] - z[j]) > 1e-6)
    i, j = i[ok], j[ok]
    a = (w[j] - w[i]) / (z[j] - z[i])
    b = w[i] - a * z[i]
    err = np.abs(a[:, None] * z[None, :] + b[:, None] - w[None, :])      # [hypotheses, matches]
    votes = (err < residual).sum(1)
    if not len(votes):
        return None
    inl = err[int(votes.argmax())] < residual
    if inl.sum() < 2:
        return None
    zz, ww = z[inl], w[inl]
    design = np.stack([zz, np.ones_like(zz)], 1)
    (a1, b1), *_ = np.linalg.lstsq(design, ww, rcond=None)
    inl = np.abs(a1 * z + b1 - w) < residual
    m = np.array([[a1.real, -a1.imag, b1.real], [a1.imag, a1.real, b1.imag], [0.0, 0.0, 1.0]])
    return m, inl


def hull_fraction(points: np.ndarray, size: float) -> float:
    """Area of the convex hull of points [K,2] over size^2 (0 for fewer than 3 or collinear points):
    how much of the image the matches that support a transform come from."""
    from scipy.spatial import ConvexHull, QhullError

    if len(points) < 3:
        return 0.0
    try:
        return float(ConvexHull(points).volume) / (size * size)
    except QhullError:
        return 0.0


def align(gen: np.ndarray, train: np.ndarray, params: AlignParams = AlignParams(),
          train_features: tuple | None = None, gen_features: dict | None = None) -> Alignment | None:
    """The best similarity alignment (mirrored or not) of gen onto train, both [S,S,3] in [0,1];
    None when no transform is supported by min_inliers matches or covers min_overlap."""
    from attack.images.orb import cross_checked_matches

    if gen.ndim != 3 or train.ndim != 3 or gen.shape[-1] != 3 or train.shape != gen.shape:
        raise AlignError(f"expected two [S,S,3] images of one size, got {gen.shape} and {train.shape}")
    tf = train_features if train_features is not None else features(train, params)
    if tf is None:
        return None
    s = gen.shape[0] / params.size
    best = None
    for mirrored in (False, True):
        if gen_features is not None and mirrored in gen_features:
            gf = gen_features[mirrored]
        else:
            gf = features(np.ascontiguousarray(gen[:, ::-1]) if mirrored else gen, params)
            if gen_features is not None:
                gen_features[mirrored] = gf
        if gf is None:
            continue
        m = cross_checked_matches(gf[1], tf[1])
        if len(m) < params.min_inliers:
            continue
        src, dst = gf[0][m[:, 0]][:, ::-1], tf[0][m[:, 1]][:, ::-1]     # (x, y)
        fit = fit_similarity(src, dst, params.residual, seed=params.seed)
        if fit is None or int(fit[1].sum()) < params.min_inliers:
            continue
        inl = fit[1]
        scale_up = np.diag([s, s, 1.0])
        full = scale_up @ fit[0] @ np.linalg.inv(scale_up)              # on the compare grid
        if mirrored:   # generation coords (x, y) -> mirrored (W-1-x, y) first
            flip = np.array([[-1.0, 0, gen.shape[1] - 1], [0, 1, 0], [0, 0, 1]])
            full = full @ flip
        warped, inside = warp_onto(gen, full, train.shape[:2])
        overlap = float(inside.mean())
        if overlap < params.min_overlap:
            continue
        rmse = float(np.sqrt(np.mean((warped[inside] - train[inside]) ** 2)))
        cand = Alignment(rmse, overlap, mirrored, int(inl.sum()), tuple(full.ravel().tolist()),
                         float(np.sqrt(abs(np.linalg.det(full[:2, :2])))), hull_fraction(dst[inl], params.size))
        if best is None or cand.rmse < best.rmse:
            best = cand
    return best


def warp_onto(gen: np.ndarray, matrix, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """gen [H,W,3] warped by matrix (3x3, or its 9 values row-major: training-image (x, y) of a
    generation pixel) into a frame of shape (rows, cols): (warped with 0 outside, inside mask)."""
    from skimage.transform import warp

    m = np.asarray(matrix, dtype=np.float64).reshape(3, 3)
    warped = warp(gen, np.linalg.inv(m), output_shape=shape, order=1, cval=np.nan)
    inside = ~np.isnan(warped[..., 0])
    return np.nan_to_num(warped, nan=0.0), inside
