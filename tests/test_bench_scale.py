"""The scale bench's ingest figures are the ingest's own: a child process's peak RSS, not its
parent's (Linux carries the parent's high-water mark into a child's rusage across exec)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from attack.bench.scale import ingest_child, write_text_list
from store import Store


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        return int(next(line.split()[1] for line in f if line.startswith("VmHWM:"))) / 1024


def test_ingest_child_reports_the_childs_own_peak(tmp_path: Path):
    src = tmp_path / "c.csv"
    write_text_list(src, 2000, "csv")
    ballast = np.ones(40_000_000)          # ~305 MB resident here, none of it the child's
    seconds, peak = ingest_child(tmp_path / "s", src)
    parent = _hwm_mb()
    assert ballast[-1] == 1.0 and parent > 300
    assert 20 < peak < 0.6 * parent, (peak, parent)
    assert seconds > 0
    with Store.open(tmp_path / "s", create=False) as s:
        assert s.info()["tables"]["captions"] == 2000


@pytest.mark.slow
def test_dcs_rates_time_local_and_ray_and_find_them_identical(tmp_path: Path):
    import ray

    from attack.bench.scale import dcs_rates

    try:
        out = dcs_rates(tmp_path, 24, 8, 1, rounds=2)       # 3 blocks of one batch, each Ray size twice
    finally:
        ray.shutdown()        # the next module starts its own cluster
    assert out["identical"] is True and out["dcs_captions"] == 24
    assert min(out["local_captions_per_s"], out["ray_1_worker_captions_per_s"], out["ray_2_workers_captions_per_s"]) > 0
    assert (tmp_path / "dcs-ray1" / "logs" / "ray.log").exists() and (tmp_path / "dcs-ray1-2" / "logs").is_dir()
    # alternating rounds, so a drifting machine weighs on both sizes
    assert out["ray_rounds"] == 2 and out["ray_order"] == "ray1 ray2 ray2 ray1"
    # the engine's own figures beside the end-to-end ones: start-up apart from the steady state
    assert out["ray_speedup_2_workers"] > 0 and "first block" in out["ray_steady_how"]
    assert 0 < out["ray_1_worker_startup_s"] and 0 < out["ray_2_workers_startup_s"]
    ones, twos = out["ray_runs"]["1_worker"], out["ray_runs"]["2_workers"]
    assert len(ones) == len(twos) == 2
    rates = sorted(o["steady_captions_per_s"] for o in ones)
    assert out["ray_1_worker_steady_captions_per_s"] == round(sum(rates) / 2, 1) and rates[0] > 0   # blocks 2 and 3
    assert all(0 < o["window_from_s"] and 0 < o["window_s"] < o["run_s"] for o in ones)
    # 2 actors on 3 short blocks: a steady state only if each got 2 of them while the other worked
    rounds = out["ray_steady_speedup_rounds"]
    assert [r is None for r in rounds] == [t["steady_captions_per_s"] is None for t in twos]
    assert (out["ray_steady_speedup_2_workers"] is None) == (None in rounds)
    # the model is loaded once per actor: the one actor's three blocks, two actors' three blocks
    assert out["model_loads_per_actor"] == 1
    assert all([(a["blocks"], a["model_loads"]) for a in one["actors"]] == [(3, 1)] for one in ones)
    for two in twos:
        assert sum(a["blocks"] for a in two["actors"]) == 3 and len(two["actors"]) <= 2
        assert all(a["model_loads"] == 1 for a in two["actors"])


def _block(actor: str, start: float, end: float, rows: int = 10, loads: int = 1):
    from attack.engine.ray import BlockStat

    return BlockStat(actor, 0.0, 1.0, start, end, rows, loads, cpu=(end - start) / 2)


def test_the_steady_state_runs_from_the_last_first_block_to_the_first_last_block():
    from attack.bench.scale import steady_state
    from attack.engine.ray import ShardRun

    # a: ready at 1, blocks 1-3, 3-5, 5-7; b: blocks 2-4 (its first), 4-6 (idle 6-7), 7-9 (after a ran out)
    blocks = (_block("a", 1, 3), _block("b", 2, 4), _block("a", 3, 5), _block("b", 4, 6), _block("a", 5, 7),
              _block("b", 7, 9))
    out = steady_state(ShardRun(0, 60, 60, 6, blocks, began=0.0, ended=9.0))
    assert (out["window_from_s"], out["window_s"], out["run_s"]) == (4.0, 3.0, 9.0)   # from b's first block to a's last
    # inside 4-7: a's 3-5 half (5 rows) and 5-7 whole (10), b's 4-6 whole (10): b's idle second counts against it
    assert out["window_rows"] == 25.0 and out["steady_captions_per_s"] == round(25 / 3, 1)
    assert out["startup_s"] == 1.0 and out["model_loads_per_actor"] == 1
    assert {a["actor"]: a["window_busy"] for a in out["actors"]} == {"a": 1.0, "b": round(2 / 3, 3)}
    assert {a["actor"]: a["busy_rate"] for a in out["actors"]} == {"a": 5.0, "b": 5.0}
    assert {a["actor"]: a["cpu_share"] for a in out["actors"]} == {"a": 0.5, "b": 0.5}
    # an actor that loads its model for each block shows it; one done before another's first block: no window
    out = steady_state(ShardRun(0, 30, 30, 3, (_block("a", 1, 2), _block("a", 2, 3, loads=2), _block("b", 4, 5)),
                                began=0.0, ended=5.0))
    assert out["model_loads_per_actor"] == 2 and out["steady_captions_per_s"] is None
