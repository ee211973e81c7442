"""Human labels: an append-only history per caption.

The current label is the newest entry (kept in caption_state by a trigger in
the same transaction). Undo never deletes: it appends an entry that restores
the label in effect before the entry it undoes, and points at it (``undoes``).
Repeated undos walk further back: an entry is undoable if it is not an undo
itself and has not been undone. Labels given together (``add_labels``, the grid's bulk
labels) share a batch id and undo together (``undo_batch``), one entry per caption each way.
"""
from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Optional

from .canon import unicode_text
from .db import utc_now
from .errors import LabelError, NotFoundError
from .records import LabelEntry
from .schema import HUMAN_LABELS

if TYPE_CHECKING:
    from .store import Store

MAX_NOTE_CHARS = 10_000
_COLS = "id, caption_id, label, reviewer, note, created_at, undoes, batch"
MAX_BATCH = 10_000


def _check_reviewer(reviewer: object) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise LabelError(f"reviewer: expected a non-empty name, got {reviewer!r}")
    return unicode_text(reviewer, "reviewer")


def _append(conn, caption_id: int, label: Optional[str], reviewer: str, note: str,
            undoes: Optional[int], batch: Optional[str] = None) -> LabelEntry:
    created_at = utc_now()
    cur = conn.execute(
        "INSERT INTO labels (caption_id, label, reviewer, note, created_at, undoes, batch) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)", (caption_id, label, reviewer, note, created_at, undoes, batch))
    return LabelEntry(int(cur.lastrowid), caption_id, label, reviewer, note, created_at, undoes, batch)


def _require_caption(conn, caption_id: int) -> None:
    if not isinstance(caption_id, int) or isinstance(caption_id, bool):
        raise LabelError(f"caption_id: expected an integer, got {caption_id!r}")
    if conn.execute("SELECT 1 FROM captions WHERE id = ?", (caption_id,)).fetchone() is None:
        raise NotFoundError(f"label for caption {caption_id}: expected an existing caption id, got {caption_id}")


def _check_entry(caption_id: object, label: str, reviewer: str, note: str) -> None:
    if label not in HUMAN_LABELS:
        raise LabelError(f"label for caption {caption_id}: expected one of {', '.join(HUMAN_LABELS)}, got {label!r}")
    _check_reviewer(reviewer)
    if not isinstance(note, str) or len(note) > MAX_NOTE_CHARS:
        raise LabelError(f"note for caption {caption_id}: expected a string of at most {MAX_NOTE_CHARS} "
                         f"characters, got {type(note).__name__} of length {len(note) if isinstance(note, str) else '-'}")
    unicode_text(note, f"note for caption {caption_id}")


def add_label(store: "Store", caption_id: int, label: str, reviewer: str, note: str = "") -> LabelEntry:
    """Append one entry; returns once it is durably committed."""
    _check_entry(caption_id, label, reviewer, note)
    with store.transaction() as conn:
        _require_caption(conn, caption_id)
        return _append(conn, caption_id, label, reviewer, note, None)


def add_labels(store: "Store", caption_ids: Sequence[int], label: str, reviewer: str,
               note: str = "") -> list[LabelEntry]:
    """One label for many captions: one transaction (all or none), one history entry per caption,
    all sharing a new batch id (``undo_batch`` takes them back together)."""
    ids = list(dict.fromkeys(caption_ids))        # a caption selected twice is labelled once
    if not ids or len(ids) > MAX_BATCH:
        raise LabelError(f"bulk label: expected 1 to {MAX_BATCH:,} captions, got {len(ids):,}")
    _check_entry(ids[0], label, reviewer, note)
    batch = uuid.uuid4().hex
    with store.transaction() as conn:
        for cid in ids:
            _require_caption(conn, cid)
        return [_append(conn, cid, label, reviewer, note, None, batch) for cid in ids]


def undo_batch(store: "Store", batch: str, reviewer: str) -> list[LabelEntry]:
    """Undo a bulk label as a unit: for each of its captions whose latest entry is still the
    batch's, an entry restoring the label before it (sharing a new batch id). A caption
    relabelled since keeps its newer label. One transaction."""
    _check_reviewer(reviewer)
    with store.transaction() as conn:
        rows = conn.execute("SELECT id, caption_id FROM labels WHERE batch = ? AND undoes IS NULL ORDER BY id",
                            (batch,)).fetchall()
        if not rows:
            raise LabelError(f"undo bulk label: expected the batch id of a bulk label, got {batch!r}")
        undo_id, out = uuid.uuid4().hex, []
        for entry_id, cid in rows:
            latest = conn.execute("SELECT id FROM labels WHERE caption_id = ? ORDER BY id DESC LIMIT 1",
                                  (cid,)).fetchone()[0]
            if latest != entry_id:
                continue
            before = conn.execute("SELECT label FROM labels WHERE caption_id = ? AND id < ? ORDER BY id DESC LIMIT 1",
                                  (cid, entry_id)).fetchone()
            out.append(_append(conn, cid, before[0] if before else None, reviewer, "", entry_id, undo_id))
        return out


def undo_label(store: "Store", caption_id: int, reviewer: str) -> LabelEntry:
    """Append an entry restoring the label before the latest undoable entry."""
    _check_reviewer(reviewer)
    with store.transaction() as conn:
        _require_caption(conn, caption_id)
        history = conn.execute("SELECT id, label, undoes FROM labels WHERE caption_id = ? ORDER BY id",
                               (caption_id,)).fetchall()
        undone = {u for _, _, u in history if u is not None}
        target = next((i for i in range(len(history) - 1, -1, -1)
                       if history[i][2] is None and history[i][0] not in undone), None)
        if target is None:
            raise LabelError(f"undo for caption {caption_id}: expected a label entry to undo, got "
                             f"{'none' if not history else 'only undos and undone entries'}")
        restored = history[target - 1][1] if target > 0 else None
        return _append(conn, caption_id, restored, reviewer, "", history[target][0])


def current_label_entry(store: "Store", caption_id: int) -> Optional[LabelEntry]:
    with store.snapshot() as conn:
        row = conn.execute(f"SELECT {_COLS} FROM labels WHERE caption_id = ? ORDER BY id DESC LIMIT 1",
                           (caption_id,)).fetchone()
    return None if row is None else LabelEntry(*row)


def current_label(store: "Store", caption_id: int) -> Optional[str]:
    """The caption's label now; None when never labelled or undone back to unlabelled."""
    with store.snapshot() as conn:
        row = conn.execute("SELECT label FROM caption_state WHERE caption_id = ?", (caption_id,)).fetchone()
    return None if row is None else row[0]


def label_history(store: "Store", caption_id: int) -> list[LabelEntry]:
    with store.snapshot() as conn:
        rows = conn.execute(f"SELECT {_COLS} FROM labels WHERE caption_id = ? ORDER BY id",
                            (caption_id,)).fetchall()
    return [LabelEntry(*r) for r in rows]
