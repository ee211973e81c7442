"""Several reviewers in the store: leases, keep/override conflicts, undo of one's own entries,
blind double review with adjudication (issue 14)."""
from __future__ import annotations

import threading

import pytest

from review.sample import build_sample_store
from store import LabelConflictError, LabelError, NotYourLabelError, PageQuery, Store
from tests.conftest import assert_derived_state


@pytest.fixture
def sample(tmp_path):
    with Store.open(tmp_path / "s") as s:
        yield s, build_sample_store(s, n=12)


def test_leases_hand_each_candidate_to_one_reviewer(sample):
    s, ids = sample
    a = s.lease_first(ids, "ann", now=1000.0)
    b = s.lease_first(ids, "bob", now=1000.0)
    assert (a, b) == (ids[0], ids[1])
    # a reviewer holds one lease: asking again moves it (ann's first is free for bob afterwards)
    assert s.lease_first(ids[1:], "ann", now=1001.0) == ids[2]
    assert s.lease_first(ids, "bob", now=1001.0) == ids[0]
    # a label ends the labeller's lease; a lease that ran out is free again
    s.add_label(ids[0], "MV", "bob")
    assert {(x.reviewer, x.caption_id) for x in s.leases(now=1001.0)} == {("ann", ids[2])}
    assert s.lease_first(ids, "cat", now=1001.0) == ids[1]              # labelled ids[0] is skipped
    assert s.lease_first(ids, "dan", now=1001.0 + 301) == ids[1]        # cat's lease expired
    # opening a candidate someone else holds: taken too, and their lease is reported
    others = s.lease(ids[1], "ann", now=1400.0)
    assert [o.reviewer for o in others] == ["dan"]
    # opening it again soon does not rewrite the lease; past half its time it is renewed
    def ann_expires(now):
        return next(x.expires for x in s.leases(now=now) if x.reviewer == "ann")
    assert [o.reviewer for o in s.lease(ids[1], "ann", now=1401.0)] == ["dan"] and ann_expires(1401.0) == 1700.0
    s.lease(ids[1], "ann", now=1600.0)
    assert ann_expires(1600.0) == 1900.0


