"""Durability under SIGKILL and correctness with many concurrent writer processes."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from store import CaptionRow, Store
from tests.conftest import assert_derived_state, subprocess_env

WRITER = r"""
import json, random, sys, time
from store import Store, LabelError
path, reviewer, seconds, start_at = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
durable = len(sys.argv) < 6 or sys.argv[5] == "durable"
labels = ["MV", "TV", "RV", "N", "FP:texture", "skip"]
rng = random.Random(reviewer)
ids, undos = [], 0
with Store.open(path, create=False, durable=durable) as s:
    caption_ids = [r[0] for r in s.conn.execute("SELECT id FROM captions")]
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.time() + seconds
    while seconds <= 0 or time.time() < end:
        cid = rng.choice(caption_ids)
        if rng.random() < 0.1:
            try:
                entry = s.undo_label(cid, reviewer)
                undos += 1
            except LabelError:
                continue
        else:
            entry = s.add_label(cid, rng.choice(labels), reviewer)
        ids.append(entry.id)
        if seconds <= 0:  # kill mode: report each returned id at once
            print(entry.id, flush=True)
if seconds > 0:
    print(json.dumps({"ids": ids, "undos": undos}))
"""


def _make_store(tmp_path, n=20):
    path = tmp_path / "store"
    with Store.open(path) as s:
        s.add_captions([CaptionRow(f"caption {i}") for i in range(n)])
    return path


def _check_consistent(path):
    conn = sqlite3.connect(path / "store.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert_derived_state(conn)
    finally:
        conn.close()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["durable", "not-durable"])
def test_sigkill_loses_no_returned_label(tmp_path, mode):
    """durable=False (synchronous=NORMAL) must survive a process kill too; only
    a power loss separates the two modes, which a test cannot simulate."""
    path = _make_store(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path), "killed", "0", "0", mode],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), text=True)
    printed = []
    while len(printed) < 300:
        line = child.stdout.readline()
        assert line, f"writer died early: {child.stderr.read()}"
        printed.append(int(line))
    os.kill(child.pid, signal.SIGKILL)  # mid-burst: it is writing as fast as it can
    # read the rest through the same buffered reader (communicate() would skip what readline buffered)
    printed += [int(x) for x in child.stdout.read().split()]
    child.stderr.read()
    assert child.wait() == -signal.SIGKILL
    with Store.open(path, create=False) as s:  # opens cleanly (WAL recovery)
        stored = {r[0] for r in s.conn.execute("SELECT id FROM labels")}
        assert set(printed) <= stored
        assert len(stored) - len(printed) <= 1  # at most the one in flight when killed
        s.add_label(1, "MV", "after")  # and is writable
    _check_consistent(path)


def _run_writers(tmp_path, n_procs: int, seconds: float):
    path = _make_store(tmp_path)
    start_at = time.time() + 1.5  # all start writing together, after interpreter start-up
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), f"w{i}", str(seconds), str(start_at)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=subprocess_env(), text=True)
             for i in range(n_procs)]
    results = []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=seconds + 120)
        assert p.returncode == 0, f"writer w{i} failed: {err}"
        assert "locked" not in err.lower()
        results.append(json.loads(out.strip().splitlines()[-1]))
    conn = sqlite3.connect(path / "store.db")
    rows = conn.execute("SELECT id, reviewer FROM labels").fetchall()
    conn.close()
    all_ids = [i for r in results for i in r["ids"]]
    assert len(all_ids) == len(set(all_ids)), "an id was returned twice"
    assert sorted(all_ids) == sorted(r[0] for r in rows), "history rows lost or duplicated"
    owner = dict(rows)
    for i, r in enumerate(results):
        assert all(owner[x] == f"w{i}" for x in r["ids"])
        assert len(r["ids"]) > 0
    _check_consistent(path)
    return len(all_ids)


@pytest.mark.timeout(180)
def test_eight_writers_short(tmp_path):
    assert _run_writers(tmp_path, 8, float(os.environ.get("VERBATIM_WRITERS_SECONDS", "5"))) > 100


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_eight_writers_twenty_seconds(tmp_path):
    assert _run_writers(tmp_path, 8, 20.0) > 400
