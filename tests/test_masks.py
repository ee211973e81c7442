"""Template masks: near-duplicate window, keep-mask morphology, native-size storage, store checks."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attack.images.metrics import to_compare
from attack.stages.masks import (
    MaskInputError,
    MaskParams,
    keep_mask,
    mask_grid,
    near_duplicates,
    resize_mask,
    template_mask,
)
from store import CaptionRow, MaskError, NotFoundError, Store

from .conftest import snapshot


def smooth_image(seed: int, size: int) -> np.ndarray:
    """A smooth random RGB image (uint8): a blurred noise field, so Lanczos resizing stays local."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.2, 0.8, (size // 8 + 1, size // 8 + 1, 3))
    img = np.kron(base, np.ones((8, 8, 1)))[:size, :size]
    return (img * 255).round().astype(np.uint8)


def test_paper_window_is_the_public_codes_sse():
    p = MaskParams()
    assert p.rmse_min == pytest.approx(np.sqrt(1e2 / (3 * 256 * 256)))
    assert p.rmse_max == pytest.approx(np.sqrt(1e3 / (3 * 256 * 256)))
    assert 0.0225 < p.rmse_min < 0.0227 and 0.0712 < p.rmse_max < 0.0714


def test_pair_differing_in_one_square_keeps_its_complement_at_compare_size():
    ref = torch.rand(3, 256, 256)
    dup = ref.clone()
    dup[:, 64:128, 96:192] = (dup[:, 64:128, 96:192] + 0.5) % 1.0  # a different colour in one square
    keep = keep_mask(ref, dup[None])
    expected = torch.ones(256, 256, dtype=torch.bool)
    expected[64:128, 96:192] = False
    assert torch.equal(keep, expected)


def test_erode_then_dilate_drops_isolated_kept_pixels_inside_the_varying_region():
    ref = torch.zeros(3, 64, 64)
    dup = ref.clone()
    dup[:, 16:48, 16:48] = 0.5
    dup[:, 30, 30] = 0.0  # one pixel that matches by chance inside the varying square
    keep = keep_mask(ref, dup[None])
    assert not keep[30, 30]
    assert not keep[16:48, 16:48].any() and keep[:16].all() and keep[:, 48:].all()
    raw = keep_mask(ref, dup[None], MaskParams(erode=1, dilate=1))
    assert raw[30, 30]  # without the morphology the chance match survives


def test_several_near_duplicates_keep_only_what_none_of_them_changes():
    ref = torch.rand(3, 32, 32)
    a, b = ref.clone(), ref.clone()
    a[:, :8] += 0.3
    b[:, -8:] += 0.3
    keep = keep_mask(ref, torch.stack([a, b]), MaskParams(erode=1, dilate=1))
    assert not keep[:8].any() and not keep[-8:].any() and keep[8:-8].all()


def test_synthetic_32px_training_pair_through_the_compare_grid_gives_the_squares_complement():
    img = smooth_image(0, 32)
    var = img.copy()
    var[8:16, 16:24] = np.clip(var[8:16, 16:24].astype(int) + 60, 0, 255)  # one varied square
    ref, cand = to_compare(img), to_compare(var)
    d = float((ref - cand).pow(2).mean().sqrt())
    assert MaskParams().rmse_min <= d <= MaskParams().rmse_max  # the pair is a near-duplicate in the paper's window
    natives = mask_grid([torch.from_numpy(a).permute(2, 0, 1).float() / 255 for a in (img, var)])
    window = MaskParams(rule="window")      # the paper's rule: flat 8-px blocks carry no detail for the region rule
    tm = template_mask(ref[0], cand, window, candidate_ids=[42], grid=(natives[0], natives[1:]))
    assert tm is not None and tm.dups == (42,) and tm.dup_rmse[0] == pytest.approx(d, abs=1e-4)
    native = resize_mask(tm.keep, (32, 32))
    expected = np.ones((32, 32), bool)
    expected[8:16, 16:24] = False
    assert np.array_equal(native, expected)
    assert tm.keep_fraction == pytest.approx(1 - 64 / 1024)
    # on the compare grid the upsampling's ringing widens the varied square by about a pixel
    coarse = resize_mask(template_mask(ref[0], cand, window).keep, (32, 32))
    assert not coarse[8:16, 16:24].any() and coarse[expected].mean() > 0.9


