"""Leases that fit the review mode (issue 27, item 3): under blind review (k reviews per candidate)
a candidate is leased to as many reviewers as it still needs votes, so two reviewers opening at once
stay on it and a third is moved on; an idle page gives its lease up and takes it again on the next
key or pointer. Store and view level, then three browser contexts."""
from __future__ import annotations

import pytest
from playwright.sync_api import expect

from review import views
from review.sample import build_sample_store
from store import Store

from .conftest import served_sample_app
from .test_browser_reviewers import _reviewer, _wait_leased


@pytest.fixture
def sample(tmp_path):
    with Store.open(tmp_path / "s") as s:
        yield s, build_sample_store(s, n=8)


def _claim(s, ids, who: str) -> int:
    nav, _ = views.claim(s, views.Nav(ids=tuple(ids), reviewer=who))
    views.lease_note(s, nav)      # showing it leases it
    return nav.current


@pytest.mark.parametrize("k, expected", [(1, [0, 1, 2]), (2, [0, 0, 1]), (3, [0, 0, 0])])
def test_claim_keeps_as_many_reviewers_as_votes_needed(sample, k, expected):
    s, ids = sample
    s.set_reviews_per_candidate(k)
    got = [_claim(s, ids, who) for who in ("ann", "bob", "cat")]
    assert got == [ids[i] for i in expected]
    # a vote fills a place: with k = 2, once ann voted on ids[0] and bob holds it, dan is moved on
    if k == 2:
        s.add_label(ids[0], "MV", "ann")
        assert _claim(s, ids, "dan") != ids[0]


def test_release_lease_frees_the_candidate(sample):
    s, ids = sample
    s.set_reviews_per_candidate(2)
    for who in ("ann", "bob"):
        s.lease(ids[0], who, now=1000.0)
    assert s.lease_first(ids[:1], "cat", now=1001.0) is None          # two leases fill its two votes
    assert s.release_lease("ann", ids[0]) is True
    assert s.release_lease("ann", ids[0]) is False                     # nothing left to release
    assert s.release_lease("bob", ids[5]) is False                     # not the candidate bob holds
    assert s.lease_first(ids[:1], "cat", now=1001.0) == ids[0]
    assert {x.reviewer for x in s.leases(now=1001.0)} == {"bob", "cat"}
    assert s.release_lease("cat") is True and {x.reviewer for x in s.leases(now=1001.0)} == {"bob"}



@pytest.mark.slow
def test_three_reviewers_blind_leases_and_idle_release(tmp_path, browser):
    with served_sample_app(tmp_path / "store", n=10, reviews_per_candidate=2) as (s, ids, url, _):
        pages = {}
        for who in ("ann", "bob", "cat"):
            pages[who] = _reviewer(browser, url, who)
            _wait_leased(s, who)
        held = {x.reviewer: x.caption_id for x in s.leases()}
        # blind review wants two reviewers on each candidate: ann and bob share it, cat gets the next
        assert held["ann"] == held["bob"] and held["cat"] != held["ann"]
        c0 = held["ann"]
        for who, pg in pages.items():
            expect(pg.locator("#vb-view .vb-cand")).to_have_attribute("data-caption-id", str(held[who]))
        assert s.lease_first([c0], "dan") is None         # no third reviewer while both are there

        # ann's page goes idle (the minute shortened for the test): her lease is given up
        ann = pages["ann"]
        ann.evaluate("window.__vbIdleMs = 600")
        expect(ann.locator("#vb-status")).to_contain_text(f"Idle: candidate {c0} is free", timeout=10_000)
        assert "ann" not in {x.reviewer for x in s.leases()} and "bob" in {x.reviewer for x in s.leases()}
        assert s.lease_first([c0], "dan") == c0           # its place is open to another reviewer
        s.release_lease("dan")
        # her next pointer takes it again
        ann.evaluate("window.__vbIdleMs = 60000")
        ann.mouse.click(5, 5)
        _wait_leased(s, "ann")
        assert {x.reviewer: x.caption_id for x in s.leases()}["ann"] == c0
        for pg in pages.values():
            pg.context.close()
