"""Agreement between reviewers: Cohen's kappa equals scikit-learn's, confusion matrices count
each pair's common candidates."""
from __future__ import annotations

import math
import random

import pytest
from sklearn.metrics import cohen_kappa_score

from review.agreement import agreement, cohen_kappa
from store import HUMAN_LABELS, CaptionReviews, LabelEntry


def test_kappa_equals_scikit_learn_on_random_label_lists():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 40)
        pool = rng.sample(HUMAN_LABELS, rng.randint(1, 4))
        a = [rng.choice(pool) for _ in range(n)]
        b = [x if rng.random() < 0.6 else rng.choice(pool) for x in a]
        ours = cohen_kappa(a, b)
        if len(set(a) | set(b)) == 1:
            assert ours is None                     # undefined: one label only
            continue
        assert ours == pytest.approx(cohen_kappa_score(a, b), abs=1e-12)
    assert cohen_kappa(["MV", "N"], ["N", "MV"]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="expected two equally long"):
        cohen_kappa(["MV"], [])


def _entry(i: int, cid: int, label: str, who: str) -> LabelEntry:
    return LabelEntry(i, cid, label, who, "", "2026-12-01T00:00:00.000000Z")


def test_pairs_count_only_common_labelled_candidates_and_skip_is_no_label():
    votes = {1: {"ann": "MV", "bob": "MV"}, 2: {"ann": "TV", "bob": "RV", "cat": "RV"}, 3: {"ann": "N", "bob": "skip"},
             4: {"cat": "MV"}}
    reviews = [CaptionReviews(cid, {w: _entry(i, cid, lab, w) for i, (w, lab) in enumerate(v.items())}, None, None,
                              None) for cid, v in votes.items()]
    pairs = {(p.a, p.b): p for p in agreement(reviews)}
    assert set(pairs) == {("ann", "bob"), ("ann", "cat"), ("bob", "cat")}
    ab = pairs[("ann", "bob")]
    assert (ab.n, ab.labels) == (2, ("MV", "TV", "RV"))
    assert ab.confusion == ((1, 0, 0), (0, 0, 1), (0, 0, 0)) and math.isclose(ab.observed, 0.5)
    assert pairs[("bob", "cat")].kappa is None and pairs[("bob", "cat")].observed == 1.0
