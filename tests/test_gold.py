"""Gold candidates (honeypots, issue 27): the store's gold API, its command line, per-reviewer
accuracy on gold, exports, and the review app's pure mixing helpers (review/gold.py)."""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from review import gold as rgold
from review.sample import build_sample_store
from review.tab_stats import gold_html
from store import GoldError, Store
from store.__main__ import main as store_main
from store.gold import (
    Interval,
    decision_gaps,
    gold_gap,
    gold_order,
    normalise_label,
    wilson_interval,
)
from tests.conftest import snapshot


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[int]]:
    """A sample store built once (images take a while); each test works on a copy."""
    path = tmp_path_factory.mktemp("gold") / "base"
    with Store.open(path) as s:
        ids = build_sample_store(s, n=12)
    return path, ids


@pytest.fixture
def sample(built, tmp_path):
    import shutil
    src, ids = built
    dst = tmp_path / "s"
    shutil.copytree(src, dst)
    with Store.open(dst) as s:
        yield s, ids


# -- pure helpers -------------------------------------------------------------------------------
def test_wilson_interval_matches_the_textbook_values():
    # Wilson (1927) / Newcombe (1998) example: 81 of 263 -> 0.2553 .. 0.3662
    ci = wilson_interval(81, 263)
    assert ci.low == pytest.approx(0.2553, abs=5e-4) and ci.high == pytest.approx(0.3662, abs=5e-4)
    all_right = wilson_interval(10, 10)
    assert all_right.high == 1.0 and all_right.low == pytest.approx(0.7225, abs=5e-4)   # not [1, 1]
    assert wilson_interval(0, 5).low == 0.0 and wilson_interval(0, 0) is None
    with pytest.raises(GoldError, match=r"expected 0 <= correct <= n, got 6 of 5"):
        wilson_interval(6, 5)


def test_gold_gap_is_deterministic_per_reviewer_and_averages_one_over_the_rate():
    gaps = [gold_gap("ann", i, 0.05) for i in range(4000)]
    assert gaps == [gold_gap("ann", i, 0.05) for i in range(4000)]
    assert min(gaps) == 1 and max(gaps) == 37 and 18.5 < sum(gaps) / len(gaps) < 19.5   # 1 shown in 20 is gold
    assert [gold_gap("bob", i, 0.05) for i in range(20)] != gaps[:20]
    assert {gold_gap("ann", i, 0.5) for i in range(50)} == {1}
    for bad in (-0.1, 0.6, math.nan, "0.1", True):
        with pytest.raises(GoldError, match="gold rate: expected a number from 0 to 0.5"):
            gold_gap("ann", 0, bad)
    with pytest.raises(GoldError, match="expected a rate above 0, got 0"):
        gold_gap("ann", 0, 0)


def test_gold_order_differs_between_reviewers_and_is_stable():
    ids = list(range(1, 40))
    assert gold_order("ann", ids) == gold_order("ann", list(reversed(ids)))
    assert gold_order("ann", ids) != gold_order("bob", ids) and sorted(gold_order("bob", ids)) == ids


def test_labels_from_files_read_the_papers_and_nemos_spellings():
    assert [normalise_label(v, "x") for v in ("MV", " tv ", "VM", "TM", "n", "FP:texture", "", None)] == \
        ["MV", "TV", "MV", "TV", "N", "FP:texture", None, None]
    with pytest.raises(GoldError, match=r"f.csv, row 2, column 'overfit_type': expected one of MV, TV, RV, N, .* "
                                        r"got 'XX'"):
        normalise_label("XX", "f.csv, row 2, column 'overfit_type'")
    with pytest.raises(GoldError, match="expected one of .* got 'skip'"):
        normalise_label("skip", "x")


def test_decision_gaps_leave_breaks_out():
    stamps = ["2024-01-01T00:00:10.000000Z", "2024-01-01T00:00:00.000000Z", "2024-01-01T00:00:14.000000Z",
              "2024-01-01T02:00:00.000000Z"]
    assert decision_gaps(stamps) == [10.0, 4.0]


