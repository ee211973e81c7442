"""Read-only queries the review app needs beyond Store's API (ranks, batch label state, stats).

They run inside ``store.snapshot()`` on the store's derived tables (caption_state,
candidate_scores) and never write.
"""
from __future__ import annotations

from typing import Sequence

from store import HUMAN_LABELS, Store

VERBATIM = ("MV", "TV", "RV")
BUILTIN_KINDS = ("dcs", "ecs", "wen", "carlini")


def score_kinds(store: Store) -> list[str]:
    """Built-in kinds first, then any other kind the store holds."""
    with store.snapshot() as conn:
        known = {r[0] for r in conn.execute("SELECT kind FROM score_kinds")}
    return list(BUILTIN_KINDS) + sorted(known - set(BUILTIN_KINDS))


def runs(store: Store) -> list[tuple[int, str, str]]:
    """(run id, stage, model) of every run, newest first."""
    with store.snapshot() as conn:
        return [tuple(r) for r in conn.execute("SELECT id, stage, model FROM runs ORDER BY id DESC")]


def models(store: Store) -> list[str]:
    with store.snapshot() as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT model FROM runs ORDER BY model")]


def flags(store: Store) -> list[str]:
    with store.snapshot() as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT flag FROM caption_flags ORDER BY flag")]


def ranks(store: Store, scores: dict[str, float]) -> dict[str, tuple[int, int]]:
    """Rank (1 = highest) of each score among the candidates' latest scores of that kind, and
    how many candidates hold that kind. Counts walk the (kind, is_latest, value) index."""
    out = {}
    with store.snapshot() as conn:
        for kind, value in scores.items():
            above = conn.execute("SELECT count(*) FROM candidate_scores WHERE kind = ? AND is_latest = 1 "
                                 "AND value > ?", (kind, value)).fetchone()[0]
            total = conn.execute("SELECT count(*) FROM candidate_scores WHERE kind = ? AND is_latest = 1",
                                 (kind,)).fetchone()[0]
            out[kind] = (above + 1, total)
    return out


def unlabelled_among(store: Store, caption_ids: Sequence[int]) -> set[int]:
    """Which of these candidates have no current human label."""
    if not caption_ids:
        return set()
    found: set[int] = set()
    with store.snapshot() as conn:
        for start in range(0, len(caption_ids), 500):
            chunk = list(caption_ids[start:start + 500])
            marks = ", ".join("?" * len(chunk))
            found |= {r[0] for r in conn.execute(
                f"SELECT caption_id FROM caption_state WHERE caption_id IN ({marks}) AND label IS NULL", chunk)}
    return found


def precision_curves(store: Store, kinds: Sequence[str]) -> list[dict]:
    """The paper's Fig. 3 from human labels: for each score kind, walk the human-labelled
    candidates from the highest score down; at each step report how many verbatims (MV/TV/RV)
    were found so far and the precision (found / labelled seen). 'skip' is not a decision and
    is left out."""
    out = []
    with store.snapshot() as conn:
        for kind in kinds:
            rows = conn.execute(
                "SELECT st.label FROM caption_state st JOIN candidate_scores cs ON cs.caption_id = st.caption_id "
                "AND cs.kind = ? AND cs.is_latest = 1 WHERE st.n_generations > 0 AND st.label IS NOT NULL "
                "AND st.label <> 'skip' ORDER BY cs.value DESC, cs.caption_id DESC", (kind,)).fetchall()
            found = 0
            for k, (label,) in enumerate(rows, 1):
                if label in VERBATIM:
                    found += 1
                    out.append({"score": kind, "labelled": k, "found": found, "precision": found / k})
    return out


RUN_COUNT_HEADERS = ("run", "model", "candidates", "verbatims") + HUMAN_LABELS + ("unlabelled",)
REVIEWER_HEADERS = ("reviewer", "entries", "undos", "current labels", "first", "last")


def counts_by_run(store: Store) -> tuple[list[str], list[list]]:
    """The paper's Table 1 from human labels: for each generation run (model), the number of
    candidates it generated and how many carry each current human label."""
    labels = list(HUMAN_LABELS)
    with store.snapshot() as conn:
        rows = conn.execute(
            "SELECT r.id, r.model, coalesce(st.label, 'unlabelled'), count(DISTINCT g.caption_id) "
            "FROM generations g JOIN runs r ON r.id = g.run_id JOIN caption_state st ON st.caption_id = g.caption_id "
            "GROUP BY r.id, 3 ORDER BY r.id").fetchall()
    table: dict[tuple[int, str], dict[str, int]] = {}
    for run_id, model, label, n in rows:
        table.setdefault((run_id, model), {})[label] = n
    headers = list(RUN_COUNT_HEADERS)
    out = []
    for (run_id, model), c in table.items():
        out.append([run_id, model, sum(c.values()), sum(c.get(v, 0) for v in VERBATIM)]
                   + [c.get(label, 0) for label in labels] + [c.get("unlabelled", 0)])
    return headers, out


DUP_BINS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10_000)


def dup_histogram(store: Store) -> list[dict]:
    """The paper's Fig. 4: candidates per duplicate-count bin, split into confirmed verbatims,
    other human decisions and not yet labelled. Empty when no caption carries a dup_count."""
    with store.snapshot() as conn:
        rows = conn.execute(
            "SELECT c.dup_count, st.label FROM caption_state st JOIN captions c ON c.id = st.caption_id "
            "WHERE st.n_generations > 0 AND c.dup_count IS NOT NULL").fetchall()
    counts: dict[tuple[str, str], int] = {}
    for dup, label in rows:
        lo = max(b for b in DUP_BINS if b <= max(dup, 1))
        group = "verbatim" if label in VERBATIM else "unlabelled" if label is None else "not verbatim"
        key = (f"{lo}+", group)
        counts[key] = counts.get(key, 0) + 1
    order = {f"{b}+": i for i, b in enumerate(DUP_BINS)}
    return [{"duplicates": b, "group": g, "candidates": n, "order": order[b]}
            for (b, g), n in sorted(counts.items(), key=lambda kv: (order[kv[0][0]], kv[0][1]))]


def reviewer_progress(store: Store) -> tuple[list[str], list[list]]:
    """Per reviewer: label entries written, undos, current labels held, first and last entry."""
    with store.snapshot() as conn:
        rows = conn.execute(
            "SELECT reviewer, count(*), sum(undoes IS NOT NULL), min(created_at), max(created_at) "
            "FROM labels GROUP BY reviewer ORDER BY count(*) DESC").fetchall()
        held = dict(conn.execute("SELECT reviewer, count(*) FROM caption_state WHERE label IS NOT NULL "
                                 "GROUP BY reviewer").fetchall())
    return (list(REVIEWER_HEADERS),
            [[r, n, u or 0, held.get(r, 0), a, b] for r, n, u, a, b in rows])


def label_totals(store: Store) -> dict[str, int]:
    """Candidates per current human label ('unlabelled' included), from candidate_counts."""
    with store.snapshot() as conn:
        rows = conn.execute("SELECT label_key, sum(n) FROM candidate_counts GROUP BY label_key").fetchall()
    out = {label: 0 for label in HUMAN_LABELS + ("unlabelled",)}
    for key, n in rows:
        out[key or "unlabelled"] = out.get(key or "unlabelled", 0) + n
    return out
