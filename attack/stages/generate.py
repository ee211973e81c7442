"""Candidate generation: the top-K captions by a score, J seeds x S steps each.

The paper generates for the captions its attack ranks highest and builds the ground truth only
for those (section 4, "Evaluation"). This module picks them and yields the generations batch by
batch, so a caller (the store's writer) can persist them as they come and resume by skipping
what it already has; `generate_stage` is that writer for a store.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from attack.models.base import TextToImageModel
from attack.progress import Progress, no_progress
from attack.scores.base import ScoreInputError, check_batch_size, check_captions
from attack.stages.claims import shared_batches
from attack.stages.rank import Ranked, rank_captions, top_k
from attack.stages.runs import Captions, EvalMeter, StageReport, as_selection, model_id_of, open_run, shard
from store import Store


@dataclass(frozen=True)
class GenerateParams:
    """top_k captions (0 = all), one generation per seed, `steps` Heun steps with `guidance`.
    seeds=() takes, per caption, the seeds the model holds images for (a closed model)."""
    top_k: int = 100
    seeds: tuple[int, ...] = (0, 1, 2, 3)
    steps: int = 16
    guidance: float = 7.5


@dataclass(frozen=True)
class Generation:
    """One generated image [3,H,W] (float32, [0,1], CPU) and where it came from."""
    caption: str
    caption_index: int  # position in the caption list that was ranked
    rank: int  # 0 = highest score
    score: float
    seed: int
    steps: int
    guidance: float
    image: torch.Tensor
    evals: int  # guided denoiser calls spent on this image (0 for stored images)


def iter_generations(model: TextToImageModel, captions: Sequence[str], scores: Sequence[float] | torch.Tensor,
                     params: GenerateParams = GenerateParams(), *, batch_size: int = 16,
                     skip: set[tuple[str, int]] | None = None) -> Iterator[list[Generation]]:
    """Generate for the top-K captions, yielding one list per network batch (in rank order).

    `skip` holds (caption, seed) pairs already generated (to resume); they are not redone."""
    captions = check_captions(captions)
    batch_size = check_batch_size(batch_size)
    if len(scores) != len(captions):
        raise ScoreInputError(f"expected one score per caption, got {len(scores)} scores for {len(captions)} captions")
    if not params.seeds or params.steps < 1:
        raise ScoreInputError(f"expected at least one seed and one step, got seeds={params.seeds}, steps={params.steps}")
    vals = scores.tolist() if isinstance(scores, torch.Tensor) else list(scores)
    skip = skip or set()
    jobs = [(rank, i, s) for rank, i in enumerate(top_k(vals, params.top_k)) for s in params.seeds
            if (captions[i], int(s)) not in skip]
    for b in range(0, len(jobs), batch_size):
        chunk = jobs[b:b + batch_size]
        out = model.sample([captions[i] for _, i, _ in chunk], [s for _, _, s in chunk],
                           steps=params.steps, guidance=params.guidance)
        yield [Generation(captions[i], i, rank, float(vals[i]), int(s), params.steps, params.guidance,
                          out.images[n], int(out.evals)) for n, (rank, i, s) in enumerate(chunk)]


def generate_top_k(model: TextToImageModel, captions: Sequence[str], scores: Sequence[float] | torch.Tensor,
                   params: GenerateParams = GenerateParams(), *, batch_size: int = 16) -> list[Generation]:
    """All generations of `iter_generations`, in rank then seed order."""
    return [g for batch in iter_generations(model, captions, scores, params, batch_size=batch_size) for g in batch]


SAMPLER = "heun-karras"  # what TextToImageModel.sample runs


# -- the stage: generations written to the store, resumable ---------------------------------------
def generate_params(params: GenerateParams, sampler: str = SAMPLER) -> dict[str, Any]:
    """A generation run's identity: what makes an image (sampler, steps, guidance; the model's
    fingerprint is added by open_run), not which captions or seeds were asked for, so growing
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
    mid = model_id_of(model, model_id)
    captions = as_selection(store, captions)
    key = score_model or model.fingerprint(store.digest_cache())    # this model's scores, whatever their path
    ranked = shard(rank_captions(store, captions, by, key, params.top_k, label=score_model or mid), offset, limit)
    run = open_run(store, "generate", model, mid, generate_params(params, model.sampler))
    run_id, resumed = run.id, run.resumed
    with store.running(run_id):
        have = store.generated_pairs(run_id)
        jobs = _jobs(model, ranked, params)
        todo = [(r, s) for r, s in jobs if (r.caption_id, s) not in have]
        meter = EvalMeter(store, model, run_id)
        progress("generate", 0, len(todo))
        # the scale the images are made at (a mitigated model may fix its own); unknown for a closed model
        guidance = model.guidance_for(params.guidance) if model.whitebox else None
        if engine is not None:   # Ray actors generate, this process merges their shards
            def meta(row: dict) -> dict:
                return {"guidance": guidance, "rank": int(row["rank"]), "score_kind": by, "score": row["score"]}
            computed = engine.generate(store, run_id, model.sampler, todo, params.steps, params.guidance, meta,
                                       batch_size).computed
            progress("generate", computed, computed)
        else:                    # this process generates what it claims; another on the store, the rest
            computed = 0

            def generated(keys):
                pairs = [tuple(int(x) for x in k.split(":")) for k in keys]
                return {f"{c}:{s}" for c, s in store.generated_among(run_id, pairs)}

            for chunk in shared_batches(store, run_id, todo, _pair_key, batch_size, generated):
                start = model.evals
                images = model.images([r.text for r, _ in chunk], [s for _, s in chunk], steps=params.steps,
                                      guidance=params.guidance)
                # files first (harmless if orphaned), each with its compare view: retrieval decodes none again
                shas = [store.put_image(img, compare_view=True) for img in images]
                with store.transaction():
                    for (r, s), sha in zip(chunk, shas):
                        store.add_generation(r.caption_id, run_id, s, params.steps, model.sampler, sha,
                                             {"guidance": guidance, "rank": r.rank, "score_kind": by,
                                              "score": r.score})
                    meter.commit(start)
                computed += len(chunk)
                progress("generate", computed, len(todo))
        return StageReport("generate", model.sampler, run_id, resumed, computed, len(jobs) - computed,
                           meter.finish(), run.note)


def _pair_key(job: tuple[Ranked, int]) -> str:
    """A (caption, seed) generation as a work unit's name."""
    return f"{job[0].caption_id}:{job[1]}"
