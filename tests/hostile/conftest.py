"""Shared pieces of the hostile-input suite: running a command as a user would, and a byte-level
picture of a store to assert that a refused command changed nothing."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from attack.ingest import ingest
from store import Store
from tests.conftest import FIXTURES, REPO, subprocess_env, tiny_image

# root ignores file permissions; without these two capabilities it obeys them like any user
UNPRIVILEGED = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
                if os.geteuid() == 0 and shutil.which("setpriv") else [])


def run(*args: str, unprivileged: bool = False, timeout: float = 180, **kw) -> subprocess.CompletedProcess:
    """`python -m <args>` from the repository, output captured as bytes decoded leniently."""
    cmd = (UNPRIVILEGED if unprivileged else []) + [sys.executable, "-m", *map(str, args)]
    out = subprocess.run(cmd, capture_output=True, env=subprocess_env(), cwd=REPO, timeout=timeout, **kw)
    out.stdout = out.stdout.decode("utf-8", "replace")
    out.stderr = out.stderr.decode("utf-8", "replace")
    return out


def picture(store_dir: Path) -> tuple:
    """Every row of every table (FTS shadow tables included) and every file under images/ with
    its sha256: equal pictures mean a byte-identical store."""
    conn = sqlite3.connect(f"file:{store_dir / 'store.db'}?mode=ro", uri=True)
    try:
        dump = tuple(conn.iterdump())
    finally:
        conn.close()
    files = tuple(sorted((str(p.relative_to(store_dir)), hashlib.sha256(p.read_bytes()).hexdigest())
                         for p in (store_dir / "images").rglob("*") if p.is_file()))
    return dump, files


PROGRESS = re.compile(r"\d+/\d+ \[[^\]]*(it|item)/s\]")


def one_line_error(out: subprocess.CompletedProcess) -> str:
    """The command's stderr (progress bars aside), which must be one line without a traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    lines = [line for line in re.split(r"[\r\n]", out.stderr)
             if line.strip() and not PROGRESS.search(line) and not line.startswith("loading ")]
    assert len(lines) == 1, out.stderr
    return lines[0]


@pytest.fixture
def populated(tmp_path) -> Path:
    """A store that already holds captions, training images and a human label."""
    path = tmp_path / "store"
    folder = tmp_path / "seed-images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(tiny_image(i)).save(folder / f"{i}.png")
    with Store.open(path) as s:
        ingest(s, FIXTURES / "nemo.csv", images=folder)
        s.add_label(s.caption_id("The No Limits Business Woman Podcast"), "MV", "alice", "seen")
    return path
