"""The review app in Debian's headless chromium at 1400x900, driven by Playwright: keyboard triage
of 20 candidates with undo and help, the one-screen layout (also at 512 px), the compare tile, the
grid's bulk label and its undo, the mask editor (strokes kept across an image switch), keys from
the queue, export; an HTML caption stays text. Screenshots go to a temporary folder, or to
$VERBATIM_SCREENSHOT_DIR when set."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from review.sample import SCRIPT_CAPTION

from .conftest import served_sample_app

pytestmark = pytest.mark.slow

REVIEWER = "tester"
VIEWPORT = {"width": 1400, "height": 900}


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_sample_app(tmp_path_factory.mktemp("browser") / "store") as (s, ids, url, _):
        yield s, ids, url



def _open(browser, url: str, tab: str = "Candidate"):
    pg = browser.new_page(viewport=VIEWPORT)
    pg.set_default_timeout(20_000)
    pg.goto(url)
    pg.wait_for_selector("#vb-queue")
    pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill(REVIEWER)
    pg.get_by_role("tab", name=tab).click()
    if tab == "Candidate":
        pg.wait_for_selector("#vb-view .vb-cand")
    return pg


@pytest.fixture(scope="module")
def page(app, browser):
    pg = _open(browser, app[2])
    yield pg
    pg.close()


def _shots() -> Path:
    d = os.environ.get("VERBATIM_SCREENSHOT_DIR")
    return Path(d) if d else Path(tempfile.gettempdir()) / "verbatim-shots"


def _current(pg) -> int:
    return int(pg.locator("#vb-view .vb-cand").get_attribute("data-caption-id"))


VIEW = "document.querySelector('#vb-view .vb-cand').outerHTML"
# the decision pictures (generations, own image, match) fully inside the viewport
ABOVE_FOLD = """() => [...document.querySelectorAll(
  '#vb-view .vb-strip[data-testid=generations] img, #vb-view img.vb-own, #vb-view img.vb-match')].map((e) => {
  const r = e.getBoundingClientRect();
  return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; })"""


def _press_and_wait(pg, key: str) -> None:
    """Press a shortcut and wait until the candidate view re-renders."""
    before = pg.evaluate(VIEW)
    pg.keyboard.press(key)
    pg.wait_for_function(f"(b) => {VIEW} !== b", arg=before)


def _search_queue(pg, text: str) -> None:
    pg.get_by_role("tab", name="Queue").click()
    search = pg.get_by_label("Search captions").first
    search.fill(text)
    search.press("Enter")


def _stroke(pg, tool: str, dy: float) -> None:
    """One horizontal stroke with the editor's tool across the canvas, dy from its centre."""
    editor = pg.locator("#vb-editor")
    editor.get_by_role("button", name=tool, exact=True).click()
    box = editor.locator("canvas").first.bounding_box()
    x0, y = box["x"] + box["width"] / 2 - 150, box["y"] + box["height"] / 2 + dy
    pg.mouse.move(x0, y)
    pg.mouse.down()
    for i in range(1, 5):              # every move repaints the canvas (software WebGL): few, long ones
        pg.mouse.move(x0 + i * 75, y)
    pg.mouse.up()


def _editor_shows(pg, tid: int) -> None:
    """Wait until the editor holds training image tid (and its canvas had time to draw)."""
    pg.wait_for_function(f"document.querySelector('#vb-mask-info [data-train-image-id=\"{tid}\"]') !== null")
    expect(pg.locator("#vb-editor canvas").first).to_be_visible()
    pg.wait_for_timeout(2000)


def _pick_image(pg, tid: int) -> None:
    pg.locator("#mask-image input").click()
    pg.get_by_role("option", name=f"training image {tid} ").first.click()
    _editor_shows(pg, tid)


def test_html_caption_is_shown_as_text(app, page):
    s, ids, _ = app
    assert _current(page) == ids[0]
    assert page.locator("#vb-head .vb-caption").inner_text() == SCRIPT_CAPTION
    assert page.evaluate("window.__vb_pwned") is None
    assert page.locator("#vb-view script, #vb-head script").count() == 0
    assert page.locator("#vb-head .vb-caption img").count() == 0


