"""The notice of a moved match, in the browser (issue 27, item 5): in the Mask tab, a save or a
restore that moves the candidate's TV match to another training image says so, naming both images,
in the status line and under the editor (.vb-mask-moved; a save also gives a toast), and a save that
leaves the match where it is says nothing of the kind. The store is tests/test_mask_notice.py's:
one caption, two template siblings "near" (the match) and "far", each with an auto mask hiding a
square where the generation differs, and the caption's own image (no mask). Brushing part of near's
square back in moves the match to far; restoring near's auto mask moves it back; saving the own
image's first mask moves nothing. Served on loopback, driven by Playwright in Debian's chromium."""
from __future__ import annotations

import io
import re
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from PIL import Image
from playwright.sync_api import expect

from review import mask_views
from store import Store

from .conftest import free_port, launch_chromium
from .test_browser import VIEWPORT
from .test_mask_notice import two_sibling_store

pytestmark = pytest.mark.slow

REVIEWER = "tester"
WAIT = 30_000          # ms for a round trip to the app: seconds on a busy 2-core machine


@contextmanager
def _served(s: Store) -> Iterator[str]:
    """The review app on an open store, launched on loopback (as conftest.served_sample_app does)."""
    from review.app import build_app, launch_options

    demo = build_app(s)
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options(s))
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


def _pixels(pg, *points: tuple) -> list:
    """The colours the page shows at (dx, dy) from the editor canvas's centre (where the image is),
    from one screenshot (each is a frame drawn in software: a poll must not starve the editor)."""
    box = pg.locator("#vb-editor canvas").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    x0, y0 = min(dx for dx, _ in points), min(dy for _, dy in points)
    w, h = max(dx for dx, _ in points) - x0 + 1, max(dy for _, dy in points) - y0 + 1
    shot = Image.open(io.BytesIO(pg.screenshot(clip={"x": cx + x0, "y": cy + y0, "width": w, "height": h})))
    return [shot.convert("RGB").getpixel((dx - x0, dy - y0)) for dx, dy in points]


def _red(c: tuple) -> bool:                 # near's square as it is: (200, 30, 30), no mask over it
    return abs(c[0] - 200) < 30 and c[1] < 60 and c[2] < 60


def _tinted(c: tuple) -> bool:              # under the mask's colour (255, 0, 170) at 0.6: a kept pixel
    return c[0] > 150 and c[1] < 100 and c[2] > 90


def _wait_until(pg, ok, what: str, seconds: float = 30) -> None:
    for _ in range(int(seconds * 2)):
        if ok():
            return
        pg.wait_for_timeout(500)
    raise AssertionError(f"expected {what} within {seconds} s")


def _pick(pg, tid: int, ready, what: str) -> None:
    """Pick training image tid in the Mask tab; wait until the panel names it and the canvas shows
    it (``ready``): the editor draws what it was given a while after the panel changed, and a stroke
    or a save before that would be on the previous picture."""
    pg.locator("#mask-image input").click()
    pg.get_by_role("option", name=f"training image {tid} ").first.click()
    expect(pg.locator("#vb-mask-info [data-train-image-id]")).to_have_attribute("data-train-image-id", str(tid),
                                                                               timeout=WAIT)
    _wait_until(pg, ready, what)


def _near_shown(pg) -> bool:        # near's square bare (its auto mask hides it), a kept pixel under the mask
    square, kept = _pixels(pg, (-130, -130), (130, 130))
    return _red(square) and _tinted(kept)


def _own_shown(pg) -> bool:         # the own image has no mask: the editor keeps every pixel, the square too
    return all(_tinted(c) for c in _pixels(pg, (-130, -130), (130, 130)))