# -- adding, listing, removing ------------------------------------------------------------------
def test_gold_from_labels_takes_decided_labels_and_replaces_changed_ones(sample):
    s, ids = sample
    s.add_label(ids[0], "MV", "ann")
    s.add_label(ids[1], "N", "ann")
    s.add_label(ids[2], "skip", "ann")              # no decision: never gold
    r = s.gold_from_labels()
    assert (r.added, r.replaced, r.unchanged) == (2, 0, 0)
    assert [(g.caption_id, g.label, g.source) for g in s.gold_items()] == [(ids[0], "MV", "labels"),
                                                                        (ids[1], "N", "labels")]
    s.add_label(ids[1], "RV", "bob")
    r = s.gold_from_labels()
    assert (r.added, r.replaced, r.unchanged) == (0, 1, 1) and s.gold_labels([ids[1]]) == {ids[1]: "RV"}
    # gold answers are not labels: the audit's labels and counts do not move
    before = (s.label_totals(), s.label_history(ids[0]))
    s.add_gold_answer(ids[0], "cat", "N", seconds=3.0)
    assert (s.label_totals(), s.label_history(ids[0])) == before
    assert s.current_label(ids[0]) == "MV"


def test_gold_from_labels_with_blind_review_takes_agreed_and_adjudicated_only(sample):
    s, ids = sample
    s.set_reviews_per_candidate(2)
    s.add_label(ids[0], "MV", "ann")
    s.add_label(ids[0], "MV", "bob")                # agreed
    s.add_label(ids[1], "MV", "ann")
    s.add_label(ids[1], "N", "bob")                 # conflict ...
    s.add_label(ids[1], "TV", "cat")                # ... adjudicated
    s.add_label(ids[2], "MV", "ann")                # pending: not gold
    s.gold_from_labels()
    assert [(g.caption_id, g.label, g.source) for g in s.gold_items()] == [(ids[0], "MV", "labels"),
                                                                        (ids[1], "TV", "adjudicated")]
    with pytest.raises(GoldError, match=rf"expected candidates with a decided label, got {ids[2]} without one"):
        s.gold_from_labels([ids[0], ids[2]])


def test_gold_from_reference_keeps_every_label_under_a_limit(sample):
    s, ids = sample
    with pytest.raises(GoldError, match="expected candidates with a reference label, got none"):
        s.gold_from_reference()
    refs = {ids[i]: lab for i, lab in enumerate(["MV", "MV", "MV", "TV", "TV", "N", "N", "N", "RV"])}
    texts = {c.id: c.text for c in map(s.get_caption, refs)}
    from store import CaptionRow
    s.add_captions([CaptionRow(texts[c], reference_label=lab) for c, lab in refs.items()])  # merges the label in
    r = s.gold_from_reference(limit=4)
    items = s.gold_items()
    assert r.added == 4 and {g.label for g in items} == {"MV", "TV", "N", "RV"}
    assert all(refs[g.caption_id] == g.label and g.source == "reference" for g in items)
    assert s.gold_from_reference().added == len(refs) - 4
    with pytest.raises(GoldError, match="expected a positive limit, got 0"):
        s.gold_from_reference(limit=0)


def test_gold_from_a_file_by_id_or_text_with_the_papers_column(sample, tmp_path):
    s, ids = sample
    text = s.get_caption(ids[3]).text
    f = tmp_path / "truth.csv"
    f.write_text(f"caption_id,caption,overfit_type\n{ids[1]},,MV\n,{text},TM\n{ids[4]},,\n", encoding="utf-8")
    r = s.gold_from_file(f)
    assert (r.source, r.added) == ("truth.csv", 2) and r.skipped == ((ids[4], "no label"),)
    assert s.gold_labels(ids) == {ids[1]: "MV", ids[3]: "TV"}
    j = tmp_path / "more.jsonl"
    j.write_text(json.dumps({"caption": text, "label": "N"}) + "\n\n" + json.dumps({"caption_id": ids[5], "gold": "RV"})
                 + "\n", encoding="utf-8")
    r = s.gold_from_file(j)
    assert (r.added, r.replaced) == (1, 1) and s.gold_labels(ids)[ids[3]] == "N"


