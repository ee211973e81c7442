"""The one-screen candidate view's data (one stored distance per pair, unique neighbour numbers,
the automatic label explained) and the grid (groups, bulk labels, undo), on the sample store."""
from __future__ import annotations

import re

import pytest

from review import grid, views
from review.candidate import candidate_data
from review.explain import explain, fmt
from review.sample import SCRIPT_CAPTION, build_sample_store
from store import AutoLabel, Store


@pytest.fixture
def sample(tmp_path):
    with Store.open(tmp_path / "s") as s:
        ids = build_sample_store(s, n=30)
        yield s, ids


def _auto(label: str, **d) -> AutoLabel:
    d.setdefault("thresholds", {"tv": 0.12, "mv": 0.12, "rv": 0.12})
    return AutoLabel(1, 1, 1, label, d, tuple(d.pop("flags", ())), "")


def test_explanation_says_which_distance_decided_and_why_the_others_did_not():
    tv = explain(_auto("TV", tv=0.031, tv_generation_id=7, tv_train_image_id=3, tv_mask_version=2, mv=0.05,
                       mv_generation_id=8, mv_train_image_id=4, rv=0.3), {7: 2, 8: 1})
    assert tv[0] == ("TV at 0.0310 with seed 2 against training image 3 under mask v2: the masked RMSE to a "
                     "retrieved image under its template mask is ≤ δ 0.1200.")
    assert "MV 0.0500 ≤ δ 0.1200 also passed; TV wins because the labels are checked in the paper's order" in tv[1]
    assert tv[2] == "Over δ: RV 0.3000 > 0.1200."
    n = explain(_auto("N", tv=None, mv=0.2, rv=0.25, flags=()), {})
    assert n[0] == "N: no distance is at or under its δ." and "MV 0.2000 > 0.1200, RV 0.2500 > 0.1200" in n[1]
    assert "TV (no retrieved image has a mask)" in n[2]
    al = explain(_auto("RV", mv=0.3, rv=0.2, evidence_kind="aligned",
                       aligned={"label": "RV", "aligned_rmse": 0.04, "generation_id": 5, "train_image_id": 9,
                                "overlap": 0.8, "mirrored": True, "passed": True}), {5: 3})
    assert al[0].startswith("RV on aligned evidence: after a mirror, crop or rescale the aligned RMSE is 0.0400 ≤ δ")
    assert "seed 3 against training image 9, on 80% of it" in al[0]
    flagged = explain(_auto("MV", mv=0.01, mv_generation_id=1, mv_train_image_id=2, flags=("suspect:texture",)),
                      {1: 0})
    assert flagged[-1].startswith("Flagged suspect:texture: the training image looks like a repeating texture")
    assert explain(None, {}) == ("No automatic label yet (run `python -m attack label`).",)
    assert fmt(0.03333333) == "0.0333" and fmt(None) == "–"


def test_every_distance_shown_is_the_stored_one_and_neighbours_are_numbered_once(sample):
    s, ids = sample
    for cid in ids:
        d = candidate_data(s, cid)
        auto = d.auto.distances
        m = d.match
        assert m is not None and m.kind == d.auto.label if d.auto.label != "N" else m.kind in ("MV", "RV")
        assert m.distance == auto[m.kind.lower()]                          # the label's own number
        html = views.candidate_view(s, cid).html
        assert f"{m.distance_name} {fmt(m.distance)}" in html
        pairs = {g: dist for g, _, dist in auto["mv_pairs"]}
        assert all(item.rmse_own == pairs[item.generation.id] for item in d.generations)
        assert [n.number for n in d.neighbours] == list(range(1, len(d.neighbours) + 1))
        shown = re.findall(r"#(\d+) · image", html)
        assert len(shown) == len(set(shown)) == len(d.neighbours)
        # one rounding everywhere: no distance printed with more or fewer than 4 decimals
        assert not re.search(r"(RMSE|masked|own) 0\.\d{1,3}\b(?!\d)", html) and not re.search(r"RMSE 0\.\d{5,}", html)


