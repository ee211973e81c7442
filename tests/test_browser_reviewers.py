"""Several reviewers, each in their own browser context (own cookies and localStorage) on one
served store, driven by Playwright in Debian's chromium: a name is required, two reviewers never
get the same candidate, a label given since you opened asks keep / override and no label is lost,
u undoes only your own labels; blind double review with agreement in Stats and an adjudication
from the conflicts queue (issue 14). The agreement figures of the blind run are printed."""
from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from review.agreement import agreement

from .conftest import served_sample_app
from .test_browser import VIEWPORT, _current, _press_and_wait, _shots

pytestmark = pytest.mark.slow

LABELS = {"1": "MV", "2": "TV", "3": "RV", "4": "N"}



def _reviewer(browser, url: str, name: str = ""):
    """A fresh browser context (its own localStorage) on the app, with the name typed and the
    Candidate tab open (clicking the tab moves focus out of the name field: the name is taken)."""
    ctx = browser.new_context(viewport=VIEWPORT)
    pg = ctx.new_page()
    pg.set_default_timeout(20_000)
    pg.goto(url)
    pg.wait_for_selector("#vb-queue")
    if name:
        pg.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill(name)
    pg.get_by_role("tab", name="Candidate").click()
    pg.wait_for_selector("#vb-view .vb-cand")
    return pg


def _wait_leased(s, name: str) -> int:
    """The candidate leased to ``name`` (the name reaches the server when its field loses focus)."""
    for _ in range(100):
        held = [lease.caption_id for lease in s.leases() if lease.reviewer == name]
        if held:
            return held[0]
        time.sleep(0.1)
    raise AssertionError(f"expected a lease for {name}, got {s.leases()}")


def _open_from_queue(pg, s, cid: int, human: str = "") -> None:
    """Open candidate cid by clicking its row in the Queue tab (after choosing a Human label filter)."""
    pg.get_by_role("tab", name="Queue").click()
    totals = s.label_totals()
    done = sum(v for k, v in totals.items() if k != "unlabelled")
    expect(pg.get_by_text(f"store: {done:,} labelled, {totals['unlabelled']:,} unlabelled")).to_be_visible()
    if human:
        pg.get_by_role("combobox", name="Human label").click()
        pg.get_by_role("option", name=human, exact=True).click()
        pg.get_by_role("button", name="Apply").click()
    cell = pg.locator("#vb-queue [data-testid$='-1']").filter(has_text=re.compile(rf"^\s*{cid}\s*$")).first
    cell.click()
    expect(pg.locator("#vb-view .vb-cand")).to_have_attribute("data-caption-id", str(cid))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    with served_sample_app(tmp_path_factory.mktemp("reviewers") / "store") as (s, ids, url, _):
        yield s, ids, url


def test_two_reviewers_leases_conflict_prompt_and_undo_scope(single, browser):
    s, ids, url = single
    # no name, no label: the key gives an error and writes nothing
    anon = _reviewer(browser, url)
    anon.locator("body").click(position={"x": 5, "y": 5})
    anon.keyboard.press("1")
    # said in the status line (a toast would cover the name field), in the reviewer's words
    expect(anon.locator("#vb-status")).to_contain_text("Type your name at the top right to label")
    assert s.label_totals()["unlabelled"] == len(ids)
    anon.context.close()

    ann = _reviewer(browser, url, "ann")
    bob = _reviewer(browser, url, "bob")      # both opened the app on the same top candidate
    a0, b0 = _wait_leased(s, "ann"), _wait_leased(s, "bob")
    assert a0 != b0
    expect(bob.locator("#vb-view .vb-cand")).to_have_attribute("data-caption-id", str(b0))
    assert _current(ann) == a0
    # each labels theirs and is handed a next one the other does not have
    for pg in (ann, bob):
        pg.locator("body").click(position={"x": 5, "y": 5})
    _press_and_wait(ann, "1")
    _press_and_wait(bob, "2")
    a1, b1 = _current(ann), _current(bob)
    assert len({a0, b0, a1, b1}) == 4
    assert (s.current_label(a0), s.current_label(b0)) == ("MV", "TV")

    # bob opens ann's candidate from the queue and labels it first: ann is asked, then overrides
    _open_from_queue(bob, s, a1)
    _press_and_wait(bob, "2")
    assert s.label_history(a1)[-1].reviewer == "bob"
    ann.keyboard.press("1")
    prompt = ann.locator("#vb-conflict")
    expect(prompt).to_be_visible()
    expect(prompt).to_contain_text(f"bob labelled candidate {a1} TV")
    assert _current(ann) == a1 and s.current_label(a1) == "TV"         # nothing written yet
    ann.screenshot(path=str(_shots() / "conflict-prompt.png"))
    _press_and_wait(ann, "o")
    expect(prompt).to_be_hidden()
    assert [(e.reviewer, e.label) for e in s.label_history(a1)] == [("bob", "TV"), ("ann", "MV")]   # none lost
    a2 = _current(ann)

    # again, and this time ann keeps bob's label (Esc)
    _open_from_queue(bob, s, a2)
    _press_and_wait(bob, "4")
    ann.keyboard.press("3")
    expect(prompt).to_be_visible()
    _press_and_wait(ann, "Escape")
    expect(prompt).to_be_hidden()
    assert [(e.reviewer, e.label) for e in s.label_history(a2)] == [("bob", "N")]
    assert [(w.reviewer, w.label) for w in s.withheld(a2)] == [("ann", "RV")]     # kept over, not lost
    assert _current(ann) not in (a2, a1)

    # bob's u: his own N on a2, then his TV on a1 is skipped (ann's label replaced it), then b0
    bob.get_by_role("tab", name="Candidate").click()
    bob.locator("body").click(position={"x": 5, "y": 5})
    _press_and_wait(bob, "u")
    assert s.current_label(a2) is None and _current(bob) == a2
    _press_and_wait(bob, "u")
    expect(bob.locator("#vb-status")).to_contain_text("Not undone (relabelled by others since")
    assert s.current_label(a1) == "MV" and s.current_label(b0) is None and _current(bob) == b0
    # bob's N on a2 is undone and he has moved on: ann's next "n" asks her again on a2, offering her RV
    ann.locator("body").click(position={"x": 5, "y": 5})
    _press_and_wait(ann, "n")
    assert _current(ann) == a2
    expect(ann.locator("#vb-status")).to_contain_text("they have undone it")
    # ann cannot undo bob's label either: her u on his candidate says so and changes nothing
    s.add_label(b0, "RV", "bob")
    _open_from_queue(ann, s, b0, human="labelled")
    ann.locator("body").click(position={"x": 5, "y": 5})
    ann.keyboard.press("u")   # her own labels come first: a0's MV, then a1's MV
    ann.wait_for_timeout(500)
    assert s.current_label(b0) == "RV"
    for pg in (ann, bob):
        pg.context.close()


