"""Store-writing stages (score, generate, carlini) and `python -m attack run|score|generate|carlini`,
on a tiny random demo network: params and evals on runs, top-K generation, resume after a kill,
sharding, and bad input that leaves the store byte-identical."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from attack import cli
from attack.scores.carlini import CarliniParams
from attack.scores.dcs import DCSParams, dcs
from attack.scores.ecs import ECSParams
from attack.stages.generate import GenerateParams
from attack.models import _REGISTRY, register
from attack.models.demo import DemoModel
from attack.selection import select_captions
from attack.stages.carlini import CARLINI_FLAG, carlini_stage
from attack.stages.generate import generate_stage
from attack.stages.rank import latest_scores
from attack.stages.score import score_stage
from attack.scores.base import ScoreInputError
from store import CaptionRow, NotFoundError, Store, StoreError
from tests.conftest import REPO, snapshot, subprocess_env
from tests.test_demo_model import tiny_net

CAPTIONS = ["a red brick wall", "orange cat close up", "blue carpet in a living room", "moon photo",
            "red cat on a wall", "a living room"]
FAST_ECS = ECSParams(seeds=(0, 1), size=32)  # fewer generations, small comparison size: same code path


class CountingModel(DemoModel):
    """A DemoModel that records every caption it encodes (the empty caption aside)."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.encoded: list[str] = []

    def encode(self, captions):
        self.encoded += [c for c in captions if c]
        return super().encode(captions)


def tiny_model() -> CountingModel:
    return CountingModel(tiny_net(0))


@pytest.fixture
def filled(tmp_path):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow(c) for c in CAPTIONS])
        yield s


def run_rows(store: Store, stage: str) -> list:
    return [store.get_run(r[0]) for r in store.conn.execute("SELECT id FROM runs WHERE stage = ? ORDER BY id", (stage,))]


def run_scores(store: Store, run_id: int, kind: str) -> dict[int, float]:
    return dict(store.conn.execute("SELECT caption_id, value FROM scores WHERE run_id = ? AND kind = ?", (run_id, kind)))


# -- score -------------------------------------------------------------------------------------
def test_score_stage_writes_one_run_per_kind_with_params_and_evals(filled):
    model = tiny_model()
    sel = select_captions(filled)
    assert sel.texts == tuple(CAPTIONS)
    reports = score_stage(filled, model, sel, ("dcs", "ecs", "wen"), {"ecs": FAST_ECS}, model_id="tiny", batch_size=4)
    assert [r.kind for r in reports] == ["dcs", "ecs", "wen"]
    runs = run_rows(filled, "score")
    assert [r.params["score"] for r in runs] == ["dcs", "ecs", "wen"]
    assert runs[0].params == {"score": "dcs", "params": {"seed": 0, "guidance": 7.5}, "dtype": "float32",
                              "model_fingerprint": model.fingerprint()}
    assert runs[1].params["params"]["seeds"] == [0, 1] and runs[1].params["params"]["size"] == 32
    assert all(r.status == "done" and r.model == "tiny" and r.finished_at for r in runs)
    # DCS in batches of 4 + 2 sharing the unconditional row: (4+1)/2 + (2+1)/2 = 4 guided calls
    assert runs[0].evals == 4 and reports[0].evals == 4
    assert runs[1].evals == 8  # ECS: J=2 one-step generations per caption, uncond shared per seed: (8+2)/2+(4+2)/2
    assert runs[2].evals > 0
    direct = dcs(tiny_model(), CAPTIONS, DCSParams())
    got = run_scores(filled, runs[0].id, "dcs")
    assert [got[i] for i in sel.ids] == pytest.approx(direct.values.tolist(), rel=1e-5)
    for r in reports:
        assert r.computed == len(CAPTIONS) and r.skipped == 0 and not r.resumed


