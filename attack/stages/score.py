"""Store-writing stages: score, generate and the Carlini post-filter, resumable and shardable.

Each stage takes a Store, a loaded model, the captions to work on (a `Selection`, in a stable
order: the caption file's or the store's id order) and a frozen params dataclass, and writes its
results under one run per (stage, kind). The run's params JSON is the stage's identity: a later
call with the same stage, model and params reuses that run and skips what it already holds, so
a run killed midway (or sharded with offset/limit) resumes where it stopped and ends with the
same values as an uninterrupted run. Writes are one short transaction per batch (values + the
run's running eval count), so a kill loses at most the batch in flight.

Evals are stored in guided denoiser calls (a cond + uncond pair is one, as `model.evals`),
rounded up to a whole call; a run resumed several times holds the sum over its sessions.
Retrieval and labels write to the same store in a later stage (see `attack.cli._run_all`).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any


from store import Store

from attack.scores.carlini import CarliniParams, carlini
from attack.scores.dcs import DCSParams, dcs
from attack.scores.ecs import ECSParams, ecs
from attack.stages.generate import GenerateParams, top_k
from attack.kinds import MULTI_SEED, SCORE_NAMES, split_kind
from attack.models.base import TextToImageModel
from attack.progress import Progress, no_progress
from attack.scores.base import ScoreInputError, ScoreResult, check_batch_size, require_whitebox
from attack.selection import Selection, select_captions
from attack.scores.anisotropy import AnisotropyParams, anisotropy
from attack.scores.sharpness import SharpnessParams, sharpness
from attack.scores.wen import WenParams, wen

# score kind -> (batched score function, default params, needs the denoiser)
SCORES: dict[str, tuple[Callable[..., ScoreResult], Any, bool]] = {
    "dcs": (dcs, DCSParams(), True),
    "ecs": (ecs, ECSParams(), False),
    "wen": (wen, WenParams(), True),
    "sharpness": (sharpness, SharpnessParams(), True),
    "anisotropy": (anisotropy, AnisotropyParams(), True),
}
assert tuple(SCORES) == SCORE_NAMES, "attack.kinds names every score of SCORES"


def score_spec(kind: str) -> tuple[Callable[..., ScoreResult], Any, bool]:
    """(batched function, default params, needs the denoiser) of a score kind."""
    split = split_kind(kind)
    if split is None:
        raise ScoreInputError(f"expected a score kind among {', '.join(SCORES)} (or {', '.join(MULTI_SEED)} with a "
                              f"number of generations, e.g. wen4), got {kind!r}")
    fn, params, whitebox = SCORES[split[0]]
    return (fn, params, whitebox) if split[1] is None else (fn, replace(params, seeds=tuple(range(split[1]))), whitebox)


SAMPLER = "heun-karras"  # what TextToImageModel.sample runs
CARLINI_FLAG = "carlini_flag"  # 1.0 when the largest clique reaches min_clique, else 0.0

@dataclass(frozen=True)
class StageReport:
    """What one stage call did to one run."""
    stage: str
    kind: str
    run_id: int
    resumed: bool  # True when an existing run with identical params was continued
    computed: int  # captions (generations for `generate`) computed by this call
    skipped: int  # already in the run, not recomputed
    evals: int  # the run's total guided denoiser calls
    note: str = ""  # why a new run was started where an older one looked alike

    def summary(self) -> str:
        how = "resumed" if self.resumed else "new"
        return (f"{self.stage} {self.kind}: run {self.run_id} ({how}), {self.computed} computed, "
                f"{self.skipped} already done, {self.evals} guided calls in total"
                + (f"\n  {self.note}" if self.note else ""))


# -- selecting captions -------------------------------------------------------------------------
# what the stages accept as captions: a Selection, caption texts already in the store, or caption ids
Captions = Selection | Sequence[str] | Sequence[int]


def as_selection(store: Store, captions: Captions) -> Selection:
    """A Selection from itself, caption texts (see select_captions) or store caption ids (in the given order)."""
    if isinstance(captions, Selection):
        return captions
    if isinstance(captions, str):
        raise ScoreInputError("expected a list of captions or caption ids, got a single string")
    items = list(captions)
    if items and all(isinstance(c, int) and not isinstance(c, bool) for c in items):
        texts = []
        for cid in dict.fromkeys(items):
            texts.append(store.get_caption(cid).text)  # NotFoundError names an unknown id
        return select_captions(store, texts)
    if not all(isinstance(c, str) for c in items):
        raise ScoreInputError(f"expected caption texts or caption ids, got {sorted({type(c).__name__ for c in items})}")
    return select_captions(store, items)


def shard(items: Sequence[Any], offset: int = 0, limit: int | None = None) -> list[Any]:
    """items[offset : offset + limit]; an empty shard is an error (nothing would be written)."""
    if offset < 0 or (limit is not None and limit < 1):
        raise ScoreInputError(f"expected offset >= 0 and limit >= 1, got offset={offset}, limit={limit}")
    out = list(items[offset: None if limit is None else offset + limit])
    if not out:
        raise ScoreInputError(f"expected at least one item at offset {offset}, got none of {len(items)}")
    return out


# -- runs ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _OpenRun:
    id: int
    resumed: bool
    note: str


def _open_run(store: Store, stage: str, model: TextToImageModel, model_id: str,
              params: Mapping[str, Any]) -> _OpenRun:
    """The newest run of this stage, model and params, or a new one (looked up and created in one
    write transaction, so two shard processes starting together share one run). The params hold
    the model's fingerprint (weights, configs, dtype): new weights at the same path start a new
    run, and the note says why when an older run differs only by it."""
    params = {**params, "dtype": str(model.dtype).removeprefix("torch."),
              "model_fingerprint": model.fingerprint(store.digest_cache())}
    run = store.open_run(stage, model_id, params)
    note = ""
    if not run.resumed:
        def rest(p: Mapping[str, Any]) -> dict:
            return {k: v for k, v in p.items() if k not in ("model_fingerprint", "dtype")}
        older = [r for r in store.runs(stage=stage, model=model_id) if r.id != run.id and rest(r.params) == rest(params)]
        if older:
            note = (f"new run {run.id}: the model {model_id} is not the one run {older[-1].id} used (its weights, "
                    f"configs or dtype changed), so nothing of that run is reused")
    return _OpenRun(run.id, run.resumed, note)


class _EvalMeter:
    """Adds this session's guided calls to a run's stored count, batch by batch.

    Counts in half calls (a shared unconditional row is half a pair) and writes whole calls
    (rounded up) as an increment read and written inside the batch's transaction, so shard
    processes writing to the same run add up instead of overwriting each other."""

    def __init__(self, store: Store, model: TextToImageModel, run_id: int):
        self.store, self.model, self.run_id = store, model, run_id
        self.halves = 0
        self.written = 0  # whole calls already added to the run

    def commit(self, start: float, status: str = "running") -> None:
        """Count the calls since `start` (a model.evals reading); call inside the batch's transaction."""
        self.halves += round(2 * (self.model.evals - start))
        add = math.ceil(self.halves / 2) - self.written
        self.written += add
        self.store.finish_run(self.run_id, self.total() + add, status)

    def total(self) -> int:
        """The run's stored eval count."""
        return self.store.get_run(self.run_id).evals

    def finish(self) -> int:
        total = self.total()
        self.store.finish_run(self.run_id, total, "done")
        return total


