"""Human labels: an append-only history per caption.

The current label is the newest entry (kept in caption_state by a trigger in
the same transaction). Undo never deletes: it appends an entry that restores
the label in effect before the entry it undoes, and points at it (``undoes``).
Repeated undos walk further back: an entry is undoable if it is not an undo
itself and has not been undone. Labels given together (``add_labels``, the grid's bulk
labels) share a batch id and undo together (``undo_batch``), one entry per caption each way.

Several reviewers (store/reviews.py): an undo only takes back the reviewer's own entries; a
label given with ``expect_latest`` (the entry the reviewer saw) is refused with
LabelConflictError when someone else labelled the caption since, so they can keep or override;
with blind double review a label on a conflict by someone who did not vote is an adjudication.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Optional

from . import reviews
from .canon import unicode_text
from .db import utc_now
from .errors import LabelConflictError, LabelError, NotFoundError, NotYourLabelError
from .records import LabelEntry
from .reviews import check_reviewer, reviews_per_candidate, sync_state
from .schema import HUMAN_LABELS

MAX_NOTE_CHARS = 10_000
_COLS = reviews.COLS
MAX_BATCH = 10_000
ANY = object()      # add_label's expect_latest default: no check


def _append(conn, caption_id: int, label: Optional[str], reviewer: str, note: str,
            undoes: Optional[int], batch: Optional[str] = None, role: Optional[str] = None,
            k: int = 1) -> LabelEntry:
    """One entry, the reviewer's lease on the caption released, and (k > 1) the final label."""
    created_at = utc_now()
    cur = conn.execute(
        "INSERT INTO labels (caption_id, label, reviewer, note, created_at, undoes, batch, role) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (caption_id, label, reviewer, note, created_at, undoes, batch, role))
    reviews.release(conn, caption_id, reviewer)
    if k > 1:
        sync_state(conn, caption_id, k)
    return LabelEntry(int(cur.lastrowid), caption_id, label, reviewer, note, created_at, undoes, batch, role)


def _role(conn, caption_id: int, reviewer: str, k: int) -> Optional[str]:
    """'adjudication' when k > 1 and the caption is in conflict (or adjudicated) and the
    reviewer is not one of its voters."""
    if k <= 1:
        return None
    r = reviews.caption_reviews(caption_id, reviews.history(conn, caption_id), k)
    return "adjudication" if r.state in ("conflict", "adjudicated") and reviewer not in r.votes else None


def _latest(conn, caption_id: int) -> Optional[LabelEntry]:
    row = conn.execute(f"SELECT {_COLS} FROM labels WHERE caption_id = ? ORDER BY id DESC LIMIT 1",
                       (caption_id,)).fetchone()
    return None if row is None else LabelEntry(*row)


def _describe(e: LabelEntry) -> str:
    what = e.label or "unlabelled"
    return f"{e.reviewer}'s {what}{' (adjudication)' if e.role else ''} of {e.created_at[:19].replace('T', ' ')}"


def _require_caption(conn, caption_id: int) -> None:
    if not isinstance(caption_id, int) or isinstance(caption_id, bool):
        raise LabelError(f"caption_id: expected an integer, got {caption_id!r}")
    if conn.execute("SELECT 1 FROM captions WHERE id = ?", (caption_id,)).fetchone() is None:
        raise NotFoundError(f"label for caption {caption_id}: expected an existing caption id, got {caption_id}")


def _check_entry(caption_id: object, label: str, reviewer: str, note: str) -> None:
    if label not in HUMAN_LABELS:
        raise LabelError(f"label for caption {caption_id}: expected one of {', '.join(HUMAN_LABELS)}, got {label!r}")
    check_reviewer(reviewer)
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise LabelError(f"note for caption {caption_id}: expected a string of at most {MAX_NOTE_CHARS} "
                         f"characters, got {type(note).__name__} of length {len(note) if isinstance(note, str) else '-'}")
    unicode_text(note, f"note for caption {caption_id}")


class Labels:
    """Human labels: append-only, each entry checked against the caption's review state. Methods of Store (store/store.py), which holds the connection."""

    def add_label(self, caption_id: int, label: str, reviewer: str, note: str = "",
                  expect_latest: object = ANY) -> LabelEntry:
        """Append one entry; returns once it is durably committed. ``expect_latest``: the id of the
        newest entry the reviewer saw (None: none); when another reviewer's newer entry is there
        (with blind reviews: only for an adjudication) LabelConflictError carries it and nothing is
        written."""
        _check_entry(caption_id, label, reviewer, note)
        with self.transaction() as conn:
            _require_caption(conn, caption_id)
            k = reviews_per_candidate(conn)
            role = _role(conn, caption_id, reviewer, k) if k > 1 else None
            latest = _latest(conn, caption_id) if expect_latest is not ANY and (k <= 1 or role) else None
            if latest is not None and latest.id != expect_latest and latest.reviewer != reviewer:
                raise LabelConflictError(
                    f"label for caption {caption_id}: expected the label you saw, got {_describe(latest)} given "
                    "since you opened it (keep it, or override it with yours)", latest)
            return _append(conn, caption_id, label, reviewer, note, None, role=role, k=k)

    def add_labels(self, caption_ids: Sequence[int], label: str, reviewer: str,
                   note: str = "") -> list[LabelEntry]:
        """One label for many captions: one transaction (all or none), one history entry per caption,
        all sharing a new batch id (``undo_batch`` takes them back together)."""
        ids = list(dict.fromkeys(caption_ids))        # a caption selected twice is labelled once
        if not ids or len(ids) > MAX_BATCH:
            raise LabelError(f"bulk label: expected 1 to {MAX_BATCH:,} captions, got {len(ids):,}")
        _check_entry(ids[0], label, reviewer, note)
        batch = uuid.uuid4().hex
        with self.transaction() as conn:
            for cid in ids:
                _require_caption(conn, cid)
            k = reviews_per_candidate(conn)
            return [_append(conn, cid, label, reviewer, note, None, batch, _role(conn, cid, reviewer, k), k)
                    for cid in ids]

    def undo_batch(self, batch: str, reviewer: str) -> list[LabelEntry]:
        """Undo a bulk label as a unit: for each of its captions whose latest entry is still the
        batch's, an entry restoring the label before it (sharing a new batch id). A caption
        relabelled since keeps its newer label. One transaction."""
        check_reviewer(reviewer)
        with self.transaction() as conn:
            rows = conn.execute("SELECT id, caption_id, reviewer FROM labels WHERE batch = ? AND undoes IS NULL "
                                "ORDER BY id", (batch,)).fetchall()
            if not rows:
                raise LabelError(f"undo bulk label: expected the batch id of a bulk label, got {batch!r}")
            if rows[0][2] != reviewer:
                raise NotYourLabelError(f"undo bulk label: expected a bulk label of yours ({reviewer}), got one by "
                                        f"{rows[0][2]} (only its author can undo it)")
            undo_id, out, k = uuid.uuid4().hex, [], reviews_per_candidate(conn)
            for entry_id, cid, _ in rows:
                latest = conn.execute("SELECT id FROM labels WHERE caption_id = ? ORDER BY id DESC LIMIT 1",
                                      (cid,)).fetchone()[0]
                if latest != entry_id:
                    continue
                before = conn.execute("SELECT label FROM labels WHERE caption_id = ? AND id < ? ORDER BY id DESC LIMIT 1",
                                      (cid, entry_id)).fetchone()
                out.append(_append(conn, cid, before[0] if before else None, reviewer, "", entry_id, undo_id, k=k))
            return out

    def undo_label(self, caption_id: int, reviewer: str) -> LabelEntry:
        """Append an entry taking back the reviewer's own latest entry still in force. With one
        review per candidate that must be the caption's latest (another reviewer's newer label is
        theirs to undo: NotYourLabelError) and the label before it is restored; with blind reviews
        the reviewer's own vote (or adjudication) before it is."""
        reviewer = check_reviewer(reviewer)
        with self.transaction() as conn:
            _require_caption(conn, caption_id)
            k = reviews_per_candidate(conn)
            entries = reviews.history(conn, caption_id)
            live = reviews.effective(entries)
            mine = [e for e in live if e.reviewer == reviewer]
            if not live:
                raise LabelError(f"undo for caption {caption_id}: expected a label entry to undo, got "
                                 f"{'none' if not entries else 'only undos and undone entries'}")
            if not mine:
                raise NotYourLabelError(f"undo for caption {caption_id}: expected a label entry of yours ({reviewer}) to "
                                        f"undo, got only others' labels, the latest {_describe(live[-1])}")
            target = mine[-1]
            if k <= 1 and live[-1].id != target.id:
                raise NotYourLabelError(f"undo for caption {caption_id}: expected your label to be the latest, got "
                                        f"{_describe(live[-1])} after it (only its author can undo it)")
            if k <= 1:
                before = [e for e in entries if e.id < target.id]
                restored = before[-1].label if before else None
            else:
                prior = [e for e in mine if e.id < target.id and e.role == target.role]
                restored = prior[-1].label if prior else None
            return _append(conn, caption_id, restored, reviewer, "", target.id, role=target.role, k=k)

    def current_label_entry(self, caption_id: int) -> Optional[LabelEntry]:
        with self.snapshot() as conn:
            return _latest(conn, caption_id)

    def current_label(self, caption_id: int) -> Optional[str]:
        """The caption's label now; None when never labelled or undone back to unlabelled."""
        with self.snapshot() as conn:
            row = conn.execute("SELECT label FROM caption_state WHERE caption_id = ?", (caption_id,)).fetchone()
        return None if row is None else row[0]

    def label_history(self, caption_id: int) -> list[LabelEntry]:
        with self.snapshot() as conn:
            rows = conn.execute(f"SELECT {_COLS} FROM labels WHERE caption_id = ? ORDER BY id",
                                (caption_id,)).fetchall()
        return [LabelEntry(*r) for r in rows]