def test_score_input_errors_write_nothing(filled, tmp_path):
    model = tiny_model()
    sel = select_captions(filled)
    before = snapshot(filled.path)
    with pytest.raises(ScoreInputError, match="expected a score kind among dcs, ecs, wen, sharpness, anisotropy"):
        score_stage(filled, model, sel, ("dcs", "nope"))
    with pytest.raises(ScoreInputError, match="at least one item"):
        score_stage(filled, model, sel, ("dcs",), offset=len(CAPTIONS))
    with pytest.raises(ScoreInputError, match="dcs scores"):
        generate_stage(filled, model, sel)  # nothing scored yet
    assert snapshot(filled.path) == before
    with Store.open(tmp_path / "empty") as empty, pytest.raises(ScoreInputError, match="at least one caption"):
        select_captions(empty)


def test_offset_limit_shard_the_caption_list(filled):
    sel = select_captions(filled)
    (r,) = score_stage(filled, tiny_model(), sel, ("dcs",), offset=2, limit=3, batch_size=2)
    assert set(run_scores(filled, r.run_id, "dcs")) == set(sel.ids[2:5])
    # a second shard continues the same run (same params), the union is the whole list
    (r2,) = score_stage(filled, tiny_model(), sel, ("dcs",), offset=5, batch_size=2)
    assert r2.run_id == r.run_id and r2.resumed
    (r3,) = score_stage(filled, tiny_model(), sel, ("dcs",), limit=2, batch_size=2)
    assert set(run_scores(filled, r.run_id, "dcs")) == set(sel.ids) and r3.computed == 2
    # each session adds its own guided calls, rounded up: (2+1)/2 + (1+1)/2 -> 3, then 1, then (2+1)/2 -> 2
    assert filled.get_run(r.run_id).evals == r3.evals == 3 + 1 + 2


class Killed(Exception):
    pass


def kill_after(batches: int):
    """A progress callback that raises (like a kill) once `batches` batches were written."""
    seen = [0]

    def progress(label: str, done: int, total: int) -> None:
        if done:
            seen[0] += 1
            if seen[0] >= batches:
                raise Killed(label)
    return progress


def test_killed_score_run_resumes_without_recomputing_and_matches_an_uninterrupted_run(filled, tmp_path):
    sel = select_captions(filled)
    first = tiny_model()
    with pytest.raises(Killed):
        score_stage(filled, first, sel, ("dcs",), model_id="tiny", batch_size=2, progress=kill_after(2))
    (run,) = run_rows(filled, "score")
    assert run.status == "failed" and "Killed" in run.reason and len(run_scores(filled, run.id, "dcs")) == 4
    assert run.evals == 3  # two batches of 2 captions: (2+1)/2 each, recorded with the batch

    again = tiny_model()
    (r,) = score_stage(filled, again, sel, ("dcs",), model_id="tiny", batch_size=2)
    assert r.run_id == run.id and r.resumed and r.computed == 2 and r.skipped == 4
    assert again.encoded == CAPTIONS[4:]  # finished captions were not recomputed
    assert filled.get_run(run.id).status == "done" and filled.get_run(run.id).evals == 3 + 2 == r.evals

    with Store.open(tmp_path / "clean") as clean:
        clean.add_captions([CaptionRow(c) for c in CAPTIONS])
        (u,) = score_stage(clean, tiny_model(), select_captions(clean), ("dcs",), model_id="tiny", batch_size=2)
        assert run_scores(clean, u.run_id, "dcs") == run_scores(filled, run.id, "dcs")  # identical, bit for bit
        assert u.evals == r.evals


def test_stages_take_caption_texts_or_ids_in_the_given_order(filled):
    sel = select_captions(filled)
    ids = [sel.ids[3], sel.ids[0], sel.ids[3]]
    (a,) = score_stage(filled, tiny_model(), ids, "dcs", limit=1)
    assert set(run_scores(filled, a.run_id, "dcs")) == {sel.ids[3]}  # first of the given order, duplicates merged
    (b,) = score_stage(filled, tiny_model(), [CAPTIONS[0], CAPTIONS[3]], "dcs")
    assert b.run_id == a.run_id and b.computed == 1 and b.skipped == 1
    with pytest.raises(StoreError, match="expected captions already in the store"):
        score_stage(filled, tiny_model(), ["not ingested"])
    with pytest.raises(NotFoundError):
        score_stage(filled, tiny_model(), [10_000])
    with pytest.raises(ScoreInputError, match="at least one caption"):
        score_stage(filled, tiny_model(), [])


