"""--engine ray: the score and generate stages on a Ray cluster (Ray Data), same results as local.

Flow of one (stage, kind) run, under STORE/ray/<stage>-run<id>-<kind>/:
1. merge: output shards a killed driver left (out/*.parquet) go into SQLite first; a shard that
   cannot be read (cut off mid-write) is deleted and its rows are computed again;
2. the work still missing from the run is written as input shards (in/part-NNNNN.parquet, one
   row group each, a whole number of batches per shard);
3. ray.data.read_parquet(in/) -> map_batches(an actor class holding the model adapter,
   compute=ActorPoolStrategy(size=N, BLOCKS_IN_FLIGHT per actor), num_gpus=1 per actor on CUDA,
   batch_size=None: one block per shard) -> write_parquet(out/);
4. this process, the only writer, merges out/ into SQLite through Store methods, then removes
   the folder.
Rows carry their position in the local engine's work list, and an actor runs the score on
exactly the local engine's batches (position // batch_size), so every caption gets the same
noise and the same batch as `--engine local`: the values are identical. Actors are restarted
and their tasks retried when a worker dies; rows already in the run are never written twice.
Each actor loads the model once, in its constructor (Ray Data builds one per actor of the pool),
and reports every block it computes (BlockStat: its times, and how many models its process has
loaded) in the block's first output row; ShardRun.blocks holds them for RayEngine.observe.
"""
from __future__ import annotations

import json
import math
import os
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from attack.engine.cluster import LOG, quiet_shutdown, ray_output_to, reap, record
from attack.errors import AttackError
from attack.runtime import keep_freed_memory
from store import Store

SHARD_BATCHES = 8           # default batches per input shard: one Ray block, the unit of retry and resume
CRASH_ONCE_ENV = "VERBATIM_RAY_CRASH_ONCE"   # tests: a file whose presence makes one actor die once
BLOCKS_IN_FLIGHT = 2        # blocks sent to an actor ahead of its results (see _run_ray)
BLOCK_COLUMN = "block"      # output column: the block's BlockStat (JSON) on its first row, "" on the others
_MODEL_LOADS = 0            # models (or embedders) loaded by this process: an actor's reports carry it


class EngineError(AttackError):
    """The Ray engine cannot run as asked (no ray installed, bad cluster address, bad options)."""


@dataclass(frozen=True)
class RayOptions:
    """address: an existing cluster (ray start --head) or None for a local one; workers: actors
    (one model copy each); threads: torch threads per actor on CPU; device: where actors run;
    shard_batches: batches per shard (larger: less per-block overhead, coarser retry and resume)."""
    address: Optional[str] = None
    workers: int = 2
    threads: int = 1
    device: str = "cpu"
    shard_batches: int = SHARD_BATCHES

    def __post_init__(self) -> None:
        if min(self.workers, self.threads, self.shard_batches) < 1:
            raise EngineError(f"expected workers, threads and shard_batches >= 1, got {self.workers}, "
                              f"{self.threads}, {self.shard_batches}")


def _count_load() -> None:
    """Every model or embedder an actor loads goes through a spec's __call__, which counts it here."""
    global _MODEL_LOADS
    _MODEL_LOADS += 1


@dataclass(frozen=True)
class ModelSpec:
    """How an actor loads the driver's model: the arguments of attack.models.load_model."""
    spec: str
    dtype: Optional[str] = None
    config: Optional[str] = None
    variant: Optional[str] = None

    def __call__(self, device: str) -> Any:
        from attack.models import load_model

        _count_load()
        return load_model(self.spec, device, dtype=self.dtype, config=self.config, variant=self.variant)


@dataclass(frozen=True)
class EmbedderSpec:
    """How an actor loads the retrieval embedder (attack.images.embed.load_embedder)."""
    spec: str

    def __call__(self, device: str) -> Any:
        from attack.images.embed import load_embedder

        _count_load()
        return load_embedder(self.spec, device)


def connect(opts: RayOptions, folder: Path) -> None:
    """Join --address, or start a local cluster; a cluster this process already joined is reused.
    folder (STORE/logs): a local start first reaps what a killed driver on this store left behind,
    then records its own processes there; Ray's log lines go to folder/ray.log (attack.engine.cluster)."""
    try:
        import ray
    except ImportError as e:
        raise EngineError(f"expected the ray package for --engine ray (pip install 'ray[data]>=2.51'), "
                          f"got {e}") from None
    if ray.is_initialized():
        return
    if not opts.address:
        reap(folder)
    try:
        if opts.address:
            ray.init(address=opts.address, log_to_driver=False, runtime_env=runtime_env(remote=True))
        else:
            ray.init(num_cpus=max(opts.workers * opts.threads, os.cpu_count() or 1), include_dashboard=False,
                     log_to_driver=False, runtime_env=runtime_env())
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise EngineError(f"--address {opts.address}: expected a running Ray cluster, got {e}") from None
    _log_to(folder / LOG)
    if not opts.address:
        record(folder)
        quiet_shutdown(folder)


