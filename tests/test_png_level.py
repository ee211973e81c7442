"""The store's PNG level (schema v11): new stores write images at zlib level 1, a store that already
holds images keeps level 6 so the same pixels keep their content address, and masks stay at 6."""
from __future__ import annotations

import io
import sqlite3

import numpy as np
import pytest
from PIL import Image

from store import CaptionRow, Store
from store.images import encode_png


def _photo(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((64, 64, 3)) * 255).astype(np.uint8)


def test_a_new_store_writes_level_1_and_the_pixels_come_back_exactly(tmp_path):
    a = _photo(0)
    with Store.open(tmp_path / "s") as s:
        assert s.get_meta("png_compress_level") == "1"
        sha = s.put_image(a)
        data = s.image_path(sha).read_bytes()
        assert data == encode_png(a, 1) and data != encode_png(a, 6)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(data))), a)
        mask = np.zeros((64, 64), bool)
        mask[8:40] = True
        assert s.image_path(s.put_mask(mask)).read_bytes() == encode_png(mask.astype(np.uint8) * 255, 6)


def _as_v10(path) -> None:
    conn = sqlite3.connect(path / "store.db")
    conn.execute("DELETE FROM meta WHERE key = 'png_compress_level'")
    conn.execute("DROP TABLE compare_rows")                  # what v12 adds
    conn.execute("DROP TABLE model_labels")                  # what v13 adds
    conn.execute("PRAGMA user_version = 10")
    conn.commit()
    conn.close()


def test_a_store_that_holds_images_keeps_level_6_after_the_migration(tmp_path):
    a = _photo(1)
    with Store.open(tmp_path / "old") as s:
        (cid,) = s.add_captions([CaptionRow("a photo")])
        s.images.png_level = 6                    # what a store before v11 wrote
        sha = s.put_image(a)
        s.add_training_image(sha, cid, "a.png")
    _as_v10(tmp_path / "old")
    with Store.open(tmp_path / "old") as s:
        assert s.get_meta("png_compress_level") == "6" and s.images.png_level == 6
        assert s.put_image(a) == sha             # the same pixels, the same name: no second copy
    with Store.open(tmp_path / "empty") as s:
        pass
    _as_v10(tmp_path / "empty")
    with Store.open(tmp_path / "empty") as s:   # an old store without images has nothing to keep
        assert s.get_meta("png_compress_level") == "1"


def test_a_compare_view_made_on_put_is_the_one_a_decode_makes(tmp_path):
    """Ingest and generation make each image's compare view from the pixels in hand: the same
    array a later decode and resize of the stored file gives (PNG is lossless), so nothing moves."""
    from store.images import COMPARE_SIZE, compare_resize

    rng = np.random.default_rng(3)
    big = rng.integers(0, 256, (300, 420, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    with Store.open(tmp_path / "s") as s:
        sha = s.put_image(big, compare_view=True)
        cached = s.images.cache / sha[:2] / f"{sha}.npy"
        assert cached.is_file() and s.images.compare_view_s > 0
        assert np.array_equal(np.load(cached), compare_resize(s.load_image(sha)))
        assert np.array_equal(s.compare_pixels(sha), np.load(cached))
        plain = s.put_image(big[::-1].copy())                        # without: made at first use
        assert not (s.images.cache / plain[:2] / f"{plain}.npy").exists()
        tiny = s.put_image(small, compare_view=True)                 # small: no file, resized when read
        assert not (s.images.cache / tiny[:2] / f"{tiny}.npy").exists()
        assert s.compare_pixels(tiny).shape == (COMPARE_SIZE, COMPARE_SIZE, 3)


def test_copy_store_copies_database_and_images_and_leaves_the_source(tmp_path):
    from store import StoreError
    from store.store import copy_store
    from tests.conftest import snapshot

    with Store.open(tmp_path / "src") as s:
        (cid,) = s.add_captions([CaptionRow("a caption")])
        sha = s.put_image(np.zeros((8, 8, 3), np.uint8))
        s.add_training_image(sha, cid, "train/0.png")
    before = snapshot(tmp_path / "src")
    dst = copy_store(tmp_path / "src", tmp_path / "copy" / "store")
    assert snapshot(tmp_path / "src") == before
    with Store.open(dst, create=False) as c:
        assert c.get_caption(cid).text == "a caption" and c.load_image(sha).size == (8, 8)
    with pytest.raises(StoreError, match="expected a new folder, got an existing"):
        copy_store(tmp_path / "src", dst)
    with pytest.raises(StoreError, match="expected a store folder with store.db"):
        copy_store(tmp_path / "nothing", tmp_path / "other")
