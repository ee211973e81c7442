"""The review app in Debian's headless chromium, driven by Playwright: keyboard triage of 20
candidates, undo, help overlay, a mask edit, export; an HTML caption stays text. Screenshots go
to a temporary folder, or to $VERBATIM_SCREENSHOT_DIR when set (docs/review.png is made so)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from playwright.sync_api import expect

from review.sample import SCRIPT_CAPTION

from .conftest import served_sample_app

pytestmark = pytest.mark.slow

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
REVIEWER = "tester"


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_sample_app(tmp_path_factory.mktemp("browser") / "store") as (s, ids, url, _):
        yield s, ids, url


@pytest.fixture(scope="module")
def page(app):
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"expected Debian's chromium at {CHROMIUM} (.ci/run installs it)"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 1500})
        pg.set_default_timeout(20_000)
        pg.goto(app[2])
        pg.wait_for_selector("#vb-queue")
        pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill(REVIEWER)
        pg.get_by_role("tab", name="Candidate").click()
        pg.wait_for_selector("#vb-view .vb-cand")
        yield pg
        browser.close()


def _shots() -> Path:
    d = os.environ.get("VERBATIM_SCREENSHOT_DIR")
    return Path(d) if d else Path(tempfile.gettempdir()) / "verbatim-shots"


def _current(pg) -> int:
    return int(pg.locator("#vb-view .vb-cand").get_attribute("data-caption-id"))


VIEW = "document.querySelector('#vb-view .vb-cand').outerHTML"


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


def test_html_caption_is_shown_as_text(app, page):
    s, ids, _ = app
    assert _current(page) == ids[0]
    assert page.locator("#vb-view .vb-caption").inner_text() == SCRIPT_CAPTION
    assert page.evaluate("window.__vb_pwned") is None
    assert page.locator("#vb-view script").count() == 0 and page.locator("#vb-view .vb-caption img").count() == 0


def test_keyboard_triage_of_20_candidates_with_undo_and_help(app, page, tmp_path):
    s, ids, _ = app
    page.locator("body").click(position={"x": 5, "y": 5})     # focus the page, not a text field
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
    # the before/after slider moves the clip of the "after" image
    page.locator("#vb-view .vb-range").first.fill("20")
    assert "20%" in page.locator("#vb-view .vb-after").first.get_attribute("style")
    page.keyboard.press("?")
    assert page.locator("#vb-help").is_visible()
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


def test_open_from_queue_edit_mask_and_screenshot(app, page):
    s, ids, _ = app
    _search_queue(page, "caption 28")
    # the search's table, not the tab's refresh from before it (times out, failing, if it never comes)
    page.wait_for_function("(t => t.includes('sample caption 28') && !t.includes('sample caption 27'))"
                           "(document.querySelector('#vb-queue').innerText)")
    page.wait_for_timeout(300)  # nothing stale may land after it
    assert "sample caption 27" not in page.locator("#vb-queue").inner_text()
    cell = page.locator("#vb-queue [data-testid='cell-0-2']")      # row 0, caption column
    assert "sample caption 28" in cell.inner_text()
    cell.click()
    page.wait_for_function("document.querySelector('#vb-view .vb-cand') && "
                           f"document.querySelector('#vb-view .vb-cand').dataset.captionId == '{ids[28]}'")
    expect(page.get_by_role("tab", name="Candidate")).to_have_attribute("aria-selected", "true", timeout=20_000)
    tid = s.training_images_for(ids[28])[0].id     # i = 28: a template with an auto mask (top half)
    assert s.current_mask(tid).version == 1
    editor = page.locator("#vb-editor")
    editor.scroll_into_view_if_needed()
    # the editor loads the new background and mask layer after the view: let it settle
    expect(editor.locator("canvas").first).to_be_visible(timeout=20_000)
    page.wait_for_timeout(1500)
    _stroke(page, "Erase", -60)        # across the kept top half
    page.locator("#mask-save").click()
    page.wait_for_function("document.querySelector('#vb-status').innerText.includes('Saved mask')")
    m = s.current_mask(tid)
    assert (m.version, m.source, m.author) == (2, "edited", REVIEWER)
    kept = s.load_mask(m.image_sha)
    assert 0.2 < kept.mean() < 0.5 and not kept[16:].any()      # a strip of the top half erased
    assert "Automatic label now" in page.locator("#vb-mask").inner_text()
    page.locator("#vb-view").scroll_into_view_if_needed()
    page.evaluate("window.scrollTo(0, 0)")
    _shots().mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(_shots() / "review.png"), full_page=False)
    assert (_shots() / "review.png").stat().st_size > 10_000


def test_editor_follows_keyboard_triage_once_scrolled_to(app, page):
    """Triage keys leave the mask editor alone (re-creating its canvas is slow); scrolled to, it
    loads the current candidate's image, and a save goes to that image, not the one shown before."""
    s, ids, _ = app
    page.set_viewport_size({"width": 1400, "height": 600})
    try:
        _search_queue(page, "")
        page.wait_for_function("!document.querySelector('#vb-queue').innerText.includes('Search')"
                               " && document.querySelector(\"#vb-queue [data-testid='cell-1-2']\") !== null")
        page.locator("#vb-queue [data-testid='cell-0-2']").click()
        expect(page.get_by_role("tab", name="Candidate")).to_have_attribute("aria-selected", "true")
        first = _current(page)
        first_tid = s.training_images_for(first)[0].id
        before_first = s.current_mask(first_tid)
        page.evaluate("window.scrollTo(0, 0)")
        page.locator("body").click(position={"x": 5, "y": 5})
        off = "(() => { const r = document.getElementById('vb-mask').getBoundingClientRect(); " \
              "return r.top >= window.innerHeight; })()"
        assert page.evaluate(off), "the editor must be below the fold for this test"
        _press_and_wait(page, "j")
        second = _current(page)
        assert second != first
        tid = s.training_images_for(second)[0].id
        editor = page.locator("#vb-editor")
        editor.scroll_into_view_if_needed()
        expect(editor.locator("canvas").first).to_be_visible()
        page.wait_for_timeout(2000)       # the deferred load, then the editor's canvas
        _stroke(page, "Brush", 60)
        page.locator("#mask-save").click()
        page.wait_for_function("document.querySelector('#vb-status').innerText.includes('Saved mask')")
        m = s.current_mask(tid)
        assert (m.source, m.author) == ("edited", REVIEWER) and s.load_mask(m.image_sha).any()
        assert s.current_mask(first_tid) == before_first      # the image shown before is untouched
    finally:
        page.set_viewport_size({"width": 1400, "height": 1500})


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