def test_window_selects_near_duplicates_closest_first():
    ref = torch.full((3, 16, 16), 0.5)
    cands = torch.stack([ref + 0.01, ref + 0.05, ref + 0.03, ref + 0.2, ref.clone()])
    window = MaskParams(rule="window")
    assert near_duplicates(ref, cands, window) == [2, 1]  # 0.01 and 0.0 below, 0.2 above the window
    assert near_duplicates(ref, cands, MaskParams(rmse_min=0.0, rmse_max=0.5, max_dups=3, rule="window")) == [4, 0, 2]
    # the region rule has no upper bound: what changes is judged instead (template_mask)
    assert near_duplicates(ref, cands) == [2, 1, 3]


def test_no_near_duplicate_or_too_little_kept_gives_no_mask():
    ref = torch.rand(3, 32, 32)
    assert template_mask(ref, (ref + 0.5).clamp(0, 1)[None]) is None  # outside the window
    everything = ref.clone()
    everything += 0.05  # in the window but every pixel changed: nothing kept
    assert template_mask(ref, everything[None]) is None
    assert template_mask(ref, torch.zeros(0, 3, 32, 32)) is None


def test_bad_mask_input_is_a_named_error():
    with pytest.raises(MaskInputError, match="expected an odd kernel size >= 1, got 4"):
        MaskParams(erode=4)
    with pytest.raises(MaskInputError, match="expected 0 <= rmse_min <= rmse_max, got 0.2, 0.1"):
        MaskParams(rmse_min=0.2, rmse_max=0.1)
    with pytest.raises(MaskInputError, match=r"expected near-duplicates \[M,3,8,8\], got \(1, 3, 4, 4\)"):
        keep_mask(torch.rand(3, 8, 8), torch.rand(1, 3, 4, 4))
    with pytest.raises(MaskInputError, match="expected at least one near-duplicate"):
        keep_mask(torch.rand(3, 8, 8), torch.rand(0, 3, 8, 8))


def _training_image(store: Store, size: int) -> int:
    (cid,) = store.add_captions([CaptionRow("a template product photo")])
    return store.add_training_image(store.put_image(smooth_image(1, size)), cid, "t.png")


def test_store_rejects_a_mask_of_the_wrong_size_and_changes_nothing(tmp_path):
    with Store.open(tmp_path / "s") as store:
        tid = _training_image(store, 32)
        good = np.zeros((32, 32), bool)
        good[4:8] = True
        v1 = store.save_mask(tid, good)
        wrong_sha = store.put_mask(np.ones((16, 24), bool))  # a stray file is harmless; snapshot after it
    before = snapshot(tmp_path / "s")
    with Store.open(tmp_path / "s") as store:
        with pytest.raises(MaskError, match=f"mask for training image {tid}: expected 32x32 .*got 24x16"):
            store.save_mask(tid, np.ones((16, 24), bool), source="edited", author="ann")
        with pytest.raises(MaskError, match="expected 32x32 .*got 24x16"):
            store.add_mask(tid, wrong_sha, source="edited", author="ann")
        with pytest.raises(NotFoundError, match="expected an existing training_images id, got 999"):
            store.save_mask(999, good)
    assert snapshot(tmp_path / "s") == before
    with Store.open(tmp_path / "s") as store:
        assert [m.id for m in store.mask_versions(tid)] == [v1]
        assert np.array_equal(store.load_mask(store.current_mask(tid).image_sha), good)


def test_set_neighbour_mask_updates_one_row_or_names_the_missing_one(tmp_path):
    from store import Neighbour

    with Store.open(tmp_path / "s") as store:
        tid = _training_image(store, 16)
        cid = store.caption_id("a template product photo")
        run = store.start_run("generate", "demo", {})
        gid = store.add_generation(cid, run, 0, 1, "heun", store.put_image(smooth_image(2, 16)))
        store.add_neighbours(gid, [Neighbour(0, tid, 0.9, 0.2, None, None)])
        mid = store.save_mask(tid, np.ones((16, 16), bool))
        store.set_neighbour_mask(gid, 0, 0.05, mid)
        assert store.neighbours(gid) == [Neighbour(0, tid, 0.9, 0.2, 0.05, mid)]
        with pytest.raises(NotFoundError, match=r"expected an existing neighbour \(generation .*, rank 3\)"):
            store.set_neighbour_mask(gid, 3, 0.05, mid)