@pytest.fixture(scope="module")
def blind(tmp_path_factory):
    with served_sample_app(tmp_path_factory.mktemp("blind") / "store", n=16, reviews_per_candidate=2) as out:
        yield out[0], out[1], out[2]


def test_blind_double_review_agreement_and_adjudication(blind, browser):
    s, ids, url = blind
    keys = {"ann": "112412", "bob": "112421"}     # they disagree on the last two
    done: dict[str, list[int]] = {}
    for name, script in keys.items():
        pg = _reviewer(browser, url, name)
        _wait_leased(s, name)
        pg.locator("body").click(position={"x": 5, "y": 5})
        done[name] = []
        for key in script:
            cid = _current(pg)
            if name == "bob":       # blind: ann's label on it is hidden until bob gives his
                view = pg.locator("#vb-view .vb-cand").inner_text() + pg.locator("#vb-head").inner_text()
                assert "ann" not in view and "blind review: 1 of 2 in" in view
            done[name].append(cid)
            _press_and_wait(pg, key)
        pg.context.close()
    assert done["ann"] == done["bob"]             # bob was handed the candidates that needed a second review
    states = {r.caption_id: r for r in s.caption_reviews(done["ann"])}
    assert [states[c].state for c in done["ann"]] == ["agreed"] * 4 + ["conflict"] * 2
    assert [s.current_label(c) for c in done["ann"]] == ["MV", "MV", "TV", "N", None, None]

    # agreement in Stats: the page's figures equal the library's and the hand-computed kappa
    cat = _reviewer(browser, url, "cat")
    cat.get_by_role("tab", name="Stats").click()
    expect(cat.locator("#vb-agreement")).to_contain_text("ann")
    pair = agreement(s.caption_reviews())[0]
    expected_kappa = ((4 / 6) - (14 / 36)) / (1 - 14 / 36)      # p_o = 4/6; p_e = (3*3 + 2*2 + 1*1) / 36
    assert (pair.a, pair.b, pair.n) == ("ann", "bob", 6) and pair.kappa == pytest.approx(expected_kappa)
    expect(cat.locator("#vb-agreement")).to_contain_text(f"{round(pair.kappa, 4)}")
    expect(cat.locator("#vb-confusion")).to_contain_text("ann (rows) × bob (columns): 6 candidates")
    cat.screenshot(path=str(_shots() / "agreement.png"), full_page=True)
    print("\nAGREEMENT " + json.dumps({"pair": [pair.a, pair.b], "candidates": pair.n,
                                       "agreement": round(pair.observed, 4), "kappa": round(pair.kappa, 4),
                                       "labels": pair.labels, "confusion": pair.confusion}))

    # the conflicts queue: cat sees both labels and adjudicates each
    first, second = done["ann"][4], done["ann"][5]
    _open_from_queue(cat, s, first, human="conflict")
    expect(cat.locator("#vb-head")).to_contain_text("conflict: ann MV · bob TV")
    cat.get_by_role("tab", name="Candidate").click()
    cat.locator("body").click(position={"x": 5, "y": 5})
    _press_and_wait(cat, "2")
    assert _current(cat) == second                # the next conflict
    _press_and_wait(cat, "1")
    final = {r.caption_id: r for r in s.caption_reviews([first, second])}
    assert (final[first].label, final[first].state, final[first].adjudication.reviewer) == ("TV", "adjudicated", "cat")
    assert (final[second].label, final[second].adjudication.role) == ("MV", "adjudication")
    assert s.label_totals()["MV"] == 3 and s.label_totals()["TV"] == 2
    cat.context.close()