def _log_to(log: Path) -> None:
    """Ray's Python loggers write to the log file, whatever the fds point at later."""
    import logging

    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ray", "ray.data"):
        logger = logging.getLogger(name)
        logger.handlers = [handler]
        logger.propagate = False


def runtime_env(remote: bool = False, env: Optional[dict[str, str]] = None) -> dict:
    """Workers import attack and store: on this machine from this checkout (PYTHONPATH), on a
    cluster joined by --address from a copy Ray uploads (py_modules)."""
    import attack
    import store as store_pkg

    if remote:
        return {"py_modules": [str(Path(attack.__file__).parent), str(Path(store_pkg.__file__).parent)],
                "excludes": ["__pycache__", "*.pyc"], "env_vars": dict(env or {})}
    root = str(Path(attack.__file__).resolve().parents[1])
    path = os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p)
    return {"env_vars": {"PYTHONPATH": path, **(env or {})}}


# -- the actor ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockStat:
    """One block as the actor that computed it reports it, in wall-clock seconds (time.time(), so
    comparable across the processes of one host): when the actor's constructor began (init) and
    ended with the model loaded (ready), when the block came in (start) and went out (end), its
    rows, how many models that actor's process had loaded by then (loads: 1 when the model is
    loaded once per actor) and the CPU seconds the process spent on the block (cpu < end - start:
    it waited for a core). actor: host:pid of the actor's process (a restarted actor is another)."""
    actor: str
    init: float
    ready: float
    start: float
    end: float
    rows: int
    loads: int
    cpu: float = 0.0

    @classmethod
    def of_rows(cls, rows: Sequence[dict]) -> tuple["BlockStat", ...]:
        """The blocks whose rows are among `rows` (output rows of the actors), by start time."""
        return tuple(sorted((cls(**json.loads(r[BLOCK_COLUMN])) for r in rows if r.get(BLOCK_COLUMN)),
                            key=lambda b: (b.start, b.actor)))