def test_different_params_make_a_new_run(filled):
    sel = select_captions(filled)
    (a,) = score_stage(filled, tiny_model(), sel, ("dcs",), limit=1)
    (b,) = score_stage(filled, tiny_model(), sel, ("dcs",), {"dcs": DCSParams(seed=1)}, limit=1)
    # the same weights under another name (another path, another machine) are the same model (issue 29)
    (c,) = score_stage(filled, tiny_model(), sel, ("dcs",), limit=1, model_id="other")
    assert a.run_id != b.run_id and not b.resumed
    assert c.run_id == a.run_id and c.resumed


# -- generate ----------------------------------------------------------------------------------
def scored(store: Store, model_id: str = "tiny") -> None:
    score_stage(store, tiny_model(), select_captions(store), ("dcs",), model_id=model_id)


def test_generate_stage_writes_j_images_for_the_top_k(filled):
    scored(filled)
    sel = select_captions(filled)
    params = GenerateParams(top_k=2, seeds=(0, 1, 2), steps=2)
    model = tiny_model()
    r = generate_stage(filled, model, sel, params, by="dcs", model_id="tiny", batch_size=4)
    assert r.computed == 6 and r.skipped == 0 and r.evals == 6 * 3  # Heun, 2 steps: 3 guided calls per image
    dcs_values = latest_scores(filled, "dcs", "tiny")
    best = sorted(sel.ids, key=lambda c: -dcs_values[c])[:2]
    (run,) = run_rows(filled, "generate")
    assert run.params == {"sampler": "heun-karras", "steps": 2, "guidance": 7.5, "dtype": "float32",
                          "model_fingerprint": model.fingerprint()}
    assert run.evals == 18 and run.status == "done"
    for rank, cid in enumerate(best):
        gens = filled.generations(cid)
        assert [(g.seed, g.steps, g.sampler, g.run_id) for g in gens] == [(s, 2, "heun-karras", run.id) for s in (0, 1, 2)]
        assert gens[0].meta == {"guidance": 7.5, "rank": rank, "score_kind": "dcs", "score": dcs_values[cid]}
        img = np.asarray(filled.load_image(gens[1].image_sha))
        assert img.shape == (32, 32, 3)  # the model's native resolution, lossless PNG
        ref = tiny_model().sample([filled.get_caption(cid).text], [1], steps=2).images[0]
        expect = np.round(ref.clamp(0, 1).permute(1, 2, 0).numpy() * 255)
        assert np.abs(img.astype(float) - expect).max() <= 1  # rounding of a float32 recomputation
    assert all(not filled.generations(c) for c in sel.ids if c not in best)


def test_killed_generation_resumes_and_ends_like_an_uninterrupted_one(filled, tmp_path):
    scored(filled)
    sel = select_captions(filled)
    params = GenerateParams(top_k=3, seeds=(0, 1), steps=1)
    with pytest.raises(Killed):
        generate_stage(filled, tiny_model(), sel, params, model_id="tiny", batch_size=2, progress=kill_after(1))
    again = tiny_model()
    r = generate_stage(filled, again, sel, params, model_id="tiny", batch_size=2)
    assert r.resumed and r.skipped == 2 and r.computed == 4 and len(again.encoded) == 4
    rows = sorted(filled.conn.execute("SELECT caption_id, seed, image_sha FROM generations WHERE run_id = ?",
                                      (r.run_id,)).fetchall())
    assert len(rows) == 6 and len({(c, s) for c, s, _ in rows}) == 6  # nothing generated twice
    # a rerun of a finished run does nothing
    assert generate_stage(filled, tiny_model(), sel, params, model_id="tiny").computed == 0

    with Store.open(tmp_path / "clean") as clean:
        clean.add_captions([CaptionRow(c) for c in CAPTIONS])
        scored(clean)
        u = generate_stage(clean, tiny_model(), select_captions(clean), params, model_id="tiny", batch_size=2)
        clean_rows = sorted(clean.conn.execute("SELECT caption_id, seed, image_sha FROM generations WHERE run_id = ?",
                                               (u.run_id,)).fetchall())
    assert clean_rows == rows  # same captions, seeds and image bytes


