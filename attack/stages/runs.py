"""What the store-writing stages share: their report, the captions they accept, sharding, and
the run each call writes under.

Each stage takes a Store, a loaded model, the captions to work on (a `Selection`, in a stable
order: the caption file's or the store's id order) and a frozen params dataclass, and writes its
results under one run per (stage, kind). The run's params JSON is the stage's identity: a later
call with the same stage, model and params reuses that run and skips what it already holds, so
a run killed midway (or sharded with offset/limit) resumes where it stopped and ends with the
same values as an uninterrupted run. Writes are one short transaction per batch (values + the
run's running eval count), so a kill loses at most the batch in flight.

Evals are stored in guided denoiser calls (a cond + uncond pair is one, as `model.evals`),
rounded up to a whole call; a run resumed several times holds the sum over its sessions.
`attack.pipeline.Pipeline` runs the stages in order.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from attack.errors import ScoreInputError
from attack.models.base import TextToImageModel
from attack.selection import Selection, select_captions
from store import Store


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


def open_run(store: Store, stage: str, model: TextToImageModel, model_id: str,
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


class EvalMeter:
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


def model_id_of(model: TextToImageModel, model_id: str | None) -> str:
    return model_id if model_id is not None else (model.spec or model.name)