class _Worker:
    """Holds one model adapter, loaded once in its constructor: Ray Data builds one _Worker per
    actor of the pool and calls it on each block; runs `work(model, rows)` on each local-engine
    batch of a block and reports the block (BlockStat) in the first output row."""

    def __init__(self, model: Callable[[str], Any], device: str, threads: int, batch_size: int,
                 work: Callable[[Any, list[dict]], list[dict]]):
        init = time.time()
        import torch
        if device == "cpu":
            torch.set_num_threads(threads)   # N actors of one thread each: they scale, threads fight
        keep_freed_memory()      # this actor's own process: see attack.runtime
        self.model, self.batch_size, self.work, self.calls = model(device), batch_size, work, 0
        self.actor, self.init, self.ready = f"{socket.gethostname()}:{os.getpid()}", init, time.time()

    def __call__(self, block: dict) -> dict:
        start, cpu = time.time(), time.process_time()
        self.calls += 1
        marker = os.environ.get(CRASH_ONCE_ENV)
        if marker and self.calls == 2:
            try:
                os.rename(marker, marker + ".fired")    # atomic: one actor of the pool dies, once
                os._exit(1)
            except FileNotFoundError:
                pass
        rows = [dict(zip(block, vals)) for vals in zip(*block.values())]
        rows.sort(key=lambda r: r["pos"])
        out: list[dict] = []
        for b in sorted({int(r["pos"]) // self.batch_size for r in rows}):
            group = [r for r in rows if int(r["pos"]) // self.batch_size == b]
            start_evals = getattr(self.model, "evals", 0.0)      # an embedder spends no denoiser calls
            done = self.work(self.model, group)
            each = (getattr(self.model, "evals", 0.0) - start_evals) / len(group)
            out += [dict(d, evals=each) for d in done]
        if not out:
            return {}
        stat = BlockStat(self.actor, self.init, self.ready, start, time.time(), len(out), _MODEL_LOADS,
                         time.process_time() - cpu)
        cols = {k: [d[k] for d in out] for k in out[0]}
        cols[BLOCK_COLUMN] = [json.dumps(stat.__dict__)] + [""] * (len(out) - 1)
        return cols


def _quiet_ray_data() -> None:
    """The stage prints its own progress: no Ray Data bars or per-10-s progress logs."""
    import logging

    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    # the V1 parquet reader makes one read task per file with override_num_blocks (V2 lists every
    # file in one block, and one actor then reads them all)
    ctx.use_datasource_v2 = False
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def _run_ray(inputs: Path, outputs: Path, model: Callable[[str], Any], opts: RayOptions, batch_size: int,
             work: Callable[[Any, list[dict]], list[dict]], shards: int) -> None:
    import ray

    _quiet_ray_data()

    gpu = opts.device.startswith("cuda")
    # On CPU the pool size is the CPU budget (N actors x threads): reserving it in Ray as well
    # starves the small list/read/write tasks on a cluster of exactly N CPUs (they wait forever
    # behind the actors). On GPU each actor holds one GPU.
    # BLOCKS_IN_FLIGHT blocks per actor: the next one waits at the actor while it computes one (with
    # one, each actor idled between blocks until the driver's executor noticed and sent the next);
    # not Ray's default of 4, which queues several on whichever actor is ready first, and with a few
    # large blocks one actor ends up doing them all
    pool = ray.data.ActorPoolStrategy(size=opts.workers, max_tasks_in_flight_per_actor=BLOCKS_IN_FLIGHT)
    ds = ray.data.read_parquet(str(inputs), num_cpus=0, override_num_blocks=shards)   # one block a shard
    # Ray Data's actor pools default to max_restarts=-1, max_task_retries=-1: a dead worker is
    # replaced and its block retried, which is what resume-without-duplicates needs
    ds = ds.map_batches(_Worker, fn_constructor_args=(model, "cuda" if gpu else "cpu", opts.threads, batch_size,
                                                      work),
                        batch_size=None, batch_format="numpy", compute=pool,
                        num_gpus=1 if gpu else 0, num_cpus=0)
    try:
        ds.write_parquet(str(outputs), ray_remote_args={"num_cpus": 0}, concurrency=1)   # one writer process
    except ray.exceptions.RayError as e:
        # what the actors wrote is kept: the next call merges it and computes the rest
        first = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        raise EngineError(f"expected the Ray actors to finish, got {type(e).__name__}: {first}; the shards "
                          f"written so far stay in {outputs.parent} and a rerun resumes from them") from None


# -- shards ---------------------------------------------------------------------------------------
def work_dir(store: Store, stage: str, run_id: int, kind: str) -> Path:
    return store.path / "ray" / f"{stage}-run{run_id}-{kind}"


def write_inputs(folder: Path, columns: dict[str, list], batch_size: int, shard_batches: int = SHARD_BATCHES) -> int:
    """The work list as parquet shards of `shard_batches` whole batches (one row group each);
    returns the number of shards. Old inputs are replaced: they describe an earlier work list."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    n = len(next(iter(columns.values())))
    rows = shard_batches * batch_size
    for i, start in enumerate(range(0, n, rows)):
        part = pa.table({k: v[start:start + rows] for k, v in columns.items()})
        pq.write_table(part, folder / f"part-{i:05d}.parquet", row_group_size=rows)
    return math.ceil(n / rows)


def read_outputs(folder: Path, warn: Callable[[str], None]) -> list[dict]:
    """Rows of every readable output shard; a shard cut off by a killed driver is removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows: list[dict] = []
    for f in sorted(folder.glob("*.parquet")) if folder.is_dir() else ():
        try:
            rows += pq.read_table(f).to_pylist()
        except (OSError, pa.ArrowException) as e:
            warn(f"{f}: unreadable output shard ({type(e).__name__}), its rows are computed again")
            f.unlink()
    return rows


@dataclass(frozen=True)
class ShardRun:
    """What one engine call did: rows merged from shards an earlier driver left, rows asked of
    the actors, rows their shards held (== computed: none missing, none twice), input shards;
    the blocks as the actors reported them, and the driver's wall clock (time.time()) when the
    Ray run began (the cluster joined, the input shards written) and when its last shard was written."""
    merged_before: int
    computed: int
    rows_out: int
    shards: int
    blocks: tuple[BlockStat, ...] = ()
    began: float = 0.0
    ended: float = 0.0


def run_sharded(store: Store, folder: Path, todo: Callable[[], dict[str, list]], merge: Callable[[list[dict]], int],
                model: Callable[[str], Any], opts: RayOptions, batch_size: int,
                work: Callable[[Any, list[dict]], list[dict]],
                warn: Callable[[str], None] = lambda m: None) -> ShardRun:
    """Steps 1-4 of the module docstring. `todo()` lists the missing work as columns (with `pos`),
    `merge(rows)` writes output rows not yet in the run and returns how many it wrote."""
    merged = merge(read_outputs(folder / "out", warn))
    columns = todo()
    n = len(columns["pos"])
    shards, rows_out, blocks, began, ended = 0, 0, (), 0.0, 0.0
    if n:
        shutil.rmtree(folder / "out", ignore_errors=True)   # merged above: only this call's shards below
        shards = write_inputs(folder / "in", columns, batch_size, opts.shard_batches)
        logs = store.path / "logs"    # Ray's log and the record of its processes; ray/ holds shards only
        with ray_output_to(logs):
            connect(opts, logs)
            began = time.time()
            _run_ray(folder / "in", folder / "out", model, opts, batch_size, work, shards)
            ended = time.time()
            if not opts.address:
                record(logs)          # again, with the actors and agents started since
        rows = read_outputs(folder / "out", warn)
        rows_out, blocks = len(rows), BlockStat.of_rows(rows)
        merge(rows)
    shutil.rmtree(folder, ignore_errors=True)
    return ShardRun(merged, n, rows_out, shards, blocks, began, ended)


# -- the stages' work ------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreWork:
    """A score on one batch: caption_id, value (float64 of the float32 score)."""
    kind: str
    params: Any

    def __call__(self, model: Any, rows: list[dict]) -> list[dict]:
        from attack.scores import score_spec

        fn = score_spec(self.kind)[0]
        res = fn(model, [str(r["text"]) for r in rows], self.params, batch_size=len(rows))
        return [{"caption_id": int(r["caption_id"]), "value": float(v)} for r, v in zip(rows, res.values.tolist())]


@dataclass(frozen=True)
class GenerateWork:
    """J seeds x S steps on one batch: the image as raw HxWx3 uint8 bytes with its shape."""
    steps: int
    guidance: float

    def __call__(self, model: Any, rows: list[dict]) -> list[dict]:
        images = model.images([str(r["text"]) for r in rows], [int(r["seed"]) for r in rows], steps=self.steps,
                              guidance=self.guidance)
        return [{"caption_id": int(r["caption_id"]), "seed": int(r["seed"]), "rank": int(r["rank"]),
                 "score": r["score"], "pixels": img.tobytes(), "height": img.shape[0], "width": img.shape[1]}
                for r, img in zip(rows, images)]


@dataclass(frozen=True)
class EmbedWork:
    """Unit vectors of training images read from the store's image files (no database: a store
    on storage every node sees), at the size retrieval compares them (attack.images.index.file_tensor)."""
    store_path: str

    def __call__(self, embedder: Any, rows: list[dict]) -> list[dict]:
        from attack.images.index import embed_tensors, file_tensor
        from store.images import ImageFiles

        files = ImageFiles(Path(self.store_path) / "images")
        vectors = embed_tensors(embedder, [file_tensor(files, str(r["sha"])) for r in rows], len(rows))
        return [{"train_image_id": int(r["train_image_id"]), "vector": v.tolist()} for r, v in zip(rows, vectors)]


def as_model_spec(model: Any, dtype: Optional[str] = None, config: Optional[str] = None,
                  variant: Optional[str] = None) -> ModelSpec:
    return ModelSpec(model.spec or model.name, dtype, config, variant)


def pixels(row: dict) -> Any:
    """A generation row's image as an HxWx3 uint8 array."""
    import numpy as np

    return np.frombuffer(row["pixels"], dtype=np.uint8).reshape(int(row["height"]), int(row["width"]), 3)


def evals_of(rows: Sequence[dict]) -> float:
    return sum(float(r["evals"]) for r in rows)


@dataclass(frozen=True)
class RayEngine:
    """What score_stage / generate_stage / build_store_index call instead of their local loop;
    model is None for retrieval (its actors load the embedder)."""
    model: Optional[ModelSpec]
    options: RayOptions = RayOptions()
    warn: Callable[[str], None] = lambda m: None
    observe: Callable[[ShardRun], None] = lambda r: None    # told of each engine call's ShardRun (bench scale)

    def score(self, store: Store, run_id: int, kind: str, params: Any, todo: Sequence[tuple[int, str]],
              batch_size: int) -> ShardRun:
        """Scores of `todo` (caption id, text) into the run; rows an earlier driver left are merged."""
        folder = work_dir(store, "score", run_id, kind)

        def missing() -> dict[str, list]:
            done = store.scored_caption_ids(run_id, kind)
            rows = [(cid, t) for cid, t in todo if cid not in done]
            return {"pos": list(range(len(rows))), "caption_id": [c for c, _ in rows], "text": [t for _, t in rows]}

        def merge(rows: list[dict]) -> int:
            done = store.scored_caption_ids(run_id, kind)
            new = {int(r["caption_id"]): r for r in rows if int(r["caption_id"]) not in done}   # one row each
            if new:
                with store.transaction():
                    store.add_scores(run_id, kind, [(cid, r["value"]) for cid, r in new.items()])
                    _add_evals(store, run_id, evals_of(list(new.values())))
            return len(new)

        return self._seen(run_sharded(store, folder, missing, merge, self.model, self.options, batch_size,
                                      ScoreWork(kind, params), self.warn))

    def embed(self, store: Store, spec: str, rows: Sequence[tuple[int, str]], batch_size: int, key: str) -> Any:
        """Training images' vectors, embedded on the actors (see embed_images)."""
        return embed_images(self, store, spec, rows, batch_size, key)

    def generate(self, store: Store, run_id: int, sampler: str, todo: Sequence[tuple[Any, int]], steps: int,
                 guidance: float, meta: Callable[[dict], dict], batch_size: int) -> ShardRun:
        """Generations of `todo` (Ranked, seed) into the run; `meta(row)` is each generation's meta."""
        folder = work_dir(store, "generate", run_id, sampler)

        def missing() -> dict[str, list]:
            have = store.generated_pairs(run_id)
            rows = [(r, s) for r, s in todo if (r.caption_id, s) not in have]
            return {"pos": list(range(len(rows))), "caption_id": [r.caption_id for r, _ in rows],
                    "text": [r.text for r, _ in rows], "seed": [s for _, s in rows],
                    "rank": [r.rank for r, _ in rows], "score": [r.score for r, _ in rows]}

        def merge(rows: list[dict]) -> int:
            have = store.generated_pairs(run_id)
            new = {(int(r["caption_id"]), int(r["seed"])): r for r in rows
                   if (int(r["caption_id"]), int(r["seed"])) not in have}
            shas = {k: store.put_image(pixels(r)) for k, r in new.items()}   # files first: harmless if orphaned
            if new:
                with store.transaction():
                    for (cid, seed), r in new.items():
                        store.add_generation(cid, run_id, seed, steps, sampler, shas[cid, seed], meta(r))
                    _add_evals(store, run_id, evals_of(list(new.values())))
            return len(new)

        return self._seen(run_sharded(store, folder, missing, merge, self.model, self.options, batch_size,
                                      GenerateWork(steps, guidance), self.warn))

    def _seen(self, run: ShardRun) -> ShardRun:
        self.observe(run)
        return run


def embed_images(engine: RayEngine, store: Store, spec: str, rows: Sequence[tuple[int, str]], batch_size: int,
                 key: str) -> Any:
    """Vectors [N, d] (float32, rows' order) of (training image id, sha) rows, embedded by actors
    holding the embedder; `key` names the work folder (the embedder and the training set), so a
    killed build resumes from the shards it wrote."""
    import numpy as np

    folder = store.path / "ray" / f"embed-{key}"
    got: dict[int, list] = {}

    def missing() -> dict[str, list]:
        todo = [(i, sha) for i, sha in rows if i not in got]
        return {"pos": list(range(len(todo))), "train_image_id": [i for i, _ in todo], "sha": [s for _, s in todo]}

    def merge(out: list[dict]) -> int:
        new = {int(r["train_image_id"]): r["vector"] for r in out if int(r["train_image_id"]) not in got}
        got.update(new)
        return len(new)

    engine.observe(run_sharded(store, folder, missing, merge, EmbedderSpec(spec), engine.options, batch_size,
                               EmbedWork(str(store.path)), engine.warn))
    return np.asarray([got[i] for i, _ in rows], dtype=np.float32)


def _add_evals(store: Store, run_id: int, evals: float) -> None:
    """Adds a merge's guided calls (rounded up) to the run's count, inside the merge's transaction."""
    store.finish_run(run_id, store.get_run(run_id).evals + math.ceil(evals - 1e-9), "running")
