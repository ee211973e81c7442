"""python -m review bench: a small run through the command line prints one JSON object last."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def test_review_bench_json_on_a_small_store(tmp_path):
    cmd = [sys.executable, "-m", "review", "bench", "--json", "--candidates", "400", "--tries", "20",
           "--dir", str(tmp_path / "bench")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=subprocess_env())
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["candidates"] == 400 and out["tries"] == 20
    assert 0 < out["open_candidate_ms"] < 1000 and 0 < out["label_ms"] < 1000
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=REPO, env=subprocess_env())
    assert again.returncode == 0 and "reusing the bench store" in again.stderr
    assert json.loads(again.stdout.strip().splitlines()[-1])["build_s"] == 0.0


def test_review_bench_refuses_a_foreign_store(tmp_path):
    from store import CaptionRow, Store
    with Store.open(tmp_path / "other") as s:
        s.add_captions([CaptionRow("not a bench store")])
    r = subprocess.run([sys.executable, "-m", "review", "bench", "--candidates", "10", "--dir", str(tmp_path / "other")],
                       capture_output=True, text=True, timeout=120, cwd=REPO, env=subprocess_env())
    assert r.returncode == 2 and "expected an empty folder or a bench store" in r.stderr
