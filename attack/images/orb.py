"""scikit-image's ORB with the Python loop of its keypoint detection done on a grid, and its
descriptor matching done on packed bits: the same keypoints, descriptors and matches
(tests/test_align.py compares them with scikit-image's on photos, drawings and noise).

corner_peaks, as ORB calls it, suppresses a peak next to an earlier (stronger) one with a KD-tree
query per peak, in Python: a large share of ORB's time on a 128-px grid. Here the same greedy pass
reads the peaks' 3x3 neighbourhoods from an index grid. Matching compared every descriptor pair
with scipy's cdist. Imports scikit-image (slow): import it where ORB is used.
"""
from __future__ import annotations

import numpy as np
from skimage.feature import ORB, corner_fast, corner_harris, corner_orientations, peak_local_max
from skimage.feature.orb import OFAST_MASK
from skimage.feature.util import _mask_border_keypoints


def adjacent_peaks_suppressed(response: np.ndarray) -> np.ndarray:
    """corner_peaks(response, min_distance=1): the peak_local_max peaks [K,2] (row, col), in
    their order, without any that lies within one pixel (Chebyshev) of an earlier kept one."""
    coords = peak_local_max(response, min_distance=1, threshold_abs=None, threshold_rel=None, exclude_border=True,
                            num_peaks=np.inf)
    if not len(coords):
        return coords
    index = np.full((response.shape[0] + 2, response.shape[1] + 2), -1, np.intp)      # a border of -1
    index[coords[:, 0] + 1, coords[:, 1] + 1] = np.arange(len(coords))
    rejected = np.zeros(len(coords), bool)
    for i, (r, c) in enumerate(coords.tolist()):
        if not rejected[i]:
            near = index[r:r + 3, c:c + 3]
            rejected[near[near > i]] = True     # an earlier neighbour was kept before, or rejected itself
    return coords[~rejected]


class GridORB(ORB):
    """ORB whose octaves find their peaks with adjacent_peaks_suppressed (its _detect_octave
    otherwise as scikit-image's)."""

    def _detect_octave(self, octave_image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        dtype = octave_image.dtype
        fast_response = corner_fast(octave_image, self.fast_n, self.fast_threshold)
        keypoints = adjacent_peaks_suppressed(fast_response)
        if len(keypoints) == 0:
            return np.zeros((0, 2), dtype=dtype), np.zeros((0,), dtype=dtype), np.zeros((0,), dtype=dtype)
        keypoints = keypoints[_mask_border_keypoints(octave_image.shape, keypoints, distance=16)]
        orientations = corner_orientations(octave_image, keypoints, OFAST_MASK)
        harris_response = corner_harris(octave_image, method="k", k=self.harris_k)
        return keypoints, orientations, harris_response[keypoints[:, 0], keypoints[:, 1]]


_BYTE_BITS = np.array([bin(i).count("1") for i in range(256)], np.uint8)


def _popcount(x: np.ndarray) -> np.ndarray:
    """Set bits of each uint8 (numpy >= 2 counts them natively; a table before)."""
    return np.bitwise_count(x) if hasattr(np, "bitwise_count") else _BYTE_BITS[x]


def cross_checked_matches(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """match_descriptors(a, b, cross_check=True) for binary descriptors [N,B] and [M,B] (bool):
    index pairs [K,2] of mutual nearest neighbours in Hamming distance, the first on a tie. The
    distances are counts of differing bits (popcounts of packed bytes, no BLAS threads), where
    scikit-image divides the same counts by B."""
    if not len(a) or not len(b):
        return np.zeros((0, 2), np.intp)
    pa, pb = np.packbits(a, axis=1), np.packbits(b, axis=1)
    differ = np.zeros((len(a), len(b)), np.uint16)
    for k in range(pa.shape[1]):      # one byte column at a time: [N,M] counts, never [N,M,B]
        differ += _popcount(pa[:, k, None] ^ pb[None, :, k])
    nearest = differ.argmin(1)
    mutual = differ.argmin(0)[nearest] == np.arange(len(a))
    return np.column_stack((np.arange(len(a))[mutual], nearest[mutual]))
