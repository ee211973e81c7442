"""The evidence export opened from disk (file://) in Debian's headless chromium: on the page of a
sibling-matched TV and of the script caption, every J generation, the own image, the match, the
mask and the difference are there and load (naturalWidth > 0), the history has every entry with the
undo, and no caption text runs. A screenshot goes to $VERBATIM_SCREENSHOT_DIR (else a temp folder)."""
from __future__ import annotations

import os
import tempfile
import zipfile
from pathlib import Path

import pytest

from review.__main__ import main as review_main

from .conftest import launch_chromium
from .test_evidence_export import J, labelled  # noqa: F401 - the shared labelled-store fixture

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folder(labelled, tmp_path_factory):  # noqa: F811 - the imported fixture
    s, *_ = labelled
    root = tmp_path_factory.mktemp("evidence-browser")
    assert review_main(["export", "--store", str(s.path), "--out", str(root / "evidence.zip")]) == 0
    with zipfile.ZipFile(root / "evidence.zip") as zf:
        zf.extractall(root / "evidence")
    return root / "evidence"


def _shots() -> Path:
    d = os.environ.get("VERBATIM_SCREENSHOT_DIR")
    return Path(d) if d else Path(tempfile.gettempdir()) / "verbatim-shots"


def test_evidence_pages_open_offline_with_every_picture_loaded(labelled, folder):  # noqa: F811
    from playwright.sync_api import sync_playwright

    s, ids, _, (sib_cid, own, sib), _ = labelled
    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            pg = browser.new_page(viewport={"width": 1280, "height": 900})
            pg.set_default_timeout(10_000)
            pg.goto((folder / "index.html").as_uri())
            links = pg.locator("table a")
            assert links.count() == len(list(folder.glob("*.html"))) - 1
            for cid, kinds in ((sib_cid, ("generation", "own", "match", "match-generation", "mask", "difference")),
                               (ids[0], ("generation", "own", "match", "match-generation", "difference"))):
                (page,) = folder.glob(f"{cid:04d}-*.html")
                pg.goto(page.as_uri())
                pg.wait_for_load_state("load")
                pics = pg.evaluate("""() => [...document.querySelectorAll('figure[data-role] img')].map(i => ({
                    role: i.closest('figure').dataset.role, w: i.naturalWidth, done: i.complete}))""")
                found = {k: [x for x in pics if x["role"] == k] for k in kinds}
                assert len(found["generation"]) == J
                assert all(len(found[k]) >= 1 for k in kinds), {k: len(v) for k, v in found.items()}
                assert all(x["done"] and x["w"] > 0 for x in pics), pics
                history = pg.locator("tr.history")
                assert history.count() == len(s.label_history(cid))
                assert pg.evaluate("() => window.__vb_pwned") is None
                if cid == sib_cid:
                    _shots().mkdir(parents=True, exist_ok=True)
                    pg.screenshot(path=str(_shots() / "evidence.png"), full_page=True)
                else:
                    assert history.filter(has_text="undo of entry").count() == 1
                    assert pg.locator("p.caption").inner_text().startswith("<script>")
        finally:
            browser.close()
