"""Layout helpers of issue 27 (items 4 and 5), unit by unit: the compact strip's whole-factor size
(render.fit_size), the queue thumbnails' whole factor (grid.whole_factor, grid.thumb,
grid.queue_thumbnails), the collapsed filters' title (tab_queue.more_filters_label) and the notice
of a match a mask save moved (mask_views.moved_match, moved_notice)."""
from __future__ import annotations

import base64
import io
import re

import numpy as np
import pytest
from PIL import Image

from review import grid, mask_views, render, views
from review.relabel import Relabel
from review.sample import build_sample_store
from review.tab_queue import more_filters_label
from store import Store


# -- render.fit_size --------------------------------------------------------------------------
@pytest.mark.parametrize("w,h,box,want", [
    (32, 32, 224, (224, 224)),        # 7 x 32 = 224 exactly
    (30, 20, 224, (210, 140)),        # 7 x 30 = 210; 8 x 30 = 240 would be over
    (100, 100, 224, (200, 200)),      # 2x, not tile_size's rounding to 3x (300 > 224)
    (112, 50, 224, (224, 100)),
    (113, 60, 224, (113, 60)),        # 2 x 113 > 224: shown at its own size
    (224, 224, 224, (224, 224)),      # at the box: factor 1
    (1, 1, 224, (224, 224)),
    (16, 64, 224, (48, 192)),         # the long side decides (64 x 3 = 192, x 4 = 256)
])
def test_fit_size_small_images_get_the_largest_whole_factor_inside_the_box(w, h, box, want):
    assert render.fit_size(w, h, box) == want


