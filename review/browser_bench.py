"""``python -m review bench --browser``: the review app as a reviewer feels it, in Chromium.

A copy of the demo store (the user's stays untouched: the bench writes labels) is served by
``python app.py`` in a subprocess; headless Chromium (Playwright, Debian's /usr/bin/chromium by
default) opens the Candidate tab at each of VIEWPORTS (a laptop's 1280x720 and 1400x900; each on a
fresh copy of the store, so both meet the same candidates, and in a browser context of its own: no
image cache shared) and triages candidates with the label keys 1-8 in turn. For each key, in the page: from the keydown event to the next candidate's view rendered
with every picture of its strip loaded and decoded (``img.decode()``) and one more animation
frame: ``key_to_next_ms`` (median) and ``key_to_next_p90_ms``.

``above_fold_fraction``, per viewport and per kind of candidate (its automatic label): of the
area of the elements a decision needs (the generations, the own image, the match, the difference,
each with its caption, the compare tile with its range and caption, and a template's mask in the
side panel), the fraction inside the viewport without scrolling, summed over the candidates of that
kind shown (the triaged ones and one of each of MV, TV and RV opened from the grid).
The first ``warmup`` keys are not timed (the browser's and the server's first renders); every
candidate's images are new to the browser (no cache is warm for them). The top-level figures are
the reference viewport's (1400x900); ``met`` needs every viewport's.
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
from store.store import copy_store

REPO = Path(__file__).resolve().parent.parent
DEMO = REPO / "data" / "demo"
CHROMIUM = "/usr/bin/chromium"
VIEWPORTS = ((1280, 720), (1400, 900))
REFERENCE = (1400, 900)       # the top-level figures (the one viewport of earlier versions)
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

# The area of the decision elements of the shown candidate, and how much of it lies inside the
# viewport at scroll 0 (document coordinates: the measure does not depend on the scroll position).
REQUIRED = (".vb-strip[data-testid=generations] .vb-fig", ".vb-strip[data-testid=evidence] .vb-fig",
            ".vb-side .vb-mask-sec .vb-fig")
ABOVE_FOLD = """
(sels) => {
  const v = document.querySelector('#vb-view .vb-cand');
  let area = 0, inside = 0, n = 0;
  for (const e of v.querySelectorAll(sels.join(', '))) {
    const r = e.getBoundingClientRect();
    const top = r.top + scrollY, bottom = r.bottom + scrollY, left = r.left + scrollX, right = r.right + scrollX;
    const w = Math.max(0, Math.min(right, innerWidth) - Math.max(left, 0));
    const h = Math.max(0, Math.min(bottom, innerHeight) - Math.max(top, 0));
    area += r.width * r.height; inside += w * h; n += 1;
  }
  return {id: v.dataset.captionId, kind: v.dataset.auto || '', n, area, inside};
}
"""
KINDS = ("MV", "TV", "RV")


@dataclass(frozen=True)
class BrowserBenchConfig:
    store: Optional[Path] = None       # default data/demo (built first if absent, as `python app.py` does)
    candidates: int = 40
    warmup: int = 2
    chromium: str = CHROMIUM
    screenshots: Optional[Path] = None  # also save grid.png and review.png (a template family's candidate) here


@dataclass(frozen=True)
class ViewportFigures:
    key_to_next_ms: float
    key_to_next_p90_ms: float
    above_fold_fraction: dict          # kind (MV, TV, RV, N, ...) -> fraction of the decision area on screen
    shown: dict                        # kind -> candidates measured
    candidates: int                    # candidates triaged with a label key (timed ones)
    met: bool


@dataclass(frozen=True)
class BrowserBenchResult:
    key_to_next_ms: float              # the reference viewport's (1400x900)
    key_to_next_p90_ms: float
    above_fold_fraction: float         # the lowest of every viewport's per-kind fractions
    candidates: int                    # candidates triaged with a label key (timed ones), per viewport
    warmup: int
    viewport: str                      # the reference viewport
    images_cached: bool                # False: each candidate's images were new to the browser
    targets: dict
    met: bool                          # every viewport met every target
    store: str
    viewports: dict                    # "WxH" -> ViewportFigures as a dict


@dataclass
class _Measured:
    times: list                        # key -> next, ms (timed keys)
    area: dict                         # kind -> [decision area, of it on screen]
    shown: dict                        # kind -> candidates measured

    def add(self, f: dict) -> None:
        a = self.area.setdefault(f["kind"] or "none", [0.0, 0.0])
        a[0] += f["area"]
        a[1] += f["inside"]
        self.shown[f["kind"] or "none"] = self.shown.get(f["kind"] or "none", 0) + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy(src: Path, log: Callable[[str], None]) -> Path:
    """A consistent copy of the store (SQLite's backup, then the image files)."""
    if not (src / "store.db").exists():
        raise StoreError(f"browser bench: expected a store folder with store.db, got {src} "
                         "(run `python app.py` once to build the demo store, or pass --store)")
    dst = copy_store(src, Path(tempfile.mkdtemp(prefix="verbatim-browser-bench-")) / "store")
    with Store.open(dst) as s:
        if not s.info()["candidates"]:
            raise StoreError(f"browser bench: expected a store with candidates, got none in {src}")
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


def _drive(url: str, size: tuple[int, int], cfg: BrowserBenchConfig, log: Callable[[str], None]) -> _Measured:
    """One viewport on a fresh copy of the store: one candidate of each kind opened from the grid (in
    a browser context of its own), then the timed triage in another (its images new to its cache)."""
    from playwright.sync_api import sync_playwright

    m = _Measured([], {}, {})
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=cfg.chromium,
                                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        _probe(context.new_page(), url, m)
        context.close()
        context = browser.new_context(viewport={"width": size[0], "height": size[1]})
        page = context.new_page()
        _triage(page, url, cfg, m)
        log(f"{size[0]}x{size[1]}: triaged {len(m.times)} candidates (+{cfg.warmup} warm-up), measured {m.shown}")
        if cfg.screenshots is not None:
            _screenshots(page, Path(cfg.screenshots), size, log)
        browser.close()
    return m


def _measure(page) -> dict:
    return page.evaluate(ABOVE_FOLD, list(REQUIRED))


def _open_page(page, url: str) -> None:
    page.set_default_timeout(30_000)
    page.goto(url)
    page.wait_for_selector("#vb-queue")
    page.locator("#vb-reviewer textarea, #vb-reviewer input").first.fill("browser-bench")


def _triage(page, url: str, cfg: BrowserBenchConfig, m: _Measured) -> None:
    """Label keys 1-8 in turn from the first unlabelled candidate: each timed and measured."""
    _open_page(page, url)
    page.get_by_role("tab", name="Candidate").click()
    page.wait_for_selector("#vb-view .vb-cand")
    page.evaluate(HOOK)
    page.locator("body").click(position={"x": 5, "y": 5})
    for i in range(cfg.warmup + cfg.candidates):
        f = _measure(page)
        page.keyboard.press("12345678"[i % 8])
        # the last unlabelled candidate labelled: the view says so, and there is nothing to time
        page.wait_for_function("(window.__vbBench && window.__vbBench.t1 !== null) || "
                               "!document.querySelector('#vb-view .vb-cand')")
        if not page.locator("#vb-view .vb-cand").count():
            break
        ms = page.evaluate("window.__vbBench.t1 - window.__vbBench.t0")
        if i >= cfg.warmup:
            m.times.append(ms)
            m.add(f)


def _probe(page, url: str, m: _Measured) -> None:
    """The triage may not meet every kind: open one of each of KINDS from the grid (nothing labelled)."""
    _open_page(page, url)
    for kind in KINDS:
        page.get_by_role("tab", name="Grid").click()
        page.wait_for_selector("#vb-grid-root .vb-cell")
        cell = page.locator(f'#vb-grid-root .vb-cell[data-auto="{kind}"]').first
        if not cell.count():
            continue
        cid = cell.get_attribute("data-caption-id")
        cell.scroll_into_view_if_needed()
        cell.dblclick()
        page.wait_for_function(f"(document.querySelector('#vb-view .vb-cand') || {{dataset: {{}}}}).dataset"
                               f".captionId === '{cid}'")
        page.wait_for_function("[...document.querySelectorAll('#vb-view .vb-strip img')].every((i) => i.complete)")
        page.wait_for_timeout(200)    # keys.js resets the scroll on the next frame
        m.add(_measure(page))


def _screenshots(page, folder: Path, size: tuple[int, int], log: Callable[[str], None]) -> None:
    """The grid, then the first candidate of its second group (a template family) in the one-screen view:
    grid.png and review.png at the reference viewport, grid-WxH.png and review-WxH.png at another."""
    folder.mkdir(parents=True, exist_ok=True)
    tail = "" if size == REFERENCE else f"-{size[0]}x{size[1]}"
    page.get_by_role("tab", name="Grid").click()
    page.wait_for_selector("#vb-grid-root .vb-cell")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / f"grid{tail}.png"))
    groups = page.locator("#vb-grid-root .vb-group")
    cell = (groups.nth(1) if groups.count() > 1 else groups.first).locator(".vb-cell").first
    cid = cell.get_attribute("data-caption-id")
    cell.dblclick()
    page.wait_for_function(f"(document.querySelector('#vb-view .vb-cand') || {{dataset: {{}}}}).dataset.captionId "
                           f"=== '{cid}'")
    page.wait_for_timeout(1000)
    page.screenshot(path=str(folder / f"review{tail}.png"))
    log(f"screenshots: {folder / f'grid{tail}.png'}, {folder / f'review{tail}.png'} (candidate {cid})")


