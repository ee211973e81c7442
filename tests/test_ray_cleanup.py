"""Ray that cleans up and keeps quiet (issue 29): a driver killed with SIGKILL leaves its Ray
processes behind; the next Ray start on the store reaps them, and no command prints Ray's lines."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from attack.engine.cluster import start_time
from store import CaptionRow, Store

from .conftest import REPO, subprocess_env

pytestmark = pytest.mark.slow


def _alive(record: dict) -> list[int]:
    return [int(p) for p, t in record["processes"].items() if start_time(int(p)) == t]


def _score(store_dir, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "attack", "score", "--store", str(store_dir), "--model", "demo",
                             "--engine", "ray", "--workers", "1", "--batch-size", "8"], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def test_a_killed_driver_leaves_nothing_behind_the_next_run_and_ray_prints_nothing(tmp_path):
    store_dir = tmp_path / "s"
    with Store.open(store_dir) as s:
        s.add_captions([CaptionRow(f"a photo of item {i} on a table") for i in range(600)])
    record_file = store_dir / "logs" / "cluster.json"
    first = _score(store_dir)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:          # wait for the cluster's second record: actors and agents up
        if record_file.exists() and len(json.loads(record_file.read_text())["processes"]) >= 6:
            break
        assert first.poll() is None, first.stdout.read()
        time.sleep(0.5)
    killed = json.loads(record_file.read_text())
    os.kill(first.pid, signal.SIGKILL)
    first.wait(timeout=60)
    time.sleep(3)
    left = _alive(killed)                        # what Ray leaves of a killed driver's cluster
    second = _score(store_dir)
    out, _ = second.communicate(timeout=600)
    assert second.returncode == 0, out
    assert _alive(killed) == [], f"still running after the next run: {_alive(killed)} (left at kill: {left})"
    own = json.loads(record_file.read_text())
    deadline = time.monotonic() + 60           # and the next run's own cluster ends with it (Ray's shutdown
    while _alive(own) and time.monotonic() < deadline:   # lets its processes finish for a moment after exit)
        time.sleep(0.5)
    assert _alive(own) == []
    assert "score dcs: run" in out
    for noise in ("core_worker", " INFO ", "WARNING", "warnings.warn", "\x1b[", "raylet"):
        assert noise not in out, f"{noise!r} printed:\n{out}"
    assert "Started a local Ray instance" in (store_dir / "logs" / "ray.log").read_text()