def test_fit_size_is_a_whole_factor_never_above_the_box_and_the_next_factor_would_be():
    for box in (64, 224, 256):
        for w in range(1, box + 1, 7):
            for h in (1, 3, w, max(1, w // 2), box):
                fw, fh = render.fit_size(w, h, box)
                k = fw // w
                assert (fw, fh) == (w * k, h * k) and k >= 1, (w, h, box)
                assert max(fw, fh) <= box, (w, h, box)
                assert max(w, h) * (k + 1) > box, (w, h, box)     # the largest factor that fits


@pytest.mark.parametrize("w,h,box,want", [
    (512, 512, 224, (224, 224)),
    (512, 256, 224, (224, 112)),
    (256, 512, 224, (112, 224)),
    (225, 100, 224, (224, 100)),
    (300, 1, 224, (224, 1)),          # a sliver keeps at least one pixel
    (1, 3000, 224, (1, 224)),
])
def test_fit_size_scales_a_large_image_down_to_the_box_keeping_its_aspect(w, h, box, want):
    assert render.fit_size(w, h, box) == want


def test_fit_size_defaults_to_the_compact_box_and_differs_from_tile_size_where_tile_would_overflow():
    assert render.fit_size(100, 100) == render.fit_size(100, 100, render.COMPACT_PX)
    assert max(render.fit_size(100, 100)) <= render.COMPACT_PX
    assert render.tile_size(100, 100, render.COMPACT_PX) == (200, 200)
    assert render.tile_size(80, 80, render.COMPACT_PX) == (240, 240)          # tile rounds up past the box
    assert render.fit_size(80, 80, render.COMPACT_PX) == (160, 160)           # fit never does
    assert render.tile_vars((32, 32)).endswith("--vb-cw:224px;--vb-ch:224px")


def test_fit_size_of_a_degenerate_size_does_not_divide_by_zero():
    assert render.fit_size(0, 0, 224) == (0, 0)
    assert render.fit_size(0, 10, 224) == (0, 220)


# -- grid.whole_factor ------------------------------------------------------------------------
@pytest.mark.parametrize("size,box,want", [
    ((32, 32), 64, (64, 64)),
    ((20, 12), 64, (60, 36)),
    ((12, 20), 64, (36, 60)),
    ((21, 21), 64, (63, 63)),
    ((33, 8), 64, (33, 8)),           # 2 x 33 > 64
    ((64, 64), 64, (64, 64)),         # a thumbnail already at the box
    ((1, 1), 64, (64, 64)),
])
def test_whole_factor_of_a_thumbnail_inside_the_box(size, box, want):
    assert grid.whole_factor(size, box) == want


def test_whole_factor_is_whole_and_within_the_box_for_every_size_up_to_it():
    box = grid.QUEUE_THUMB_PX
    for w in range(1, box + 1):
        for h in (1, w, max(1, box - w)):
            ww, hh = grid.whole_factor((w, h), box)
            k = ww // w
            assert (ww, hh) == (w * k, h * k) and max(ww, hh) <= box and max(w, h) * (k + 1) > box, (w, h)


# -- grid.thumb and queue_thumbnails: nearest-neighbour whole factors --------------------------
def _decode(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGB"))


def _blocks_equal_source(out: np.ndarray, src: np.ndarray) -> int:
    """The whole factor k when every k x k block of ``out`` is one source pixel; fails otherwise."""
    k = out.shape[0] // src.shape[0]
    assert k >= 1 and out.shape[:2] == (src.shape[0] * k, src.shape[1] * k), (out.shape, src.shape)
    np.testing.assert_array_equal(out, np.kron(src, np.ones((k, k, 1), np.uint8)))
    return k


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s") as s:
        yield s


def _noise(seed: int, w: int, h: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


@pytest.mark.parametrize("w,h,k", [(32, 32, 2), (20, 12, 3), (13, 30, 2), (64, 64, 1), (7, 5, 9)])
def test_enlarged_thumb_is_the_source_times_a_whole_factor_pixel_for_pixel(store, w, h, k):
    src = _noise(w * 100 + h, w, h)
    sha = store.put_image(src)
    uri, size = grid.thumb(store, sha, grid.QUEUE_THUMB_PX, enlarge=True)
    out = _decode(uri)
    assert size == (w * k, h * k) == (out.shape[1], out.shape[0])
    assert _blocks_equal_source(out, np.asarray(store.load_image(sha).convert("RGB"))) == k


def test_a_large_source_is_scaled_down_inside_the_box_not_enlarged(store):
    sha = store.put_image(_noise(1, 200, 100))
    uri, size = grid.thumb(store, sha, grid.QUEUE_THUMB_PX, enlarge=True)
    assert size == (64, 32) and _decode(uri).shape == (32, 64, 3)


def test_the_grid_thumb_is_not_enlarged_and_the_two_are_cached_apart(store):
    sha = store.put_image(_noise(2, 16, 16))
    assert grid.thumb(store, sha)[1] == (16, 16)               # the grid: CSS enlarges it
    assert grid.thumb(store, sha, grid.QUEUE_THUMB_PX, enlarge=True)[1] == (64, 64)
    assert grid.thumb(store, sha)[1] == (16, 16)
    assert grid.thumb_uri(store, sha) == grid.thumb(store, sha)[0]


def test_queue_thumbnails_put_generation_and_match_side_by_side_at_a_whole_factor(tmp_path):
    with Store.open(tmp_path / "q") as s:
        ids = build_sample_store(s, n=8, size=32)
        cells = grid.queue_thumbnails(s, ids[:3])
        assert len(cells) == 3
        for cid, cell in zip(ids[:3], cells):
            assert cell.startswith('<span class="vb-qpair">') and cell.endswith("</span>")
            imgs = re.findall(r'<img class="vb-qthumb" src="([^"]+)" width="(\d+)" height="(\d+)" alt="(\w+)">', cell)
            assert [a for *_, a in imgs] == ["generation", "match"]
            m = grid._match_of(s, cid)
            for (uri, w, h, _), sha in zip(imgs, (m.generation_sha, m.match_sha)):
                out = _decode(uri)
                assert (int(w), int(h)) == (64, 64) == (out.shape[1], out.shape[0])
                assert _blocks_equal_source(out, np.asarray(s.load_image(sha).convert("RGB"))) == 2
        assert grid.queue_thumbnails(s, []) == []


# -- tab_queue.more_filters_label -------------------------------------------------------------
def test_more_filters_label_with_none_set():
    assert more_filters_label(views.QueueFilter()) == "More filters (none set)"
    # the filters of the top row are not in the folded part, so they do not count
    assert more_filters_label(views.QueueFilter(order_by="ecs", human="any", search="sofa", run_id=1)) == \
        "More filters (none set)"


@pytest.mark.parametrize("kw,part", [
    ({"descending": False}, "lowest first"),
    ({"auto": ("TV",)}, "auto TV"),
    ({"auto": ("MV", "RV")}, "auto MV, RV"),
    ({"flags": ("suspect:texture",)}, "flags suspect:texture"),
    ({"flags": ("suspect:texture", "suspect:background")}, "flags suspect:texture, suspect:background"),
    ({"score_min": 0.5}, "score ≥ 0.5"),
    ({"score_min": 0.0}, "score ≥ 0"),            # zero is a bound, not "unset"
    ({"score_max": 12.25}, "score ≤ 12.25"),
])
def test_more_filters_label_names_each_filter_kind(kw, part):
    assert more_filters_label(views.QueueFilter(**kw)) == f"More filters: {part}"


def test_more_filters_label_joins_every_set_filter():
    f = views.QueueFilter(descending=False, auto=("TV",), flags=("suspect:texture",), score_min=1.0, score_max=2.0)
    assert more_filters_label(f) == \
        "More filters: lowest first · auto TV · flags suspect:texture · score ≥ 1 · score ≤ 2"


# -- mask_views.moved_match / moved_notice ----------------------------------------------------
def _save(moved) -> mask_views.MaskSave:
    return mask_views.MaskSave(1, 2, 0.5, Relabel("TV", {"tv": 0.05, "mv": None, "rv": None}), moved)


def test_moved_match_only_when_the_training_image_changes():
    assert mask_views.moved_match(("TV", 41), ("TV", 41)) is None
    assert mask_views.moved_match(("TV", 41), ("N", 41)) is None           # same image, another kind
    assert mask_views.moved_match(None, ("TV", 41)) is None
    assert mask_views.moved_match(("TV", 41), None) is None
    assert mask_views.moved_match(None, None) is None
    assert mask_views.moved_match(("TV", 41), ("TV", 73)) == (("TV", 41), ("TV", 73))
    assert mask_views.moved_match(("TV", 41), ("MV", 73)) == (("TV", 41), ("MV", 73))


def test_moved_notice_is_empty_when_the_match_stayed():
    assert mask_views.moved_notice(_save(None)) == ""
    assert mask_views.moved_notice(_save(mask_views.moved_match(("TV", 41), ("TV", 41)))) == ""
    assert "vb-mask-moved" not in mask_views.relabel_html(_save(None))


def test_moved_notice_names_both_training_images():
    note = mask_views.moved_notice(_save((("TV", 41), ("TV", 73))))
    assert re.search(r"\b41\b", note) and re.search(r"\b73\b", note)
    assert note.index("41") < note.index("73")                              # from the old, to the new
    assert "moved" in note and "TV" in note
    other = mask_views.moved_notice(_save((("TV", 41), ("MV", 73))))
    assert "MV" in other and "TV" in other and "41" in other and "73" in other
    html = mask_views.relabel_html(_save((("TV", 41), ("TV", 73))))
    assert 'class="vb-mask-moved"' in html and 'role="alert"' in html and "73" in html
