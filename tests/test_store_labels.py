"""Human labels: validation, append-only history, undo."""
from __future__ import annotations

import sqlite3

import pytest

from store import HUMAN_LABELS, CaptionRow, LabelError, NotFoundError
from tests.conftest import assert_derived_state


@pytest.fixture
def cid(store):
    return store.add_captions([CaptionRow("a caption")])[0]


def test_add_label_validates_and_lists_valid_labels(store, cid):
    with pytest.raises(LabelError) as e:
        store.add_label(cid, "maybe", "ann")
    msg = str(e.value)
    assert "got 'maybe'" in msg and all(label in msg for label in HUMAN_LABELS)
    with pytest.raises(LabelError, match="reviewer: expected a non-empty name, got ''"):
        store.add_label(cid, "MV", "")
    with pytest.raises(NotFoundError, match="expected an existing caption id, got 999"):
        store.add_label(999, "MV", "ann")
    assert store.label_history(cid) == []


def test_history_and_current(store, cid):
    assert store.current_label(cid) is None
    e1 = store.add_label(cid, "MV", "ann", note="clear copy")
    e2 = store.add_label(cid, "FP:texture", "bob")
    assert store.current_label(cid) == "FP:texture"
    assert store.current_label_entry(cid) == e2
    assert store.label_history(cid) == [e1, e2]
    assert e1.note == "clear copy" and e1.undoes is None and e1.created_at <= e2.created_at


def test_undo_walks_back_and_is_appended(store, cid):
    e1 = store.add_label(cid, "MV", "ann")
    e2 = store.add_label(cid, "TV", "ann")
    u1 = store.undo_label(cid, "ann")
    assert (u1.label, u1.undoes) == ("MV", e2.id) and store.current_label(cid) == "MV"
    e3 = store.add_label(cid, "RV", "bob")
    u2 = store.undo_label(cid, "bob")
    assert (u2.label, u2.undoes) == ("MV", e3.id)
    u3 = store.undo_label(cid, "ann")
    assert (u3.label, u3.undoes) == (None, e1.id) and store.current_label(cid) is None
    with pytest.raises(LabelError, match="expected a label entry to undo, got only undos and undone entries"):
        store.undo_label(cid, "ann")
    assert [h.id for h in store.label_history(cid)] == [e1.id, e2.id, u1.id, e3.id, u2.id, u3.id]
    page = store.page()  # not a candidate (no generation): the label state still exists
    assert page.total == 0


def test_undo_with_no_history(store, cid):
    with pytest.raises(LabelError, match="expected a label entry to undo, got none"):
        store.undo_label(cid, "ann")


def test_labels_are_append_only(store, cid):
    store.add_label(cid, "MV", "ann")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("UPDATE labels SET label = 'N'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.conn.execute("DELETE FROM labels")


def test_state_matches_latest_entry(store):
    ids = store.add_captions([CaptionRow(f"c{i}") for i in range(20)])
    for i in range(100):
        store.add_label(ids[(i * 7) % 20], HUMAN_LABELS[i % len(HUMAN_LABELS)], f"r{i % 3}")
        if i % 9 == 0:
            store.undo_label(ids[(i * 7) % 20], "r0")
    assert_derived_state(store.conn)


def test_bulk_labels_are_one_transaction_and_undo_as_a_unit(store):
    ids = store.add_captions([CaptionRow(f"caption {i}") for i in range(5)])
    store.add_label(ids[0], "N", "ann")
    entries = store.add_labels(ids[:3] + [ids[1]], "TV", "bob", "same frame")   # a repeat is labelled once
    assert [e.caption_id for e in entries] == ids[:3] and len({e.batch for e in entries}) == 1
    assert all(store.current_label(c) == "TV" and store.label_history(c)[-1].note == "same frame" for c in ids[:3])
    # all or none: an unknown caption in the selection writes nothing
    with pytest.raises(NotFoundError, match="got 999"):
        store.add_labels([ids[3], 999], "MV", "bob")
    assert store.label_history(ids[3]) == []
    with pytest.raises(LabelError, match="expected 1 to 10,000 captions, got 0"):
        store.add_labels([], "MV", "bob")
    # a caption relabelled since keeps its newer label; the others go back to what they were
    store.add_label(ids[2], "MV", "cy")
    undone = store.undo_batch(entries[0].batch, "bob")
    assert [e.caption_id for e in undone] == ids[:2] and len({e.batch for e in undone}) == 1
    assert [store.current_label(c) for c in ids[:3]] == ["N", None, "MV"]
    assert all(e.undoes is not None for e in undone)
    assert len(store.label_history(ids[0])) == 3                  # N, TV, undo: nothing erased
    with pytest.raises(LabelError, match="expected the batch id of a bulk label"):
        store.undo_batch("nope", "bob")
    assert_derived_state(store.conn)
