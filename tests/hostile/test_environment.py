"""The machine, not the input (issue 26): a full disk, a path the user may not read or write, a
read-only file system, a symlink loop, a damaged database file. Each ends in one plain line that
says what happened, which path, what to do and what state the store is in, exit 1, the store as it
was; a hypothesis test runs every fault kind through the commands and finds no `unexpected`."""
from __future__ import annotations

import errno
import io
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import redirect_stderr
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from attack.cli import main as attack_main
from store import Store
from store.__main__ import main as store_main
from tests.conftest import FIXTURES, REPO, subprocess_env, tiny_image
from tests.hostile.conftest import picture

# each fault as the OS or SQLite raises it, and the words the user must see
FAULTS = {
    "file disk full": (lambda: OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
    "database disk full": (lambda: sqlite3.OperationalError("database or disk is full"), "the disk is full"),
    "permission": (lambda: PermissionError(errno.EACCES, "Permission denied", "/srv/store/images/ab"),
                   "permission denied at /srv/store/images/ab: the user running this may not read or write it"),
    "read-only fs": (lambda: OSError(errno.EROFS, "Read-only file system", "/srv/store"),
                     "a read-only file system at /srv/store"),
    "symlink loop": (lambda: OSError(errno.ELOOP, "Too many levels of symbolic links", "/srv/in/a.png"),
                     "a symlink loop at /srv/in/a.png"),
    "damaged database": (lambda: sqlite3.DatabaseError("database disk image is malformed"),
                         "the store's database file is damaged (database disk image is malformed); "
                         "`python -m store check --store DIR`"),
}
# where a fault strikes (a Store method) and the command that gets there
POINTS = {
    "an image file written by ingest": ("put_image_tracked", "ingest-images"),
    "caption rows written by ingest": ("add_captions", "ingest-list"),
    "the label stage reading candidates": ("candidate_ids", "label"),
    "store info reading counts": ("info", "info"),
    "an export reading rows": ("export", "export"),
}


def _images(folder: Path, n: int = 3, first: int = 50) -> Path:
    folder.mkdir(exist_ok=True)
    for i in range(n):
        Image.fromarray(tiny_image(first + i)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A store with captions, training images and automatic labels, copied for each example."""
    root = tmp_path_factory.mktemp("env")
    store = root / "store"
    assert attack_main(["ingest", "--store", str(store), str(FIXTURES / "nemo.csv"), "--images",
                        str(_images(root / "seed", first=0))]) == 0
    return store


def _command(kind: str, store: Path, work: Path) -> list[str]:
    return {"ingest-images": ["ingest", "--store", str(store), "--images", str(_images(work / "new"))],
            "ingest-list": ["ingest", "--store", str(store), str(FIXTURES / "wen.jsonl")],
            "label": ["label", "--store", str(store)],
            "info": ["info", "--store", str(store)],
            "export": ["export", "--store", str(store), "--out", str(work / "out.csv"), "--auto"]}[kind]


def _run(kind: str, argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with redirect_stderr(err):
        rc = (store_main if kind in ("info", "export") else attack_main)(argv)
    return rc, err.getvalue()


@settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "40")), deadline=None, database=None)
@given(fault=st.sampled_from(sorted(FAULTS)), point=st.sampled_from(sorted(POINTS)))
def test_every_fault_kind_anywhere_ends_in_one_plain_line_and_the_store_as_it_was(base, fault, point):
    make, words = FAULTS[fault]
    method, kind = POINTS[point]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        store = work / "store"
        shutil.copytree(base, store)
        before = picture(store)
        argv = _command(kind, store, work)
        with mock.patch.object(Store, method, side_effect=make(), autospec=True):
            rc, err = _run(kind, argv)
        lines = [line for line in err.splitlines() if line.startswith("error")]
        assert rc == 1 and len(lines) == 1, (fault, point, err)
        assert "unexpected" not in err and words in lines[0], (fault, point, lines)
        assert picture(store) == before, (fault, point)


def test_a_full_disk_names_the_file_the_free_space_and_what_was_kept(base, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(base, store)
    before = picture(store)
    real = os.fdopen

    def full(fd, *a, **kw):                      # the image file's write fails as on a full disk
        f = real(fd, *a, **kw)
        f.write = mock.Mock(side_effect=OSError(errno.ENOSPC, "No space left on device"))
        return f

    with mock.patch("store.images.os.fdopen", side_effect=full):
        rc, err = _run("ingest-images", _command("ingest-images", store, tmp_path))
    (line,) = [x for x in err.splitlines() if x.startswith("error")]
    assert rc == 1 and line.startswith(f"error: the disk is full (no space left writing {store / 'images'}/"), line
    assert "MiB free on the disk holding" in line and re.search(r"; it needs about \d+ KiB \(its input files' size\)", line)
    assert line.endswith("; free some space and run the same command again; nothing was written, "
                         "the store is as it was"), line
    assert picture(store) == before
    assert not list((store / "images").rglob(".tmp-*"))


def test_a_symlink_loop_in_an_image_folder_is_named_and_skipped(tmp_path):
    folder = _images(tmp_path / "imgs", n=2)
    os.symlink("loop.png", folder / "loop.png")                 # a link to itself
    os.symlink("b.png", folder / "a.png")
    os.symlink("a.png", folder / "b.png")                       # two links to each other
    rc, err = _run("ingest-images", ["ingest", "--store", str(tmp_path / "s"), "--images", str(folder)])
    assert rc == 0, err
    for name in ("loop.png", "a.png", "b.png"):
        assert f"warning: not read: {name} (a symlink loop (a link that leads back to itself))" in err, err
    with Store.open(tmp_path / "s") as s:
        assert s.info()["tables"]["training_images"] == 2


def _damage(db: Path) -> None:
    """Overwrite the start of every page in the file's later half, as bad sectors or a torn copy would."""
    data = bytearray(db.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    for start in range(len(data) // page // 2 * page, len(data), page):   # the later half: the store still opens
        data[start:start + 64] = b"\xff" * 64
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("argv", [["attack", "label"], ["store", "export", "--auto"]])
def test_a_damaged_database_page_names_the_damage_and_store_check(base, tmp_path, argv):
    store = tmp_path / "store"
    shutil.copytree(base, store)
    with sqlite3.connect(store / "store.db") as c:              # everything in the main file, no WAL beside it
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    _damage(store / "store.db")
    cmd = [sys.executable, "-m", argv[0], argv[1], "--store", str(store), *argv[2:]]
    if argv[1] == "export":
        cmd += ["--out", str(tmp_path / "out.csv")]
    out = subprocess.run(cmd, cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    lines = [x for x in out.stderr.splitlines() if x.startswith("error")]
    assert out.returncode in (1, 2) and len(lines) == 1, out.stderr
    assert "unexpected" not in lines[0] and "damaged" in lines[0] and "store check" in lines[0], lines[0]
