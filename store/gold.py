"""Gold candidates (honeypots): candidates whose label is known, shown blind in reviewers' queues to
measure how good each reviewer is (issue 27).

- ``gold``: one row per gold candidate (its label and where the label came from: 'adjudicated' or
  'labels' for the audit's own decided labels, 'reference' for captions' reference_label (the demo's
  planted truth, or an imported list's), else the name of the imported file).
- ``gold_answers``: what a reviewer answered on a gold candidate. A gold answer is never a label of
  the audit: it is not in ``labels``, so no page, count, agreement or export reads it as one.
- The gold candidate served to a reviewer and not yet answered is a meta row
  (``gold_served|<reviewer>``: caption id and the time it was served), so the app can tell a
  served gold candidate from the same caption reached through the queue (that is an audit label)
  and the answer's seconds are measured from the moment it was served, even across a reload.

Which gold candidate is due is deterministic per reviewer: after a gap of labels drawn from a
hash of (reviewer, gold answers so far), uniform on 1 .. 2/rate - 3 (mean 1/rate - 1: one gold
candidate in 1/rate shown), the first gold
candidate in an order hashed from (reviewer, caption id) that the reviewer neither answered nor
labelled in the audit (they would know its label).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Optional, Sequence, Union

from .db import utc_now
from .gold_rules import (  # noqa: F401 - the gold API is importable from store.gold
    DEFAULT_MIN_ACCURACY,
    DEFAULT_MIN_ANSWERS,
    GOLD_LABELS,
    ConfusionCell,
    GoldAnswer,
    GoldError,
    GoldImport,
    GoldItem,
    GoldRemoval,
    GoldRow,
    Interval,
    ReviewerGold,
    ServedGold,
    _unit,
    check_rate,
    decision_gaps,
    gold_gap,
    gold_order,
    normalise_label,
    parse_gold_file,
    summarise,
    wilson_interval,
)
from .reviews import check_reviewer, reviews_per_candidate
from .schema import HUMAN_LABELS

_SERVED = "gold_served|"


# -- the Store mixin ----------------------------------------------------------------------------
_ANSWER_SQL = ("SELECT a.id, a.caption_id, a.reviewer, a.label, a.created_at, a.seconds, g.label "
               "FROM gold_answers a JOIN gold g ON g.caption_id = a.caption_id")


class Gold:
    """Gold candidates, gold answers and each reviewer's accuracy on them. Methods of Store
    (store/store.py), which holds the connection."""

    # -- adding and removing ----------------------------------------------------------------
    def _put_gold(self, conn, items: Sequence[tuple[int, str]], source: str, skipped: tuple = ()) -> GoldImport:
        """Upsert (caption id, label) pairs in the caller's transaction. An existing gold candidate
        takes the new label and source (its answers are judged by the label in force)."""
        added = replaced = unchanged = 0
        now = utc_now()
        for cid, label in items:
            old = conn.execute("SELECT label FROM gold WHERE caption_id = ?", (cid,)).fetchone()
            if old is None:
                added += 1
            elif old[0] != label:
                replaced += 1
            else:
                unchanged += 1
                continue
            conn.execute("INSERT INTO gold (caption_id, label, source, created_at) VALUES (?, ?, ?, ?) "
                         "ON CONFLICT (caption_id) DO UPDATE SET label = excluded.label, source = excluded.source, "
                         "created_at = excluded.created_at", (cid, label, source, now))
        return GoldImport(source, added, replaced, unchanged, tuple(skipped))

    def add_gold(self, items: Sequence[tuple[int, str]], source: str) -> GoldImport:
        """Add or replace gold candidates given as (caption id, label); all or none."""
        if not isinstance(source, str) or not source.strip():
            raise GoldError(f"gold source: expected a non-empty name, got {source!r}")
        checked = []
        for cid, label in items:
            if isinstance(cid, bool) or not isinstance(cid, int):
                raise GoldError(f"gold caption id: expected an integer, got {cid!r}")
            if label not in GOLD_LABELS:
                raise GoldError(f"gold label for caption {cid}: expected one of {', '.join(GOLD_LABELS)}, "
                                f"got {label!r}")
            checked.append((cid, label))
        with self.transaction() as conn:
            for cid, _ in checked:
                self._require_candidate(conn, cid, "gold")
            return self._put_gold(conn, checked, source.strip())

    @staticmethod
    def _require_candidate(conn, cid: int, what: str) -> None:
        row = conn.execute("SELECT c.id, coalesce(s.n_generations, 0) FROM captions c LEFT JOIN caption_state s "
                           "ON s.caption_id = c.id WHERE c.id = ?", (cid,)).fetchone()
        if row is None:
            raise GoldError(f"{what} caption {cid}: expected an existing caption id, got {cid}")
        if row[1] == 0:
            raise GoldError(f"{what} caption {cid}: expected a candidate (a caption with generations), got one "
                            "without generations")

    def gold_from_labels(self, caption_ids: Optional[Sequence[int]] = None) -> GoldImport:
        """Gold from the audit's decided labels: with blind reviews (k > 1) the agreed and adjudicated
        ones; with one review per candidate every current label. A 'skip' is no decision and is left
        out. caption_ids: only these (default every decided candidate)."""
        with self.transaction() as conn:
            k = reviews_per_candidate(conn)
            where = "st.review IN ('agreed', 'adjudicated')" if k > 1 else "st.label IS NOT NULL"
            rows = conn.execute(
                "SELECT st.caption_id, st.label, st.review FROM caption_state st WHERE st.n_generations > 0 "
                f"AND st.label IS NOT NULL AND st.label <> 'skip' AND {where} ORDER BY st.caption_id").fetchall()
            if caption_ids is not None:
                wanted = {int(c) for c in caption_ids}
                found = {r[0] for r in rows}
                missing = sorted(wanted - found)
                if missing:
                    more = " ..." if len(missing) > 10 else ""
                    raise GoldError(f"gold from labels: expected candidates with a decided label, got "
                                    f"{', '.join(map(str, missing[:10]))}{more} without one")
                rows = [r for r in rows if r[0] in wanted]
            adjudicated = [(c, lab) for c, lab, review in rows if review == "adjudicated"]
            decided = [(c, lab) for c, lab, review in rows if review != "adjudicated"]
            a = self._put_gold(conn, adjudicated, "adjudicated")
            b = self._put_gold(conn, decided, "labels")
        return GoldImport("labels", a.added + b.added, a.replaced + b.replaced, a.unchanged + b.unchanged)

    def gold_from_reference(self, limit: Optional[int] = None) -> GoldImport:
        """Gold from the candidates' reference labels (the demo's planted truth, or an imported
        list's labels). limit: at most this many, taken in turn from each label (MV, TV, RV, N) in
        an order hashed from the caption id, so a small set still holds every kind."""
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise GoldError(f"gold from reference: expected a positive limit, got {limit!r}")
        with self.transaction() as conn:
            rows = conn.execute("SELECT c.id, c.reference_label FROM captions c JOIN caption_state st ON "
                                "st.caption_id = c.id WHERE st.n_generations > 0 AND c.reference_label IS NOT NULL "
                                "ORDER BY c.id").fetchall()
            if not rows:
                raise GoldError("gold from reference: expected candidates with a reference label, got none (the "
                                "demo store and lists with an overfit_type column have them)")
            by_label: dict[str, list[int]] = {}
            for cid, label in rows:
                by_label.setdefault(label, []).append(cid)
            queues = [sorted(ids, key=lambda c: (_unit("reference", c), c)) for _, ids in sorted(by_label.items())]
            picked: list[tuple[int, str]] = []
            labels = {cid: label for cid, label in rows}
            while any(queues) and (limit is None or len(picked) < limit):
                for q in queues:
                    if q and (limit is None or len(picked) < limit):
                        cid = q.pop(0)
                        picked.append((cid, labels[cid]))
            return self._put_gold(conn, sorted(picked), "reference")

    def gold_from_file(self, path: Union[str, Path], skip_missing: bool = False) -> GoldImport:
        """Gold from a CSV or JSONL file (see parse_gold_file). A row with an empty label is left
        out, and so is one naming a caption that is no candidate; a caption the store does not hold
        is an error unless skip_missing. All or none; the source is the file's name."""
        path = Path(path)
        rows = parse_gold_file(path)
        if not rows:
            raise GoldError(f"{path}: expected at least one row, got none")
        items: dict[int, tuple[str, str]] = {}
        skipped = []
        with self.transaction() as conn:
            for r in rows:
                if r.caption_id is not None:
                    hit = conn.execute("SELECT id FROM captions WHERE id = ?", (r.caption_id,)).fetchone()
                    if hit is None and r.text:
                        hit = conn.execute("SELECT id FROM captions WHERE text = ?", (r.text,)).fetchone()
                else:
                    hit = conn.execute("SELECT id FROM captions WHERE text = ?", (r.text,)).fetchone()
                name = r.caption_id if r.caption_id is not None else r.text
                if hit is None:
                    if not skip_missing:
                        raise GoldError(f"{r.where}: expected a caption this store holds, got {name!r} "
                                        "(use --skip-missing to leave such rows out)")
                    skipped.append((name, "not in the store"))
                    continue
                cid = int(hit[0])
                if r.label is None:
                    skipped.append((cid, "no label"))
                    continue
                n = conn.execute("SELECT n_generations FROM caption_state WHERE caption_id = ?", (cid,)).fetchone()
                if n is None or n[0] == 0:
                    skipped.append((cid, "not a candidate (no generations)"))
                    continue
                if cid in items and items[cid][0] != r.label:
                    raise GoldError(f"{r.where}: expected one label per caption, got {r.label} for caption {cid} "
                                    f"given {items[cid][0]} at {items[cid][1]}")
                items[cid] = (r.label, r.where)
            return self._put_gold(conn, sorted((c, lab) for c, (lab, _) in items.items()), path.name, tuple(skipped))

    def remove_gold(self, caption_id: int, force: bool = False) -> GoldRemoval:
        """Take a candidate out of gold. Its answers go with it, so one that was answered is
        removed only with force (else GoldError says how many answers it holds)."""
        if isinstance(caption_id, bool) or not isinstance(caption_id, int):
            raise GoldError(f"remove gold: expected an integer caption id, got {caption_id!r}")
        with self.transaction() as conn:
            row = conn.execute("SELECT label FROM gold WHERE caption_id = ?", (caption_id,)).fetchone()
            if row is None:
                raise GoldError(f"remove gold: expected the caption id of a gold candidate, got {caption_id}")
            n = conn.execute("SELECT count(*) FROM gold_answers WHERE caption_id = ?", (caption_id,)).fetchone()[0]
            if n and not force:
                raise GoldError(f"remove gold {caption_id}: expected a gold candidate without answers, got one with "
                                f"{n} answer(s) (--force removes them too)")
            conn.execute("DELETE FROM gold_answers WHERE caption_id = ?", (caption_id,))
            conn.execute("DELETE FROM gold WHERE caption_id = ?", (caption_id,))
            for key, value in conn.execute("SELECT key, value FROM meta WHERE substr(key, 1, ?) = ?",
                                           (len(_SERVED), _SERVED)).fetchall():
                if json.loads(value).get("caption_id") == caption_id:     # served to someone, unanswered
                    conn.execute("DELETE FROM meta WHERE key = ?", (key,))
        return GoldRemoval(caption_id, row[0], int(n))

    # -- reading ------------------------------------------------------------------------------
    def gold_items(self) -> list[GoldItem]:
        with self.snapshot() as conn:
            rows = conn.execute("SELECT g.caption_id, g.label, g.source, g.created_at, "
                                "(SELECT count(*) FROM gold_answers a WHERE a.caption_id = g.caption_id) "
                                "FROM gold g ORDER BY g.caption_id").fetchall()
        return [GoldItem(int(c), lab, s, t, int(n)) for c, lab, s, t, n in rows]

    def gold_ids(self) -> set[int]:
        with self.snapshot() as conn:
            return {r[0] for r in conn.execute("SELECT caption_id FROM gold")}

    def gold_labels(self, caption_ids: Sequence[int]) -> dict[int, str]:
        """The gold label of those of caption_ids that are gold."""
        out: dict[int, str] = {}
        with self.snapshot() as conn:
            for i in range(0, len(caption_ids), 500):
                chunk = [int(c) for c in caption_ids[i:i + 500]]
                out.update(conn.execute(f"SELECT caption_id, label FROM gold WHERE caption_id IN "
                                        f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return out

    def gold_answers(self, reviewer: Optional[str] = None) -> list[GoldAnswer]:
        with self.snapshot() as conn:
            rows = conn.execute(_ANSWER_SQL + (" WHERE a.reviewer = ?" if reviewer else "") + " ORDER BY a.id",
                                (reviewer,) if reviewer else ()).fetchall()
        return [GoldAnswer(*r) for r in rows]

    # -- answering ----------------------------------------------------------------------------
    def add_gold_answer(self, caption_id: int, reviewer: str, label: str,
                        seconds: Optional[float] = None) -> GoldAnswer:
        """Record a reviewer's answer on a gold candidate (never a label of the audit); ends their
        lease on it and, if it was served to them, its served row."""
        reviewer = check_reviewer(reviewer)
        if label not in HUMAN_LABELS:
            raise GoldError(f"gold answer for caption {caption_id}: expected one of {', '.join(HUMAN_LABELS)}, "
                            f"got {label!r}")
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float))
                                    or not 0 <= seconds < math.inf):
            raise GoldError(f"gold answer seconds: expected a number >= 0 or None, got {seconds!r}")
        with self.transaction() as conn:
            gold = conn.execute("SELECT label FROM gold WHERE caption_id = ?", (caption_id,)).fetchone()
            if gold is None:
                raise GoldError(f"gold answer: expected the caption id of a gold candidate, got {caption_id!r}")
            created = utc_now()
            cur = conn.execute("INSERT INTO gold_answers (caption_id, reviewer, label, created_at, seconds) "
                               "VALUES (?, ?, ?, ?, ?)", (caption_id, reviewer, label, created,
                                                          None if seconds is None else float(seconds)))
            conn.execute("DELETE FROM leases WHERE reviewer = ? AND caption_id = ?", (reviewer, caption_id))
            conn.execute("DELETE FROM meta WHERE key = ? AND json_extract(value, '$.caption_id') = ?",
                         (_SERVED + reviewer, caption_id))
            return GoldAnswer(int(cur.lastrowid), caption_id, reviewer, label, created,
                              None if seconds is None else float(seconds), gold[0])

    def served_gold(self, reviewer: str) -> Optional[ServedGold]:
        """The gold candidate served to the reviewer and not answered yet (None: none)."""
        with self.snapshot() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (_SERVED + reviewer,)).fetchone()
            if row is None:
                return None
            v = json.loads(row[0])
            if conn.execute("SELECT 1 FROM gold WHERE caption_id = ?", (v["caption_id"],)).fetchone() is None:
                return None             # taken out of gold since
        return ServedGold(reviewer, int(v["caption_id"]), float(v["served_at"]))

    def is_served_gold(self, reviewer: str, caption_id: Optional[int]) -> bool:
        """Is this caption the gold candidate served to this reviewer (so their answer on it is a gold
        answer, not an audit label)? The same caption reached through the queue is not."""
        if not reviewer or caption_id is None:
            return False
        served = self.served_gold(reviewer)
        return served is not None and served.caption_id == caption_id

    def answer_served_gold(self, reviewer: str, caption_id: int, label: str,
                           now: Optional[float] = None) -> GoldAnswer:
        """The reviewer's answer on the gold candidate served to them; seconds from when it was served."""
        reviewer = check_reviewer(reviewer)
        served = self.served_gold(reviewer)
        if served is None or served.caption_id != caption_id:
            raise GoldError(f"gold answer: expected the gold candidate served to {reviewer} "
                            f"({served.caption_id if served else 'none'}), got {caption_id!r}")
        now = time.time() if now is None else now
        return self.add_gold_answer(caption_id, reviewer, label, max(0.0, now - served.served_at))

    def undo_gold_answer(self, reviewer: str, answer_id: int, now: Optional[float] = None) -> ServedGold:
        """Take back the reviewer's gold answer (the u key right after it): the answer is deleted and
        its gold candidate is served to them again from ``now`` (replacing one served and unanswered),
        so their next key on it is a gold answer again. Only their own answer."""
        reviewer = check_reviewer(reviewer)
        now = time.time() if now is None else now
        with self.transaction() as conn:
            row = conn.execute("SELECT caption_id, reviewer FROM gold_answers WHERE id = ?",
                               (int(answer_id),)).fetchone()
            if row is None or row[1] != reviewer:
                raise GoldError(f"undo gold answer: expected the id of a gold answer by {reviewer}, got {answer_id!r}"
                                + (f" (given by {row[1]})" if row else ""))
            conn.execute("DELETE FROM gold_answers WHERE id = ?", (int(answer_id),))
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (_SERVED + reviewer, json.dumps({"caption_id": row[0], "served_at": now})))
        return ServedGold(reviewer, int(row[0]), now)

    def serve_gold(self, reviewer: str, rate: float, now: Optional[float] = None) -> Optional[ServedGold]:
        """The gold candidate due for the reviewer now, recorded as served to them (None: none due).
        One still unanswered is served again (a reload does not skip it); otherwise one is due once
        the reviewer gave gold_gap(...) audit labels since their last gold answer, and it is the first
        in gold_order(...) they neither answered nor labelled in the audit."""
        reviewer = check_reviewer(reviewer)
        rate = check_rate(rate)
        if rate == 0:
            return None
        pending = self.served_gold(reviewer)
        if pending is not None:
            return pending
        now = time.time() if now is None else now
        with self.transaction() as conn:
            answered = conn.execute("SELECT count(*), max(created_at) FROM gold_answers WHERE reviewer = ?",
                                    (reviewer,)).fetchone()
            since = conn.execute("SELECT count(*) FROM labels WHERE reviewer = ? AND undoes IS NULL AND created_at > ?",
                                 (reviewer, answered[1] or "")).fetchone()[0]
            if since < gold_gap(reviewer, int(answered[0]), rate):
                return None
            open_ids = [r[0] for r in conn.execute(
                "SELECT g.caption_id FROM gold g JOIN caption_state st ON st.caption_id = g.caption_id "
                "WHERE st.n_generations > 0 "
                "AND NOT EXISTS (SELECT 1 FROM gold_answers a WHERE a.caption_id = g.caption_id AND a.reviewer = ?) "
                "AND NOT EXISTS (SELECT 1 FROM labels l WHERE l.caption_id = g.caption_id AND l.reviewer = ?)",
                (reviewer, reviewer))]
            if not open_ids:
                return None
            cid = gold_order(reviewer, open_ids)[0]
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = "
                         "excluded.value", (_SERVED + reviewer, json.dumps({"caption_id": cid, "served_at": now})))
        return ServedGold(reviewer, cid, now)

    # -- stats --------------------------------------------------------------------------------
    def gold_stats(self, min_accuracy: float = DEFAULT_MIN_ACCURACY,
                   min_answers: int = DEFAULT_MIN_ANSWERS) -> list[ReviewerGold]:
        """Per reviewer who labelled or answered gold: accuracy on gold with its Wilson 95% interval,
        confusion, median seconds per decision and on gold, and a flag under ``min_accuracy`` (with
        at least ``min_answers`` answers). Flagged first, then by reviewer name."""
        if isinstance(min_accuracy, bool) or not isinstance(min_accuracy, (int, float)) or not 0 <= min_accuracy <= 1:
            raise GoldError(f"minimum gold accuracy: expected a number from 0 to 1, got {min_accuracy!r}")
        if isinstance(min_answers, bool) or not isinstance(min_answers, int) or min_answers < 1:
            raise GoldError(f"minimum gold answers: expected a positive integer, got {min_answers!r}")
        with self.snapshot() as conn:
            answers = [GoldAnswer(*r) for r in conn.execute(_ANSWER_SQL + " ORDER BY a.id")]
            stamps: dict[str, list[str]] = {}
            for who, t in conn.execute("SELECT reviewer, created_at FROM labels WHERE undoes IS NULL"):
                stamps.setdefault(who, []).append(t)
        by: dict[str, list[GoldAnswer]] = {}
        for a in answers:
            by.setdefault(a.reviewer, []).append(a)
            stamps.setdefault(a.reviewer, []).append(a.created_at)
        out = [summarise(who, by.get(who, []), stamps[who], min_accuracy, min_answers) for who in stamps]
        return sorted(out, key=lambda r: (not r.flagged, r.reviewer))
