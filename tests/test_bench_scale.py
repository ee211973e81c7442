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
        out = dcs_rates(tmp_path, 24, 8, 1)
    finally:
        ray.shutdown()        # the next module starts its own cluster
    assert out["identical"] is True and out["dcs_captions"] == 24
    assert min(out["local_captions_per_s"], out["ray_1_worker_captions_per_s"], out["ray_2_workers_captions_per_s"]) > 0
    assert (tmp_path / "dcs-ray1" / "logs" / "ray.log").exists()