def _model_id(model: TextToImageModel, model_id: str | None) -> str:
    return model_id if model_id is not None else (model.spec or model.name)


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
        raise ScoreInputError(f"expected score kinds among {', '.join(SCORES)}, got none")
    for k in list(kinds) + list(params):
        score_spec(k)
    batch_size = check_batch_size(batch_size)
    for k in kinds:  # fail before any run is written
        if score_spec(k)[2]:
            require_whitebox(model, k)
    captions = as_selection(store, captions)
    todo_all = shard(list(zip(captions.ids, captions.texts)), offset, limit)
    mid = _model_id(model, model_id)
    reports = []
    for kind in kinds:
        fn, default, _ = score_spec(kind)
        if kind == "ecs" and not model.whitebox:
            default = replace(default, seeds=())   # a closed model: the seeds its mapping holds
        p = params.get(kind, default)
        run = _open_run(store, "score", model, mid, score_params(kind, p))
        run_id, resumed = run.id, run.resumed
        with store.running(run_id):
            done = store.scored_caption_ids(run_id, kind)
            todo = [(cid, t) for cid, t in todo_all if cid not in done]
            meter = _EvalMeter(store, model, run_id)
            progress(f"{kind}", 0, len(todo))
            if engine is not None:   # Ray actors compute, this process merges their shards
                computed = engine.score(store, run_id, kind, p, todo, batch_size).computed
                todo = todo[:computed]   # for the report: rows this call computed
                progress(f"{kind}", len(todo), len(todo))
            for b in range(0, len(todo) if engine is None else 0, batch_size):
                chunk = todo[b:b + batch_size]
                start = model.evals
                res = fn(model, [t for _, t in chunk], p, batch_size=len(chunk))
                with store.transaction():
                    store.add_scores(run_id, kind, zip([cid for cid, _ in chunk], res.values.tolist()))
                    meter.commit(start)
                progress(f"{kind}", b + len(chunk), len(todo))
            evals = meter.finish()
        reports.append(StageReport("score", kind, run_id, resumed, len(todo), len(todo_all) - len(todo), evals,
                                   run.note))
    return reports