def run_browser_bench(cfg: BrowserBenchConfig, log: Callable[[str], None] = lambda s: None) -> BrowserBenchResult:
    if not Path(cfg.chromium).exists():
        raise StoreError(f"browser bench: expected Chromium at {cfg.chromium}, got no such file (apt-get install "
                         "chromium, or pass --chromium)")
    src = Path(cfg.store) if cfg.store else DEMO
    if cfg.store is None and not (src / "store.db").exists():
        from attack.demo.build import build_demo_store  # what `python app.py` builds first

        log(f"building the demo store at {src} (once; a few minutes on a CPU)")
        build_demo_store(src)
    measured = {}
    for size in VIEWPORTS:       # each viewport on a fresh copy: the same candidates, none labelled yet
        dst = _copy(src, log)
        port = _free_port()
        proc = _serve(dst, port)
        try:
            measured[size] = _drive(f"http://127.0.0.1:{port}/", size, cfg, log)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(dst.parent, ignore_errors=True)
    figures = {f"{w}x{h}": _figures(m) for (w, h), m in measured.items()}
    ref = figures[f"{REFERENCE[0]}x{REFERENCE[1]}"]
    if not ref.candidates:
        raise StoreError(f"browser bench: expected candidates to triage in {src}, got none")
    fold = min((f for v in figures.values() for f in v.above_fold_fraction.values()), default=0.0)
    return BrowserBenchResult(ref.key_to_next_ms, ref.key_to_next_p90_ms, fold, ref.candidates, cfg.warmup,
                              f"{REFERENCE[0]}x{REFERENCE[1]}", False, TARGETS, all(v.met for v in figures.values()),
                              _shown(src), {k: asdict(v) for k, v in figures.items()})


def _figures(m: _Measured) -> ViewportFigures:
    med = round(statistics.median(m.times), 1) if m.times else 0.0
    p90 = round(percentile(m.times, 90), 1) if m.times else 0.0
    fold = {k: round(inside / area, 4) if area else 0.0 for k, (area, inside) in sorted(m.area.items())}
    met = bool(m.times) and med <= TARGETS["key_to_next_ms"] and p90 <= TARGETS["key_to_next_p90_ms"] \
        and all(f >= TARGETS["above_fold_fraction"] for f in fold.values())
    return ViewportFigures(med, p90, fold, dict(sorted(m.shown.items())), len(m.times), met)


def _shown(path: Path) -> str:
    """A store path as the user would type it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


def result_json(result: BrowserBenchResult) -> str:
    return json.dumps(asdict(result))