def test_generate_offset_limit_shard_the_ranked_list(filled):
    scored(filled)
    sel = select_captions(filled)
    params = GenerateParams(top_k=4, seeds=(0,), steps=1)
    generate_stage(filled, tiny_model(), sel, params, model_id="tiny", offset=1, limit=2)
    ranks = sorted(json.loads(m)["rank"] for (m,) in filled.conn.execute("SELECT meta FROM generations"))
    assert ranks == [1, 2]


# -- carlini -----------------------------------------------------------------------------------
def test_carlini_stage_stores_clique_size_and_flag_and_resumes(filled):
    sel = select_captions(filled)
    params = CarliniParams(n=3, steps=1, min_clique=2, threshold=1.0, size=32)  # every pair connected
    r = carlini_stage(filled, tiny_model(), sel, params, model_id="tiny", limit=2)
    assert r.computed == 2 and r.evals == 2 * 3
    sizes = run_scores(filled, r.run_id, "carlini")
    flags = run_scores(filled, r.run_id, CARLINI_FLAG)
    assert sizes == {sel.ids[0]: 3.0, sel.ids[1]: 3.0} and flags == {sel.ids[0]: 1.0, sel.ids[1]: 1.0}
    again = tiny_model()
    r2 = carlini_stage(filled, again, sel, params, model_id="tiny", limit=3)
    assert r2.run_id == r.run_id and r2.computed == 1 and set(again.encoded) == {CAPTIONS[2]}


# -- command line ------------------------------------------------------------------------------
@pytest.fixture
def tiny_spec():
    """`--model tiny` resolves to a fresh tiny random network (same weights every load)."""
    register("tiny", "a tiny random demo network (tests)")(lambda arg, device: CountingModel(tiny_net(0), device))
    yield "tiny"
    del _REGISTRY["tiny"]


def caption_file(tmp_path: Path, lines: list[str], name: str = "caps.txt") -> Path:
    p = tmp_path / name
    p.write_text("".join(f"{t}\n" for t in lines), encoding="utf-8")
    return p


def test_cli_run_ingests_scores_and_generates_then_stages_resume(tmp_path, tiny_spec, capsys):
    store_dir, caps = tmp_path / "s", caption_file(tmp_path, CAPTIONS)
    common = ["--store", str(store_dir), "--model", "tiny", "--batch-size", "4"]
    gen = ["--top-k", "2", "--seeds", "2", "--steps", "1"]
    assert cli.main(["run", *common, "--captions", str(caps), "--scores", "dcs,ecs", *gen]) == 0
    out = capsys.readouterr().out
    assert "score dcs: run" in out and "generate heun-karras: run" in out and "4 computed" in out
    with Store.open(store_dir) as s:
        assert [r.status for r in run_rows(s, "score")] == ["done", "done"]
        assert s.conn.execute("SELECT count(*), count(DISTINCT caption_id) FROM generations").fetchone() == (4, 2)
        assert run_rows(s, "ingest")
    # each stage alone, same parameters: everything is already there
    assert cli.main(["score", *common, "--scores", "dcs,ecs"]) == 0
    assert cli.main(["generate", *common, *gen]) == 0
    out = capsys.readouterr().out
    assert out.count("(resumed), 0 computed") == 3
    # a filtered, sharded score with another kind
    assert cli.main(["score", *common, "--scores", "wen", "--captions", str(caps), "--offset", "1", "--limit", "2"]) == 0
    assert cli.main(["carlini", *common, "--n", "2", "--steps", "1", "--by", "dcs", "--top-k", "1"]) == 0
    with Store.open(store_dir) as s:
        (wen_run,) = [r for r in run_rows(s, "score") if r.params["score"] == "wen"]
        ids = [s.caption_id(c) for c in CAPTIONS[1:3]]
        assert sorted(run_scores(s, wen_run.id, "wen")) == sorted(ids)
        (car,) = run_rows(s, "carlini")
        assert len(run_scores(s, car.id, "carlini")) == 1 and car.evals == 2


