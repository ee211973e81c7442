"""The Carlini et al. post-filter as a store-writing stage (the detector is attack.scores.carlini)."""
from __future__ import annotations

from dataclasses import asdict

from attack.errors import ScoreInputError
from attack.models.base import TextToImageModel
from attack.progress import Progress, no_progress
from attack.scores.base import check_batch_size
from attack.scores.carlini import CarliniParams, carlini
from attack.stages.rank import rank_captions
from attack.stages.runs import Captions, EvalMeter, StageReport, as_selection, model_id_of, open_run, shard
from store import Store

CARLINI_FLAG = "carlini_flag"  # 1.0 when the largest clique reaches min_clique, else 0.0


def carlini_stage(store: Store, model: TextToImageModel, captions: Captions,
                  params: CarliniParams = CarliniParams(), *, by: str | None = None, top_k: int = 0,
                  score_model: str | None = None, model_id: str | None = None, batch_size: int = 16,
                  offset: int = 0, limit: int | None = None, progress: Progress = no_progress) -> StageReport:
    """Largest near-copy clique of n generations per caption, stored as score kind `carlini`
    (clique size) and `carlini_flag` (1.0 when flagged). With `by`, only the top_k captions by
    that stored score (0 = all scored ones); offset/limit shard the resulting list."""
    batch_size = check_batch_size(batch_size)
    if params.n < 1:
        raise ScoreInputError(f"expected n >= 1 generations per caption, got {params.n}")
    mid = model_id_of(model, model_id)
    captions = as_selection(store, captions)
    if by is None:
        items = list(zip(captions.ids, captions.texts))
    else:
        key = score_model or model.fingerprint(store.digest_cache())
        items = [(r.caption_id, r.text) for r in rank_captions(store, captions, by, key, top_k, label=score_model or mid)]
    items = shard(items, offset, limit)
    run_params = {"score": "carlini", "params": asdict(params), "by": by, "top_k": top_k if by else None,
                  "score_model": (score_model or mid) if by else None}
    run = open_run(store, "carlini", model, mid, run_params)
    run_id, resumed = run.id, run.resumed
    with store.running(run_id):
        done = store.scored_caption_ids(run_id, CARLINI_FLAG)  # the flag is written last, with the size
        todo = [(cid, t) for cid, t in items if cid not in done]
        meter = EvalMeter(store, model, run_id)
        progress("carlini", 0, len(todo))
        for i, (cid, text) in enumerate(todo):  # one caption = n generations: the natural batch
            start = model.evals
            res = carlini(model, [text], params, batch_size=batch_size)
            with store.transaction():
                store.add_scores(run_id, "carlini", [(cid, float(res.values[0]))])
                store.add_scores(run_id, CARLINI_FLAG, [(cid, float(bool(res.flagged[0])))])
                meter.commit(start)
            progress("carlini", i + 1, len(todo))
        return StageReport("carlini", "carlini", run_id, resumed, len(todo), len(items) - len(todo), meter.finish(),
                           run.note)