# -- ranking by a stored score --------------------------------------------------------------------
def latest_scores(store: Store, kind: str, model_id: str) -> dict[int, float]:
    """caption id -> value of the newest `score` run of this kind and model (a fingerprint, or a
    label naming the weights that last ran under it; never a merge of two models' runs)."""
    return store.latest_scores(kind, model_id, "score")


@dataclass(frozen=True)
class Ranked:
    rank: int  # 0 = highest score among the selection
    caption_id: int
    text: str
    score: float | None  # None: not ranked by a score


def rank_captions(store: Store, captions: Selection, by: str | None, model_id: str, k: int,
                  label: str | None = None) -> list[Ranked]:
    """The top-k (0 = all) captions of the selection by their stored `by` score of one model
    (model_id: its fingerprint, or a label naming the weights that last ran under it; label: how
    messages name it); by=None keeps the selection's own order (a closed model's images for every
    caption it has)."""
    if by is None:
        items = list(zip(captions.ids, captions.texts))[: k or None]
        return [Ranked(r, cid, t, None) for r, (cid, t) in enumerate(items)]
    if "+" in by:   # a rank fusion of stored scores (attack.scores.fusion): computed now, no network call
        from attack.scores.fusion import fuse
        fuse(store, by, model_id, label)
        scores = store.latest_scores(by, store.model_fingerprint(model_id) or model_id, "fuse")
    else:
        scores = latest_scores(store, by, model_id)
    scored = [(cid, t, scores[cid]) for cid, t in zip(captions.ids, captions.texts) if cid in scores]
    if not scored:
        raise ScoreInputError(f"expected {by} scores of model {label or model_id!r} for the selected captions, got "
                              f"none (run `python -m attack score --scores {by}` first)")
    order = top_k([v for _, _, v in scored], k)
    return [Ranked(r, scored[i][0], scored[i][1], scored[i][2]) for r, i in enumerate(order)]


# -- generation ----------------------------------------------------------------------------------
def generate_params(params: GenerateParams, sampler: str = SAMPLER) -> dict[str, Any]:
    """A generation run's identity: what makes an image (sampler, steps, guidance; the model's
    fingerprint is added by _open_run), not which captions or seeds were asked for, so growing
    --top-k or --seeds adds to the same run and generates only what is missing."""
    return {"sampler": sampler, "steps": params.steps, "guidance": params.guidance}


def _jobs(model: TextToImageModel, ranked: Sequence[Ranked], params: GenerateParams) -> list[tuple[Ranked, int]]:
    """(caption, seed) pairs to generate: every seed of params, or (seeds=()) the seeds the model
    holds images for, per caption."""
    if params.seeds:
        return [(r, int(s)) for r in ranked for s in params.seeds]
    out = []
    for r in ranked:
        held = model.seeds_for(r.text, params.steps)
        if held is None:
            raise ScoreInputError(f"expected seeds for {model.spec or model.name} (it can generate any), got none")
        out += [(r, s) for s in held]
    return out


