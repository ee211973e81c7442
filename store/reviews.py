"""Several reviewers: how many reviews a candidate needs, where each caption's reviews stand,
and leases on the candidate a reviewer has open.

With one review per candidate (the default) the current label is the newest entry, as before.
With ``reviews_per_candidate`` k > 1 (a meta row) reviews are blind and independent: a
caption's label is final when k reviewers (a 'skip' is not a vote) gave the same label, or when
someone who did not vote adjudicates a conflict; until then caption_state.label is NULL and
caption_state.review says where it stands. Both are written in the same transaction as the entry.

A lease says which candidate a reviewer has open (one per reviewer, LEASE_SECONDS long, renewed
whenever they open it again): "next unlabelled" skips candidates leased to someone else, and a
candidate needing k reviews is handed to at most k reviewers at once. An idle page gives its
lease up (``release_lease``) and takes it again on the reviewer's next key or click.

Withheld opinions: a reviewer who keeps another's label (the keep / override prompt) has their own
label recorded in ``withheld``, never in force; when the label they kept is undone, it is offered
back to them (``opinions_back``) until they label the candidate again.
"""
from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from typing import Optional

from .canon import unicode_text
from .db import utc_now
from .errors import LabelError, NotFoundError
from .records import CaptionReviews, LabelEntry, Lease, Withheld
from .schema import HUMAN_LABELS

LEASE_SECONDS = 300.0
MAX_REVIEWS = 5
_SETTING = "reviews_per_candidate"
COLS = "id, caption_id, label, reviewer, note, created_at, undoes, batch, role"
_WCOLS = "id, caption_id, reviewer, label, over_entry, created_at"


def reviews_per_candidate(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SETTING,)).fetchone()
    return int(row[0]) if row else 1


def effective(entries: Sequence[LabelEntry]) -> list[LabelEntry]:
    """The entries still in force: not undos and not undone (oldest first)."""
    undone = {e.undoes for e in entries if e.undoes is not None}
    return [e for e in entries if e.undoes is None and e.id not in undone]


def caption_reviews(caption_id: int, entries: Sequence[LabelEntry], k: int) -> CaptionReviews:
    """One caption's votes, adjudication, final label and review state from its history."""
    live = effective(entries)
    votes: dict[str, LabelEntry] = {}
    adjudication = None
    for e in live:
        if e.role == "adjudication":
            adjudication = e
        else:
            votes[e.reviewer] = e
    if k <= 1:
        return CaptionReviews(caption_id, votes, adjudication, entries[-1].label if entries else None, None)
    if adjudication is not None:
        return CaptionReviews(caption_id, votes, adjudication, adjudication.label, "adjudicated")
    cast = {e.label for e in votes.values() if e.label != "skip"}
    n = sum(e.label != "skip" for e in votes.values())
    if n >= k and len(cast) == 1:
        return CaptionReviews(caption_id, votes, None, cast.pop(), "agreed")
    return CaptionReviews(caption_id, votes, None, None, "conflict" if len(cast) > 1 else "pending")


def history(conn: sqlite3.Connection, caption_id: int) -> list[LabelEntry]:
    return [LabelEntry(*r) for r in conn.execute(f"SELECT {COLS} FROM labels WHERE caption_id = ? ORDER BY id",
                                                 (caption_id,))]


def sync_state(conn: sqlite3.Connection, caption_id: int, k: Optional[int] = None) -> CaptionReviews:
    """After an entry (in its transaction): with k > 1 the final label and review state replace
    what the trigger wrote (the newest entry's label)."""
    k = reviews_per_candidate(conn) if k is None else k
    r = caption_reviews(caption_id, history(conn, caption_id), k)
    if k > 1:
        conn.execute("UPDATE caption_state SET label = ?, review = ? WHERE caption_id = ?",
                     (r.label, r.state, caption_id))
    return r


