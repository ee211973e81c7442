"""The Compare tab in Chromium: a comparison of two models on one store, filtered by outcome, a row
opened with both models' strips, and the carry-over confirmed and undone with its keys."""
from __future__ import annotations

import pytest

from attack.compare import compare_models
from store import Store

from .conftest import free_port
from .test_browser import VIEWPORT
from .test_compare import two_model_store

pytestmark = pytest.mark.slow

WAIT = 30_000


def test_compare_tab_filters_by_outcome_opens_both_strips_and_carries_labels(tmp_path, browser):
    from review.app import build_app, launch_options

    store_dir, specs, fps, ids = two_model_store(tmp_path)
    with Store.open(store_dir) as s:
        s.add_label(ids[1], "MV", "ann")        # persisting: carried to B as MV
        s.add_label(ids[3], "N", "ann")         # neither: both models rest on the same nearest image
        run = compare_models(s, specs["a"], specs["b"]).run_id
        demo = build_app(s)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **launch_options(s))
        try:
            pg = browser.new_page(viewport=VIEWPORT)
            pg.set_default_timeout(WAIT)
            pg.goto(f"http://127.0.0.1:{port}/")
            pg.get_by_role("tab", name="Compare").click()
            rows = pg.locator("#vb-cmp-rows tr.vb-cmp-row")
            rows.first.wait_for()
            assert rows.count() == 4
            assert [rows.nth(i).get_attribute("data-outcome") for i in range(4)] == \
                ["removed", "persisting", "new", "neither"]
            summary = pg.locator("#vb-compare-summary").inner_text()
            assert "images:" in summary and "removed 1" in summary and "showing 4" in summary
            # each row: A's generation, B's generation and the training image, all loaded
            first = rows.first
            assert first.locator("img").count() == 3
            assert all(first.locator("img").nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(3))
            pg.locator("#vb-compare-outcome").get_by_text("removed", exact=True).click()
            pg.wait_for_function("document.querySelectorAll('#vb-cmp-rows tr.vb-cmp-row').length === 1")
            assert rows.first.get_attribute("data-caption-id") == str(ids[0])
            rows.first.click()
            opened = pg.locator(f"#vb-cmp-strips .vb-cmp-open[data-caption-id='{ids[0]}']")
            opened.wait_for()
            # both strips and the match on one screen, scrolled into view
            pg.wait_for_function(f"(r => r.top >= 0 && r.bottom <= window.innerHeight)(document.querySelector("
                                 f"\"#vb-cmp-strips .vb-cmp-open[data-caption-id='{ids[0]}']\").getBoundingClientRect())")
            strips = {el.get_attribute("data-side"): el for el in opened.locator(".vb-cmp-strip").all()}
            assert set(strips) == {"A", "B", "match"}
            assert strips["A"].locator("img").count() == 1 and strips["B"].locator("img").count() == 1
            assert "auto MV" in strips["A"].inner_text() and "auto N" in strips["B"].inner_text()
            assert pg.locator("#vb-compare-run input").input_value().startswith(f"run {run}:")
            _carry_keys(pg, s, fps["b"], ids)
        finally:
            demo.close()


def _carry_keys(pg, s, b_fp, ids):
    """] picks the next group, y confirms it as B's label (written only then), u takes it back."""
    group = pg.locator("#vb-carry-group")
    assert "neither · carry N · 1" in group.inner_text() and "persisting · carry MV · 1" in group.inner_text()
    tiles = pg.locator("#vb-carry-tiles .vb-carry-tile")
    assert tiles.count() == 1 and tiles.first.get_attribute("data-caption-id") == str(ids[3])
    name = pg.locator("#vb-reviewer input, #vb-reviewer textarea").first
    name.fill("carl")
    name.press("Enter")
    pg.locator("#vb-carry-summary").click()                   # out of the name field
    pg.keyboard.press("]")
    pg.wait_for_function(f"document.querySelector('#vb-carry-tiles .vb-carry-tile[data-caption-id=\"{ids[1]}\"]')")
    assert "as confirmed for A by ann" in tiles.first.inner_text() and s.model_labels(b_fp) == {}
    pg.keyboard.press("y")
    status = pg.locator("#vb-carry-status")
    pg.wait_for_function("document.querySelector('#vb-carry-status').innerText.includes('Confirmed 1')")
    assert "as MV for B" in status.inner_text()
    got = s.model_labels(b_fp)
    assert list(got) == [ids[1]] and got[ids[1]].label == "MV" and got[ids[1]].reviewer == "carl"
    assert "persisting" not in group.inner_text()              # confirmed: no longer proposed
    pg.keyboard.press("u")
    pg.wait_for_function("document.querySelector('#vb-carry-status').innerText.includes('Undone: 1 of 1')")
    assert s.model_labels(b_fp) == {} and "persisting · carry MV · 1" in group.inner_text()
