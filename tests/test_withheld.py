"""Kept-over opinions (issue 27): a reviewer who keeps another's label has their own recorded as
withheld, never in force; when the kept label is undone by its author it is offered back to them
until they label the candidate again. At store level, then the flow through the served app."""
from __future__ import annotations

import pytest
from gradio_client import Client

from review import views
from review.sample import build_sample_store
from store import LabelError, NotFoundError, Store

from .conftest import served_sample_app


@pytest.fixture
def sample(tmp_path):
    with Store.open(tmp_path / "s") as s:
        yield s, build_sample_store(s, n=6)


def test_withheld_is_recorded_never_in_force_and_offered_back_after_undo(sample):
    s, ids = sample
    cid = ids[0]
    bob = s.add_label(cid, "RV", "bob")
    w = s.withhold_label(cid, "ann", "MV", bob.id)
    assert (w.caption_id, w.reviewer, w.label, w.over_entry) == (cid, "ann", "MV", bob.id)
    assert s.current_label(cid) == "RV" and [e.label for e in s.label_history(cid)] == ["RV"]   # not in force
    assert s.withheld(cid) == [w] and s.withheld() == [w]
    assert s.opinions_back(cid, "ann") == []                 # bob's label still stands
    s.undo_label(cid, "bob")
    assert s.current_label(cid) is None
    assert s.opinions_back(cid, "ann") == [w] and s.opinions_back(cid, "bob") == []
    # the view note offers it back, naming its key
    note = views.opinions_back_note(s, views.Nav(ids=(cid,), reviewer="ann"))
    assert "<kbd>1</kbd>" in note and "MV" in note
    assert views.opinions_back_note(s, views.Nav(ids=(cid,), reviewer="bob")) == ""
    # answered once ann labels it again (whatever the label)
    s.add_label(cid, "TV", "ann")
    assert s.opinions_back(cid, "ann") == []
    assert s.withheld(cid) == [w]                              # the record itself stays


def test_next_unlabelled_asks_again_where_an_opinion_is_owed(sample):
    s, ids = sample
    cid = ids[3]
    bob = s.add_label(cid, "RV", "bob")
    s.withhold_label(cid, "ann", "MV", bob.id)
    start = views.nav_first_unlabelled(s, views.QueueFilter(), "ann")
    assert start.current != cid                     # bob's label stands: nothing owed yet
    assert s.opinions_owed("ann") == []
    s.undo_label(cid, "bob")
    assert [w.caption_id for w in s.opinions_owed("ann")] == [cid] and s.opinions_owed("bob") == []
    nxt, found = views.nav_next_unlabelled(s, start)
    assert found and nxt.current == cid             # re-asked first, wherever ann was in the queue
    assert any(lease.caption_id == cid and lease.reviewer == "ann" for lease in s.leases())
    s.add_label(cid, "MV", "ann")                   # answered: no longer owed
    assert s.opinions_owed("ann") == []
    again, _ = views.nav_next_unlabelled(s, nxt)
    assert again.current != cid


def test_withhold_checks_its_input(sample):
    s, ids = sample
    bob = s.add_label(ids[1], "RV", "bob")
    with pytest.raises(LabelError, match="expected one of"):
        s.withhold_label(ids[1], "ann", "maybe", bob.id)
    with pytest.raises(LabelError, match="expected another reviewer's entry"):
        s.withhold_label(ids[1], "bob", "MV", bob.id)            # one's own label is not kept over
    with pytest.raises(LabelError, match="expected another reviewer's entry"):
        s.withhold_label(ids[2], "ann", "MV", bob.id)            # an entry of another caption
    with pytest.raises(NotFoundError, match="expected the id of the label entry kept"):
        s.withhold_label(ids[1], "ann", "MV", 10_000)
    with pytest.raises(LabelError, match="reviewer"):
        s.withhold_label(ids[1], " ", "MV", bob.id)
    assert s.withheld() == []


@pytest.mark.slow
def test_keep_theirs_then_their_undo_offers_the_opinion_back(tmp_path):
    """bob labels 42 RV while ann has it open; ann presses 1 then keeps bob's; bob undoes: ann's MV
    was recorded and her next view of 42 offers it back (issue 27, item 2)."""
    with served_sample_app(tmp_path / "store", n=8) as (s, ids, url, _):
        cid = ids[2]
        ann, bob = Client(url, verbose=False), Client(url, verbose=False)
        ann.predict(cid, api_name="/open")
        bob.predict(cid, api_name="/open")
        bob.predict("bob", "", api_name="/label_RV")
        out = ann.predict("ann", "", api_name="/label_MV")          # asks keep / override
        assert "bob" in out[2] and s.current_label(cid) == "RV"     # (head, view, prompt, status, note)
        out = ann.predict("ann", api_name="/keep")
        assert "withheld" in out[3] and str(cid) in out[3]
        assert [(w.reviewer, w.label) for w in s.withheld(cid)] == [("ann", "MV")]
        assert [(e.reviewer, e.label) for e in s.label_history(cid)] == [("bob", "RV")]   # not in force
        bob.predict(cid, api_name="/open")
        bob.predict("bob", api_name="/undo")
        assert s.current_label(cid) is None
        status = ann.predict(cid, "ann", api_name="/open")[3]     # her next view of it
        assert "they have undone it" in status and "MV" in status and "<kbd>1</kbd>" in status
        ann.predict("ann", "", api_name="/label_MV")
        assert s.current_label(cid) == "MV" and s.opinions_back(cid, "ann") == []
