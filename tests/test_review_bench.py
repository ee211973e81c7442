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


def test_browser_bench_copies_an_older_schema_store_without_changing_it(tmp_path):
    # a store made by an earlier version (schema 8: before work claims and gold) is read through a
    # migrated copy; the source keeps its version and bytes
    import sqlite3

    from review.browser_bench import _copy
    from review.sample import build_sample_store
    from store import SCHEMA_VERSION, Store

    src = tmp_path / "old"
    with Store.open(src) as s:
        build_sample_store(s, n=4)
    conn = sqlite3.connect(src / "store.db")
    conn.executescript("DROP TABLE model_labels; DROP TABLE compare_rows; DROP TABLE gold_answers; DROP TABLE gold; DROP TABLE withheld; "
                       "DROP TABLE work_claims; PRAGMA user_version = 8;")
    conn.close()
    before = (src / "store.db").read_bytes()
    dst = _copy(src, lambda m: None)
    try:
        with Store.open(dst, readonly=True) as s:
            assert s.info()["schema_version"] == SCHEMA_VERSION and s.info()["candidates"] == 4
        assert sorted(p.name for p in (dst / "images").rglob("*.png")) == \
            sorted(p.name for p in (src / "images").rglob("*.png"))
    finally:
        import shutil
        shutil.rmtree(dst.parent, ignore_errors=True)
    assert (src / "store.db").read_bytes() == before
