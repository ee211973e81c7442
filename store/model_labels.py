"""Human labels of a model other than the one audited in the store (issue 28, carry-over).

The store's `labels` are the review of the audited model (store/audited.py). When a second model
is compared with it, a reviewer confirms that model's copies too: those labels are kept here,
keyed by the model's fingerprint, append-only like `labels`. Labels confirmed together share a
batch and undo together; an undo appends, for each caption still at the batch's label, the
label before it (None: none). `carried` names the proposal a label was confirmed from.
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional

from .audited import AUDITED_FP
from .canon import canonical_json
from .checks import check_int
from .db import utc_now
from .errors import LabelError, NotFoundError, NotYourLabelError
from .reviews import check_reviewer
from .schema import HUMAN_LABELS

MAX_BATCH = 10_000
_COLS = "id, fingerprint, caption_id, label, reviewer, note, created_at, undoes, batch, carried"


@dataclass(frozen=True)
class ModelLabel:
    """One entry of a model's label history; `label` None = back to unlabelled (an undo)."""
    id: int
    fingerprint: str
    caption_id: int
    label: Optional[str]
    reviewer: str
    note: str
    created_at: str
    undoes: Optional[int] = None
    batch: Optional[str] = None
    carried: Optional[dict] = None


def _entry(row: tuple) -> ModelLabel:
    *head, carried = row
    return ModelLabel(*head, carried=None if carried is None else json.loads(carried))


def _check_fingerprint(conn, fingerprint: object, what: str) -> str:
    if not isinstance(fingerprint, str) or not fingerprint.strip():
        raise LabelError(f"{what}: expected a model fingerprint, got {fingerprint!r}")
    audited = conn.execute(f"SELECT {AUDITED_FP}").fetchone()[0]
    if fingerprint == audited:
        raise LabelError(f"{what}: expected a model other than the one audited in this store, got its fingerprint "
                         f"{fingerprint[:12]} (label the audited model in the review app)")
    return fingerprint


def _latest(conn, fingerprint: str, caption_id: int) -> Optional[ModelLabel]:
    row = conn.execute(f"SELECT {_COLS} FROM model_labels WHERE fingerprint = ? AND caption_id = ? "
                       "ORDER BY id DESC LIMIT 1", (fingerprint, caption_id)).fetchone()
    return None if row is None else _entry(row)


class ModelLabels:
    """A compared model's human labels. Methods of Store (store/store.py), which holds the connection."""

    def add_model_labels(self, fingerprint: str, items: Sequence[tuple[int, str, Optional[Mapping[str, Any]]]],
                         reviewer: str, note: str = "") -> str:
        """Label captions of the model `fingerprint` in one transaction (all or none): items are
        (caption_id, label, carried or None). Returns the batch id `undo_model_batch` takes back."""
        reviewer = check_reviewer(reviewer)
        if not items or len(items) > MAX_BATCH:
            raise LabelError(f"model labels: expected 1 to {MAX_BATCH:,} captions, got {len(items):,}")
        rows = []
        for i, item in enumerate(items):
            try:
                cid, label, carried = item
            except (TypeError, ValueError):
                raise LabelError(f"model labels item {i}: expected (caption_id, label, carried), "
                                 f"got {item!r}") from None
            if label not in HUMAN_LABELS:
                raise LabelError(f"model labels item {i}: expected a label among {', '.join(HUMAN_LABELS)}, "
                                 f"got {label!r}")
            rows.append((check_int(cid, f"model labels item {i} caption_id"), label,
                         None if carried is None else canonical_json(dict(carried))))
        batch, now = uuid.uuid4().hex, utc_now()
        with self.transaction() as conn:
            fingerprint = _check_fingerprint(conn, fingerprint, "model labels")
            missing = [c for c, _, _ in rows if conn.execute("SELECT 1 FROM captions WHERE id = ?", (c,)).fetchone()
                       is None]
            if missing:
                raise NotFoundError(f"model labels: expected existing caption ids, got {missing[:5]}")
            conn.executemany("INSERT INTO model_labels (fingerprint, caption_id, label, reviewer, note, created_at, "
                             "batch, carried) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             [(fingerprint, c, lab, reviewer, note, now, batch, car) for c, lab, car in rows])
        return batch

    def model_labels(self, fingerprint: str, caption_ids: Optional[Sequence[int]] = None) -> dict[int, ModelLabel]:
        """caption id -> the model's label in force (its newest entry, when that is not an undo to none)."""
        with self.snapshot() as conn:
            rows = conn.execute(f"SELECT {_COLS} FROM model_labels m WHERE fingerprint = ? AND id = (SELECT max(id) "
                                "FROM model_labels m2 WHERE m2.fingerprint = m.fingerprint AND m2.caption_id = "
                                "m.caption_id)", (fingerprint,)).fetchall()
        want = None if caption_ids is None else set(caption_ids)
        return {e.caption_id: e for e in map(_entry, rows)
                if e.label is not None and (want is None or e.caption_id in want)}

    def model_label_history(self, fingerprint: str, caption_id: int) -> list[ModelLabel]:
        with self.snapshot() as conn:
            rows = conn.execute(f"SELECT {_COLS} FROM model_labels WHERE fingerprint = ? AND caption_id = ? "
                                "ORDER BY id", (fingerprint, caption_id)).fetchall()
        return [_entry(r) for r in rows]

    def undo_model_batch(self, fingerprint: str, reviewer: str, batch: Optional[str] = None) -> list[ModelLabel]:
        """Take back a batch of the reviewer's (default: their newest batch not undone yet) on the
        model: for each caption whose newest entry is still the batch's, the label before it."""
        reviewer = check_reviewer(reviewer)
        with self.transaction() as conn:
            if batch is None:
                row = conn.execute("SELECT batch FROM model_labels m WHERE fingerprint = ? AND reviewer = ? AND "
                                   "undoes IS NULL AND NOT EXISTS (SELECT 1 FROM model_labels u WHERE u.undoes = "
                                   "m.id) ORDER BY id DESC LIMIT 1", (fingerprint, reviewer)).fetchone()
                if row is None:
                    raise LabelError(f"undo: expected a label of yours ({reviewer}) on model {fingerprint[:12]} to "
                                     "undo, got none")
                batch = row[0]
            rows = conn.execute(f"SELECT {_COLS} FROM model_labels WHERE batch = ? AND undoes IS NULL ORDER BY id",
                                (batch,)).fetchall()
            if not rows:
                raise LabelError(f"undo: expected the batch id of model labels, got {batch!r}")
            entries = [_entry(r) for r in rows]
            if entries[0].reviewer != reviewer:
                raise NotYourLabelError(f"undo: expected labels of yours ({reviewer}), got a batch by "
                                        f"{entries[0].reviewer} (only its author can undo it)")
            undo, now, out = uuid.uuid4().hex, utc_now(), []
            for e in entries:
                if _latest(conn, e.fingerprint, e.caption_id).id != e.id:
                    continue            # labelled again since: the newer label stays
                before = conn.execute("SELECT label FROM model_labels WHERE fingerprint = ? AND caption_id = ? AND "
                                      "id < ? ORDER BY id DESC LIMIT 1", (e.fingerprint, e.caption_id, e.id)).fetchone()
                conn.execute("INSERT INTO model_labels (fingerprint, caption_id, label, reviewer, note, "
                                   "created_at, undoes, batch) VALUES (?, ?, ?, ?, '', ?, ?, ?)",
                                   (e.fingerprint, e.caption_id, before[0] if before else None, reviewer, now, e.id,
                                    undo))
                out.append(_latest(conn, e.fingerprint, e.caption_id))
            return out
