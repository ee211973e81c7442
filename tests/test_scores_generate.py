"""Candidate generation (top-K by score, J seeds x S steps) and the throughput bench's CLI."""
from __future__ import annotations

import json
import math

import pytest
import torch

from attack.bench import throughput
from attack.stages.generate import GenerateParams, generate_top_k, iter_generations, top_k
from attack.models import ModelError, load_model
from attack.scores.base import ScoreInputError
from tests.assets.tiny_sd import tiny_sd_folder



CAPTIONS = ["a cat", "the dog", "on the mat", "red sun"]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tiny_sd_folder(tmp_path_factory, "epsilon")


@pytest.fixture(scope="module")
def sd(folder):
    return load_model(f"sd:{folder}")


def test_top_k_orders_by_score_with_stable_ties_and_nan_last():
    assert top_k([0.1, 0.9, float("nan"), 0.9, 0.5], 3) == [1, 3, 4]
    assert top_k(torch.tensor([3.0, 1.0, 2.0]), 0) == [0, 2, 1]
    assert top_k([1.0, float("nan")], 5) == [0, 1]
    with pytest.raises(ScoreInputError):
        top_k([1.0], -1)


def test_generate_top_k_runs_j_seeds_for_the_best_captions(sd):
    gens = generate_top_k(sd, CAPTIONS, [0.2, 0.9, 0.1, 0.5], GenerateParams(top_k=2, seeds=(0, 1, 2), steps=2),
                          batch_size=4)
    assert [(g.caption, g.seed, g.rank) for g in gens] == [
        ("the dog", 0, 0), ("the dog", 1, 0), ("the dog", 2, 0), ("red sun", 0, 1), ("red sun", 1, 1), ("red sun", 2, 1)]
    assert all(g.image.shape == (3, 16, 16) and g.evals == 3 and g.steps == 2 for g in gens)
    # the same (caption, seed) alone reproduces the image (to rounding): generations are resumable
    again = sd.sample(["red sun"], [1], steps=2).images[0]
    assert torch.allclose(gens[4].image, again, atol=1e-3)  # float rounding, amplified by guidance
    assert not torch.allclose(gens[3].image, gens[4].image)


def test_resume_skips_what_exists(sd):
    batches = list(iter_generations(sd, CAPTIONS, [1, 2, 3, 4], GenerateParams(top_k=1, seeds=(0, 1), steps=1),
                                    skip={("red sun", 0)}))
    assert [(g.caption, g.seed) for b in batches for g in b] == [("red sun", 1)]


def test_generation_input_errors(sd):
    with pytest.raises(ScoreInputError, match="one score per caption"):
        generate_top_k(sd, CAPTIONS, [1.0])
    with pytest.raises(ScoreInputError, match="at least one caption"):
        generate_top_k(sd, [], [])


def test_throughput_bench_prints_one_json_line(folder, capsys):
    rc = throughput.main(["--model", f"sd:{folder}", "--captions", "4", "--loop-captions", "2",
                          "--batch-size", "4", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("dcs_batched_per_s", "dcs_loop_per_s", "dcs_speedup", "ecs_batched_per_s", "ecs_loop_per_s",
                "ecs_speedup", "evals_per_caption"):
        assert key in out
    assert out["evals_per_caption"] == {"dcs": 0.625, "ecs": 4.0, "wen": 0.75}  # (4+1)/8, (4+4)/2, (2+1)/4
    assert out["evals_per_caption_loop"] == {"dcs": 1.0, "ecs": 4.0}
    assert all(math.isfinite(out[k]) and out[k] > 0 for k in ("dcs_speedup", "ecs_speedup"))
    assert out["max_abs_diff_batched_vs_loop"]["dcs"] < 1e-3


def test_throughput_bench_bad_model_exits_nonzero(capsys):
    assert throughput.main(["--model", "nonsense", "--json"]) == 2
    assert "expected a model spec" in capsys.readouterr().err


def test_demo_spec_still_loads_through_the_registry():
    # trained weights may or may not be present; either way the old two-argument loader works
    try:
        m = load_model("demo")
    except ModelError as e:
        assert "demo model file" in str(e)
    else:
        assert m.name == "demo"
    with pytest.raises(ModelError, match="float32 only"):
        load_model("demo", dtype="float16")
