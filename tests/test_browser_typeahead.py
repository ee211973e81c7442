"""Type-ahead is safe (issue 27, item 1): in Debian's chromium, keys pressed 20 ms apart apply to
the candidate that was on screen when each was pressed; a key whose candidate is gone by the time
it can be sent is refused visibly (the page shakes, a note says so) and nothing is written; the
server refuses a key sent for a candidate it no longer has open."""
from __future__ import annotations

import time

import pytest
from playwright.sync_api import expect

from .conftest import served_sample_app
from .test_browser import VIEWPORT, _current

pytestmark = pytest.mark.slow



def _typed(pg, keys: str, gap_ms: int = 20) -> None:
    for k in keys:
        pg.keyboard.press(k)
        pg.wait_for_timeout(gap_ms)


def _settled(pg) -> None:
    """Every queued key sent (or refused) and its answer shown."""
    pg.wait_for_function("() => { const s = window.__vbKeyState(); return !s.queued && !s.inflight; }")


def _written(s, ids) -> dict:
    return {c: [(e.reviewer, e.label) for e in s.label_history(c)] for c in ids if s.label_history(c)}


def test_keys_20ms_apart_apply_to_the_candidate_on_screen(tmp_path, browser, monkeypatch):
    with served_sample_app(tmp_path / "store", n=12) as (s, ids, url, _):
        add_label = s.add_label

        def slow_label(*args, **kwargs):    # a save as slow as a busy server's: keys pile up behind it
            time.sleep(0.3)
            return add_label(*args, **kwargs)

        monkeypatch.setattr(s, "add_label", slow_label)   # the app runs in this process, on this store
        pg = browser.new_page(viewport=VIEWPORT)
        pg.set_default_timeout(20_000)
        pg.goto(url)
        pg.wait_for_selector("#vb-queue")
        pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill("tester")
        pg.get_by_role("tab", name="Candidate").click()
        pg.wait_for_selector("#vb-view .vb-cand")
        pg.locator("body").click(position={"x": 5, "y": 5})
        a = _current(pg)

        # 1 2 3 4 on a: 1 labels a; 2, 3 and 4 were pressed on a too, which is no longer on screen
        # once 1 is saved, so they are refused (not dropped silently, not applied to b unseen)
        _typed(pg, "1234")
        _settled(pg)
        b = _current(pg)
        assert b != a
        assert _written(s, ids) == {a: [("tester", "MV")]}
        assert pg.evaluate("window.__vbRefused") == 3
        expect(pg.locator("#vb-refused")).to_contain_text(f"pressed on candidate {a}")

        # on b (now seen): 2 labels it; then 3 on c and u 20 ms later, queued behind the 3: u takes
        # back the 3 (the session's last label, which the reviewer saw) and returns to c
        pg.keyboard.press("2")
        pg.wait_for_function(f"() => document.querySelector('#vb-view .vb-cand').dataset.captionId !== '{b}'")
        _settled(pg)
        c = _current(pg)
        _typed(pg, "3u")
        _settled(pg)
        pg.wait_for_function(f"() => document.querySelector('#vb-view .vb-cand').dataset.captionId === '{c}'")
        assert _written(s, ids) == {a: [("tester", "MV")], b: [("tester", "TV")],
                                    c: [("tester", "RV"), ("tester", None)]}
        assert pg.evaluate("window.__vbRefused") == 3

        # the server's own check: a key sent for a candidate it does not have open writes nothing
        pg.evaluate(f"""() => {{
          const box = document.querySelector('#vb-key-cid textarea, #vb-key-cid input');
          box.value = '{a}'; box.dispatchEvent(new Event('input', {{bubbles: true}}));
          setTimeout(() => document.querySelector('#act-N button, button#act-N').click(), 0); }}""")
        expect(pg.locator("#vb-status")).to_contain_text(f"pressed while candidate {a} was on screen")
        expect(pg.locator("#vb-refused")).to_contain_text("Nothing written")
        assert _current(pg) == c and s.label_history(c)[-1].label is None
        assert _written(s, ids) == {a: [("tester", "MV")], b: [("tester", "TV")],
                                    c: [("tester", "RV"), ("tester", None)]}
        pg.close()


def test_grid_keys_jump_between_groups(tmp_path, browser):
    """] / [ move the focus to the next / previous group's first cell (issue 27: no key did)."""
    with served_sample_app(tmp_path / "store", n=12) as (s, ids, url, _):
        pg = browser.new_page(viewport=VIEWPORT)
        pg.set_default_timeout(20_000)
        pg.goto(url)
        pg.wait_for_selector("#vb-queue")
        pg.get_by_role("tab", name="Grid").click()
        pg.wait_for_selector("#vb-grid-root .vb-cell")
        # the page's first load re-renders the grid (which resets the focus): wait until it stays put
        for _ in range(40):
            pg.evaluate("window.__vbRoot = document.getElementById('vb-grid-root')")
            pg.wait_for_timeout(750)
            if pg.evaluate("document.getElementById('vb-grid-root') === window.__vbRoot"):
                break
        groups = pg.eval_on_selector_all("#vb-grid-root .vb-cell", "cs => cs.map((c) => c.dataset.group)")
        starts = [i for i, g in enumerate(groups) if i == 0 or groups[i - 1] != g]
        assert len(starts) >= 2 and starts[1] - starts[0] > 2
        pg.locator("body").click(position={"x": 5, "y": 5})

        def focus() -> int:
            return int(pg.locator("#vb-grid-root .vb-cell.vb-focus").get_attribute("data-index"))

        pg.keyboard.press("ArrowRight")
        pg.keyboard.press("ArrowRight")
        assert focus() == 2
        pg.keyboard.press("[")                    # inside a group: to its start
        assert focus() == starts[0]
        pg.keyboard.press("]")                    # the next group's first cell
        assert focus() == starts[1]
        pg.keyboard.press("[")                    # at a group's start: the group before
        assert focus() == starts[0]
        pg.close()
