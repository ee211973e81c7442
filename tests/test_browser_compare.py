"""The Compare tab in Chromium: a comparison of two models on one store, filtered by outcome, a row
opened with both models' strips."""
from __future__ import annotations

import pytest

from attack.compare import compare_models
from store import Store

from .conftest import free_port
from .test_browser import VIEWPORT
from .test_compare import two_model_store

pytestmark = pytest.mark.slow

WAIT = 30_000


def test_compare_tab_filters_by_outcome_and_opens_both_strips(tmp_path, browser):
    from review.app import build_app, launch_options

    store_dir, specs, fps, ids = two_model_store(tmp_path)
    with Store.open(store_dir) as s:
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
            strips = {el.get_attribute("data-side"): el for el in opened.locator(".vb-cmp-strip").all()}
            assert set(strips) == {"A", "B", "match"}
            assert strips["A"].locator("img").count() == 1 and strips["B"].locator("img").count() == 1
            assert "auto MV" in strips["A"].inner_text() and "auto N" in strips["B"].inner_text()
            assert pg.locator("#vb-compare-run input").input_value().startswith(f"run {run}:")
        finally:
            demo.close()
