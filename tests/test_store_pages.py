"""Ranked, filtered pages and full-text search, checked against a plain-Python reference."""
from __future__ import annotations

import itertools
import random
import re

import pytest

from store import CaptionRow, PageQuery, StoreError, queries
from tests.conftest import assert_derived_state, tiny_image

WORDS = ["red", "car", "sea", "mist", "floor", "podcast", "woman", "hippo", "light", "wave"]
FLAGS = ["suspect:texture", "suspect:background"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """60 captions; 40 candidates; scores from two runs and two models; labels; auto labels."""
    from store import Store
    rng = random.Random(0)
    s = Store.open(tmp_path_factory.mktemp("pages") / "store")
    texts = [" ".join(rng.choice(WORDS) for _ in range(4)) + f" item{i}" for i in range(60)]
    ids = s.add_captions([CaptionRow(t) for t in texts])
    r1 = s.start_run("score", "sd:v1", {})
    r2 = s.start_run("score", "sd:v2", {})
    gen = s.start_run("generate", "sd:v1", {})
    lab = s.start_run("label", "sd:v1", {})
    truth = {cid: {"text": t, "scores": {}, "run_scores": {}} for cid, t in zip(ids, texts)}
    for kind in ("dcs", "ecs"):
        vals = [(cid, round(rng.random(), 3)) for cid in ids if rng.random() < 0.85]
        s.add_scores(r1, kind, vals)
        for cid, v in vals:
            truth[cid]["scores"][kind] = v
            truth[cid]["run_scores"][(kind, r1)] = v
    later = [(cid, round(rng.random(), 3)) for cid in ids[:30]]
    s.add_scores(r2, "dcs", later)
    for cid, v in later:
        truth[cid]["scores"]["dcs"] = v  # latest run wins
        truth[cid]["run_scores"][("dcs", r2)] = v
    sha = s.put_image(tiny_image(0))
    candidates = ids[:40]
    for cid in candidates:
        s.add_generation(cid, gen, 0, 1, "heun", sha)
    # scores written after the caption became a candidate must reach the page too
    s.add_scores(r2, "ecs", [(candidates[0], 0.999)])
    truth[candidates[0]]["scores"]["ecs"] = 0.999
    truth[candidates[0]]["run_scores"][("ecs", r2)] = 0.999
    for cid in candidates:
        truth[cid]["candidate"] = True
        auto = rng.choice(["MV", "TV", "RV", "N"])
        flags = [f for f in FLAGS if rng.random() < 0.3]
        s.add_auto_label(cid, lab, auto, {}, flags)
        truth[cid].update(auto=auto, flags=set(flags))
        label = rng.choice([None, None, "MV", "N", "FP:texture", "skip"])
        if label:
            s.add_label(cid, label, "ann")
        truth[cid]["label"] = label
    s.add_label(ids[50], "MV", "ann")  # a label on a non-candidate never shows in pages
    yield s, truth, {"r1": r1, "r2": r2}
    s.close()


def reference(truth, q: PageQuery, runs_of_model):
    rows = []
    for cid, t in truth.items():
        if not t.get("candidate"):
            continue
        if q.human_label is not None:
            ok = (t["label"] in q.human_label or ("unlabelled" in q.human_label and t["label"] is None)
                  or ("labelled" in q.human_label and t["label"] is not None))
            if not ok:
                continue
        if q.auto_label is not None and t["auto"] not in q.auto_label:
            continue
        if q.flags and not set(q.flags) <= t["flags"]:
            continue
        if q.search is not None:
            words = set(re.findall(r"\w+", t["text"].lower()))
            if not set(w.lower() for w in re.findall(r"\w+", q.search)) <= words:
                continue
        if q.order_by == "caption_id":
            value = None
        elif q.run_id is not None or q.model is not None:
            runs = [q.run_id] if q.run_id is not None else runs_of_model(q.model)
            hits = [(r, v) for (k, r), v in t["run_scores"].items() if k == q.order_by and r in runs]
            if not hits:
                continue
            value = max(hits)[1]
        else:
            value = t["scores"].get(q.order_by)
        restricted = q.run_id is not None or q.model is not None or q.score_min is not None or q.score_max is not None
        if restricted and value is None:
            continue
        if q.score_min is not None and value < q.score_min:
            continue
        if q.score_max is not None and value > q.score_max:
            continue
        rows.append((cid, value))
    sign = -1 if q.descending else 1
    if q.order_by == "caption_id":
        rows.sort(key=lambda r: sign * r[0])
    else:
        rows.sort(key=lambda r: (r[1] is None, sign * (r[1] or 0), sign * r[0]))
    return rows[q.offset:q.offset + q.limit], len(rows)


QUERIES = [
    PageQuery(),
    PageQuery("dcs", False),
    PageQuery("ecs", True, human_label="unlabelled"),
    PageQuery("ecs", True, human_label=["MV", "N"], limit=5),
    PageQuery("dcs", True, human_label="labelled", offset=3, limit=4),
    PageQuery("dcs", True, auto_label="TV"),
    PageQuery("dcs", False, flags=["suspect:texture"]),
    PageQuery("dcs", True, flags=FLAGS),
    PageQuery("dcs", True, score_min=0.2, score_max=0.8),
    PageQuery("ecs", True, search="red car"),
    PageQuery("caption_id", True, human_label="unlabelled", limit=7),
    PageQuery("dcs", True, offset=30, limit=20),   # runs past the scored rows into unscored ones
    PageQuery("dcs", False, offset=38, limit=10),
    PageQuery("dcs", True, model="sd:v1"),
    PageQuery("dcs", True, model="sd:v2", human_label="unlabelled"),
    PageQuery("ecs", True, model="sd:v2"),
    PageQuery("wen", True),                         # nobody has this score: all unscored, by id
    PageQuery("dcs", True, offset=500),
    PageQuery("dcs", True, model="nobody"),
]


@pytest.mark.parametrize("small_set", [0, 10_000], ids=["index-walk", "filter-then-sort"])
@pytest.mark.parametrize("q", QUERIES, ids=lambda q: f"{q.order_by}-{q.human_label}-{q.auto_label}-{q.flags}-{q.offset}-{q.model}")
def test_page_matches_reference(world, q, small_set, monkeypatch):
    s, truth, runs = world
    monkeypatch.setattr(queries, "SMALL_SET", small_set)

    def runs_of_model(model):
        return [r for (r,) in s.conn.execute("SELECT id FROM runs WHERE model = ?", (model,))]
    expected_rows, expected_total = reference(truth, q, runs_of_model)
    page = s.page(q)
    assert page.total == expected_total
    assert [(r.caption_id, r.score) for r in page.rows] == expected_rows


def test_derived_state(world):
    assert_derived_state(world[0].conn)


def test_run_filter(world):
    s, truth, runs = world
    page = s.page(PageQuery("dcs", True, run_id=runs["r1"], limit=100))
    expected = sorted(((cid, t["run_scores"][("dcs", runs["r1"])]) for cid, t in truth.items()
                       if t.get("candidate") and ("dcs", runs["r1"]) in t["run_scores"]),
                      key=lambda r: (-r[1], -r[0]))
    assert [(r.caption_id, r.score) for r in page.rows] == expected


def test_page_rows_carry_details(world):
    s, truth, _ = world
    row = s.page(PageQuery("dcs", True, limit=1)).rows[0]
    t = truth[row.caption_id]
    assert row.text == t["text"] and row.human_label == t["label"] and row.auto_label == t["auto"]
    assert set(row.flags) == t["flags"] and row.n_generations == 1
    assert row.scores == t["scores"]


def test_unknown_order_is_refused(world):
    s, _, _ = world
    with pytest.raises(StoreError, match=r"order_by: expected a score kind \(carlini, dcs, ecs, wen\) or one of caption_id, labelled_at, got 'dsc'"):
        s.page(PageQuery("dsc"))


def test_page_query_validation():
    with pytest.raises(StoreError, match="human_label: expected one of MV, .* got 'bogus'"):
        PageQuery(human_label="bogus")
    with pytest.raises(StoreError, match=r"limit: expected an int in 1..10000, got 0"):
        PageQuery(limit=0)
    with pytest.raises(StoreError, match="offset: expected an int >= 0, got -1"):
        PageQuery(offset=-1)


def test_search_in_sync_and_safe(world):
    s, truth, _ = world
    hits = s.search("hippo podcast", 100)
    expected = {cid for cid, t in truth.items() if {"hippo", "podcast"} <= set(t["text"].split())}
    assert {h.caption_id for h in hits} == expected
    for hostile in ['"', 'red AND', 'NEAR(red car)', 'text:red', '*', "'); DROP TABLE captions; --", ""]:
        s.search(hostile, 5)  # never an FTS syntax error
    assert s.search("", 5) == []
    (cid,) = s.add_captions([CaptionRow("zanzibar unique words")])
    assert [h.caption_id for h in s.search("Zanzibar", 5)] == [cid]
    s.conn.execute("UPDATE captions SET text = 'renamed thing' WHERE id = ?", (cid,))
    assert s.search("zanzibar", 5) == [] and [h.caption_id for h in s.search("renamed", 5)] == [cid]
    with pytest.raises(StoreError, match="search limit: expected an int in 1..1000, got 0"):
        s.search("red", 0)


def test_plans_agree_on_every_offset(world, monkeypatch):
    s, _, _ = world
    for small_set, q in itertools.product([0, 10_000], [PageQuery("dcs", True, limit=7), PageQuery("ecs", False, limit=9)]):
        monkeypatch.setattr(queries, "SMALL_SET", small_set)
        seen = []
        offset = 0
        while True:
            page = s.page(PageQuery(q.order_by, q.descending, offset=offset, limit=q.limit))
            if not page.rows:
                break
            seen += [r.caption_id for r in page.rows]
            offset += q.limit
        assert len(seen) == len(set(seen)) == page.total == 40