@pytest.mark.parametrize("name,body,message", [
    ("g.txt", "x", r"g.txt: expected a .csv or .jsonl file, got .txt"),
    ("g.csv", "caption_id,label\n1,XX\n", r"g.csv, row 1, column 'label': expected one of MV, TV, RV, N, .* got 'XX'"),
    ("g.csv", "caption_id,label\nabc,MV\n", r"g.csv, row 1, column 'caption_id': expected a positive integer caption "
                                            r"id, got 'abc'"),
    ("g.csv", "caption_id,what\n1,MV\n", r"g.csv, row 1: expected a label column \(label, gold, overfit_type, "
                                         r"reference_label\), got columns 'caption_id', 'what'"),
    ("g.csv", "url,label\nx,MV\n", r"g.csv, row 1: expected a caption_id or caption column"),
    ("g.csv", "caption_id,label\n99999,MV\n", r"g.csv, row 1: expected a caption this store holds, got 99999"),
    ("g.csv", "caption,label\nno such caption,MV\n", r"expected a caption this store holds, got 'no such caption'"),
    ("g.csv", "", r"g.csv: expected a header line"),
    ("g.csv", "caption_id,label\n", r"g.csv: expected at least one row, got none"),
    ("g.jsonl", "{\"caption_id\": 1, \"label\": \"MV\"}\n[1]\n", r"g.jsonl, line 2: expected a JSON object, got list"),
    ("g.jsonl", "{oops\n", r"g.jsonl, line 1: expected a JSON object, got invalid JSON"),
])
def test_bad_gold_files_are_refused_by_name_and_change_nothing(sample, tmp_path, name, body, message):
    s, ids = sample
    s.add_gold([(ids[0], "MV")], "seed")
    f = tmp_path / name
    f.write_text(body, encoding="utf-8")
    before = snapshot(s.path)
    with pytest.raises(GoldError, match=message):
        s.gold_from_file(f)
    assert snapshot(s.path) == before


def test_a_conflicting_file_is_refused_whole_and_unknown_captions_can_be_skipped(sample, tmp_path):
    s, ids = sample
    f = tmp_path / "g.csv"
    f.write_text(f"caption_id,label\n{ids[0]},MV\n{ids[0]},N\n", encoding="utf-8")
    before = snapshot(s.path)
    with pytest.raises(GoldError, match=rf"g.csv, row 2: expected one label per caption, got N for caption {ids[0]} "
                                        r"given MV at .*g.csv, row 1"):
        s.gold_from_file(f)
    assert snapshot(s.path) == before
    f.write_text(f"caption_id,label\n{ids[0]},MV\n99999,N\n", encoding="utf-8")
    r = s.gold_from_file(f, skip_missing=True)
    assert r.added == 1 and r.skipped == ((99999, "not in the store"),)


def test_add_gold_checks_its_input(sample):
    s, ids = sample
    for items, message in [([(ids[0], "XX")], "expected one of MV, TV, RV, N, FP:texture"),
                           ([(ids[0], "skip")], "got 'skip'"), ([("1", "MV")], "expected an integer, got '1'"),
                           ([(99999, "MV")], "gold caption 99999: expected an existing caption id")]:
        with pytest.raises(GoldError, match=message):
            s.add_gold(items, "x")
    no_gens = s.add_captions([__import__("store").CaptionRow("a caption without generations")])[0]
    with pytest.raises(GoldError, match="expected a candidate .* got one without generations"):
        s.add_gold([(no_gens, "N")], "x")
    assert s.gold_items() == []


def test_remove_gold_keeps_answered_ones_unless_forced(sample):
    s, ids = sample
    s.add_gold([(ids[0], "MV"), (ids[1], "N")], "x")
    s.add_gold_answer(ids[0], "ann", "MV")
    assert s.remove_gold(ids[1]).answers_removed == 0
    with pytest.raises(GoldError, match=rf"remove gold {ids[0]}: expected a gold candidate without answers, got one "
                                        r"with 1 answer\(s\)"):
        s.remove_gold(ids[0])
    r = s.remove_gold(ids[0], force=True)
    assert (r.label, r.answers_removed) == ("MV", 1) and s.gold_items() == [] and s.gold_answers() == []
    with pytest.raises(GoldError, match=rf"expected the caption id of a gold candidate, got {ids[0]}"):
        s.remove_gold(ids[0])


