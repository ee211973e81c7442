"""Gold candidates mixed blind into three reviewers' queues (issue 27, item 6), in Debian's chromium:
with ``--gold-rate 0.5`` every other candidate a reviewer meets is gold; ann and bob answer gold as
its known label, carl answers it wrongly. Stats then shows carl's lower accuracy, flagged; the gold
answers wrote no label of the audit and exports mark the gold candidates."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import expect

from store import Store

from .conftest import free_port
from .test_browser import VIEWPORT, _current, _press_and_wait

pytestmark = pytest.mark.slow

KEYS = {"MV": "1", "TV": "2", "RV": "3", "N": "4"}
WRONG = {"MV": "N", "TV": "N", "RV": "N", "N": "MV"}
GOLD_EACH = 5        # gold answers per reviewer: the flag needs 5 (store.gold.DEFAULT_MIN_ANSWERS)


@contextmanager
def served_gold_app(folder: Path, gold_rate: float) -> Iterator[tuple]:
    """The review app on a 30-candidate sample store whose last 12 candidates are gold, mixed in at
    gold_rate: yields (store, caption ids, gold labels by caption id, url)."""
    from review.app import build_app, launch_options
    from review.sample import build_sample_store

    with Store.open(folder) as s:
        ids = build_sample_store(s, n=30, size=32)
        labels = ("MV", "TV", "RV", "N")
        gold = {cid: labels[i % 4] for i, cid in enumerate(ids[-12:])}
        s.add_gold(sorted(gold.items()), "test")
        demo = build_app(s, gold_rate=gold_rate)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **launch_options(s))
        try:
            yield s, ids, gold, f"http://127.0.0.1:{port}/"
        finally:
            demo.close()



def _reviewer(browser, url: str, name: str):
    """A fresh context (own localStorage) with the name typed and the Candidate tab open."""
    ctx = browser.new_context(viewport=VIEWPORT)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    pg.goto(url)
    pg.wait_for_selector("#vb-queue")
    pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill(name)
    pg.get_by_role("tab", name="Candidate").click()
    pg.wait_for_selector("#vb-view .vb-cand")
    pg.locator("body").click(position={"x": 5, "y": 5})
    return pg


def _page_text(pg) -> str:
    """What the reviewer sees of the candidate: head, view and status line (image paths left out)."""
    html = pg.evaluate("() => ['#vb-head', '#vb-view', '#vb-status'].map(s => document.querySelector(s).innerHTML)"
                       ".join(' ')")
    return re.sub(r'(src|href)="[^"]*"', "", html)


def _review(s, pg, name: str, gold: dict, right: bool) -> tuple[list[int], list[int]]:
    """Label non-gold candidates N and answer gold (right or wrong) until GOLD_EACH gold answers are
    given. (captions labelled, gold captions answered), in the order met."""
    labelled, answered = [], []
    while len(answered) < GOLD_EACH:
        assert len(labelled) <= 3 * GOLD_EACH, (name, labelled, answered)      # gold is met within a few keys
        cid = _current(pg)
        served = s.served_gold(name)
        if served is not None and served.caption_id == cid:
            assert cid in gold and cid not in answered          # never the same gold candidate twice
            text = _page_text(pg)
            assert "gold" not in text.lower() and "open too" not in text   # no hint: no word, no lease note
            _press_and_wait(pg, KEYS[gold[cid] if right else WRONG[gold[cid]]])
            answered.append(cid)
        else:
            assert cid not in gold, (name, cid)          # the audit queue never offers a gold candidate
            _press_and_wait(pg, KEYS["N"])
            labelled.append(cid)
        # a gold answer is acknowledged word for word as a label is
        expect(pg.locator("#vb-status")).to_contain_text(f"for candidate {cid} (by {name}). Now candidate")
    return labelled, answered


def test_three_reviewers_meet_gold_blind_and_stats_flag_the_wrong_one(tmp_path, browser):
    with served_gold_app(tmp_path / "store", gold_rate=0.5) as (s, ids, gold, url):
        pages = {name: _reviewer(browser, url, name) for name in ("ann", "bob", "carl")}
        met = {name: _review(s, pg, name, gold, right=name != "carl") for name, pg in pages.items()}
        # u right after a gold answer takes it back, as u takes back a label: the candidate is shown
        # again, unlabelled, and the next key answers it anew
        carl, last = pages["carl"], met["carl"][1][-1]
        _press_and_wait(carl, "u")
        expect(carl.locator("#vb-status")).to_have_text(f"Undone: candidate {last} is now unlabelled.")
        assert _current(carl) == last and len(s.gold_answers("carl")) == GOLD_EACH - 1
        _press_and_wait(carl, KEYS[WRONG[gold[last]]])
        assert [a.caption_id for a in s.gold_answers("carl")][-1] == last

        for name, (labelled, answered) in met.items():
            assert len(labelled) <= GOLD_EACH + 1                    # at rate 0.5 every other candidate is gold
            assert [(a.caption_id, a.correct) for a in s.gold_answers(name)] == \
                [(c, name != "carl") for c in answered]
            assert all(s.current_label(c) == "N" for c in labelled)
        # gold answers are no labels of the audit: no history, no review, no label on any gold candidate
        assert all(s.label_history(c) == [] and s.current_label(c) is None for c in gold)
        assert not set(gold) & {r.caption_id for r in s.caption_reviews()}
        rows = [json.loads(line) for line in s.export(tmp_path / "auto.jsonl", auto=True).path.read_text().splitlines()]
        assert {r["caption_id"]: r["gold"] for r in rows if r["gold"]} == gold
        assert all(r["overfit_type"] is None for r in rows if r["caption_id"] in gold)

        # Stats: carl's accuracy on gold is lower, and flagged; ann's and bob's are not
        pg = pages["ann"]
        pg.get_by_role("tab", name="Stats").click()
        table = pg.locator("[data-testid='gold-accuracy']")
        expect(table).to_be_visible()
        wrong, ann = table.locator("tr[data-reviewer='carl']"), table.locator("tr[data-reviewer='ann']")
        expect(wrong).to_have_attribute("data-flagged", "1")
        expect(wrong).to_contain_text("0.0%")
        for name in ("ann", "bob"):
            expect(table.locator(f"tr[data-reviewer='{name}']")).to_have_attribute("data-flagged", "0")
            expect(table.locator(f"tr[data-reviewer='{name}']")).to_contain_text("100.0%")
        expect(pg.get_by_test_id("gold-flag")).to_contain_text(f"carl (0/{GOLD_EACH})")
        expect(ann.locator("td").nth(1)).to_have_text(str(GOLD_EACH))
        for p in pages.values():
            p.context.close()
