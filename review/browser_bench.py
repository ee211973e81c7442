"""``python -m review bench --browser``: the review app as a reviewer feels it, in Chromium.

A copy of the demo store (the user's stays untouched: the bench writes labels) is served by
``python app.py`` in a subprocess; headless Chromium (Playwright, Debian's /usr/bin/chromium by
default) opens the Candidate tab at 1400x900 and triages candidates with the label keys 1-8 in
turn. For each key, in the page: from the keydown event to the next candidate's view rendered
with every picture of its strip loaded and decoded (``img.decode()``) and one more animation
frame: ``key_to_next_ms`` (median) and ``key_to_next_p90_ms``. For each candidate shown, whether
its generations, own training image and match lie fully inside the viewport: ``above_fold_fraction``.
The first ``warmup`` keys are not timed (the browser's and the server's first renders); every
candidate's images are new to the browser (no cache is warm for them).
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from store import Store, StoreError
from store.stats import percentile

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
CHROMIUM = "/usr/bin/chromium"
VIEWPORT = (1400, 900)
TARGETS = {"key_to_next_ms": 250.0, "key_to_next_p90_ms": 400.0, "above_fold_fraction": 1.0}

# In the page: time from the keydown to the next candidate rendered with its strip decoded.
HOOK = """
() => {
  window.__vbBench = {t0: null, t1: null, from: null};
  document.addEventListener('keydown', () => {
    const v = document.querySelector('#vb-view .vb-cand');
    window.__vbBench = {t0: performance.now(), t1: null, from: v ? v.dataset.captionId : null};
    const poll = async () => {
      const v2 = document.querySelector('#vb-view .vb-cand');
      if (!v2 || v2.dataset.captionId === window.__vbBench.from) { requestAnimationFrame(poll); return; }
      const imgs = [...v2.querySelectorAll('.vb-strip img')];
      if (!imgs.every((i) => i.complete && i.naturalWidth > 0)) { requestAnimationFrame(poll); return; }
      await Promise.all(imgs.map((i) => i.decode().catch(() => null)));
      requestAnimationFrame(() => { window.__vbBench.t1 = performance.now(); });
    };
    requestAnimationFrame(poll);
  }, true);
}
"""

# Whether the decision pictures of the shown candidate are fully inside the viewport.
ABOVE_FOLD = """
() => {
  const inside = (e) => { const r = e.getBoundingClientRect();
    return r.width > 0 && r.top >= 0 && r.left >= 0 && r.bottom <= innerHeight && r.right <= innerWidth; };
  const v = document.querySelector('#vb-view .vb-cand');
  const need = [...v.querySelectorAll('.vb-strip[data-testid=generations] img, img.vb-own, img.vb-match')];
  return {id: v.dataset.captionId, n: need.length, inside: need.length > 0 && need.every(inside)};
}
"""


@dataclass(frozen=True)
class BrowserBenchConfig:
    store: Optional[Path] = None       # default data/demo (built first if absent, as `python app.py` does)
    candidates: int = 40
    warmup: int = 2
    chromium: str = CHROMIUM
    screenshots: Optional[Path] = None  # also save grid.png and review.png (a template family's candidate) here


@dataclass(frozen=True)
class BrowserBenchResult:
    key_to_next_ms: float
    key_to_next_p90_ms: float
    above_fold_fraction: float
    candidates: int                    # candidates triaged with a label key (timed ones)
    warmup: int
    viewport: str
    images_cached: bool                # False: each candidate's images were new to the browser
    targets: dict
    met: bool
    store: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy(src: Path, log: Callable[[str], None]) -> Path:
    """A consistent copy of the store (SQLite's backup, then the image files)."""
    if not (src / "store.db").exists():
        raise StoreError(f"browser bench: expected a store folder with store.db, got {src} "
                         "(run `python app.py` once to build the demo store, or pass --store)")
    dst = Path(tempfile.mkdtemp(prefix="verbatim-browser-bench-")) / "store"
    with Store.open(src, readonly=True) as s:
        if not s.info()["candidates"]:
            raise StoreError(f"browser bench: expected a store with candidates, got none in {src}")
        dst.mkdir(parents=True)
        s.backup_to(dst / "store.db")
    shutil.copytree(src / "images", dst / "images")
    log(f"copied {src} to {dst}")
    return dst


def _serve(store: Path, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, str(REPO / "app.py"), "--store", str(store), "--port", str(port)],
                            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline:
        if proc.poll() is not None:
            raise StoreError(f"browser bench: the app exited with {proc.returncode}: {proc.stderr.read()[-500:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise StoreError("browser bench: expected the app to listen within 120 s, got no answer")


def _drive(url: str, cfg: BrowserBenchConfig, log: Callable[[str], None]) -> tuple[list[float], list[bool]]:
    from playwright.sync_api import sync_playwright

    times, fold = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=cfg.chromium,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page(viewport={"width": VIEWPORT[0], "height": VIEWPORT[1]})
        page.set_default_timeout(30_000)
        page.goto(url)
        page.wait_for_selector("#vb-queue")
        page.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill("browser-bench")
        page.get_by_role("tab", name="Candidate").click()
        page.wait_for_selector("#vb-view .vb-cand")
        page.evaluate(HOOK)
        page.locator("body").click(position={"x": 5, "y": 5})
        for i in range(cfg.warmup + cfg.candidates):
            f = page.evaluate(ABOVE_FOLD)
            page.keyboard.press("12345678"[i % 8])
            page.wait_for_function("window.__vbBench && window.__vbBench.t1 !== null")
            ms = page.evaluate("window.__vbBench.t1 - window.__vbBench.t0")
            if i >= cfg.warmup:
                times.append(ms)
                fold.append(bool(f["inside"]))
            if not page.evaluate("document.querySelector('#vb-view .vb-cand').dataset.captionId"):
                break
        if cfg.screenshots is not None:
            _screenshots(page, Path(cfg.screenshots), log)
        browser.close()
    log(f"triaged {len(times)} candidates (+{cfg.warmup} warm-up)")
    return times, fold


def _screenshots(page, folder: Path, log: Callable[[str], None]) -> None:
    """The grid, then the first candidate of its second group (a template family) in the one-screen view."""
    folder.mkdir(parents=True, exist_ok=True)
    page.get_by_role("tab", name="Grid").click()
    page.wait_for_selector("#vb-grid-root .vb-cell")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / "grid.png"))
    groups = page.locator("#vb-grid-root .vb-group")
    cell = (groups.nth(1) if groups.count() > 1 else groups.first).locator(".vb-cell").first
    cid = cell.get_attribute("data-caption-id")
    cell.dblclick()
    page.wait_for_function(f"(document.querySelector('#vb-view .vb-cand') || {{dataset: {{}}}}).dataset.captionId "
                           f"=== '{cid}'")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / "review.png"))
    log(f"screenshots: {folder / 'grid.png'}, {folder / 'review.png'} (candidate {cid})")