def test_the_labellers_own_pairs_are_what_the_view_shows(sample):
    from attack.stages.labels import relabel

    s, ids = sample
    cid = ids[7]                                           # a template: TV under the auto mask
    r = relabel(s, cid)
    assert r.label == "TV" and len(r.distances["mv_pairs"]) == 4
    d = candidate_data(s, cid)
    assert d.match.kind == "TV" and d.match.distance == r.distances["tv"] and d.match.mask is not None
    best = {g: dist for g, _, dist in r.distances["mv_pairs"]}
    assert {i.generation.id: i.rmse_own for i in d.generations} == best
    assert min(best.values()) == r.distances["mv"]
    assert [i.in_match for i in d.generations].count(True) == 1
    assert d.explanation[0].startswith(f"TV at {fmt(r.distances['tv'])}")


def test_grid_groups_by_family_match_and_label_and_keeps_captions_as_text(sample):
    s, ids = sample
    tv = [ids[7], ids[14], ids[21]]
    t7, t14 = (s.training_images_for(c)[0].id for c in tv[:2])
    # ids[7]'s template mask was built from ids[14]'s image: one family; ids[21] is its own
    a7 = s.auto_labels(ids[7])[-1]
    run = s.start_run("label", "", {})
    s.add_auto_label(ids[7], run, "TV", {**a7.distances, "tv_mask_siblings": [t14]}, list(a7.flags))
    f = views.QueueFilter(human="any")
    data = grid.grid_data(s, f, "family")
    assert sum(len(g.items) for g in data.groups) == 30 and data.total == 30
    fam = [g for g in data.groups if any(it.caption_id in tv for it in g.items)]
    assert sorted(sorted(it.caption_id for it in g.items) for g in fam) == sorted([sorted(tv[:2]), [ids[21]]])
    assert next(g for g in fam if len(g.items) == 2).title == f"template family of training images {t7}, {t14}"
    by_match = grid.grid_data(s, f, "match")
    assert all(len({it.match_id for it in g.items}) == 1 for g in by_match.groups)
    by_auto = grid.grid_data(s, f, "auto")
    assert {g.title for g in by_auto.groups} == {"automatic label MV", "automatic label TV", "automatic label N"}
    html = grid.grid_html(s, data)
    assert SCRIPT_CAPTION not in html and "&lt;script&gt;window.__vb_pwned" in html
    assert html.count('class="vb-cell"') == 30 and html.count("select group") == len(data.groups)
    assert len(set(re.findall(r'data-index="(\d+)"', html))) == 30
    with pytest.raises(views.ViewError, match="expected one of family, match, auto, none, got 'size'"):
        grid.grid_data(s, f, "size")


def test_bulk_label_from_the_grid_and_its_undo(sample):
    s, ids = sample
    entries = views.bulk_label(s, ids[:5], "RV", "ann")
    assert len(entries) == 5 and {e.batch for e in entries} == {entries[0].batch}
    assert grid.grid_data(s, views.QueueFilter(), "none").total == 25      # the unlabelled queue shrank
    with pytest.raises(views.ViewError, match="expected at least one selected candidate"):
        views.bulk_label(s, [], "RV", "ann")
    with pytest.raises(views.ViewError, match="label: expected one of"):
        views.bulk_label(s, ids[5:6], "maybe", "ann")
    with pytest.raises(views.ViewError, match="reviewer: expected a name"):
        views.bulk_label(s, ids[5:6], "RV", " ")
    s.undo_batch(entries[0].batch, "ann")
    assert all(s.current_label(c) is None for c in ids[:5])
    assert "bulk" in views.candidate_view(s, ids[0]).html                  # the history marks it


def test_ids_sent_by_the_page_are_checked(sample):
    s, ids = sample
    assert views.caption_ids_of(["3", 4]) == [3, 4]
    for junk in ([None], ["x"], [True], [{"id": 1}]):
        with pytest.raises(views.ViewError, match="caption ids: expected integers"):
            views.caption_ids_of(junk)
    with pytest.raises(views.ViewError, match="caption ids: expected integers"):
        views.bulk_label(s, ["1; DROP"], "MV", "ann")
    assert s.info()["tables"]["labels"] == 0