def test_one_screen_the_compare_tile_and_scroll_reset(app, page):
    s, ids, _ = app
    page.locator("body").click(position={"x": 5, "y": 5})
    seen = []
    for _ in range(6):                 # MV, TV and N candidates: every decision picture on screen
        inside = page.evaluate(ABOVE_FOLD)
        assert len(inside) >= 6 and all(inside), (_current(page), inside)
        seen.append(_current(page))
        _press_and_wait(page, "j")
    page.evaluate("window.scrollTo(0, 400)")
    _press_and_wait(page, "j")
    page.wait_for_function("window.scrollY === 0")               # a new candidate opens at the top
    # the compare tile: the range swipes; c switches to onion skin; space held flips to the generation
    page.locator("#vb-view .vb-range").first.fill("20")
    assert "20%" in page.locator("#vb-view .vb-after").first.get_attribute("style")
    page.keyboard.press("c")
    page.locator("#vb-view .vb-range").first.fill("30")
    assert "opacity: 0.3" in page.locator("#vb-view .vb-after").first.get_attribute("style")
    assert page.locator("#vb-view .vb-mode").first.inner_text() == "onion skin"
    page.keyboard.down(" ")
    assert "vb-flip" in page.locator("#vb-view .vb-compare").first.get_attribute("class")
    page.keyboard.up(" ")
    assert "vb-flip" not in page.locator("#vb-view .vb-compare").first.get_attribute("class")
    page.keyboard.press("c")
    # "/" focuses the note; Esc leaves it
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.closest('#vb-note-field') !== null")
    page.keyboard.press("Escape")
    _shots().mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(_shots() / "review-sample.png"))


def test_one_screen_at_real_resolution(tmp_path, browser):
    """512-px images: every decision picture at 256 px or more, all inside 1400x900."""
    with served_sample_app(tmp_path / "store512", n=6, size=512) as (s, ids, url, _):
        pg = _open(browser, url)
        try:
            pg.locator("body").click(position={"x": 5, "y": 5})
            for _ in range(4):
                widths = pg.evaluate("[...document.querySelectorAll('#vb-view .vb-strip img')].map(e => e.width)")
                assert len(widths) >= 6 and min(widths) >= 256
                assert all(pg.evaluate(ABOVE_FOLD))
                _press_and_wait(pg, "j")
        finally:
            pg.close()


def test_keyboard_triage_of_20_candidates_with_undo_and_help(app, page, tmp_path):
    s, ids, _ = app
    page.locator("body").click(position={"x": 5, "y": 5})
    keys = "1458276345812345678"
    labelled = []
    for i in range(20):
        cid = _current(page)
        key = (keys * 2)[i]
        labelled.append((cid, {"1": "MV", "2": "TV", "3": "RV", "4": "N", "5": "FP:texture", "6": "FP:background",
                               "7": "FP:other", "8": "skip"}[key]))
        _press_and_wait(page, key)
        assert _current(page) != cid
    for cid, label in labelled:
        entry = s.label_history(cid)[-1]
        assert (entry.label, entry.reviewer) == (label, REVIEWER)
    assert len({cid for cid, _ in labelled}) == 20
    # k goes back to the last labelled one, u undoes it (a new history entry), j goes forward again
    now = _current(page)
    _press_and_wait(page, "k")
    back = _current(page)
    assert back == labelled[-1][0]
    _press_and_wait(page, "u")
    assert s.current_label(back) is None and s.label_history(back)[-1].undoes is not None
    _press_and_wait(page, "j")
    assert _current(page) == now
    # u right after a label undoes that label and goes back to its candidate
    _press_and_wait(page, "3")
    assert s.current_label(now) == "RV" and _current(page) != now
    _press_and_wait(page, "u")
    assert _current(page) == now and s.current_label(now) is None
    page.keyboard.press("?")
    assert page.locator("#vb-help").is_visible()
    assert "TV can stand although the MV distance" in page.locator("#vb-help").inner_text()
    page.screenshot(path=str(tmp_path / "review-help.png"))
    page.keyboard.press("Escape")
    assert not page.locator("#vb-help").is_visible()
    # typing in the note field never triggers a shortcut
    before = _current(page)
    page.locator("#vb-note-field textarea, #vb-note-field input").first.fill("4j")
    page.locator("#vb-note-field textarea, #vb-note-field input").first.press("4")
    page.wait_for_timeout(300)
    assert _current(page) == before and s.current_label(before) is None
    page.locator("#vb-note-field textarea, #vb-note-field input").first.fill("")


