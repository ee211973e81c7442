"""The regression guard of the batched scores (issue 24): a short `bench throughput` whose DCS and
ECS speedups over the paper's per-caption loop must stay above the CI floor in
attack/bench/floors.json. It runs on one torch thread: a second OpenMP thread waits on a busy
core, which moves the ratio by more than the slip the guard is there to catch."""
from __future__ import annotations

import time

import pytest
import torch

from attack.bench import throughput
from attack.runtime import keep_freed_memory


@pytest.fixture
def one_thread():
    keep_freed_memory()     # what the bench's own process has (attack.runtime), whichever test ran before
    before = torch.get_num_threads()
    torch.set_num_threads(throughput.floors()["guard"]["threads"])
    yield
    torch.set_num_threads(before)


def short_bench() -> dict:
    g = throughput.floors()["guard"]
    return throughput.run("demo", n_captions=g["captions"], n_loop=g["loop_captions"], rounds=g["rounds"])


@pytest.mark.slow
def test_batched_dcs_and_ecs_keep_their_lead_over_the_paper_loop(one_thread):
    out = short_bench()
    assert throughput.below_floor(out, throughput.floors()["guard"]["speedup_floor"]) == []
    assert out["max_abs_diff_batched_vs_loop"]["dcs"] < 1e-3


def test_the_guard_names_a_batched_path_slowed_on_purpose(one_thread, monkeypatch):
    # a batched DCS slower than the loop cannot pass any floor: the guard must say so, by name
    fast = throughput.dcs

    def slowed(model, captions, params, **kw):
        if len(captions) > 1:
            time.sleep(0.5)
        return fast(model, captions, params, **kw)

    monkeypatch.setattr(throughput, "dcs", slowed)
    out = throughput.run("demo", n_captions=8, n_loop=2, rounds=1)
    floor = throughput.floors()["guard"]["speedup_floor"]
    failed = throughput.below_floor(out, floor)
    assert out["dcs_speedup"] < 1.0 < floor["dcs"]
    # 8 captions in one round is too short to judge ECS, so its line is checked for agreement, not absence
    assert [line.split(":")[0] for line in failed] == [s for s in ("dcs", "ecs") if out[f"{s}_speedup"] < floor[s]]
    assert "expected batched at least" in failed[0] and f"got {out['dcs_speedup']}x" in failed[0]