# -- serving and answering ----------------------------------------------------------------------
def test_serve_gold_follows_the_gap_never_repeats_and_skips_what_the_reviewer_labelled(sample):
    s, ids = sample
    s.add_gold([(c, "N") for c in ids[6:10]], "x")
    s.add_label(ids[6], "N", "ann")                 # ann labelled this one in the audit: never her gold
    assert s.serve_gold("ann", 0.0) is None
    served = []
    labelled = 0
    for step in range(200):
        g = s.serve_gold("ann", 0.5, now=1000.0 + step)
        if g is None:
            s.add_label(ids[labelled % 6], "MV", "ann")
            labelled += 1
            continue
        assert s.serve_gold("ann", 0.5, now=2000.0) == g            # served again until answered
        assert s.is_served_gold("ann", g.caption_id) and not s.is_served_gold("bob", g.caption_id)
        a = s.answer_served_gold("ann", g.caption_id, "N", now=g.served_at + 4.5)
        assert a.correct and a.seconds == 4.5
        served.append(g.caption_id)
    assert sorted(served) == sorted(ids[7:10]) and served == gold_order("ann", ids[7:10])
    assert s.label_history(ids[7]) == []            # answers wrote no label
    with pytest.raises(GoldError, match=r"expected the gold candidate served to ann \(none\), got"):
        s.answer_served_gold("ann", ids[7], "N")


def test_removing_a_served_gold_candidate_unserves_it(sample):
    s, ids = sample
    s.add_gold([(ids[0], "MV")], "x")
    s.add_label(ids[1], "N", "ann")
    g = s.serve_gold("ann", 0.5)
    assert g is not None and g.caption_id == ids[0]
    s.remove_gold(ids[0])
    assert s.served_gold("ann") is None and not s.is_served_gold("ann", ids[0])


# -- stats --------------------------------------------------------------------------------------
def _answers(s, ids, reviewer, right, wrong):
    for i in range(right):
        s.add_gold_answer(ids[i], reviewer, "MV", seconds=2.0 + i)
    for i in range(right, right + wrong):
        s.add_gold_answer(ids[i], reviewer, "N", seconds=10.0)


def test_gold_stats_accuracy_interval_confusion_and_flag(sample):
    s, ids = sample
    s.add_gold([(c, "MV") for c in ids[:10]], "x")
    _answers(s, ids, "ann", 9, 1)
    _answers(s, ids, "carl", 3, 5)
    _answers(s, ids, "dora", 1, 2)                  # low, but too few answers to flag
    s.add_gold_answer(ids[9], "dora", "skip")
    s.add_label(ids[11], "N", "eve")                # a reviewer without gold answers is listed too
    rows = {r.reviewer: r for r in s.gold_stats()}
    assert list(rows) == ["carl", "ann", "dora", "eve"]          # flagged first, then by name
    ann, carl, dora, eve = rows["ann"], rows["carl"], rows["dora"], rows["eve"]
    assert (ann.answers, ann.correct, ann.accuracy, ann.flagged) == (10, 9, 0.9, False)
    assert ann.ci == wilson_interval(9, 10) and isinstance(ann.ci, Interval)
    assert [(c.gold, c.answered, c.n) for c in carl.confusion] == [("MV", "MV", 3), ("MV", "N", 5)]
    assert carl.flagged and carl.accuracy == 3 / 8 and carl.median_seconds_gold == 10.0
    assert (dora.answers, dora.skipped, dora.flagged) == (3, 1, False)
    assert (eve.answers, eve.accuracy, eve.ci, eve.flagged) == (0, None, None, False)
    assert [r.reviewer for r in s.gold_stats(min_answers=3)][:2] == ["carl", "dora"]      # flagged first
    assert not any(r.flagged for r in s.gold_stats(min_accuracy=0.3))
    with pytest.raises(GoldError, match="minimum gold accuracy: expected a number from 0 to 1, got 1.5"):
        s.gold_stats(min_accuracy=1.5)
    html = gold_html(s.gold_stats())
    assert 'data-reviewer="carl" data-flagged="1"' in html and 'data-reviewer="ann" data-flagged="0"' in html
    assert "37.5%" in html and "90.0%" in html and "data-testid=\"gold-flag\"" in html
    assert 'data-gold-reviewer="carl"' in html
    assert "No gold answers yet" in gold_html([])


def test_stats_tab_shows_a_hostile_reviewer_name_as_text(sample):
    s, ids = sample
    s.add_gold([(ids[0], "MV")], "x")
    s.add_gold_answer(ids[0], "<b onmouseover=x>", "N")
    html = gold_html(s.gold_stats(min_answers=1))
    assert "<b onmouseover" not in html and "&lt;b onmouseover=x&gt;" in html


def test_median_seconds_per_label_come_from_the_reviewers_decisions(sample):
    s, ids = sample
    s.add_label(ids[0], "MV", "ann")
    s.add_label(ids[1], "MV", "ann")
    (r,) = s.gold_stats()
    assert r.median_seconds_per_label is not None and 0 <= r.median_seconds_per_label < 60


