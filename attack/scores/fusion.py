"""Rank fusion of stored scores: `dcs+anisotropy` ranks captions by the mean of their rank
percentiles under each score. Computed from the store's scores, no network call; written as a
score kind of its own (stage `fuse`), so the queue can rank by it and `generate --by` use it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attack.errors import AttackError
from store import Store


class FusionError(AttackError):
    """A fusion that cannot be computed (an unknown or missing score, one score only)."""


def fusion_kinds(name: str) -> tuple[str, ...]:
    """'dcs+anisotropy' -> ('dcs', 'anisotropy'); a fusion names two or more scores."""
    kinds = tuple(k.strip() for k in name.split("+"))
    if len(kinds) < 2 or not all(kinds) or len(set(kinds)) != len(kinds):
        raise FusionError(f"expected a fusion of two or more different scores like dcs+anisotropy, got {name!r}")
    return kinds


def rank_percentiles(values: np.ndarray) -> np.ndarray:
    """Each value's average rank among values, scaled to (0, 1]: ties share their mean rank."""
    from scipy.stats import rankdata

    return rankdata(values, method="average") / len(values)


def fuse_values(scores: dict[str, dict[int, float]]) -> dict[int, float]:
    """caption id -> mean rank percentile over the kinds, for the captions every kind scored."""
    common = sorted(set.intersection(*(set(v) for v in scores.values())))
    if not common:
        return {}
    ranks = np.mean([rank_percentiles(np.array([v[c] for c in common], float)) for v in scores.values()], axis=0)
    return dict(zip(common, ranks.tolist()))


@dataclass(frozen=True)
class FusionReport:
    kind: str
    run_id: int
    captions: int

    def summary(self) -> str:
        return f"fuse {self.kind}: run {self.run_id}, {self.captions} captions ranked (no network calls)"


def fuse(store: Store, name: str, model_id: str, label: str | None = None) -> FusionReport:
    """Write the fusion `name` of one model's latest scores as score kind `name`; the run is
    keyed by the score runs it read, so newer scores give a new fusion and the same ones reuse it.
    model_id: the model's fingerprint, or a label (a spec it ran under) that names the weights of
    its newest score run; label: how the fusion run is shown (default model_id)."""
    kinds = fusion_kinds(name)
    fp = store.model_fingerprint(model_id)
    scores, runs = {}, {}
    for k in kinds:
        scores[k] = store.latest_scores(k, fp or model_id)
        if not scores[k]:
            raise FusionError(f"expected stored {k} scores of {label or model_id!r} to fuse, got none (run "
                              f"`python -m attack score --scores {k}` first)")
        of_model = store.runs(stage="score", fingerprint=fp) if fp else store.runs(stage="score", model=model_id)
        runs[k] = [r.id for r in of_model if r.params.get("score") == k]
    fused = fuse_values(scores)
    params = {"fusion": name, "inputs": list(kinds), "score_runs": runs, "method": "mean rank percentile",
              **({"model_fingerprint": fp} if fp else {})}
    run = store.open_run("fuse", label or model_id, params)
    if not run.resumed:
        with store.running(run.id):
            store.add_scores(run.id, name, fused.items())
        store.finish_run(run.id, 0, "done")
    return FusionReport(name, run.id, len(fused))