def test_cli_bad_input_exits_2_and_leaves_the_store_byte_identical(tmp_path, tiny_spec, capsys):
    store_dir, caps = tmp_path / "s", caption_file(tmp_path, CAPTIONS[:2])
    assert cli.main(["run", "--store", str(store_dir), "--model", "tiny", "--captions", str(caps), "--top-k", "1",
                     "--seeds", "1", "--steps", "1"]) == 0
    capsys.readouterr()
    before = snapshot(store_dir)
    empty = caption_file(tmp_path, [], "empty.txt")
    unknown = caption_file(tmp_path, ["never ingested"], "unknown.txt")
    bad = [
        ["run", "--store", str(store_dir), "--model", "nonsense", "--captions", str(caps)],
        ["run", "--store", str(store_dir), "--model", "tiny", "--captions", str(empty)],
        ["run", "--store", str(store_dir), "--model", "tiny", "--captions", str(tmp_path / "missing.txt")],
        ["run", "--store", str(store_dir), "--model", "tiny", "--captions", str(caps), "--scores", "ecs", "--by", "dcs"],
        ["run", "--store", str(store_dir), "--model", "tiny", "--captions", str(unknown), "--offset", "1"],
        ["score", "--store", str(store_dir), "--model", "nonsense"],
        ["score", "--store", str(store_dir), "--model", "tiny", "--captions", str(empty)],
        ["score", "--store", str(store_dir), "--model", "tiny", "--captions", str(unknown)],
        ["score", "--store", str(store_dir), "--model", "tiny", "--offset", "99"],
        ["generate", "--store", str(store_dir), "--model", "tiny", "--by", "wen"],  # never scored
        ["carlini", "--store", str(store_dir), "--model", "tiny", "--by", "ecs"],
    ]
    if not torch.cuda.is_available():
        bad += [["run", "--store", str(store_dir), "--model", "tiny", "--device", "cuda", "--captions", str(caps)],
                ["generate", "--store", str(store_dir), "--model", "tiny", "--device", "cuda"]]
    for argv in bad:
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.splitlines()[-1].startswith("error: ") and "expected" in err, (argv, err)
        assert snapshot(store_dir) == before, argv
    # a stage on a folder that is not a store creates nothing
    assert cli.main(["score", "--store", str(tmp_path / "nope"), "--model", "tiny"]) == 2
    assert not (tmp_path / "nope").exists()


def test_cli_run_on_a_new_store_with_bad_model_creates_nothing(tmp_path, capsys):
    caps = caption_file(tmp_path, CAPTIONS[:1])
    assert cli.main(["run", "--store", str(tmp_path / "new"), "--model", "nonsense", "--captions", str(caps)]) == 2
    assert "expected a model spec" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()