# -- exports ------------------------------------------------------------------------------------
def test_exports_mark_gold_candidates_and_ignore_gold_answers(sample, tmp_path):
    s, ids = sample
    s.add_label(ids[0], "MV", "ann")
    s.add_label(ids[1], "MV", "ann")
    s.gold_from_labels([ids[0]])
    s.add_gold([(ids[2], "TV")], "x")
    s.add_gold_answer(ids[2], "bob", "MV")           # never a label: ids[2] stays out of the MV export
    s.add_gold_answer(ids[0], "bob", "N")            # never changes ids[0]'s exported label
    out = s.export(tmp_path / "e.jsonl")
    rows = [json.loads(line) for line in out.path.read_text().splitlines()]
    assert [(r["caption_id"], r["overfit_type"], r["gold"]) for r in rows] == [(ids[0], "MV", "MV"), (ids[1], "MV", None)]
    csv_out = s.export(tmp_path / "e.csv")
    header = csv_out.path.read_text().splitlines()[0].split(",")
    assert header.index("gold") == header.index("review_state") + 1
    auto = [json.loads(line) for line in s.export(tmp_path / "a.jsonl", auto=True).path.read_text().splitlines()]
    assert {r["caption_id"]: r["gold"] for r in auto if r["gold"]} == {ids[0]: "MV", ids[2]: "TV"}
    assert next(r for r in auto if r["caption_id"] == ids[2])["overfit_type"] is None


