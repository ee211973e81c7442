"""Template masks (paper section 4): which pixels of a training image stay fixed across its
near-duplicates, so a template verbatim is compared only where the template does not vary.

Siblings of a training image are found among its index neighbours by one of two rules:
- "window" (the paper's): the RMSE to it (256x256, Lanczos, [0,1]) lies in a window, SSE
  1e2..1e3 on 256x256x3 in the paper's code, i.e. RMSE 0.0226..0.0713;
- "region" (the default): the neighbour leaves most of the picture unchanged and changes one
  region, whatever the RMSE (a mock-up whose print changes lies far outside the paper's window
  while most of its pixels are identical); what stays unchanged must carry detail, so a plain white
  surround shared by unrelated products is no family. A neighbour that is the same picture
  re-encoded is a copy, not a sibling, under both rules.
The keep-mask keeps pixels whose channel-summed absolute difference to every near-duplicate is below
0.03, then erodes (3x3) and dilates (3x3) the kept region to drop isolated pixels that matched by
chance. It is computed on the 256 grid (the paper's, for images at least that large) or, for a
smaller training image, on its own pixels: upsampling to 256 only smears the difference with
Lanczos ringing, a halo that is no property of the template. It is stored at the training
image's own size.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from attack.errors import AttackError
from attack.images.metrics import COMPARE_SIZE
from attack.kinds import DUP_RMSE_MAX, DUP_RMSE_MIN

SSE_TO_RMSE = 1.0 / (3 * COMPARE_SIZE * COMPARE_SIZE)
assert abs(DUP_RMSE_MIN - (1e2 * SSE_TO_RMSE) ** 0.5) < 1e-12, "attack.kinds: the window on the compare grid"


RULES = ("region", "window")


class MaskInputError(AttackError):
    """Images or parameters a mask cannot be built from."""


@dataclass(frozen=True)
class MaskParams:
    """rmse_min / rmse_max: the near-duplicate window (default: the paper code's SSE 1e2..1e3);
    candidates: index neighbours examined; diff: channel-summed absolute difference below which
    a pixel is kept; erode / dilate: square kernel sizes (odd, 1 = none); min_keep: a candidate
    in the window that leaves less than this fraction of the pixels unchanged is no template
    sibling (plain or unrelated images that happen to fall in the window) and is skipped, and a
    mask keeping less is not stored; max_dups: near-duplicates combined; agree_iou: siblings of
    one template change the same region, so only candidates whose change regions overlap the
    consensus by at least this IoU are combined (see consistent_siblings). rule: "region" or
    "window" (see the module docstring); region rule: what a sibling leaves unchanged must be
    picture, not plain ground: the reference's luminance std over those pixels at least
    shared_detail. Chosen on the development world (attack/bench/realworld.py) at 256 and 512 px: about
    half the lowest std its families keep (a smooth gradient under a varying band included);
    two images on one plain surround keep next to none.
    (Tile-level detail was tried first and refused that gradient family; closing the varying
    region or filling its holes, tried so a title varies as a block, lowered the mask IoU there.)"""
    rmse_min: float = DUP_RMSE_MIN
    rmse_max: float = DUP_RMSE_MAX
    candidates: int = 10
    diff: float = 0.03
    erode: int = 3
    dilate: int = 3
    min_keep: float = 0.2
    max_dups: int = 8
    agree_iou: float = 0.5
    rule: str = "region"
    shared_detail: float = 0.04

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise MaskInputError(f"MaskParams.rule: expected one of {', '.join(RULES)}, got {self.rule!r}")
        if not 0 <= self.rmse_min <= self.rmse_max:
            raise MaskInputError(f"expected 0 <= rmse_min <= rmse_max, got {self.rmse_min}, {self.rmse_max}")
        for name in ("erode", "dilate"):
            v = getattr(self, name)
            if v < 1 or v % 2 == 0:
                raise MaskInputError(f"MaskParams.{name}: expected an odd kernel size >= 1, got {v}")
        if self.candidates < 1 or self.max_dups < 1:
            raise MaskInputError(f"expected candidates, max_dups >= 1, got {self.candidates}, {self.max_dups}")


def _check_pair(ref: torch.Tensor, dups: torch.Tensor) -> None:
    if ref.ndim != 3 or ref.shape[0] != 3:
        raise MaskInputError(f"expected a reference image [3,S,S], got {tuple(ref.shape)}")
    if dups.ndim != 4 or dups.shape[1:] != ref.shape:
        raise MaskInputError(f"expected near-duplicates [M,{','.join(map(str, ref.shape))}], got {tuple(dups.shape)}")


def block_means(x: torch.Tensor, block: int = 4) -> torch.Tensor:
    """[M,3,S,S] averaged over block x block pixels: what is left of an image once re-encoding
    noise (JPEG blocks, resampling ringing) is gone; a region a template varies stays. Each
    image's means are computed on their own, so a caller may keep them per image and stack them."""
    return F.avg_pool2d(x, block) if x.shape[-1] % block == 0 else x


def _means(ref: torch.Tensor, candidates: torch.Tensor,
           soft: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, torch.Tensor]:
    """block_means of ref [3,S,S] and candidates [M,3,S,S], unless the caller passed them."""
    return soft if soft is not None else (block_means(ref[None])[0], block_means(candidates))


def denoise(x: torch.Tensor) -> torch.Tensor:
    """3x3 mean of [M,3,S,S] (borders averaged over the pixels inside), each image on its own."""
    return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


def _soft_rmse(soft_ref: torch.Tensor, soft_cands: torch.Tensor) -> torch.Tensor:
    """[M]: the RMSE of each candidate's block_means [M,3,s,s] to the reference's [3,s,s]."""
    return (soft_cands - soft_ref[None]).pow(2).flatten(1).mean(1).sqrt()


def near_duplicates(ref: torch.Tensor, candidates: torch.Tensor, params: MaskParams = MaskParams(),
                    limit: bool = True, soft: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[int]:
    """Indices of candidates [M,3,S,S] whose RMSE to ref [3,S,S] is inside the window, closest
    first (at most max_dups unless limit is False). A candidate that is the same picture
    re-encoded (JPEG at another quality: inside the window, but below rmse_min once both are
    blurred) is a copy, not a template sibling, and is left out. soft: the block_means of ref and
    candidates, when the caller keeps them."""
    _check_pair(ref, candidates)
    d = (candidates - ref).pow_(2).flatten(1).mean(1).sqrt()
    soft = _soft_rmse(*_means(ref, candidates, soft))
    top = params.rmse_max if params.rule == "window" else float("inf")   # region: judged on what changes
    inside = [(float(v), i) for i, (v, sv) in enumerate(zip(d, soft))
              if params.rmse_min <= float(v) <= top and float(sv) >= params.rmse_min]
    picks = [i for _, i in sorted(inside)]
    return picks[: params.max_dups] if limit else picks


def _erode(m: torch.Tensor, k: int) -> torch.Tensor:
    # erosion of the kept set = complement of the dilated complement; the dilation looks at
    # pixels inside the image only, so the image border counts as kept and is not eaten away
    return ~_dilate(~m, k) if k > 1 else m


def _dilate(m: torch.Tensor, k: int) -> torch.Tensor:
    """Bool masks [..., H, W] dilated by a k x k square: the OR of the in-image pixels of each
    window (a max pool padded with -inf), one axis at a time."""
    if k == 1:
        return m
    for axis in (-2, -1):
        out = m.clone()
        for s in range(1, min(k // 2, m.shape[axis] - 1) + 1):
            out.narrow(axis, s, m.shape[axis] - s).logical_or_(m.narrow(axis, 0, m.shape[axis] - s))
            out.narrow(axis, 0, m.shape[axis] - s).logical_or_(m.narrow(axis, s, m.shape[axis] - s))
        m = out
    return m


def keep_mask(ref: torch.Tensor, dups: torch.Tensor, params: MaskParams = MaskParams()) -> torch.Tensor:
    """Keep-mask [S,S] bool: pixels whose channel-summed |ref - dup| < diff for every near-duplicate
    [M,3,S,S], eroded then dilated."""
    _check_pair(ref, dups)
    if dups.shape[0] == 0:
        raise MaskInputError("expected at least one near-duplicate to build a mask from, got none")
    same = ((dups - ref).abs().sum(1) < params.diff).all(0)
    return _dilate(_erode(same, params.erode), params.dilate)


def voted_keep_mask(ref: torch.Tensor, dups: torch.Tensor, params: MaskParams = MaskParams()) -> torch.Tensor:
    """keep_mask for three or more siblings: a pixel varies when it differs (channel-summed
    |ref - dup| >= diff) in at least half of them, not in any one. What a template varies, every
    sibling varies; what JPEG noise or one sibling's blemish moves, only some do, and it no
    longer punches holes in the mask (the paper's rule is the one-sibling case of this)."""
    _check_pair(ref, dups)
    differs = ((dups - ref).abs().sum(1) >= params.diff).float().mean(0)
    same = differs < 0.5
    return _dilate(_erode(same, params.erode), params.dilate)


def shared_detail(ref: torch.Tensor, changes: torch.Tensor, params: MaskParams = MaskParams()) -> torch.Tensor:
    """[M]: the luminance std of ref [3,S,S] over the pixels each change map [M,S,S] leaves
    unchanged: how much picture a template keeps. A plain surround two unrelated products share
    keeps none; a scene, a drawing or a smooth gradient keeps some."""
    lum = (0.299 * ref[0] + 0.587 * ref[1] + 0.114 * ref[2]).flatten()
    kept = (~changes).flatten(1).float()                                        # [M, S*S]
    n = kept.sum(1).clamp_min(1)
    mean = (kept * lum).sum(1) / n
    return ((kept * (lum - mean[:, None]) ** 2).sum(1) / n).sqrt()


def resize_mask(mask: torch.Tensor | np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A bool mask to (width, height): box-filtered then thresholded at half, so a pixel of a
    smaller image is kept when most of the compare-grid pixels it covers are."""
    m = np.asarray(mask, dtype=np.uint8) * 255
    w, h = size
    if m.shape == (h, w):
        return m > 127
    return np.asarray(Image.fromarray(m).resize((w, h), Image.BOX)) > 127


@dataclass(frozen=True)
class TemplateMask:
    """A keep-mask (on the grid it was computed on), the near-duplicates it came from and its kept fraction."""
    keep: torch.Tensor
    dups: tuple[int, ...]
    dup_rmse: tuple[float, ...]
    keep_fraction: float


def _may_share(soft_ref: torch.Tensor, soft_cands: torch.Tensor, params: MaskParams, ids: Sequence[int]) -> list[int]:
    """Of ids (one per candidate's block_means [M,3,s,s]; soft_ref: the reference's), those that
    could leave min_keep of the picture unchanged: at least half of min_keep of the blocks differ
    by under twice the pixel threshold. A cheap bound that spares the denoising of unrelated
    neighbours."""
    close = (soft_cands - soft_ref[None]).abs().sum(1) < 2 * params.diff
    return [i for i, f in zip(ids, close.flatten(1).float().mean(1).tolist()) if f >= params.min_keep / 2]


def possible_siblings(soft_ref: torch.Tensor, soft_cands: torch.Tensor, params: MaskParams = MaskParams()) -> list[int]:
    """The candidates that can be template siblings, judged on block_means alone (the reference's
    [3,s,s], the candidates' [M,3,s,s]): template_mask picks only a candidate that reaches rmse_min
    on them (near_duplicates) and, under the region rule, passes _may_share, on these same values.
    Every candidate is compared with the reference on its own, so one it cannot pick changes
    nothing: a caller may give it just these, or skip an image none of whose neighbours is one
    (tests/test_masks.py; row by row to the bit when torch runs on one thread)."""
    rows = [i for i, v in enumerate(_soft_rmse(soft_ref, soft_cands).tolist()) if v >= params.rmse_min]
    if params.rule == "region" and rows:
        rows = _may_share(soft_ref, soft_cands[rows], params, rows)
    return rows


def consistent_siblings(changes: torch.Tensor, agree_iou: float) -> list[int]:
    """Indices of the largest group of change maps [M,S,S] (bool) that agree with one of them
    (IoU of the opened change regions >= agree_iou), closest candidates first on a tie: the
    siblings of one template vary one region; an image of another family, or the same photo
    shifted, changes elsewhere and is left out instead of emptying the mask."""
    opened = _dilate(_erode(changes, 3), 3).flatten(1).float()
    inter = opened @ opened.T
    area = opened.sum(1)
    iou = inter / (area[:, None] + area[None, :] - inter).clamp_min(1)
    agree = (iou >= agree_iou) | torch.eye(len(changes), dtype=torch.bool)
    best = int(torch.argmax(agree.sum(1)))   # first maximum: the closest candidate wins a tie
    return [j for j in range(len(changes)) if bool(agree[best, j])]


def template_mask(ref: torch.Tensor, candidates: torch.Tensor, params: MaskParams = MaskParams(),
                  candidate_ids: Sequence[int] | None = None, grid: tuple[torch.Tensor, torch.Tensor] | None = None,
                  soft: tuple[torch.Tensor, torch.Tensor] | None = None,
                  denoised: Callable[[Sequence[int]], tuple[torch.Tensor, torch.Tensor]] | None = None
                  ) -> TemplateMask | None:
    """The template mask of ref from its candidates (both at the compare size: the window is
    defined there), or None when no candidate is a near-duplicate or the mask keeps less than
    min_keep. grid: the same (ref, candidates) on the grid the keep-mask is computed on, e.g. a
    small training image's own pixels, where the difference is not smeared by upsampling.
    soft: block_means of (ref, candidates); denoised: rows -> denoise of the grid's (ref, those
    candidates); both when the caller keeps them per image.
    Of the near-duplicates, only the consistent siblings (consistent_siblings) are combined."""
    if candidates.shape[0] == 0:
        return None
    soft = _means(ref, candidates, soft)
    picks = near_duplicates(ref, candidates, params, limit=False, soft=soft)
    if params.rule == "region":
        picks = _may_share(soft[0], soft[1][picks], params, picks) if picks else picks
    if not picks:
        return None
    g_ref, g_cands = grid if grid is not None else (ref, candidates)
    picture = g_ref                     # judged as drawn: a 3x3 mean would flatten a fine grain
    if g_cands.shape[0] != candidates.shape[0]:
        raise MaskInputError(f"expected the grid images to match the {candidates.shape[0]} candidates, got {g_cands.shape[0]}")
    g_cands = g_cands[picks]            # from here on, row j is candidate picks[j]
    if g_ref.shape[-1] >= COMPARE_SIZE:
        # photos at real resolution are JPEGs: their re-encoding noise alone crosses the 0.03
        # threshold in busy areas and would punch the mask full of holes; a 3x3 mean removes it
        # (a template's varying region is far larger than 3 px). Small images (the demo's 32 px)
        # keep the paper's per-pixel rule on their own pixels.
        g_ref, g_cands = denoised(picks) if denoised is not None else (denoise(g_ref[None])[0], denoise(g_cands))
    # a near-duplicate shares the template: on its own it must leave min_keep of the pixels
    # unchanged, or one unrelated image inside a wide window would erase the whole mask
    changes = (g_cands - g_ref).abs().sum(1) >= params.diff
    shared = (~changes).flatten(1).float().mean(1)
    ok = [i for i, f in enumerate(shared.tolist()) if f >= params.min_keep]
    if params.rule == "region" and ok:      # a family shares a picture, not a plain surround
        detail = shared_detail(picture, changes[ok], params)
        ok = [i for i, f in zip(ok, detail.tolist()) if f >= params.shared_detail]
    if not ok:
        return None
    agree = consistent_siblings(changes[ok], params.agree_iou)
    rows = [ok[i] for i in agree][: params.max_dups]
    picks = [picks[j] for j in rows]
    keep = keep_mask(g_ref, g_cands[rows], params) if len(rows) < 3 else \
        voted_keep_mask(g_ref, g_cands[rows], params)
    frac = float(keep.float().mean())
    if frac < params.min_keep:
        return None
    ids = list(candidate_ids) if candidate_ids is not None else list(range(candidates.shape[0]))
    d = (candidates[picks] - ref).pow(2).flatten(1).mean(1).sqrt()
    return TemplateMask(keep, tuple(int(ids[i]) for i in picks), tuple(round(float(v), 5) for v in d), frac)


def mask_grid(images: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """Images [3,H,W] stacked at their own size when they share one no larger than the compare
    size (the keep-mask is then computed on their own pixels); None otherwise (use the compare grid)."""
    shapes = {tuple(t.shape) for t in images}
    if len(shapes) != 1:
        return None
    (shape,) = shapes
    return torch.stack(list(images)) if max(shape[1:]) <= COMPARE_SIZE else None
