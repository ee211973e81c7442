"""The score stage: every caption of a selection scored by each kind, one resumable run per kind."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from typing import Any

from attack.errors import ScoreInputError
from attack.models.base import TextToImageModel
from attack.progress import Progress, no_progress
from attack.scores import SCORE_NAMES, score_spec
from attack.scores.base import check_batch_size, require_whitebox
from attack.stages.claims import shared_batches
from attack.stages.runs import Captions, EvalMeter, StageReport, as_selection, model_id_of, open_run, shard
from store import Store


# -- scores -------------------------------------------------------------------------------------
def score_params(kind: str, params: Any) -> dict[str, Any]:
    """The run params of a score: its identity for resuming."""
    return {"score": kind, "params": asdict(params)}


def score_stage(store: Store, model: TextToImageModel, captions: Captions, kinds: Sequence[str] = ("dcs",),
                params: Mapping[str, Any] | None = None, *, model_id: str | None = None, batch_size: int = 16,
                offset: int = 0, limit: int | None = None, progress: Progress = no_progress,
                engine: Any = None) -> list[StageReport]:
    """Score captions[offset:offset+limit] with each kind, one run per kind; captions already
    scored in a run with identical params are skipped. `params` maps kind -> params dataclass.
    engine: None (this process) or an attack.engine.ray.RayEngine (actors on a Ray cluster)."""
    kinds = (kinds,) if isinstance(kinds, str) else tuple(kinds)
    params = dict(params or {})
    if not kinds:
        raise ScoreInputError(f"expected score kinds among {', '.join(SCORE_NAMES)}, got none")
    for k in list(kinds) + list(params):
        score_spec(k)
    batch_size = check_batch_size(batch_size)
    for k in kinds:  # fail before any run is written
        if score_spec(k)[2]:
            require_whitebox(model, k)
    captions = as_selection(store, captions)
    todo_all = shard(list(zip(captions.ids, captions.texts)), offset, limit)
    mid = model_id_of(model, model_id)
    reports = []
    for kind in kinds:
        fn, default, _ = score_spec(kind)
        if kind == "ecs" and not model.whitebox:
            default = replace(default, seeds=())   # a closed model: the seeds its mapping holds
        p = params.get(kind, default)
        run = open_run(store, "score", model, mid, score_params(kind, p))
        run_id, resumed = run.id, run.resumed
        with store.running(run_id):
            done = store.scored_caption_ids(run_id, kind)
            todo = [(cid, t) for cid, t in todo_all if cid not in done]
            meter = EvalMeter(store, model, run_id)
            progress(f"{kind}", 0, len(todo))
            if engine is not None:   # Ray actors compute, this process merges their shards
                computed = engine.score(store, run_id, kind, p, todo, batch_size).computed
                progress(f"{kind}", computed, computed)
            else:                    # this process computes what it claims; another on the store, the rest
                computed = 0
                def scored(keys, run_id=run_id, kind=kind):
                    return {str(c) for c in store.scored_among(run_id, kind, [int(k) for k in keys])}

                for chunk in shared_batches(store, run_id, todo, lambda ct: str(ct[0]), batch_size, scored):
                    start = model.evals
                    res = fn(model, [t for _, t in chunk], p, batch_size=len(chunk))
                    with store.transaction():
                        store.add_scores(run_id, kind, zip([cid for cid, _ in chunk], res.values.tolist()))
                        meter.commit(start)
                    computed += len(chunk)
                    progress(f"{kind}", computed, len(todo))
            evals = meter.finish()
        reports.append(StageReport("score", kind, run_id, resumed, computed, len(todo_all) - computed, evals,
                                   run.note))
    return reports
