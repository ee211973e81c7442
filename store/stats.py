"""Read-only aggregates for the review app's queue and Stats tab: score kinds and ranks, label
totals, the paper's Fig. 3 / Table 1 / Fig. 4 inputs and reviewer activity.

They read the derived tables (caption_state, candidate_scores, candidate_counts) in one
snapshot each and never write.
"""
from __future__ import annotations

from typing import Mapping, Optional, Sequence

from .queries import BUILTIN_SCORE_KINDS
from .records import CandidateDup, ReviewerActivity, RunLabelCount, ScoreRank
from .schema import HUMAN_LABELS


def percentile(values: Sequence[float], q: float) -> Optional[float]:
    """The q-th percentile (0..100) by the nearest-rank-below rule the benches report
    (sorted(values)[int(q/100 * (n-1))]); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    return xs[int(q / 100 * (len(xs) - 1))]


class Stats:
    """Counts and summaries the review app's Stats tab and queue show. Methods of Store (store/store.py), which holds the connection."""

    def score_kinds(self) -> list[str]:
        """Built-in kinds first, then any other kind the store holds."""
        with self.snapshot() as conn:
            known = {r[0] for r in conn.execute("SELECT kind FROM score_kinds")}
        return list(BUILTIN_SCORE_KINDS) + sorted(known - set(BUILTIN_SCORE_KINDS))

    def models(self) -> list[str]:
        """Every model name a run was recorded with, sorted."""
        with self.snapshot() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT model FROM runs ORDER BY model")]

    def flags(self) -> list[str]:
        """Every suspect flag a current automatic label carries, sorted."""
        with self.snapshot() as conn:
            return [r[0] for r in conn.execute("SELECT DISTINCT flag FROM caption_flags ORDER BY flag")]

    def score_ranks(self, scores: Mapping[str, float]) -> dict[str, ScoreRank]:
        """Rank of each value among the candidates' latest scores of its kind (walks the
        (kind, is_latest, value) index)."""
        out = {}
        with self.snapshot() as conn:
            for kind, value in scores.items():
                above = conn.execute("SELECT count(*) FROM candidate_scores WHERE kind = ? AND is_latest = 1 "
                                     "AND value > ?", (kind, value)).fetchone()[0]
                total = conn.execute("SELECT count(*) FROM candidate_scores WHERE kind = ? AND is_latest = 1",
                                     (kind,)).fetchone()[0]
                out[kind] = ScoreRank(int(above) + 1, int(total))
        return out

    def unlabelled_among(self, caption_ids: Sequence[int]) -> set[int]:
        """Which of these captions have no current human label."""
        found: set[int] = set()
        with self.snapshot() as conn:
            for start in range(0, len(caption_ids), 500):
                chunk = [int(c) for c in caption_ids[start:start + 500]]
                marks = ", ".join("?" * len(chunk))
                found |= {r[0] for r in conn.execute(
                    f"SELECT caption_id FROM caption_state WHERE caption_id IN ({marks}) AND label IS NULL", chunk)}
        return found

    def decided_labels_by_score(self, kind: str) -> list[str]:
        """Current human labels of the labelled candidates ('skip' left out: no decision), from the
        highest latest `kind` score down."""
        with self.snapshot() as conn:
            rows = conn.execute(
                "SELECT st.label FROM caption_state st JOIN candidate_scores cs ON cs.caption_id = st.caption_id "
                "AND cs.kind = ? AND cs.is_latest = 1 WHERE st.n_generations > 0 AND st.label IS NOT NULL "
                "AND st.label <> 'skip' ORDER BY cs.value DESC, cs.caption_id DESC", (kind,)).fetchall()
        return [r[0] for r in rows]

    def label_counts_by_run(self) -> list[RunLabelCount]:
        """For each generation run, its candidates per current human label, by run id."""
        with self.snapshot() as conn:
            rows = conn.execute(
                "SELECT r.id, r.model, coalesce(st.label, 'unlabelled'), count(DISTINCT g.caption_id) "
                "FROM generations g JOIN runs r ON r.id = g.run_id JOIN caption_state st ON st.caption_id = g.caption_id "
                "GROUP BY r.id, 3 ORDER BY r.id").fetchall()
        return [RunLabelCount(int(i), m, lab, int(n)) for i, m, lab, n in rows]

    def candidate_dup_counts(self) -> list[CandidateDup]:
        """Candidates whose caption carries a duplicate count, with their current human label."""
        with self.snapshot() as conn:
            rows = conn.execute(
                "SELECT st.caption_id, c.dup_count, st.label FROM caption_state st JOIN captions c ON c.id = st.caption_id "
                "WHERE st.n_generations > 0 AND c.dup_count IS NOT NULL ORDER BY st.caption_id").fetchall()
        return [CandidateDup(int(c), int(d), lab) for c, d, lab in rows]

    def reviewer_activity(self) -> list[ReviewerActivity]:
        """Per reviewer: entries written, undos, current labels held, first and last entry; most active first."""
        with self.snapshot() as conn:
            rows = conn.execute(
                "SELECT reviewer, count(*), sum(undoes IS NOT NULL), min(created_at), max(created_at) "
                "FROM labels GROUP BY reviewer ORDER BY count(*) DESC").fetchall()
            held = dict(conn.execute("SELECT reviewer, count(*) FROM caption_state WHERE label IS NOT NULL "
                                     "GROUP BY reviewer").fetchall())
        return [ReviewerActivity(r, int(n), int(u or 0), int(held.get(r, 0)), a, b) for r, n, u, a, b in rows]

    def label_totals(self) -> dict[str, int]:
        """Candidates per current human label ('unlabelled' included), from candidate_counts."""
        with self.snapshot() as conn:
            rows = conn.execute("SELECT label_key, sum(n) FROM candidate_counts GROUP BY label_key").fetchall()
        out = {label: 0 for label in HUMAN_LABELS + ("unlabelled",)}
        for key, n in rows:
            out[key or "unlabelled"] = out.get(key or "unlabelled", 0) + int(n)
        return out

    def candidate_count(self) -> int:
        """Captions with at least one generation."""
        with self.snapshot() as conn:
            return int(conn.execute("SELECT count(*) FROM caption_state WHERE n_generations > 0").fetchone()[0])