def _rows_in(conn: sqlite3.Connection, sql: str, ids: Sequence[int], params: Sequence = ()) -> list[tuple]:
    """sql's rows for ids, asked 500 at a time (SQLite's bound-parameter limit); ``{ids}`` in sql
    is the placeholder list, ``params`` go before the ids."""
    out: list[tuple] = []
    for i in range(0, len(ids), 500):
        chunk = list(ids[i:i + 500])
        out += conn.execute(sql.format(ids=", ".join("?" * len(chunk))), [*params, *chunk]).fetchall()
    return out


# -- leases -------------------------------------------------------------------------------------
def _holders(conn: sqlite3.Connection, caption_ids: Sequence[int], now: float) -> dict[int, list[Lease]]:
    out: dict[int, list[Lease]] = {}
    for reviewer, cid, expires in _rows_in(
            conn, "SELECT reviewer, caption_id, expires FROM leases WHERE expires > ? AND caption_id IN ({ids})",
            caption_ids, (now,)):
        out.setdefault(cid, []).append(Lease(reviewer, cid, expires))
    return out


def _first_open(conn: sqlite3.Connection, caption_ids: Sequence[int], reviewer: str, now: float) -> Optional[int]:
    """The first of caption_ids this reviewer may be handed next: not decided, not reviewed by
    them, and (counting other reviewers' live leases) still short of reviews. A blind review's
    history is read only for the candidates looked at before the first open one."""
    k = reviews_per_candidate(conn)
    ids = [int(c) for c in caption_ids]
    state = {r[0]: r[1:] for r in _rows_in(
        conn, "SELECT caption_id, label, review FROM caption_state WHERE caption_id IN ({ids})", ids)}
    held = _holders(conn, ids, now)
    for cid in ids:
        label, review = state.get(cid, (None, None))
        others = [h for h in held.get(cid, ()) if h.reviewer != reviewer]
        if k <= 1:
            if label is None and not others:
                return cid
            continue
        if label is not None or review == "conflict":
            continue
        r = caption_reviews(cid, history(conn, cid), k)
        if reviewer not in r.votes and sum(e.label != "skip" for e in r.votes.values()) + len(others) < k:
            return cid
    return None


def _take(conn: sqlite3.Connection, caption_id: int, reviewer: str, now: float, seconds: float) -> Lease:
    lease = Lease(reviewer, caption_id, now + seconds)
    conn.execute("INSERT INTO leases (reviewer, caption_id, expires) VALUES (?, ?, ?) ON CONFLICT (reviewer) "
                 "DO UPDATE SET caption_id = excluded.caption_id, expires = excluded.expires",
                 (reviewer, caption_id, lease.expires))
    return lease


def release(conn: sqlite3.Connection, caption_id: int, reviewer: str) -> None:
    """The reviewer labelled it: their lease on it ends (in the label's transaction)."""
    conn.execute("DELETE FROM leases WHERE reviewer = ? AND caption_id = ?", (reviewer, caption_id))


def check_reviewer(reviewer: object) -> str:
    if not isinstance(reviewer, str) or not reviewer.strip():
        raise LabelError(f"reviewer: expected a non-empty name, got {reviewer!r}")
    return unicode_text(reviewer, "reviewer")