def generate_stage(store: Store, model: TextToImageModel, captions: Captions,
                   params: GenerateParams = GenerateParams(), *, by: str = "dcs", score_model: str | None = None,
                   model_id: str | None = None, batch_size: int = 16, offset: int = 0, limit: int | None = None,
                   progress: Progress = no_progress, engine: Any = None) -> StageReport:
    """J seeds x S Heun steps for the top-K captions by their stored `by` score (of `score_model`,
    default this model; by=None: the captions in their own order); offset/limit shard the ranked
    top-K list. Images are stored at the model's native resolution (a closed model's files as
    they are) as lossless PNG; (caption, seed) pairs the run holds are skipped."""
    if params.steps < 1 or (not params.seeds and model.whitebox):
        raise ScoreInputError(f"expected at least one seed and one step, got seeds={params.seeds}, steps={params.steps}")
    if len(set(params.seeds)) != len(params.seeds):
        raise ScoreInputError(f"expected distinct seeds, got {params.seeds}")
    batch_size = check_batch_size(batch_size)
    mid = _model_id(model, model_id)
    captions = as_selection(store, captions)
    key = score_model or model.fingerprint(store.digest_cache())    # this model's scores, whatever their path
    ranked = shard(rank_captions(store, captions, by, key, params.top_k, label=score_model or mid), offset, limit)
    run = _open_run(store, "generate", model, mid, generate_params(params, model.sampler))
    run_id, resumed = run.id, run.resumed
    with store.running(run_id):
        have = store.generated_pairs(run_id)
        jobs = _jobs(model, ranked, params)
        todo = [(r, s) for r, s in jobs if (r.caption_id, s) not in have]
        meter = _EvalMeter(store, model, run_id)
        progress("generate", 0, len(todo))
        guidance = params.guidance if model.whitebox else None   # unknown for a closed model
        if engine is not None:   # Ray actors generate, this process merges their shards
            def meta(row: dict) -> dict:
                return {"guidance": guidance, "rank": int(row["rank"]), "score_kind": by, "score": row["score"]}
            computed = engine.generate(store, run_id, model.sampler, todo, params.steps, params.guidance, meta,
                                       batch_size).computed
            todo = todo[:computed]   # for the report: generations this call computed
            progress("generate", len(todo), len(todo))
        for b in range(0, len(todo) if engine is None else 0, batch_size):
            chunk = todo[b:b + batch_size]
            start = model.evals
            images = model.images([r.text for r, _ in chunk], [s for _, s in chunk], steps=params.steps,
                                  guidance=params.guidance)
            shas = [store.put_image(img) for img in images]  # files first: harmless if orphaned
            with store.transaction():
                for (r, s), sha in zip(chunk, shas):
                    store.add_generation(r.caption_id, run_id, s, params.steps, model.sampler, sha,
                                         {"guidance": guidance, "rank": r.rank, "score_kind": by, "score": r.score})
                meter.commit(start)
            progress("generate", b + len(chunk), len(todo))
        return StageReport("generate", model.sampler, run_id, resumed, len(todo), len(jobs) - len(todo),
                           meter.finish(), run.note)


# -- Carlini et al. post-filter -------------------------------------------------------------------
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
    mid = _model_id(model, model_id)
    captions = as_selection(store, captions)
    if by is None:
        items = list(zip(captions.ids, captions.texts))
    else:
        key = score_model or model.fingerprint(store.digest_cache())
        items = [(r.caption_id, r.text) for r in rank_captions(store, captions, by, key, top_k, label=score_model or mid)]
    items = shard(items, offset, limit)
    run_params = {"score": "carlini", "params": asdict(params), "by": by, "top_k": top_k if by else None,
                  "score_model": (score_model or mid) if by else None}
    run = _open_run(store, "carlini", model, mid, run_params)
    run_id, resumed = run.id, run.resumed
    with store.running(run_id):
        done = store.scored_caption_ids(run_id, CARLINI_FLAG)  # the flag is written last, with the size
        todo = [(cid, t) for cid, t in items if cid not in done]
        meter = _EvalMeter(store, model, run_id)
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