def test_cli_run_end_to_end_with_the_demo_model(tmp_path):
    caps = caption_file(tmp_path, CAPTIONS[:3])
    cmd = [sys.executable, "-m", "attack", "run", "--store", str(tmp_path / "s"), "--model", "demo",
           "--captions", str(caps), "--top-k", "1", "--seeds", "2", "--steps", "2"]
    p = subprocess.run(cmd, cwd=REPO, env={**subprocess_env(), "OMP_NUM_THREADS": "1"}, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    with Store.open(tmp_path / "s") as s:
        assert s.conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 2


def test_cli_run_in_a_subprocess_with_a_tiny_sd_folder_then_rerun_resumes(tmp_path, tmp_path_factory, capsys):
    """The real entry point end to end (`python -m attack run`), on a random tiny SD folder; the
    same command again (in-process, to save a start-up) finds every stage done and computes nothing."""
    from tests.assets.tiny_sd import tiny_sd_folder

    folder = tiny_sd_folder(tmp_path_factory, "epsilon")
    caps = caption_file(tmp_path, ["a cat", "the dog", "on the mat", "red sun"])
    cmd = [sys.executable, "-m", "attack", "run", "--store", str(tmp_path / "s"), "--model", f"sd:{folder}",
           "--captions", str(caps), "--scores", "dcs,wen", "--top-k", "2", "--seeds", "2", "--steps", "2",
           "--batch-size", "3", "--device", "cpu"]
    env = {**subprocess_env(), "OMP_NUM_THREADS": "1"}
    first = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert "item/s" in first.stderr or "s/item" in first.stderr  # tqdm rate on stderr
    assert "generate heun-karras: run" in first.stdout and "4 computed" in first.stdout
    assert cli.main(cmd[3:]) == 0
    out = capsys.readouterr().out
    assert out.count("(resumed), 0 computed") == 3 and "already in the store, skipped" in out, out
    with Store.open(tmp_path / "s") as s:
        assert s.conn.execute("SELECT count(*) FROM generations").fetchone()[0] == 4
        assert s.conn.execute("SELECT max(count) FROM captions").fetchone()[0] == 1 and len(run_rows(s, "ingest")) == 1
        runs = run_rows(s, "score") + run_rows(s, "generate")
        assert len(runs) == 3 and all(r.status == "done" and r.evals > 0 and r.model == f"sd:{folder}" for r in runs)
        img = s.load_image(s.conn.execute("SELECT image_sha FROM generations").fetchone()[0])
        assert img.size == (16, 16)  # the tiny SD VAE's native output size


CHILD = r"""
import sys, time, torch
torch.set_num_threads(1)
from attack import cli
from attack.models import register
from attack.models.demo import DemoModel
from tests.test_demo_model import tiny_net

class Slow(DemoModel):  # slow enough to be killed midway
    def encode(self, captions):
        time.sleep(float(sys.argv[1]))
        return super().encode(captions)

register("tiny", "tiny")(lambda arg, device: Slow(tiny_net(0), device))
sys.exit(cli.main(sys.argv[2:]))
"""


def test_sigkilled_score_command_resumes_where_it_stopped(tmp_path, tiny_spec, capsys):
    """A real kill (SIGKILL mid-run in a child process): the rerun (here in-process, same model
    spec and weights) computes only what the store lacks, and the values equal an uninterrupted run's."""
    import signal
    import sqlite3
    import time

    texts = [f"caption number {i}" for i in range(40)]
    caps = caption_file(tmp_path, texts)
    store_dir = tmp_path / "s"
    argv = ["score", "--store", str(store_dir), "--model", "tiny", "--captions", str(caps), "--batch-size", "1"]
    env = subprocess_env()
    with Store.open(store_dir) as s:
        s.add_captions([CaptionRow(t) for t in texts])
    child = subprocess.Popen([sys.executable, "-c", CHILD, "0.05", *argv], cwd=REPO, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline, n = time.time() + 120, 0
    while n < 3 and time.time() < deadline and child.poll() is None:
        time.sleep(0.05)
        with sqlite3.connect(f"file:{store_dir / 'store.db'}?mode=ro", uri=True) as c:
            n = c.execute("SELECT count(*) FROM scores").fetchone()[0]
    child.kill()
    child.wait()
    assert child.returncode == -signal.SIGKILL, "finished before it could be killed"
    with Store.open(store_dir) as s:
        killed = s.conn.execute("SELECT count(*) FROM scores").fetchone()[0]
        assert 3 <= killed < 40 and run_rows(s, "score")[0].status == "running"
    capsys.readouterr()
    assert cli.main(argv) == 0
    assert f"(resumed), {40 - killed} computed, {killed} already done" in capsys.readouterr().out
    with Store.open(store_dir) as s:
        (run,) = run_rows(s, "score")
        got = run_scores(s, run.id, "dcs")
        assert run.status == "done" and len(got) == 40
        ids = [s.caption_id(t) for t in texts]
    direct = dcs(tiny_model(), texts, DCSParams(), batch_size=1).values.tolist()
    assert [got[i] for i in ids] == pytest.approx(direct, rel=1e-6)