def test_two_reviewers_asking_at_once_never_get_the_same_candidate(tmp_path):
    path = tmp_path / "s"
    with Store.open(path) as s:
        ids = build_sample_store(s, n=12)
    got: dict[str, int] = {}

    def ask(name: str) -> None:
        with Store.open(path, create=False) as s2:
            got[name] = s2.lease_first(ids, name)

    threads = [threading.Thread(target=ask, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got.values()) == sorted(ids[:6])


def test_a_label_given_since_you_opened_is_a_conflict_to_keep_or_override(sample):
    s, ids = sample
    cid = ids[0]
    seen = None                                    # ann opened it unlabelled
    bob = s.add_label(cid, "TV", "bob", expect_latest=None)
    with pytest.raises(LabelConflictError, match="expected the label you saw, got bob's TV") as e:
        s.add_label(cid, "MV", "ann", expect_latest=seen)
    assert e.value.latest == bob and s.current_label(cid) == "TV"
    assert len(s.label_history(cid)) == 1          # nothing written
    over = s.add_label(cid, "MV", "ann", expect_latest=e.value.latest.id)   # override
    assert s.current_label(cid) == "MV" and over.label == "MV"
    # one's own newer entry (another tab) is no conflict
    s.add_label(cid, "RV", "ann", expect_latest=bob.id)
    assert s.current_label(cid) == "RV"


def test_undo_takes_back_only_your_own_entries(sample):
    s, ids = sample
    cid = ids[0]
    s.add_label(cid, "MV", "ann")
    s.add_label(cid, "TV", "bob")
    with pytest.raises(NotYourLabelError, match="expected your label to be the latest, got bob's TV"):
        s.undo_label(cid, "ann")
    assert s.current_label(cid) == "TV"
    s.undo_label(cid, "bob")
    assert s.current_label(cid) == "MV"
    u = s.undo_label(cid, "ann")
    assert u.label is None and s.current_label(cid) is None
    with pytest.raises(NotYourLabelError, match="only its author"):
        batch = s.add_labels(ids[1:3], "N", "bob")[0].batch
        s.undo_batch(batch, "ann")
    assert [s.current_label(c) for c in ids[1:3]] == ["N", "N"]
    assert_derived_state(s.conn)


def test_blind_double_review_agrees_conflicts_and_is_adjudicated(sample):
    s, ids = sample
    a, b, c = ids[:3]
    s.add_label(a, "MV", "ann")
    s.add_label(b, "TV", "ann")
    assert s.set_reviews_per_candidate(2) == 2
    # one review is not enough any more: both are pending, not labelled
    assert s.current_label(a) is None and s.current_label(b) is None
    assert s.page(PageQuery(human_label="unlabelled", limit=50)).total == 12
    s.add_label(a, "MV", "bob")                    # agrees
    s.add_label(b, "RV", "bob")                    # disagrees
    s.add_label(c, "skip", "bob")                  # a skip is no vote
    r = {x.caption_id: x for x in s.caption_reviews([a, b, c])}
    assert (r[a].label, r[a].state) == ("MV", "agreed")
    assert (r[b].label, r[b].state) == (None, "conflict")
    assert (r[c].label, r[c].state) == (None, "pending")
    assert s.current_label(a) == "MV" and s.current_label(b) is None
    conflicts = s.page(PageQuery(human_label="conflict", limit=50))
    assert conflicts.total == 1 and [x.caption_id for x in conflicts.rows] == [b]
    # a conflict is not handed out as "next unlabelled"; pending c needs one more vote, not bob's
    assert s.lease_first([b, c], "bob") is None
    assert s.lease_first([b, c], "cat") == c
    # a voter changing their mind is a vote; someone who did not vote adjudicates
    judge = s.add_label(b, "TV", "cat")
    assert judge.role == "adjudication" and s.current_label(b) == "TV"
    assert s.caption_reviews([b])[0].state == "adjudicated"
    assert s.page(PageQuery(human_label="conflict", limit=50)).total == 0
    u = s.undo_label(b, "cat")                     # the adjudicator takes it back: conflict again
    assert u.role == "adjudication" and s.caption_reviews([b])[0].state == "conflict"
    s.undo_label(a, "bob")                         # bob's own vote only, though ann's came first
    assert s.caption_reviews([a])[0].state == "pending" and s.current_label(a) is None
    assert_derived_state(s.conn)
    # back to one review: the newest entry counts again
    s.set_reviews_per_candidate(1)
    assert s.current_label(b) is None and s.current_label(a) is None     # both end in an undo
    assert s.caption_reviews([b])[0].state is None
    with pytest.raises(LabelError, match="expected an integer from 1 to 5, got 0"):
        s.set_reviews_per_candidate(0)


def test_end_of_the_undo_stack_is_said_plainly(sample):
    """u with nothing left to undo: the reviewer reads plain words, not the library's (issue 27)."""
    from review import views
    from review.session import MISSING_NAME, MissingName, reviewer_name

    s, ids = sample
    nav = views.Nav(ids=tuple(ids), reviewer="ann")
    s.add_label(ids[0], "MV", "ann")
    u = views.undo_last(s, nav, "ann")                    # the current candidate's label: undone
    assert u.entry.label is None
    with pytest.raises(views.NothingToUndo, match="only undos and undone entries") as e:
        views.undo_last(s, u.nav, "ann")
    assert e.value.plain == f"Nothing left to undo on candidate {ids[0]}."
    with pytest.raises(views.NothingToUndo) as e:
        views.undo_last(s, views.Nav(ids=tuple(ids), pos=1), "ann")     # never labelled
    assert e.value.plain == f"Nothing left to undo on candidate {ids[1]}."
    with pytest.raises(views.NothingToUndo) as e:
        views.undo_last(s, views.Nav(), "ann")
    assert e.value.plain.startswith("Nothing left to undo")
    with pytest.raises(MissingName, match="Type your name at the top right") as e:
        reviewer_name(None, "  ")
    assert str(e.value) == MISSING_NAME
    s.add_label(ids[2], "TV", "bob")                      # someone else's label is still theirs to undo
    with pytest.raises(NotYourLabelError):
        views.undo_last(s, views.Nav(ids=tuple(ids), pos=2), "ann")