class Reviews:
    """Several reviewers: votes per candidate and leases. Methods of Store (store/store.py), which holds the connection."""

    def set_reviews_per_candidate(self, k: int) -> int:
        """Set how many blind reviews a candidate needs (1 = one review, the newest label counts) and
        recompute every labelled caption's final label in one transaction. Returns the captions updated."""
        if not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= MAX_REVIEWS:
            raise LabelError(f"reviews per candidate: expected an integer from 1 to {MAX_REVIEWS}, got {k!r}")
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (_SETTING, str(k)))
            ids = [r[0] for r in conn.execute("SELECT DISTINCT caption_id FROM labels ORDER BY caption_id")]
            for cid in ids:
                if k > 1:
                    sync_state(conn, cid, k)
                else:       # back to one review: the newest entry, as the trigger keeps it
                    conn.execute("UPDATE caption_state SET review = NULL, label = (SELECT label FROM labels WHERE "
                                 "caption_id = ? ORDER BY id DESC LIMIT 1) WHERE caption_id = ?", (cid, cid))
            return len(ids)

    def reviews_per_candidate(self) -> int:
        """How many blind reviews a candidate needs (1: the newest label counts)."""
        with self.snapshot() as conn:
            return reviews_per_candidate(conn)

    def caption_reviews(self, caption_ids: Optional[Sequence[int]] = None) -> list[CaptionReviews]:
        """Every labelled caption's reviews (or those of ``caption_ids``), by caption id."""
        with self.snapshot() as conn:
            k = reviews_per_candidate(conn)
            if caption_ids is None:
                rows = conn.execute(f"SELECT {COLS} FROM labels ORDER BY caption_id, id").fetchall()
            else:
                rows = _rows_in(conn, f"SELECT {COLS} FROM labels WHERE caption_id IN ({{ids}}) ORDER BY caption_id, id",
                                list(dict.fromkeys(int(c) for c in caption_ids)))
        by: dict[int, list[LabelEntry]] = {}
        for r in rows:
            by.setdefault(r[1], []).append(LabelEntry(*r))
        return [caption_reviews(cid, entries, k) for cid, entries in sorted(by.items())]

    def lease_first(self, caption_ids: Sequence[int], reviewer: str, now: Optional[float] = None,
                    seconds: float = LEASE_SECONDS) -> Optional[int]:
        """Lease the first of ``caption_ids`` still open to ``reviewer`` (see _first_open) and return
        it; None when none is. One write transaction, so two reviewers asking at once get two candidates."""
        reviewer = check_reviewer(reviewer)
        now = time.time() if now is None else now
        with self.transaction() as conn:
            for i in range(0, len(caption_ids), 200):      # the usual case: found in the first 200
                cid = _first_open(conn, caption_ids[i:i + 200], reviewer, now)
                if cid is not None:
                    _take(conn, cid, reviewer, now, seconds)
                    return cid
        return None

    def lease(self, caption_id: int, reviewer: str, now: Optional[float] = None,
              seconds: float = LEASE_SECONDS) -> list[Lease]:
        """The reviewer opened ``caption_id``: it becomes their lease (renewed if it was). Returns the
        other reviewers' live leases on it (they have it open too), oldest first."""
        reviewer = check_reviewer(reviewer)
        now, cid = (time.time() if now is None else now), int(caption_id)

        def others(conn: sqlite3.Connection) -> list[Lease]:
            return sorted((h for h in _holders(conn, [cid], now).get(cid, []) if h.reviewer != reviewer),
                          key=lambda h: h.expires)

        with self.snapshot() as conn:      # held with most of its time left (just handed out): no write
            held = conn.execute("SELECT caption_id, expires FROM leases WHERE reviewer = ?", (reviewer,)).fetchone()
            if held is not None and held[0] == cid and held[1] - now > seconds / 2:
                return others(conn)
        with self.transaction() as conn:
            _take(conn, cid, reviewer, now, seconds)
            return others(conn)

    def leases(self, now: Optional[float] = None) -> list[Lease]:
        now = time.time() if now is None else now
        with self.snapshot() as conn:
            return [Lease(*r) for r in conn.execute(
                "SELECT reviewer, caption_id, expires FROM leases WHERE expires > ? ORDER BY caption_id, reviewer", (now,))]

    def release_lease(self, reviewer: str, caption_id: Optional[int] = None) -> bool:
        """The reviewer's page went idle (or closed): their lease (on ``caption_id`` only, when given)
        ends now, so "next unlabelled" may hand the candidate to someone else. True when one ended."""
        reviewer = check_reviewer(reviewer)
        with self.transaction() as conn:
            if caption_id is None:
                cur = conn.execute("DELETE FROM leases WHERE reviewer = ?", (reviewer,))
            else:
                cur = conn.execute("DELETE FROM leases WHERE reviewer = ? AND caption_id = ?", (reviewer, int(caption_id)))
            return cur.rowcount > 0

    # -- withheld opinions ---------------------------------------------------------------------
    def withhold_label(self, caption_id: int, reviewer: str, label: str, over_entry: int) -> Withheld:
        """Record the label ``reviewer`` gave and withheld to keep ``over_entry`` (another reviewer's
        entry on the same caption): one row of ``withheld``, never in force."""
        reviewer = check_reviewer(reviewer)
        if label not in HUMAN_LABELS:
            raise LabelError(f"withheld label for caption {caption_id}: expected one of {', '.join(HUMAN_LABELS)}, "
                             f"got {label!r}")
        with self.transaction() as conn:
            row = conn.execute("SELECT caption_id, reviewer FROM labels WHERE id = ?", (int(over_entry),)).fetchone()
            if row is None:
                raise NotFoundError(f"withheld label: expected the id of the label entry kept, got {over_entry!r}")
            if row[0] != caption_id or row[1] == reviewer:
                raise LabelError(f"withheld label for caption {caption_id}: expected another reviewer's entry on it, "
                                 f"got entry {over_entry} by {row[1]} on caption {row[0]}")
            created = utc_now()
            cur = conn.execute("INSERT INTO withheld (caption_id, reviewer, label, over_entry, created_at) "
                               "VALUES (?, ?, ?, ?, ?)", (caption_id, reviewer, label, int(over_entry), created))
            return Withheld(int(cur.lastrowid), caption_id, reviewer, label, int(over_entry), created)

    def withheld(self, caption_id: Optional[int] = None) -> list[Withheld]:
        """Every withheld opinion (of ``caption_id`` only, when given), oldest first."""
        with self.snapshot() as conn:
            if caption_id is None:
                rows = conn.execute(f"SELECT {_WCOLS} FROM withheld ORDER BY id").fetchall()
            else:
                rows = conn.execute(f"SELECT {_WCOLS} FROM withheld WHERE caption_id = ? ORDER BY id",
                                    (int(caption_id),)).fetchall()
        return [Withheld(*r) for r in rows]

    def opinions_owed(self, reviewer: str) -> list[Withheld]:
        """opinions_back over every caption: the reviewer's withheld opinions whose kept label has
        been undone and that they have not answered since, oldest first ("next" re-asks them)."""
        with self.snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_WCOLS} FROM withheld w WHERE reviewer = ? "
                "AND EXISTS (SELECT 1 FROM labels u WHERE u.undoes = w.over_entry) "
                "AND NOT EXISTS (SELECT 1 FROM labels m WHERE m.caption_id = w.caption_id AND m.reviewer = w.reviewer "
                "AND m.id > w.over_entry) ORDER BY id", (reviewer,)).fetchall()
        return [Withheld(*r) for r in rows]

    def opinions_back(self, caption_id: int, reviewer: str) -> list[Withheld]:
        """The reviewer's withheld opinions on the caption whose kept label has since been undone and
        that they have not answered by labelling it again: to be offered back to them."""
        with self.snapshot() as conn:
            rows = conn.execute(
                f"SELECT {_WCOLS} FROM withheld w WHERE caption_id = ? AND reviewer = ? "
                "AND EXISTS (SELECT 1 FROM labels u WHERE u.undoes = w.over_entry) "
                "AND NOT EXISTS (SELECT 1 FROM labels m WHERE m.caption_id = w.caption_id AND m.reviewer = w.reviewer "
                "AND m.id > w.over_entry) ORDER BY id", (int(caption_id), reviewer)).fetchall()
        return [Withheld(*r) for r in rows]
