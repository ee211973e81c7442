"""`attack bench mitigation` on a small setting: the demo model and guidance 3, each side's copies
among the planted captions, the uniques' distance to their own image, extra calls, compare outcomes."""
from __future__ import annotations

import pytest

from attack.bench.mitigation import PLANTED, bench

pytestmark = pytest.mark.slow


def test_the_bench_reports_each_model_and_its_comparison(tmp_path):
    out = bench(tmp_path, uniques=2, seeds=(0,), steps=16, models=("demo+mitigate:cfg=3",), per_kind=3)
    base, cfg = out["models"]["demo"], out["models"]["demo+mitigate:cfg=3"]
    assert out["captions"] == {"exact": 3, "template": 3, "retrieval": 3, "unique": 2}
    for m in (base, cfg):
        assert {k: v["planted"] for k, v in m["copies"].items()} == {k: out["captions"][k] for k in PLANTED}
        assert all(0 <= v["as_kind"] <= v["any_copy"] <= v["planted"] for v in m["copies"].values())
        assert m["unique_median_own_rmse"] is not None and 0 < m["unique_median_own_rmse"] < 1
    # the committed demo model copies its planted exact duplicates (tests/test_demo_model.py)
    assert base["copies"]["exact"]["as_kind"] > 0
    # guidance 3 instead of 7.5: the same network calls per caption, another model's images
    assert cfg["evals_per_caption"] == base["evals_per_caption"] and cfg["extra_evals_per_caption"] == 0
    outcomes = out["compare"]["demo+mitigate:cfg=3"]["outcomes"]
    assert sum(outcomes.values()) == sum(out["captions"].values())
    copies_a = sum(v["any_copy"] for v in base["copies"].values())
    assert outcomes["removed"] + outcomes["persisting"] >= copies_a       # uniques may be copies too
