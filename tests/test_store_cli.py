"""python -m store info|export|bench: thin CLIs, JSON last line, exit 2 on bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from attack.ingest import ingest
from store import Store
from tests.conftest import FIXTURES, REPO, add_candidate, snapshot, subprocess_env


def run(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "store", *map(str, args)], capture_output=True, text=True,
                          env=subprocess_env(), cwd=REPO, timeout=timeout)


@pytest.fixture
def small(tmp_path):
    path = tmp_path / "store"
    with Store.open(path) as s:
        ingest(s, FIXTURES / "paper.parquet")
        run_id = s.start_run("generate", "demo", {})
        c = add_candidate(s, "a confirmed copy", run_id, seed=1, scores={"dcs": 3.0})
        s.add_label(c["caption_id"], "MV", "ann")
    return path


def test_info_json(small):
    out = run("info", "--store", small, "--json")
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["tables"]["captions"] == 5 and info["candidates"] == 1
    assert info["labels"]["MV"] == 1 and info["tables"]["labels"] == 1


def test_info_missing_store(tmp_path):
    out = run("info", "--store", tmp_path / "none", "--json")
    assert out.returncode == 2 and "expected a store folder containing store.db, got none" in out.stderr
    assert not (tmp_path / "none").exists()


def test_export_cli(small, tmp_path):
    out = run("export", "--store", small, "--out", tmp_path / "x.parquet")
    assert out.returncode == 0, out.stderr
    assert "exported 1 rows (captions whose current human label is MV,RV,TV; automatic labels are not exported" in out.stdout
    before = snapshot(small)
    bad = run("export", "--store", small, "--out", tmp_path, "--format", "csv")
    assert bad.returncode == 2 and "expected a file path, got an existing directory" in bad.stderr
    bad = run("export", "--store", small, "--out", tmp_path / "y.csv", "--labels", "MV,ZZ")
    assert bad.returncode == 2 and "got 'ZZ'" in bad.stderr
    assert snapshot(small) == before
    ok = run("export", "--store", small, "--out", tmp_path / "new" / "y.zip", "--parents")
    assert ok.returncode == 0 and (tmp_path / "new" / "y.zip").is_file()


def test_bench_small(tmp_path):
    out = run("bench", "--json", "--captions", 3000, "--candidates", 300, "--tries", 10,
              "--dir", tmp_path / "b", "--keep", timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("captions", "candidates", "page_query_ms", "label_write_ms", "search_ms", "build_s"):
        assert key in result
    assert (result["captions"], result["candidates"]) == (3000, 300)
    again = run("bench", "--json", "--captions", 3000, "--candidates", 300, "--tries", 5, "--dir", tmp_path / "b")
    assert again.returncode == 0 and json.loads(again.stdout.strip().splitlines()[-1])["build_s"] == 0.0
    bad = run("bench", "--captions", 10, "--candidates", 20)
    assert bad.returncode == 2 and "expected 1 <= candidates <= captions" in bad.stderr