# -- what retrieval keeps per image instead of recomputing it per comparison ------------------------------------
def _with_square(base: np.ndarray, side: int, seed: int) -> np.ndarray:
    """base with a side x side square (at a seeded place) painted one colour: a template sibling."""
    rng = np.random.default_rng(seed)
    out = base.copy()
    r, c = rng.integers(0, base.shape[0] - side, 2)
    out[r:r + side, c:c + side] = rng.integers(0, 256, 3)
    return out


def _gate_cases():
    """(ref, candidates) on the compare grid: template families whose varying square runs from a
    few pixels (block means barely reach rmse_min) to most of the picture, with unrelated images,
    a brightened copy and a re-encoding-like copy among the candidates."""
    for seed in range(3):
        base = smooth_image(seed, 256)
        others = [smooth_image(100 + seed + k, 256) for k in range(2)]
        brighter = np.clip(base.astype(int) + 9, 0, 255).astype(np.uint8)
        noisy = np.clip(base.astype(int) + np.random.default_rng(seed).integers(-2, 3, base.shape), 0, 255)
        yield to_compare(base)[0], to_compare(np.stack([brighter, noisy.astype(np.uint8)] + others))
        for side in (12, 16, 20, 28, 96, 224):
            sibs = [_with_square(base, side, seed * 31 + side + k) for k in range(3)]
            for cands in (sibs, sibs[:1] + others, others + sibs[1:]):
                yield to_compare(base)[0], to_compare(np.stack(cands))


def test_possible_siblings_are_all_a_template_mask_needs_and_not_all_candidates():
    """Retrieval compares at full size only the candidates possible_siblings keeps, and skips an
    image with none: the mask must be the one all candidates give, and the screen must not be
    vacuous (it refuses some images, lets some through that still get no mask)."""
    from attack.stages.masks import block_means, possible_siblings

    seen, near_edge, threads = set(), 0, torch.get_num_threads()
    torch.set_num_threads(1)            # as retrieval runs it: each candidate's sums in one order
    try:
        for rule in ("region", "window"):
            p = MaskParams(rule=rule)
            for ref, cands in _gate_cases():
                soft_ref, soft = block_means(ref[None])[0], block_means(cands)
                rows = possible_siblings(soft_ref, soft, p)
                full = template_mask(ref, cands, p)
                assert rows or full is None, (rule, "the screen refused an image that gets a mask")
                if rows:
                    screened = template_mask(ref, cands[rows], p, rows, soft=(soft_ref, soft[rows]))
                    assert (screened is None) == (full is None)
                    if full is not None:
                        assert torch.equal(screened.keep, full.keep) and screened.dups == full.dups
                        assert screened.dup_rmse == full.dup_rmse and screened.keep_fraction == full.keep_fraction
                seen.add((bool(rows), full is not None))
                if full is not None:
                    soft_rmse = (soft - soft_ref).pow(2).flatten(1).mean(1).sqrt()
                    near_edge += bool(((soft_rmse >= p.rmse_min) & (soft_rmse < 1.5 * p.rmse_min)).any())
    finally:
        torch.set_num_threads(threads)
    assert seen == {(False, False), (True, False), (True, True)}
    assert near_edge        # a mask rests on a sibling whose block means only just reach rmse_min


def test_per_image_block_means_denoise_and_morphology_equal_the_batched_ones():
    from attack.stages.masks import _dilate, _erode, block_means, denoise

    x = torch.rand(6, 3, 64, 64)
    for f in (block_means, denoise):
        assert torch.equal(torch.stack([f(x[i:i + 1])[0] for i in range(6)]), f(x))
    rng = torch.Generator().manual_seed(0)
    for shape in ((64, 64), (5, 7), (1, 1), (3, 40)):
        for k in (1, 3, 5):
            m = torch.rand(shape, generator=rng) < 0.4
            pooled = torch.nn.functional.max_pool2d(m[None, None].float(), k, stride=1, padding=k // 2)[0, 0] > 0.5
            assert torch.equal(_dilate(m, k), m if k == 1 else pooled), (shape, k)
            assert torch.equal(_erode(m, k), ~_dilate(~m, k))
    batch = torch.rand(4, 30, 20, generator=rng) < 0.3
    assert torch.equal(_dilate(batch, 3), torch.stack([_dilate(b, 3) for b in batch]))