# -- command line -------------------------------------------------------------------------------
def test_cli_gold_manages_and_lists(sample, tmp_path, capsys):
    s, ids = sample
    s.add_label(ids[0], "MV", "ann")
    s.close()
    d = str(s.path)
    assert store_main(["gold", "--store", d, "--from-labels"]) == 0
    assert "gold from decided labels: 1 added, 0 replaced" in capsys.readouterr().out
    f = tmp_path / "g.csv"
    f.write_text(f"caption_id,overfit_type\n{ids[1]},VM\n", encoding="utf-8")
    assert store_main(["gold", "--store", d, "--from", str(f)]) == 0
    assert store_main(["gold", "--store", d, "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [(x["caption_id"], x["label"], x["source"]) for x in listed] == [(ids[0], "MV", "labels"),
                                                                          (ids[1], "MV", "g.csv")]
    with Store.open(d) as s2:
        s2.add_gold_answer(ids[1], "bob", "N")
    assert store_main(["gold", "--store", d, "--stats", "--json", "--min-answers", "1"]) == 0
    stats = {r["reviewer"]: r for r in json.loads(capsys.readouterr().out.strip().splitlines()[-1])}
    assert stats["bob"]["accuracy"] == 0.0 and stats["bob"]["flagged"] and stats["bob"]["confusion"] == [["MV", "N", 1]]
    assert store_main(["gold", "--store", d, "--remove", str(ids[1])]) == 2
    assert "expected a gold candidate without answers" in capsys.readouterr().err
    assert store_main(["gold", "--store", d, "--remove", str(ids[1]), "--force"]) == 0
    assert store_main(["gold", "--store", d, "--list"]) == 0
    out = capsys.readouterr()
    assert "removed gold candidate" in out.out and "1 gold candidate(s)" in out.out
    bad = tmp_path / "bad.csv"
    bad.write_text("caption_id,label\n1,ZZ\n", encoding="utf-8")
    assert store_main(["gold", "--store", d, "--from", str(bad)]) == 2
    assert "bad.csv, row 1, column 'label': expected one of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        store_main(["gold", "--store", d, "--list", "--from-labels"])      # one action at a time


# -- the review app's helpers (review/gold.py) --------------------------------------------------
@dataclass(frozen=True)
class _Nav:          # the fields of review/views.Nav the helpers use
    ids: tuple = ()
    pos: int = 0
    seen: int = -1
    labelled: tuple = field(default=())

    @property
    def current(self):
        return self.ids[self.pos] if 0 <= self.pos < len(self.ids) else None


def test_mixer_splices_gold_in_and_takes_the_answer_out(sample):
    s, ids = sample
    s.add_gold([(ids[9], "N")], "x")
    off = rgold.GoldMixer(s, 0.0)
    nav = _Nav(tuple(ids[:5]), 2, 17)
    assert off.after_label(nav, "ann") is nav and off.hold_out(ids) == tuple(ids)
    m = rgold.GoldMixer(s, 0.5)
    assert ids[9] not in m.hold_out(ids) and len(m.hold_out(ids)) == len(ids) - 1
    assert m.after_label(nav, "ann") == nav          # no label given yet: nothing due
    s.add_label(ids[0], "MV", "ann")
    shown = m.after_label(nav, "ann")
    assert shown.current == ids[9] and shown.ids == (ids[0], ids[1], ids[9], ids[2], ids[3], ids[4])
    assert shown.seen == -1 and m.is_gold(shown, "ann") and not m.is_gold(shown, "bob")
    assert not m.is_gold(replace(shown, pos=0), "ann")
    step = m.answer(shown, "TV", "ann")
    assert not step.answer.correct and step.answer.gold_label == "N"
    assert step.nav.ids == tuple(ids[:5]) and step.nav.pos == 1      # next unlabelled from here: ids[2]
    assert not m.is_gold(step.nav, "ann") and s.label_history(ids[9]) == []
    with pytest.raises(GoldError, match="gold rate: expected a number from 0 to 0.5, got 2"):
        rgold.GoldMixer(s, 2)


def test_a_served_gold_candidate_renders_like_an_unlabelled_one(sample):
    from review.candidate import candidate_data
    from review.templates import candidate_html, head_html

    s, ids = sample
    s.add_label(ids[3], "MV", "zelda")
    s.gold_from_labels()
    data = candidate_data(s, ids[3], "ann")
    assert "zelda" in candidate_html(data) + head_html(data, "")          # the test can fail
    b = rgold.blank(data)
    page = candidate_html(b) + head_html(b, "queue position 4")
    assert "zelda" not in page and b.label is None and b.latest_entry == 0
    fresh = candidate_data(s, ids[4], "ann")                             # an unlabelled candidate, for shape
    assert (b.label, b.history, b.reviews, b.blind, b.votes_in) == (fresh.label, fresh.history, fresh.reviews,
                                                                    fresh.blind, fresh.votes_in)
    s.set_reviews_per_candidate(2)
    b2 = rgold.blank(candidate_data(s, ids[3], "ann"))
    assert b2.blind and b2.votes_in == 0 and "zelda" not in candidate_html(b2)


def test_stats_tab_values_end_with_the_gold_table(sample):
    from review.tab_stats import stats_values

    s, ids = sample
    s.add_gold([(ids[0], "MV")], "x")
    for who, label in (("ann", "MV"), ("bob", "N")):
        s.add_gold_answer(ids[0], who, label)
    values = stats_values(s, min_answers=1)
    assert len(values) == 9
    assert 'data-reviewer="bob" data-flagged="1"' in values[-1] and 'data-reviewer="ann" data-flagged="0"' in values[-1]


def test_app_takes_a_gold_rate_and_checks_it():
    import app

    assert app.parse_args(["--gold-rate", "0.05"]).gold_rate == 0.05 and app.parse_args([]).gold_rate == 0.0
    for bad in ("0.6", "-1", "nan"):
        with pytest.raises(SystemExit):
            app.parse_args(["--gold-rate", bad])


def test_the_wiring_the_candidate_tab_gets_works_on_real_navigation(sample):
    """label -> gold due -> shown -> answered -> next unlabelled, with review/views' own functions."""
    from review import views

    s, ids = sample
    s.add_gold([(ids[9], "N")], "x")
    m = rgold.GoldMixer(s, 0.5)
    nav = views.nav_first_unlabelled(s, views.QueueFilter(), "ann")
    assert nav.current == ids[0]
    _, nxt, moved = views.label_and_advance(s, nav, "MV", "ann")
    assert moved and nxt.current == ids[1]
    shown = m.after_label(nxt, "ann")
    assert shown.current == ids[9] and m.is_gold(shown, "ann") and shown.position == nxt.position
    step = m.answer(shown, "N", "ann")
    assert step.answer.correct and s.current_label(ids[9]) is None and s.label_history(ids[9]) == []
    after, found = views.nav_next_unlabelled(s, step.nav)
    assert found and after.current == ids[1]
    # held out of "next unlabelled" while gold is mixed in
    assert ids[9] not in m.hold_out(after.ids) and ids[9] in after.ids


# -- the candidate flow (review/views.py, as the candidate tab calls it) ---------------------------
def test_a_served_gold_candidates_page_is_the_page_it_had_unlabelled(sample):
    """The candidate view of a served gold candidate (labelled in the audit by someone else) equals,
    field for field, the view the same candidate had before anyone labelled it."""
    from review import views

    s, ids = sample
    fields = ("caption_id", "html", "head", "label", "mask", "mask_choices", "latest_entry")
    unlabelled = views.candidate_view(s, ids[5], "queue position 3", with_editor=False, viewer="ann")
    s.add_label(ids[5], "RV", "zelda")
    s.gold_from_labels([ids[5]])
    labelled = views.candidate_view(s, ids[5], "queue position 3", with_editor=False, viewer="ann")
    assert labelled.html != unlabelled.html and "zelda" in labelled.html       # the comparison can fail
    gold = views.candidate_view(s, ids[5], "queue position 3", with_editor=False, viewer="ann", gold=True)
    assert [getattr(gold, f) for f in fields] == [getattr(unlabelled, f) for f in fields]
    page = re.sub(r'(src|href)="[^"]*"', "", gold.html + gold.head).lower()     # file paths hold the test's name
    assert "gold" not in page


def test_gold_answer_advances_like_a_label_and_u_takes_it_back(sample):
    from review import views

    s, ids = sample
    s.add_gold([(ids[0], "MV"), (ids[9], "N")], "x")
    m = rgold.GoldMixer(s, 0.5)
    nav = views.nav_first_unlabelled(s, views.QueueFilter(), "ann", m.hold_out)
    assert nav.current == ids[1]                                         # gold is held out of the queue
    entry, nxt, _ = views.label_and_advance(s, nav, "TV", "ann", hold_out=m.hold_out)
    assert nxt.current == ids[2]
    shown = m.after_label(nxt, "ann")
    g = shown.current
    assert g in (ids[0], ids[9]) and m.is_gold(shown, "ann")
    answer, after, moved = views.answer_gold_and_advance(s, m, shown, "RV", "ann")
    assert moved and after.current == ids[2] and answer.caption_id == g and not answer.correct
    assert s.label_history(g) == [] and [a.label for a in s.gold_answers("ann")] == ["RV"]
    # u: the gold answer is taken back and the gold candidate shown again, served, to be answered anew
    u = views.undo_last(s, after, "ann")
    assert (u.entry, u.caption_id, u.label, u.nav.current) == (None, g, None, g)
    assert s.gold_answers("ann") == [] and m.is_gold(u.nav, "ann") and s.label_history(g) == []
    answer, after, _ = views.answer_gold_and_advance(s, m, u.nav, "N", "ann")
    assert after.current == ids[2] and s.gold_answers("ann") == [answer]
    # u twice: the gold answer, then the label before it
    u1 = views.undo_last(s, after, "ann")
    u2 = views.undo_last(s, u1.nav, "ann")
    assert u1.caption_id == g and u2.entry is not None and (u2.caption_id, u2.label) == (ids[1], None)
    with pytest.raises(views.NothingToUndo):
        views.undo_last(s, replace(u2.nav, labelled=()), "ann")
    # a reviewer never meets an answered gold candidate in their audit queue
    views.answer_gold_and_advance(s, m, u1.nav, "N", "ann")
    top = views.nav_first_unlabelled(s, views.QueueFilter(), "ann", m.hold_out)
    assert top.current not in (ids[0], ids[9])
    with pytest.raises(views.ViewError, match="label: expected one of"):
        views.answer_gold_and_advance(s, m, shown, "ZZ", "ann")


def test_undo_gold_answer_is_the_reviewers_own_only(sample):
    s, ids = sample
    s.add_gold([(ids[0], "MV")], "x")
    a = s.add_gold_answer(ids[0], "ann", "N", seconds=2.0)
    with pytest.raises(GoldError, match=rf"expected the id of a gold answer by bob, got {a.id} \(given by ann\)"):
        s.undo_gold_answer("bob", a.id)
    with pytest.raises(GoldError, match="expected the id of a gold answer by ann, got 999"):
        s.undo_gold_answer("ann", 999)
    served = s.undo_gold_answer("ann", a.id, now=50.0)
    assert served.caption_id == ids[0] and s.served_gold("ann") == served and s.gold_answers() == []
    assert s.answer_served_gold("ann", ids[0], "MV", now=53.0).seconds == 3.0
