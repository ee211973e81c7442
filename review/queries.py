"""What the review app's queue and Stats tab show, shaped from the store's read-only aggregates
(store/stats.py): headers, bins and curves; no SQL here."""
from __future__ import annotations

from typing import Sequence

from store import HUMAN_LABELS, Store

VERBATIM = ("MV", "TV", "RV")


def score_kinds(store: Store) -> list[str]:
    """Built-in kinds first, then any other kind the store holds."""
    return store.score_kinds()


def runs(store: Store) -> list[tuple[int, str, str]]:
    """(run id, stage, model) of every run, newest first."""
    return [(r.id, r.stage, r.model) for r in reversed(store.runs())]


def models(store: Store) -> list[str]:
    return store.models()


def flags(store: Store) -> list[str]:
    return store.flags()


def ranks(store: Store, scores: dict[str, float]) -> dict[str, tuple[int, int]]:
    """Rank (1 = highest) of each score among the candidates' latest scores of that kind, and
    how many candidates hold that kind."""
    return {k: (r.rank, r.total) for k, r in store.score_ranks(scores).items()}


def unlabelled_among(store: Store, caption_ids: Sequence[int]) -> set[int]:
    """Which of these candidates have no current human label."""
    return store.unlabelled_among(caption_ids) if caption_ids else set()


def precision_curves(store: Store, kinds: Sequence[str]) -> list[dict]:
    """The paper's Fig. 3 from human labels: for each score kind, walk the human-labelled
    candidates from the highest score down; at each step report how many verbatims (MV/TV/RV)
    were found so far and the precision (found / labelled seen). 'skip' is not a decision and
    is left out."""
    out = []
    for kind in kinds:
        found = 0
        for k, label in enumerate(store.decided_labels_by_score(kind), 1):
            if label in VERBATIM:
                found += 1
                out.append({"score": kind, "labelled": k, "found": found, "precision": found / k})
    return out


RUN_COUNT_HEADERS = ("run", "model", "candidates", "verbatims") + HUMAN_LABELS + ("unlabelled",)
REVIEWER_HEADERS = ("reviewer", "entries", "undos", "current labels", "first", "last")


def counts_by_run(store: Store) -> tuple[list[str], list[list]]:
    """The paper's Table 1 from human labels: for each generation run (model), the number of
    candidates it generated and how many carry each current human label."""
    table: dict[tuple[int, str], dict[str, int]] = {}
    for c in store.label_counts_by_run():
        table.setdefault((c.run_id, c.model), {})[c.label] = c.candidates
    out = []
    for (run_id, model), c in table.items():
        out.append([run_id, model, sum(c.values()), sum(c.get(v, 0) for v in VERBATIM)]
                   + [c.get(label, 0) for label in HUMAN_LABELS] + [c.get("unlabelled", 0)])
    return list(RUN_COUNT_HEADERS), out


DUP_BINS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)


def dup_histogram(store: Store) -> list[dict]:
    """The paper's Fig. 4: candidates per duplicate-count bin, split into confirmed verbatims,
    other human decisions and not yet labelled. Empty when no caption carries a dup_count."""
    counts: dict[tuple[str, str], int] = {}
    for c in store.candidate_dup_counts():
        lo = max(b for b in DUP_BINS if b <= max(c.dup_count, 1))
        group = "verbatim" if c.label in VERBATIM else "unlabelled" if c.label is None else "not verbatim"
        key = (f"{lo}+", group)
        counts[key] = counts.get(key, 0) + 1
    order = {f"{b}+": i for i, b in enumerate(DUP_BINS)}
    return [{"duplicates": b, "group": g, "candidates": n, "order": order[b]}
            for (b, g), n in sorted(counts.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def reviewer_progress(store: Store) -> tuple[list[str], list[list]]:
    """Per reviewer: label entries written, undos, current labels held, first and last entry."""
    return (list(REVIEWER_HEADERS),
            [[a.reviewer, a.entries, a.undos, a.current_labels, a.first, a.last] for a in store.reviewer_activity()])


def label_totals(store: Store) -> dict[str, int]:
    """Candidates per current human label ('unlabelled' included)."""
    return store.label_totals()