def test_a_digit_in_the_queue_opens_its_top_candidate_and_no_dropdown_opens_on_focus(app, page):
    s, ids, _ = app
    _search_queue(page, "caption 28")
    page.wait_for_function("(t => t.includes('sample caption 28') && !t.includes('sample caption 27'))"
                           "(document.querySelector('#vb-queue').innerText)")
    page.wait_for_timeout(300)
    thumbs = page.locator("#vb-queue img.vb-qthumb")                        # generation | match thumbnails
    assert thumbs.count() >= 2 and thumbs.first.get_attribute("src").startswith("data:image/png;base64,")
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("1")                                                # opens, does not label
    expect(page.get_by_role("tab", name="Candidate")).to_have_attribute("aria-selected", "true")
    page.wait_for_function(f"document.querySelector('#vb-view .vb-cand').dataset.captionId == '{ids[28]}'")
    assert s.current_label(ids[28]) is None
    page.get_by_role("tab", name="Queue").click()
    page.get_by_label("Search captions").first.focus()
    combos = []
    for _ in range(16):                                  # back through the filters by keyboard
        page.keyboard.press("Shift+Tab")
        page.wait_for_timeout(150)
        if page.evaluate("document.activeElement.getAttribute('role') === 'combobox'"):
            combos.append(page.evaluate("document.activeElement.getAttribute('aria-label')"))
            assert page.locator("[role=option]").count() == 0, combos[-1]   # nothing opened on focus
            if combos[-1] == "Rank by":                  # the first filter
                break
    assert {"Rank by", "Human label", "Run / model"} <= set(combos)
    page.keyboard.press("ArrowDown")                     # Arrow down opens the focused one on purpose
    page.wait_for_timeout(300)
    assert page.locator("[role=option]").count() > 0
    page.keyboard.press("Escape")
    page.get_by_label("Rank by").first.click()           # and so does a click
    page.wait_for_timeout(300)
    assert page.locator("[role=option]").count() > 0
    page.keyboard.press("Escape")
    _search_queue(page, "")


def test_grid_bulk_label_undo_and_open(app, browser):
    s, ids, url = app
    pg = _open(browser, url, tab="Grid")
    try:
        pg.wait_for_selector("#vb-grid-root .vb-cell")
        unlabelled = pg.locator("#vb-grid-root .vb-cell").count()
        cells = pg.locator("#vb-grid-root .vb-cell")
        first, third = cells.nth(0), cells.nth(2)
        first.click()
        third.click(modifiers=["Shift"])                 # a range of three
        assert pg.locator("#vb-grid-root .vb-cell.vb-sel").count() == 3
        picked = [int(c) for c in pg.eval_on_selector_all("#vb-grid-root .vb-cell.vb-sel",
                                                          "els => els.map(e => e.dataset.captionId)")]
        pg.keyboard.press("5")
        pg.wait_for_function("document.querySelector('#grid-status').innerText.includes('Labelled 3')")
        entries = [s.label_history(c)[-1] for c in picked]
        assert {e.label for e in entries} == {"FP:texture"} and len({e.batch for e in entries}) == 1
        assert all(e.reviewer == REVIEWER for e in entries)
        pg.wait_for_function(f"document.querySelectorAll('#vb-grid-root .vb-cell').length === {unlabelled - 3}")
        _shots().mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(_shots() / "grid-sample.png"))
        pg.keyboard.press("u")                            # the whole bulk label, undone as a unit
        pg.wait_for_function("document.querySelector('#grid-status').innerText.includes('Undone')")
        assert all(s.current_label(c) is None for c in picked)
        pg.wait_for_function(f"document.querySelectorAll('#vb-grid-root .vb-cell').length === {unlabelled}")
        # keyboard: move, select the focused cell's group, Enter opens the focused candidate
        pg.locator("body").click(position={"x": 5, "y": 5})
        pg.keyboard.press("ArrowRight")
        pg.keyboard.press("s")
        assert pg.locator("#vb-grid-root .vb-cell.vb-sel").count() >= 1
        focused = int(pg.locator("#vb-grid-root .vb-cell.vb-focus").get_attribute("data-caption-id"))
        pg.keyboard.press("Enter")
        expect(pg.get_by_role("tab", name="Candidate")).to_have_attribute("aria-selected", "true")
        pg.wait_for_function(f"document.querySelector('#vb-view .vb-cand').dataset.captionId == '{focused}'")
    finally:
        pg.close()


