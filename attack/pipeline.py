"""One pipeline: score -> fuse -> generate -> retrieve -> label over a store, for every front end.

`python -m attack run`, the demo build and a notebook all call `Pipeline(...).run(captions)`;
it owns the order of the stages, the sharding rule (a shard only scores: the top-K is over every
caption), the skips (no scores for a closed model without one-step images, no retrieval without
training images) and progress. Every stage resumes on its own (attack.stages.runs), so running
the same pipeline again continues where a killed one stopped.

    from store import Store
    from attack.ingest import ingest
    from attack.models import load_model
    from attack.pipeline import Pipeline
    with Store.open("data/mine") as store:
        ingest(store, "captions.txt", images="training_images/")
        report = Pipeline(store, load_model("demo", "cpu")).run()   # every caption of the store
    print("\n".join(report.lines))
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from attack.errors import ScoreInputError
from attack.models.base import TextToImageModel
from attack.progress import Progress, no_progress
from attack.selection import select_captions
from attack.stages.generate import GenerateParams
from attack.stages.retrieve import RetrieveParams
from attack.stages.runs import Captions, StageReport, as_selection, model_id_of, shard
from store import Store

STAGES = ("score", "fuse", "generate", "retrieve", "label")


@dataclass(frozen=True)
class PipelineParams:
    """scores: kinds to compute (None: dcs for a model with weights; for a closed model, ecs when
    it holds one-step images, else none); fusions: rank fusions of them (no network call); by:
    what ranks captions for generation ("auto": the first score, or the selection's order when
    there is none; "none": the selection's order; or a score kind or fusion of this run);
    generate: K x J x S (None: generate_defaults(model)); retrieve, preset: the retrieval and the
    label rule; batch sizes in captions (generations) and generations per embedding batch."""
    scores: Optional[tuple[str, ...]] = None
    fusions: tuple[str, ...] = ()
    by: str = "auto"
    generate: Optional[GenerateParams] = None
    retrieve: RetrieveParams = field(default_factory=RetrieveParams)
    preset: str = "verbatim"
    batch_size: int = 16
    retrieve_batch_size: int = 64


@dataclass
class PipelineReport:
    """What one pipeline call did, stage by stage (None: the stage did not run), and its lines in order."""
    scores: list[StageReport] = field(default_factory=list)
    fusions: list[Any] = field(default_factory=list)
    generate: Optional[StageReport] = None
    retrieve: Any = None
    label: Any = None
    lines: list[str] = field(default_factory=list)


def default_scores(model: TextToImageModel) -> tuple[str, ...]:
    """dcs for a model with weights; for a closed model, ecs when its mapping holds one-step
    (steps=1) images, else none (generation then takes every caption it has images for)."""
    if model.whitebox:
        return ("dcs",)
    return ("ecs",) if 1 in model.steps_held else ()


def generate_defaults(model: TextToImageModel, top_k: Optional[int] = None, seeds: Optional[int] = None,
                      steps: Optional[int] = None, guidance: float = 7.5) -> GenerateParams:
    """K x J x S with the defaults filled in: 100 x 4 x 16 for a model with weights; a closed
    model (images:) takes every caption it has, the seeds its mapping holds and its largest steps."""
    closed = not model.whitebox
    steps = steps if steps is not None else (max(model.steps_held) if closed else 16)
    seed_list = tuple(range(seeds)) if seeds is not None else (() if closed else (0, 1, 2, 3))
    top_k = top_k if top_k is not None else (0 if closed else 100)
    return GenerateParams(top_k=top_k, seeds=seed_list, steps=steps, guidance=guidance)


def default_by(store: Store, model: TextToImageModel) -> Optional[str]:
    """What ranks captions for `generate` when not told: the first score computed for this model
    (a run that finished: a failed one ranks nothing); none for a closed model with no scores
    (its images are taken for every caption it has), else dcs."""
    runs = store.runs(stage="score", fingerprint=model.fingerprint(store.digest_cache()))
    done = [r for r in runs if r.status == "done"]
    if done:
        return done[0].params.get("score")
    return None if not model.whitebox else "dcs"


def planned_scores(model: TextToImageModel, params: PipelineParams) -> tuple[str, ...]:
    """The score kinds a pipeline computes: params.scores, else default_scores(model)."""
    return params.scores if params.scores is not None else default_scores(model)


def planned_by(model: TextToImageModel, params: PipelineParams) -> Optional[str]:
    """The score (or fusion) that ranks captions for generation; None: the selection's order."""
    if params.by == "auto":
        scores = planned_scores(model, params)
        return scores[0] if scores else None
    return None if params.by == "none" else params.by


def check_plan(model: TextToImageModel, params: PipelineParams, stages: Sequence[str] = STAGES) -> None:
    """Refuse, before any write, stages the pipeline does not have, a `by` this run cannot rank by,
    or a label preset that does not exist (a typo would otherwise surface after hours of scoring)."""
    unknown = [s for s in stages if s not in STAGES]
    if unknown:
        raise ScoreInputError(f"expected stages among {', '.join(STAGES)}, got {', '.join(map(repr, unknown))}")
    if "label" in stages:
        from attack.stages.rules import preset

        preset(params.preset)
    by, scores = planned_by(model, params), planned_scores(model, params)
    if "score" in stages and "generate" in stages and by is not None and not set(by.split("+")) <= set(scores):
        raise ScoreInputError(f"--by: expected one of the scores this run computes ({','.join(scores) or 'none'}), "
                              f"a fusion of them (dcs+anisotropy) or none, got {by!r}")


class Pipeline:
    """The stages over one store and one model. model_id: how runs name the model (default its
    spec); embedder: a loaded retrieval embedder (default: loaded from params.retrieve); engine /
    retrieve_engine: None (this process) or a RayEngine (attack.engine.choose_engine); index: an
    external autofaiss / clip-retrieval index folder to search; say: called with each stage's
    summary line as it finishes."""

    def __init__(self, store: Store, model: TextToImageModel, params: PipelineParams = PipelineParams(), *,
                 model_id: Optional[str] = None, embedder: Any = None, engine: Any = None,
                 retrieve_engine: Any = None, index: Any = None, recompute: bool = False,
                 progress: Progress = no_progress, say: Callable[[str], None] = lambda line: None):
        self.store, self.model, self.params = store, model, params
        self.model_id = model_id_of(model, model_id)
        self.embedder, self.engine, self.retrieve_engine, self.index = embedder, engine, retrieve_engine, index
        self.recompute, self.progress, self._say = recompute, progress, say

    def scores(self) -> tuple[str, ...]:
        return planned_scores(self.model, self.params)

    def by(self) -> Optional[str]:
        return planned_by(self.model, self.params)

    def run(self, captions: Optional[Captions] = None, stages: Sequence[str] = STAGES, *, offset: int = 0,
            limit: Optional[int] = None) -> PipelineReport:
        """Run `stages` (in the pipeline's order) on the captions (default: every caption of the
        store, by id); offset/limit shard the scored list, and a shard stops after scoring."""
        check_plan(self.model, self.params, stages)
        if "retrieve" in stages and self.embedder is None:   # a bad spec or a missing checkpoint fails now
            from attack.images.embed import load_embedder

            self.embedder = load_embedder(self.params.retrieve.embedder)
        sel = select_captions(self.store) if captions is None else as_selection(self.store, captions)
        shard(list(sel.ids), offset, limit)            # an empty shard fails before any write
        out = PipelineReport()
        if "score" in stages:
            self._score(sel, offset, limit, out)
        if "fuse" in stages:
            self._fuse(out)
        later = [s for s in ("generate", "retrieve", "label") if s in stages]
        if later and (offset > 0 or limit is not None):
            self._line(out, self._shard_note(offset, limit))
            return out
        if "generate" in stages:
            out.generate = self._generate(sel)
            self._line(out, out.generate.summary())
        if "retrieve" in stages or "label" in stages:
            self._retrieve_and_label(sel, stages, out)
        return out

    # -- the stages ---------------------------------------------------------------------------------
    def _line(self, out: PipelineReport, line: str) -> None:
        out.lines.append(line)
        self._say(line)

    def _score(self, sel: Any, offset: int, limit: Optional[int], out: PipelineReport) -> None:
        from attack.stages.score import score_stage

        scores = self.scores()
        if not scores:
            self._line(out, f"score: skipped, {self.model.spec} holds no one-step (steps=1) images for ECS and no "
                            f"weights for the whitebox scores; every caption it has images for is generated")
            return
        out.scores = score_stage(self.store, self.model, sel, scores, model_id=self.model_id,
                                 batch_size=self.params.batch_size, offset=offset, limit=limit,
                                 progress=self.progress, engine=self.engine)
        for r in out.scores:
            self._line(out, r.summary())

    def _fuse(self, out: PipelineReport) -> None:
        from attack.scores.fusion import fuse

        for name in self.params.fusions:
            out.fusions.append(fuse(self.store, name, self.model_id))
            self._line(out, out.fusions[-1].summary())

    def _shard_note(self, offset: int, limit: Optional[int]) -> str:
        by = self.by() or "none"
        top_k = (self.params.generate or generate_defaults(self.model)).top_k
        return (f"generate, retrieve, label: skipped, this call scored a shard (--offset {offset}"
                f"{f' --limit {limit}' if limit else ''}); once every shard is scored, run "
                f"`python -m attack generate --store {self.store.path} --model {self.model.spec} --by {by} "
                f"--top-k {top_k}` (on any machine, with its own path to these weights: runs are keyed "
                f"by the weights' content), then retrieve and label")

    def _generate(self, sel: Any) -> StageReport:
        from attack.stages.generate import generate_stage

        return generate_stage(self.store, self.model, sel, self.params.generate or generate_defaults(self.model),
                              by=self.by(), model_id=self.model_id, batch_size=self.params.batch_size,
                              progress=self.progress, engine=self.engine)

    def _retrieve_and_label(self, sel: Any, stages: Sequence[str], out: PipelineReport) -> None:
        from attack.stages.labels import label_stage
        from attack.stages.retrieve import retrieve_stage

        if not self.store.training_set_version().count and self.index is None:
            self._line(out, "retrieve, label: skipped, the store holds no training images to compare with "
                            "(add them with `ingest --images`, or pass --index)")
            return
        ids = list(sel.ids)
        if "retrieve" in stages:
            out.retrieve = retrieve_stage(self.store, self.params.retrieve, caption_ids=ids, external=self.index,
                                          embedder=self.embedder, batch_size=self.params.retrieve_batch_size,
                                          recompute=self.recompute, progress=self.progress,
                                          engine=self.retrieve_engine)
            self._line(out, out.retrieve.summary())
        if "label" in stages:
            out.label = label_stage(self.store, self.params.preset, caption_ids=ids, recompute=self.recompute,
                                    progress=self.progress)
            self._line(out, out.label.summary())