def run_browser_bench(cfg: BrowserBenchConfig, log: Callable[[str], None] = lambda s: None) -> BrowserBenchResult:
    if not Path(cfg.chromium).exists():
        raise StoreError(f"browser bench: expected Chromium at {cfg.chromium}, got no such file (apt-get install "
                         "chromium, or pass --chromium)")
    src = Path(cfg.store) if cfg.store else DEMO
    if cfg.store is None and not (src / "store.db").exists():
        from attack.demo.build import build_demo_store     # what `python app.py` builds first

        log(f"building the demo store at {src} (once; a few minutes on a CPU)")
        build_demo_store(src)
    dst = _copy(src, log)
    port = _free_port()
    proc = _serve(dst, port)
    try:
        times, fold = _drive(f"http://127.0.0.1:{port}/", cfg, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(dst.parent, ignore_errors=True)
    if not times:
        raise StoreError(f"browser bench: expected candidates to triage in {src}, got none")
    med, p90, frac = statistics.median(times), percentile(times, 90), sum(fold) / len(fold)
    met = med <= TARGETS["key_to_next_ms"] and p90 <= TARGETS["key_to_next_p90_ms"] \
        and frac >= TARGETS["above_fold_fraction"]
    return BrowserBenchResult(round(med, 1), round(p90, 1), round(frac, 4), len(times), cfg.warmup,
                              f"{VIEWPORT[0]}x{VIEWPORT[1]}", False, TARGETS, met, _shown(src))


def _shown(path: Path) -> str:
    """A store path as the user would type it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def result_json(result: BrowserBenchResult) -> str:
    return json.dumps(asdict(result))
