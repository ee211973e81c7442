"""Issue 27's one screen and scannable queue in Debian's headless chromium: at 1280x720 and at
1400x900, the strip (generations, own image, match, difference, with their captions) and the
compare tile of exact (MV), template (TV) and retrieval (RV) candidates lie fully above the fold,
and a template's mask is on screen at a usable size; the queue shows 8 rows or more at 1400x900
with its two thumbnails side by side at a whole factor, and Arrow keys with Enter open the focused
row; the browser bench reports its figures per viewport."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from review import views

from .conftest import REPO, served_sample_app, subprocess_env

pytestmark = pytest.mark.slow

SIZES = ((1280, 720), (1400, 900))
# every element a decision needs, with the element's rect in document coordinates at scroll 0
FOLD = """() => {
  const v = document.querySelector('#vb-view .vb-cand');
  const sel = '.vb-strip[data-testid=generations] .vb-fig, .vb-strip[data-testid=evidence] .vb-fig, ' +
              '.vb-side .vb-mask-sec .vb-fig';
  return [...v.querySelectorAll(sel)].map((e) => { const r = e.getBoundingClientRect();
    return {cls: e.querySelector('img, .vb-compare').className, top: r.top + scrollY, left: r.left + scrollX,
            bottom: r.bottom + scrollY, right: r.right + scrollX, w: r.width, vw: innerWidth, vh: innerHeight,
            caption: (e.querySelector('figcaption') || {}).innerText || ''}; });
}"""


def _add_rv(s, ids) -> int:
    """One retrieval verbatim: an N candidate whose automatic label names a retrieved image."""
    cid = ids[1]
    g = s.generations(cid)[0]
    other = [n for n in s.neighbours(g.id) if n.rank > 0][0]
    run = s.start_run("label", "layout-test", {})
    s.add_auto_label(cid, run, "RV", {"rv": 0.1, "rv_generation_id": g.id, "rv_train_image_id": other.train_image_id,
                                      "rv_rank": other.rank, "mv": 0.3, "tv": None,
                                      "thresholds": {"tv": 0.12, "mv": 0.12, "rv": 0.12}}, [])
    s.finish_run(run, evals=1)
    return cid


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    with served_sample_app(tmp_path_factory.mktemp("layout") / "store") as (s, ids, url, _):
        _add_rv(s, ids)
        yield s, ids, url



def _page(browser, url: str, size: tuple[int, int]):
    pg = browser.new_page(viewport={"width": size[0], "height": size[1]})
    pg.set_default_timeout(20_000)
    pg.goto(url)
    pg.wait_for_selector("#vb-queue")
    pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill("layout")
    return pg


def _open_kind(pg, kind: str) -> str:
    pg.get_by_role("tab", name="Grid").click()
    cell = pg.locator(f'#vb-grid-root .vb-cell[data-auto="{kind}"]').first
    cid = cell.get_attribute("data-caption-id")
    cell.dblclick()
    pg.wait_for_function(f"(document.querySelector('#vb-view .vb-cand') || {{dataset: {{}}}}).dataset.captionId "
                         f"=== '{cid}'")
    pg.wait_for_function("[...document.querySelectorAll('#vb-view .vb-strip img')].every((i) => i.complete)")
    pg.wait_for_timeout(150)
    return cid


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_one_screen_for_exact_template_and_retrieval_candidates(app, browser, size):
    s, ids, url = app
    pg = _page(browser, url, size)
    try:
        for kind in ("MV", "TV", "RV"):
            cid = _open_kind(pg, kind)
            assert pg.locator("#vb-view .vb-cand").get_attribute("data-auto") == kind
            figs = pg.evaluate(FOLD)
            out = [f for f in figs if not (f["top"] >= 0 and f["left"] >= 0 and f["bottom"] <= f["vh"]
                                            and f["right"] <= f["vw"] and f["w"] > 0)]
            assert not out, (size, kind, cid, out)
            classes = " ".join(f["cls"] for f in figs)
            for part in ("vb-gen", "vb-own", "vb-match", "vb-diff", "vb-compare"):
                assert part in classes, (kind, part)
            diff = next(f for f in figs if "vb-diff" in f["cls"])
            assert "RMSE" in diff["caption"]                         # the distance caption is on screen too
            masks = [f for f in figs if "vb-maskimg" in f["cls"]]
            if kind == "TV":
                assert masks and masks[0]["w"] >= 128, masks         # a usable mask, not a 33-px sliver
            # small pictures at a whole factor: rendered width is a multiple of the image's own
            ratios = pg.evaluate("[...document.querySelectorAll('#vb-view .vb-strip img.vb-px')]"
                                 ".map((i) => i.getBoundingClientRect().width / i.naturalWidth)")
            assert ratios and all(r == int(r) and r >= 1 for r in ratios), ratios
    finally:
        pg.close()


def test_queue_rows_thumbnails_and_row_focus_at_1400x900(app, browser):
    s, ids, url = app
    pg = _page(browser, url, (1400, 900))
    try:
        pg.wait_for_function("document.querySelectorAll('#vb-queue .vb-qpair img').length >= 16")
        pg.wait_for_timeout(300)
        rows = pg.evaluate("""() => { const t = document.querySelector('#vb-queue .table-wrap') ||
            document.querySelector('#vb-queue'); const box = t.getBoundingClientRect();
          return [...document.querySelectorAll('#vb-queue .virtual-row, #vb-queue tbody tr')].map((r) => {
            const b = r.getBoundingClientRect();
            return b.height > 0 && b.top >= Math.max(0, box.top) && b.bottom <= Math.min(innerHeight, box.bottom); }); }""")
        assert sum(rows) >= 8, rows
        pairs = pg.evaluate("""() => [...document.querySelectorAll('#vb-queue .vb-qpair')]
          .filter((p) => p.getBoundingClientRect().height > 0).slice(0, 8).map((p) =>
          [...p.querySelectorAll('img')].map((i) => { const b = i.getBoundingClientRect();
            return [b.left, b.top, b.width, b.height, i.naturalWidth]; }))""")
        assert len(pairs) >= 8
        for (g, m) in pairs:
            assert g[1] == m[1] and m[0] >= g[0] + g[2], (g, m)          # side by side, not stacked
            for left, top, w, h, natural in (g, m):
                assert w == natural and w >= 32                        # shown at the image's own pixels
        # the first Arrow down focuses the top row, two more the third; Enter opens that row's candidate
        pg.locator("body").click(position={"x": 5, "y": 5})
        for _ in range(3):
            pg.keyboard.press("ArrowDown")
        focused = pg.locator("#vb-queue .vb-rowfocus")
        assert focused.count() == 1 and focused.locator("[data-testid='cell-2-1']").count() == 1
        want = focused.locator("[data-testid='cell-2-1']").inner_text().strip()
        assert want == str(s.page(views.QueueFilter().query(0, 3)).rows[2].caption_id)
        pg.keyboard.press("ArrowUp")
        pg.keyboard.press("ArrowDown")
        pg.keyboard.press("Enter")
        pg.wait_for_function(f"(document.querySelector('#vb-view .vb-cand') || {{dataset: {{}}}}).dataset.captionId "
                             f"=== '{want}'")
        assert s.current_label(int(want)) is None                      # opened, not labelled
    finally:
        pg.close()


def test_browser_bench_reports_each_viewport(app):
    """`python -m review bench --browser --json` on (a copy of) the sample store: its last line, with
    both viewports (the only test that runs the bench: it starts the app once per viewport)."""
    s, ids, _ = app
    labels_before = s.info()["tables"]["labels"]
    out = subprocess.run([sys.executable, "-m", "review", "bench", "--browser", "--json", "--store", str(s.path),
                          "--candidates", "3"], cwd=REPO, env=subprocess_env(), capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    r = json.loads(out.stdout.strip().splitlines()[-1])
    assert r["candidates"] == 3 and r["images_cached"] is False
    assert set(r["targets"]) == {"key_to_next_ms", "key_to_next_p90_ms", "above_fold_fraction"}
    assert s.info()["tables"]["labels"] == labels_before                      # the bench labelled a copy
    assert set(r["viewports"]) == {"1280x720", "1400x900"}
    for name, v in r["viewports"].items():
        assert {"MV", "TV", "RV"} <= set(v["above_fold_fraction"]), (name, v)
        assert all(f == 1.0 for f in v["above_fold_fraction"].values()), (name, v)
        assert v["candidates"] == 3 and 0 < v["key_to_next_ms"] <= v["key_to_next_p90_ms"]
    assert r["above_fold_fraction"] == 1.0 and r["viewport"] == "1400x900"
