"""Class 3 (signals): Ctrl-C and SIGTERM end with one line and 130 / 143, the store as it was or
resumable; class 5: read-only stores; class 8: a failed or interrupted stage marks its run."""
from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from store import CaptionRow, Store
from tests.conftest import REPO, subprocess_env, tiny_image
from tests.hostile.conftest import PROGRESS, one_line_error, picture, run


def _default_sigint() -> None:
    """A runner started in the background by a shell without job control (`cmd &`, nohup) ignores
    SIGINT, and a child inherits that: give the command Python's usual Ctrl-C back."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(*args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=subprocess_env(), cwd=REPO, text=True, preexec_fn=_default_sigint)


def _wait_for(condition, what: str, timeout: float = 120) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _read_until_progress(proc: subprocess.Popen, label: str, at_least: int) -> str:
    """Read the command's stderr until its progress bar for ``label`` shows ``at_least`` items done
    (the stage reports progress only after a batch is committed); what was read is returned."""
    seen = ""
    pattern = re.compile(rf"{re.escape(label)}:.*?\| *(\d+)/\d+")
    while not any(int(n) >= at_least for n in pattern.findall(seen)):
        chunk = os.read(proc.stderr.fileno(), 4096).decode(errors="replace")
        assert chunk, f"the command ended before {at_least} {label} items were done:\n{seen}"
        seen += chunk
    return seen


def _scores(store_dir: Path) -> int:
    try:
        with sqlite3.connect(f"file:{store_dir / 'store.db'}?mode=ro", uri=True) as c:
            return c.execute("SELECT count(*) FROM scores").fetchone()[0]
    except sqlite3.Error:
        return 0


@pytest.mark.slow
def test_ctrl_c_during_an_image_ingest_leaves_the_store_as_it_was(populated, tmp_path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(400):
        Image.fromarray(tiny_image(1000 + i, 128)).save(folder / f"{i:04d}.png", compress_level=0)
    before = picture(populated)
    known = {p.name for p in (populated / "images").rglob("*.png")}
    proc = _start("attack", "ingest", "--store", populated, "--images", folder)
    _wait_for(lambda: len({p.name for p in (populated / "images").rglob("*.png")} - known) >= 3,
              "the ingest to write image files")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = [line for line in re.split(r"[\r\n]", err) if line.strip() and not PROGRESS.search(line)]
    assert lines == ["interrupted (Ctrl-C): nothing was written, the store is as it was"]
    assert picture(populated) == before


@pytest.mark.slow
def test_sigterm_mid_scoring_marks_the_run_interrupted_and_a_rerun_resumes(tmp_path):
    store_dir = tmp_path / "s"
    with Store.open(store_dir) as s:
        s.add_captions([CaptionRow(f"a photo number {i} of a red chair") for i in range(200)])
    cmd = ("attack", "score", "--store", store_dir, "--model", "demo", "--scores", "dcs", "--batch-size", "2",
           "--device", "cpu")
    proc = _start(*cmd)
    seen = _read_until_progress(proc, "dcs", 4)       # an event, not a clock: a busy machine only makes it later
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    err = seen + err
    assert proc.returncode == 143, err
    assert err.strip().splitlines()[-1] == ("interrupted (SIGTERM): what was computed is kept and the run is marked "
                                            "interrupted; run the same command again to resume")
    with Store.open(store_dir) as s:
        (r,) = s.runs(stage="score")
        assert (r.status, r.reason) == ("interrupted", "SIGTERM") and r.finished_at is not None
        kept = s.score_count(r.id, "dcs")
    assert 4 <= kept < 200
    again = run(*cmd)
    assert again.returncode == 0, again.stderr
    assert f"({'resumed'}), {200 - kept} computed, {kept} already done" in again.stdout
    with Store.open(store_dir) as s:
        (r,) = s.runs(stage="score")
        assert (r.status, r.reason, s.score_count(r.id, "dcs")) == ("done", None, 200)


def test_a_stage_that_fails_marks_its_run_failed_with_the_reason(tmp_path):
    folder = tmp_path / "closed"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")     # the mapping row's image is corrupt
    (folder / "mapping.csv").write_text("caption,seed,steps,path\na red chair,0,1,0.png\n")
    store_dir = tmp_path / "s"
    with Store.open(store_dir) as s:
        s.add_captions([CaptionRow("a red chair")])
    out = run("attack", "score", "--store", store_dir, "--model", f"images:{folder}", "--scores", "ecs")
    assert out.returncode == 2 and "expected a readable image at" in one_line_error(out)
    with Store.open(store_dir) as s:
        (r,) = s.runs(stage="score")
    assert r.status == "failed" and "ModelError: expected a readable image at" in r.reason


def _make_read_only(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)


def _make_writable(path: Path) -> None:
    for p in [path, *path.rglob("*")]:
        os.chmod(p, 0o755 if p.is_dir() else 0o644)


@pytest.fixture
def read_only(populated):
    with Store.open(populated) as s:
        expected = s.info()
    _make_read_only(populated)
    yield populated, expected
    _make_writable(populated)


def test_read_commands_work_on_a_store_the_user_cannot_write(read_only, tmp_path):
    path, expected = read_only
    out = run("store", "info", "--store", path, "--json", unprivileged=True)
    assert out.returncode == 0, out.stderr
    import json
    assert json.loads(out.stdout)["tables"] == expected["tables"]
    out = run("store", "export", "--store", path, "--out", tmp_path / "labels.csv", unprivileged=True)
    assert out.returncode == 0, out.stderr
    assert "exported 1 rows" in out.stdout and "not recorded in the store: it is read-only" in out.stdout


def test_write_commands_on_a_read_only_store_say_so(read_only, tmp_path):
    path, _ = read_only
    before = picture(path)
    bad = tmp_path / "more.txt"
    bad.write_text("one more caption\n")
    out = run("attack", "ingest", "--store", path, bad, unprivileged=True)
    assert out.returncode == 2
    assert one_line_error(out) == f"error: store is read-only: {path / 'store.db'} (permission denied)"
    out = run("attack", "label", "--store", path, unprivileged=True)
    assert out.returncode == 2 and "store is read-only" in one_line_error(out)
    assert picture(path) == before


def test_a_store_opened_read_only_refuses_writes_by_name(populated):
    from store import ReadOnlyStoreError
    with Store.open(populated, readonly=True) as s:
        assert s.info()["tables"]["captions"] > 0
        with pytest.raises(ReadOnlyStoreError, match="store is read-only: .*store.db \\(opened for reading\\)"):
            s.add_captions([CaptionRow("x")])
        with pytest.raises(ReadOnlyStoreError):
            s.put_image(tiny_image(3))


def test_a_signal_during_an_image_write_waits_for_it_and_leaves_no_temp_file(tmp_path, monkeypatch):
    """Ctrl-C between the temp file and its rename is handled after the write: the file is whole
    and no .tmp- file is left (the ingest's rollback then removes files it created)."""
    from store import images

    real_replace = os.replace

    def replace_after_a_signal(src, dst):
        os.kill(os.getpid(), signal.SIGINT)          # arrives mid-write
        real_replace(src, dst)

    monkeypatch.setattr(images.os, "replace", replace_after_a_signal)
    # Ctrl-C raises KeyboardInterrupt here even when the runner was started with SIGINT ignored
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    # another live thread (as tqdm's monitor or a pool in a real ingest): the kernel may hand it the signal
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        for name in ("x.png", "y.png"):
            target = tmp_path / "ab" / name
            with pytest.raises(KeyboardInterrupt):
                images.atomic_write(target, b"png bytes")
            assert target.read_bytes() == b"png bytes"
    finally:
        stop.set()
        signal.signal(signal.SIGINT, previous)
    assert sorted(p.name for p in target.parent.iterdir()) == ["x.png", "y.png"]
