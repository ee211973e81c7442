"""Shared helpers for store / ingest / export tests."""
from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

from store import CaptionRow, Neighbour, Store

# belt and braces: the library only ever loads with local_files_only; in tests, even a slip cannot
# reach the Hugging Face hub (set before any test imports huggingface_hub)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parent.parent


def snapshot(store_dir: Path) -> tuple:
    """Everything observable in a store: a dump of every table (FTS shadow tables
    included) and the images/ listing, to assert that a failed call changed nothing."""
    conn = sqlite3.connect(f"file:{store_dir / 'store.db'}?mode=ro", uri=True)
    try:
        dump = tuple(conn.iterdump())
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()
    images = tuple(sorted(str(p.relative_to(store_dir)) for p in (store_dir / "images").rglob("*")))
    return version, dump, images


def tiny_image(seed: int, size: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tests run tiny models, fastest on one thread: two OpenMP threads next to another busy
    process spin at their barriers and run many times slower. Restored after each test."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def store(tmp_path: Path):
    with Store.open(tmp_path / "store") as s:
        yield s


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def add_candidate(store: Store, text: str, run_id: int, seed: int = 0, scores: dict | None = None,
                  rmse: float = 0.05, masked_rmse: float | None = None, own: bool = True) -> dict:
    """One caption with scores, a generation, its own training image as a neighbour."""
    (cid,) = store.add_captions([CaptionRow(text, url=f"https://example.com/{seed}.jpg")])
    for kind, value in (scores or {}).items():
        store.add_scores(run_id, kind, [(cid, value)])
    gen_sha = store.put_image(tiny_image(seed))
    train_sha = store.put_image(tiny_image(seed + 10_000))
    tid = store.add_training_image(train_sha, cid if own else None, f"train/{seed}.png",
                                   {"url": f"https://laion.example/{seed}.jpg"})
    gid = store.add_generation(cid, run_id, seed, 1, "heun", gen_sha)
    store.add_neighbours(gid, [Neighbour(0, tid, 0.99, rmse, masked_rmse)])
    return {"caption_id": cid, "generation_id": gid, "train_image_id": tid, "gen_sha": gen_sha,
            "train_sha": train_sha}


def assert_derived_state(conn: sqlite3.Connection) -> None:
    """The trigger-maintained tables equal what they are derived from."""
    from store import reviews
    latest = dict(conn.execute("SELECT caption_id, label FROM labels WHERE id IN "
                               "(SELECT max(id) FROM labels GROUP BY caption_id)").fetchall())
    k = reviews.reviews_per_candidate(conn)
    if k > 1:   # blind reviews: the final label (agreed or adjudicated), and where the reviews stand
        final = {cid: reviews.caption_reviews(cid, reviews.history(conn, cid), k) for cid in latest}
        latest = {cid: r.label for cid, r in final.items()}
        assert dict(conn.execute("SELECT caption_id, review FROM caption_state WHERE label_entry_id IS NOT NULL")) \
            == {cid: r.state for cid, r in final.items()}
    state = dict(conn.execute("SELECT caption_id, label FROM caption_state WHERE label_entry_id IS NOT NULL"))
    assert state == latest
    n_gen = dict(conn.execute("SELECT caption_id, count(*) FROM generations GROUP BY caption_id"))
    assert n_gen == dict(conn.execute("SELECT caption_id, n_generations FROM caption_state WHERE n_generations > 0"))
    counts = {(a, b): n for a, b, n in conn.execute("SELECT label_key, auto_key, n FROM candidate_counts WHERE n <> 0")}
    expected = {(a, b): n for a, b, n in conn.execute(
        "SELECT coalesce(label, ''), coalesce(auto_label, ''), count(*) FROM caption_state "
        "WHERE n_generations > 0 GROUP BY 1, 2")}
    assert counts == expected
    cand = set(conn.execute("SELECT caption_id, kind, run_id, value, is_latest FROM candidate_scores"))
    exp = set(conn.execute(
        "SELECT s.caption_id, s.kind, s.run_id, s.value, s.run_id = (SELECT max(run_id) FROM scores s2 "
        "WHERE s2.caption_id = s.caption_id AND s2.kind = s.kind) FROM scores s "
        "JOIN caption_state st ON st.caption_id = s.caption_id AND st.n_generations > 0"))
    assert cand == exp
    flags = set(conn.execute("SELECT caption_id, flag FROM caption_flags"))
    exp_flags = {(cid, f) for cid, fl in conn.execute(
        "SELECT caption_id, flags FROM auto_labels a WHERE run_id = (SELECT max(run_id) FROM auto_labels b "
        "WHERE b.caption_id = a.caption_id)") for f in json.loads(fl)}
    assert flags == exp_flags


def http_status(url: str) -> int:
    """The HTTP status a GET of url answers (an error status is returned, not raised)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def free_port() -> int:
    """A loopback port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def served_sample_app(folder: Path, n: int = 30, size: int = 32, reviews_per_candidate: int = 1) -> Iterator[tuple]:
    """The review app on a sample store of n candidates (images of size x size), launched on
    loopback: yields (store, caption ids, url, the Blocks)."""
    from review.app import build_app, launch_options
    from review.sample import build_sample_store

    with Store.open(folder) as s:
        ids = build_sample_store(s, n=n, size=size)
        s.set_reviews_per_candidate(reviews_per_candidate)
        demo = build_app(s)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    **launch_options(s))
        try:
            yield s, ids, f"http://127.0.0.1:{port}/", demo
        finally:
            demo.close()


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def launch_chromium(playwright, chromium: str = CHROMIUM):
    """Debian's chromium under Playwright; without it, one line naming the command that installs it
    (a failure, not a skip: the browser tests are part of the suite)."""
    if not Path(chromium).exists():
        pytest.fail(f"no browser at {chromium}: run `bash scripts/system_packages.sh` "
                    "(apt-get install chromium) before the browser tests", pytrace=False)
    return playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module (module scope: Playwright's sync API must not outlive the module
    whose tests drive it, and a launch costs a second or two, not worth sharing further)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch_chromium(p)
        yield b
        b.close()



# The README's test command runs the suite in two passes on CI's two cores: every test not marked
# `serial` on two pytest-xdist workers, then the `serial` ones alone. Serial: the tests that drive
# Chromium (they wait on a page rendered with software WebGL, which a busy second core slows past
# their waits) and the one that compares timings. The tests that start a Ray cluster share one
# worker (xdist_group "ray"): one checks that a killed run leaves no Ray process behind.
SERIAL_FILES = ("test_browser", "test_evidence_browser", "test_review_leases", "test_throughput_guard")
RAY_FILES = ("test_ray_engine", "test_ray_cleanup", "test_bench_scale")


@pytest.hookimpl(tryfirst=True)          # before -m deselects by marker
def pytest_collection_modifyitems(config, items):
    for item in items:
        module = item.nodeid.split("::")[0].rsplit("/", 1)[-1]
        uses = set(getattr(item, "fixturenames", ()))
        if module.startswith(SERIAL_FILES) or uses & {"browser", "page"}:
            item.add_marker(pytest.mark.serial)
        if module.startswith(RAY_FILES):
            item.add_marker(pytest.mark.xdist_group("ray"))
