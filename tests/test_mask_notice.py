"""A mask save that moves the TV match to another training image says so (issue 27, item 5), and
one that leaves the match where it was says nothing: mask_views.save_mask / restore_mask on a
store with two template siblings. tab_mask's save and restore callbacks show moved_notice(saved) in
the status line (and a toast) and relabel_html(saved) in the effect panel: both are checked here."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attack.stages.labels import relabel
from review import imaging, mask_views
from store import CaptionRow, Neighbour, Store


def _img(seed: int, size: int = 32) -> np.ndarray:
    """A blocky random picture (4x4 blocks): structure enough for the labeller's checks."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.9, (size // 4, size // 4, 3))
    return (np.kron(base, np.ones((4, 4, 1))) * 255).round().astype(np.uint8)


@contextmanager
def two_sibling_store(folder: Path) -> Iterator[dict]:
    """A store at ``folder`` with a caption whose generation copies two retrieved template siblings
    outside a varying square (each with an auto mask hiding it): ``near`` exactly, ``far`` but for
    one changed block, so the TV match is ``near`` until its mask stops hiding the square. Yields
    the open store, the caption id, the three training image ids and the first relabel (also used
    by tests/test_browser_mask_notice.py)."""
    own = _img(1)
    near = own.copy()
    near[:16, :16] = [200, 30, 30]
    far = own.copy()
    far[:16, :16] = [30, 30, 200]
    far[24:28, 24:28] = np.clip(far[24:28, 24:28].astype(int) + 40, 0, 255)
    gen = near.copy()
    gen[:16, :16] = [20, 200, 20]
    keep = np.ones((32, 32), bool)
    keep[:16, :16] = False
    with Store.open(folder) as s:
        cid, a, b = s.add_captions([CaptionRow("Velvet sofa in Burgundy"), CaptionRow("Velvet sofa in Navy"),
                                    CaptionRow("Velvet sofa in Teal")])
        own_id = s.add_training_image(s.put_image(own), cid, "own.png")
        near_id = s.add_training_image(s.put_image(near), a, "near.png")
        far_id = s.add_training_image(s.put_image(far), b, "far.png")
        run = s.start_run("generate", "demo", {})
        gid = s.add_generation(cid, run, 0, 16, "heun-karras", s.put_image(gen))
        m_near, m_far = s.save_mask(near_id, keep), s.save_mask(far_id, keep)
        # masked RMSE left to the labeller (None): it computes it from the pixels under the mask
        s.add_neighbours(gid, [Neighbour(0, near_id, 0.99, None, None, m_near),
                               Neighbour(1, far_id, 0.98, None, None, m_far),
                               Neighbour(2, own_id, 0.95, None, None, None)])
        first = relabel(s, cid)
        yield {"store": s, "caption_id": cid, "near": near_id, "far": far_id, "own": own_id, "first": first}


@pytest.fixture
def two_siblings(tmp_path):
    with two_sibling_store(tmp_path / "s") as t:
        yield t


def _layer(store: Store, tid: int) -> tuple[mask_views.MaskTarget, np.ndarray]:
    target, value = mask_views.mask_editor(store, tid)
    return target, np.asarray(Image.open(value["layers"][0])).copy()


def test_the_fixture_starts_with_the_tv_match_on_the_near_sibling(two_siblings):
    t = two_siblings
    assert t["first"].label == "TV" and t["first"].distances["tv_train_image_id"] == t["near"]
    assert mask_views.match_of(t["store"], t["caption_id"]) == ("TV", t["near"])


def test_a_save_that_moves_the_tv_match_gives_a_notice_naming_both_images(two_siblings):
    t = two_siblings
    s, cid = t["store"], t["caption_id"]
    target, layer = _layer(s, t["near"])
    layer[:, :, 3] = imaging.MASK_ALPHA           # keep every pixel: the varying square now counts
    saved = mask_views.save_mask(s, cid, target, layer, "ann")
    assert saved.relabel.label == "TV"
    assert mask_views.match_of(s, cid) == ("TV", t["far"])
    assert saved.moved == (("TV", t["near"]), ("TV", t["far"]))
    note = mask_views.moved_notice(saved)
    assert f"training image {t['near']}" in note and f"training image {t['far']}" in note
    assert note.index(str(t["near"])) < note.index(str(t["far"]))
    html = mask_views.relabel_html(saved)
    assert 'class="vb-mask-moved"' in html and f"training image {t['far']}" in html

    # restoring the near sibling's first version moves the match back: a notice the other way
    first = s.mask_versions(t["near"])[0].id
    back = mask_views.restore_mask(s, cid, mask_views.mask_editor(s, t["near"])[0], first, "bob")
    assert back.moved == (("TV", t["far"]), ("TV", t["near"]))
    assert mask_views.match_of(s, cid) == ("TV", t["near"])
    assert mask_views.moved_notice(back).index(str(t["far"])) < mask_views.moved_notice(back).index(str(t["near"]))


def test_a_save_that_keeps_the_match_gives_no_notice(two_siblings):
    t = two_siblings
    s, cid = t["store"], t["caption_id"]
    # the match's own mask, edited a little (one more row hidden): still the closest template
    target, layer = _layer(s, t["near"])
    layer[31 * target.scale:, :, 3] = 0
    saved = mask_views.save_mask(s, cid, target, layer, "ann")
    assert saved.version == 2 and saved.relabel.label == "TV"
    assert mask_views.match_of(s, cid) == ("TV", t["near"])
    assert saved.moved is None and mask_views.moved_notice(saved) == ""
    assert "vb-mask-moved" not in mask_views.relabel_html(saved)
    # the other sibling's mask opened wide: it falls further behind, the match stays
    target, layer = _layer(s, t["far"])
    layer[:, :, 3] = imaging.MASK_ALPHA
    other = mask_views.save_mask(s, cid, target, layer, "ann")
    assert other.moved is None and mask_views.moved_notice(other) == ""
    assert mask_views.match_of(s, cid) == ("TV", t["near"])