def test_mask_editor_keeps_strokes_across_an_image_switch(app, browser):
    s, ids, url = app
    pg = _open(browser, url)
    try:
        cid = ids[28]                        # i = 28: a template with an auto mask (top half)
        _search_queue(pg, "caption 28")
        pg.wait_for_function("(t => t.includes('sample caption 28') && !t.includes('sample caption 27'))"
                             "(document.querySelector('#vb-queue').innerText)")
        pg.locator("#vb-queue [data-testid='cell-0-2']").click()
        pg.wait_for_function(f"document.querySelector('#vb-view .vb-cand').dataset.captionId == '{cid}'")
        tid = s.training_images_for(cid)[0].id
        other = next(t for _, t in [(0, n.train_image_id) for g in s.generations(cid)
                                    for n in s.neighbours(g.id)] if t != tid)
        before_other = s.current_mask(other)
        pg.locator("body").click(position={"x": 5, "y": 5})
        pg.keyboard.press("m")                                 # the Mask tab, on the match
        _editor_shows(pg, tid)
        # expect(...) waits for the panel to update; a bare inner_text() read raced it under load
        expect(pg.locator("#vb-mask-info")).to_contain_text("Automatic label now")
        _stroke(pg, "Erase", -60)                              # across the kept top half
        pg.wait_for_timeout(1000)          # a hand's move to the picker: the editor hands on its strokes
        _pick_image(pg, other)                                 # away: the strokes are kept as a draft
        expect(pg.locator("#vb-mask-info")).to_contain_text(f"strokes on training image {tid} are kept")
        _pick_image(pg, tid)                                   # back: the draft is shown again
        expect(pg.locator("#vb-mask-info")).to_contain_text("your unsaved strokes")
        pg.locator("#mask-save").click()
        # the status names what was saved: if a save ever lands on another image, this says which
        expect(pg.locator("#vb-status")).to_contain_text(f"Saved mask v2 of training image {tid}.", timeout=30_000)
        m = s.current_mask(tid)
        assert (m.version, m.source, m.author) == (2, "edited", REVIEWER)
        kept = s.load_mask(m.image_sha)
        assert 0.2 < kept.mean() < 0.5 and not kept[16:].any()        # a strip of the top half erased
        expect(pg.locator("#vb-mask-effect")).to_contain_text("Automatic label now")
        assert s.current_mask(other) == before_other                   # the other image is untouched
        # saving the same mask again is refused with a message; the editor keeps its picture
        pg.locator("#mask-save").click()
        pg.wait_for_selector("text=expected a change")
        expect(pg.locator("#vb-editor canvas").first).to_be_visible()
        assert s.current_mask(tid).version == 2
    finally:
        pg.close()


def test_export_download(app, page):
    s, ids, _ = app
    page.get_by_role("tab", name="Export").click()
    page.locator("#export-go").click()
    page.wait_for_function("document.querySelector('#export-file a') !== null")
    href = page.locator("#export-file a").first.get_attribute("href")
    assert href and ".zip" in href
    assert any(p.suffix == ".zip" for p in (s.path / "exports").iterdir())


def test_reviewer_name_survives_a_reload(app, page):
    s, ids, url = app
    field = page.locator("#vb-reviewer textarea, #vb-reviewer input").first
    field.fill("hana")
    field.blur()
    page.wait_for_timeout(500)
    page.reload()
    page.wait_for_selector("#vb-queue")
    expect(page.locator("#vb-reviewer textarea, #vb-reviewer input").first).to_have_value("hana", timeout=20_000)
    page.get_by_role("tab", name="Candidate").click()
    page.wait_for_selector("#vb-view .vb-cand")
    cid = _current(page)
    page.locator("body").click(position={"x": 5, "y": 5})
    _press_and_wait(page, "4")
    assert s.label_history(cid)[-1].reviewer == "hana"
