"""--engine ray on a local 2-CPU Ray cluster (issue 15): the same values as the local engine, a
worker that dies mid-run costs neither a row nor a duplicate, and a killed driver's shards are
merged by the next run instead of being computed again."""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from attack.engine.ray import CRASH_ONCE_ENV, RayEngine, RayOptions, as_model_spec, runtime_env, work_dir
from attack.models import load_model
from attack.scores.dcs import DCSParams
from attack.selection import select_captions
from attack.stages.generate import GenerateParams, generate_stage
from attack.stages.score import score_stage
from store import CaptionRow, Store

from .conftest import subprocess_env

ray = pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """One local cluster for the module; CRASH_ONCE_ENV names a file an actor removes and dies on."""
    marker = tmp_path_factory.mktemp("ray") / "crash-once"
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env=runtime_env(env={CRASH_ONCE_ENV: str(marker)}))
    yield {"marker": marker, "address": ray.get_runtime_context().gcs_address}
    ray.shutdown()


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", "cpu")


def _stores(tmp_path: Path, n: int) -> tuple[Store, Store]:
    rows = [CaptionRow(f"a photo of item {i} on a {['red', 'blue', 'green'][i % 3]} table") for i in range(n)]
    local, remote = Store.open(tmp_path / "local"), Store.open(tmp_path / "ray")
    for s in (local, remote):
        s.add_captions(rows)
    return local, remote


def _engine(model, workers: int = 2, **kw) -> RayEngine:
    return RayEngine(as_model_spec(model), RayOptions(workers=workers, shard_batches=4), **kw)


def test_ray_scores_and_generations_equal_the_local_engine(cluster, demo, tmp_path):
    local, remote = _stores(tmp_path, 24)
    runs = []
    with local, remote:
        (a,) = score_stage(local, demo, select_captions(local), ("dcs",), batch_size=4)
        (b,) = score_stage(remote, demo, select_captions(remote), ("dcs",), batch_size=4,
                           engine=_engine(demo, 1, observe=runs.append))
        assert (b.computed, b.skipped, b.evals) == (24, 0, a.evals)
        # the actor loaded the model once, not once per block: two blocks, one process, one load
        (run,) = runs
        assert sorted((blk.rows, blk.loads) for blk in run.blocks) == [(8, 1), (16, 1)]
        assert len({blk.actor for blk in run.blocks}) == 1 and all(blk.cpu > 0 for blk in run.blocks)
        first, second = run.blocks
        assert run.began <= first.init < first.ready <= first.start < first.end <= second.start < second.end
        assert second.end <= run.ended and (second.init, second.ready) == (first.init, first.ready)
        va, vb = local.latest_scores("dcs", "demo"), remote.latest_scores("dcs", "demo")
        assert len(vb) == 24 and vb == va          # identical, not merely close
        params = GenerateParams(top_k=3, seeds=(0, 1), steps=2)
        ga = generate_stage(local, demo, select_captions(local), params, by="dcs", batch_size=4)
        gb = generate_stage(remote, demo, select_captions(remote), params, by="dcs", batch_size=4,
                            engine=_engine(demo, 1))
        assert gb.computed == ga.computed == 6

        def images(s: Store) -> dict:
            return {(s.get_caption(r.caption_id).text, g.seed): (g.image_sha, g.meta)
                    for r in s.generation_refs() for g in s.generations(r.caption_id) if g.id == r.id}
        assert images(remote) == images(local)
        assert not (remote.path / "ray").exists() or not any((remote.path / "ray").iterdir())


def test_a_worker_killed_mid_run_leaves_no_missing_and_no_duplicate_row(cluster, demo, tmp_path):
    local, remote = _stores(tmp_path, 64)
    cluster["marker"].write_text("armed")
    with local, remote:
        score_stage(local, demo, select_captions(local), ("dcs",), batch_size=4)
        engine = _engine(demo)
        todo = list(zip(*[select_captions(remote).ids, select_captions(remote).texts]))
        run = remote.open_run("score", "demo", {"x": 1}).id      # a run of its own: only the engine writes it
        out = engine.score(remote, run, "dcs", DCSParams(), todo, batch_size=4)
        assert not cluster["marker"].exists() and Path(str(cluster["marker"]) + ".fired").exists()  # one died
        assert (out.computed, out.rows_out, out.shards) == (64, 64, 4)   # its block was retried, once
        assert remote.score_count(run, "dcs") == 64
        want = local.latest_scores("dcs", "demo")
        assert remote.latest_scores("dcs", "demo") == want


DRIVER = [sys.executable, "-m", "attack", "score", "--model", "demo", "--engine", "ray", "--workers", "1",
          "--batch-size", "4"]


def test_a_rerun_after_the_driver_is_killed_merges_its_shards(cluster, demo, tmp_path):
    local, remote = _stores(tmp_path, 200)
    local.close(), remote.close()
    proc = subprocess.Popen(DRIVER + ["--store", str(tmp_path / "ray"), "--address", cluster["address"]], cwd=ROOT,
                            env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    out = tmp_path / "ray" / "ray" / "score-run1-dcs" / "out"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline and not any(out.glob("*.parquet")):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = sorted(out.glob("*.parquet"))
    assert proc.returncode == -signal.SIGKILL and left, proc.stderr.read().decode()[-2000:]
    with Store.open(tmp_path / "local") as s:
        score_stage(s, demo, select_captions(s), ("dcs",), batch_size=4)
        want = s.latest_scores("dcs", "demo")
    with Store.open(tmp_path / "ray") as s:
        assert s.score_count(1, "dcs") == 0           # the killed driver merged nothing
        engine = _engine(demo, 1)
        folder = work_dir(s, "score", 1, "dcs")
        assert folder.is_dir()
        reports = score_stage(s, demo, select_captions(s), ("dcs",), batch_size=4, engine=engine)
        assert reports[0].resumed and 0 < reports[0].computed < 200   # the shards it left were not recomputed
        assert s.latest_scores("dcs", "demo") == want
        assert s.get_run(1).status == "done"


def test_training_images_embedded_on_ray_equal_the_local_index(cluster, tmp_path):
    import numpy as np

    from attack.images.embed import load_embedder
    from attack.images.index import build_store_index

    from .conftest import tiny_image

    with Store.open(tmp_path / "s") as s:
        for i in range(40):      # 16 px and 300 px images: both paths of image_tensor
            img = tiny_image(i, 16 if i % 3 else 300)
            s.add_training_image(s.put_image(img), None, f"img{i}.png", {})
        embedder = load_embedder("pixel")
        local = build_store_index(s, embedder, batch_size=8)
        remote = build_store_index(s, embedder, batch_size=8, engine=RayEngine(None, RayOptions(workers=1)))
        assert np.array_equal(remote.ids, local.ids) and len(local.ids) == 40
        assert np.array_equal(remote.index.reconstruct_n(0, 40), local.index.reconstruct_n(0, 40))
        assert not (s.path / "ray").exists() or not any((s.path / "ray").iterdir())