def _brush_near_square(pg) -> None:
    """Brush a strip across near's hidden square (the image is 32 px shown x16, centred in the canvas:
    60 px above the centre is row ~12, the strip runs from column ~7 to the square's edge and on),
    drawn again until the strip shows on the canvas."""
    editor = pg.locator("#vb-editor")
    editor.get_by_role("button", name="Brush", exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    x0, y = box["x"] + box["width"] / 2 - 150, box["y"] + box["height"] / 2 - 60
    for _ in range(3):
        pg.mouse.move(x0, y)
        pg.mouse.down()
        pg.mouse.move(x0 + 300, y)      # one move: the brush draws the segment (each move repaints in software)
        pg.mouse.up()
        try:
            _wait_until(pg, lambda: _tinted(_pixels(pg, (-100, -60))[0]), "the brushed strip on the canvas", 10)
            break
        except AssertionError:
            continue
    pg.wait_for_timeout(1000)          # a hand's move to the button: the editor hands on its strokes


SAVED_OR_REFUSED = """(want) => document.querySelector('#vb-status').innerText.includes(want)
  || [...document.querySelectorAll('.toast-body')].some((t) => /expected a change|still loading/.test(t.innerText))"""


def _save(pg, version: int, tid: int) -> str:
    """Click save; wait until the status line and the panel under the editor say version was saved.
    A save refused as no change or as the editor still loading (it hands on what it shows seconds
    late on a busy machine) is clicked again, as a reviewer would, after closing its toast."""
    want = f"Saved mask v{version} of training image {tid}."
    for _ in range(3):
        pg.locator("#mask-save").click()
        pg.wait_for_function(SAVED_OR_REFUSED, arg=want, timeout=WAIT)
        if want in pg.locator("#vb-status").inner_text():
            break
        refused = pg.locator(".toast-body", has_text=re.compile("expected a change|still loading"))
        refused.locator(".toast-close").first.click()
        pg.wait_for_timeout(2000)
    expect(pg.locator("#vb-status")).to_contain_text(want, timeout=WAIT)
    expect(pg.locator("#vb-mask-effect")).to_contain_text(f"Saved mask v{version} ", timeout=WAIT)
    return pg.locator("#vb-status").inner_text()


def _restore(pg, old: int, version: int) -> str:
    """Pick version ``old`` in the versions dropdown, restore it, wait until it is saved as ``version``."""
    pg.locator("#mask-versions input").click()
    pg.get_by_role("option", name=re.compile(rf"^v{old} · ")).first.click()
    pg.locator("#mask-restore").click()
    expect(pg.locator("#vb-status")).to_contain_text(f"Restored as mask v{version}.", timeout=WAIT)
    expect(pg.locator("#vb-mask-effect")).to_contain_text(f"Saved mask v{version} ", timeout=WAIT)
    return pg.locator("#vb-status").inner_text()


def _moved(before: int, after: int) -> str:
    return f"The TV match moved from training image {before} (TV) to training image {after}"


def test_the_mask_tab_says_when_a_save_or_restore_moves_the_match(tmp_path):
    from playwright.sync_api import sync_playwright

    with two_sibling_store(tmp_path / "s") as t, _served(t["store"]) as url, sync_playwright() as p:
        s, cid, near, far, own = t["store"], t["caption_id"], t["near"], t["far"], t["own"]
        assert mask_views.match_of(s, cid) == ("TV", near) and s.current_mask(own) is None
        b = launch_chromium(p)
        try:
            pg = b.new_page(viewport=VIEWPORT)
            pg.set_default_timeout(WAIT)
            pg.goto(url)
            pg.wait_for_selector("#vb-queue")
            pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill(REVIEWER)
            pg.get_by_role("tab", name="Candidate").click()
            expect(pg.locator("#vb-view .vb-cand")).to_have_attribute("data-caption-id", str(cid), timeout=WAIT)
            pg.locator("body").click(position={"x": 5, "y": 5})
            pg.keyboard.press("m")                         # the Mask tab, on the match: near
            expect(pg.locator("#vb-mask-info [data-train-image-id]")).to_have_attribute("data-train-image-id",
                                                                                       str(near), timeout=WAIT)
            _wait_until(pg, lambda: _near_shown(pg), "the editor to show near's image with its auto mask")
            effect = pg.locator("#vb-mask-effect")
            toasts = pg.locator(".toast-body", has_text="match moved")

            # a save that leaves the match: the own image's first mask (the editor's keep-all default)
            _pick(pg, own, lambda: _own_shown(pg), "the editor to show the own image, every pixel kept")
            said = _save(pg, 1, own)
            assert "moved" not in said and f"training image {near}" not in said, said
            assert effect.locator(".vb-mask-moved").count() == 0 and toasts.count() == 0
            assert mask_views.match_of(s, cid) == ("TV", near) and s.current_mask(own).author == REVIEWER

            # a save that keeps part of the square near's auto mask hid: the match moves to far
            _pick(pg, near, lambda: _near_shown(pg), "the editor to show near's image with its auto mask")
            _brush_near_square(pg)
            said = _save(pg, 2, near)
            assert mask_views.match_of(s, cid) == ("TV", far)
            kept = s.load_mask(s.current_mask(near).image_sha)
            assert kept[:16, :16].any() and not kept[:16, :16].all()     # a strip of the square, no more
            assert _moved(near, far) in said, said
            expect(effect.locator(".vb-mask-moved")).to_contain_text(_moved(near, far), timeout=WAIT)
            expect(toasts.first).to_contain_text(_moved(near, far), timeout=WAIT)

            # restoring near's auto mask (v1) moves it back: the notice names them the other way round
            said = _restore(pg, 1, 3)
            assert mask_views.match_of(s, cid) == ("TV", near)
            assert _moved(far, near) in said, said
            expect(effect.locator(".vb-mask-moved")).to_contain_text(_moved(far, near), timeout=WAIT)
        finally:
            b.close()
