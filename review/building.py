"""The page served while `python app.py` builds the demo store: it shows the build's progress
and reloads itself once the review app has taken over the port."""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import gradio as gr

BUILDING_TITLE = "Verbatim: building the demo store"

# poll the server's config; once its title is no longer the building page's, the review app is
# up on this port: reload into it (failed fetches during the hand-over are retried)
RELOAD_JS = """
() => {
  const poll = () => fetch('config', {cache: 'no-store'})
    .then((r) => r.json())
    .then((c) => { if (!String(c.title || '').includes('building')) location.reload(); else setTimeout(poll, 2000); })
    .catch(() => setTimeout(poll, 2000));
  setTimeout(poll, 2000);
}
"""


# the demo build's stages in order, with a planned cost in seconds for a 2-core CPU: only the first
# estimate uses them as they are; after that, what is left is rescaled by this machine's pace on
# the stages already run, so only their proportions matter (the measured build time lives in
# docs/benchmarks.md, never here)
DEMO_STAGES: tuple[tuple[str, float], ...] = (
    ("ingest", 6), ("dcs", 21), ("ecs", 27), ("wen", 10), ("anisotropy", 17), ("generate", 130), ("index", 1),
    ("retrieve", 40), ("label", 1))


class BuildProgress:
    """Progress of the build, written by the build's callback and read by the page's timer."""

    def __init__(self, echo: Optional[Callable[[str, int, int], None]] = None,
                 stages: tuple[tuple[str, float], ...] = DEMO_STAGES, clock: Callable[[], float] = time.monotonic):
        self._lock = threading.Lock()
        self._stages: dict[str, tuple[int, int]] = {}
        self._echo = echo
        self._plan = dict(stages)
        self._clock = clock
        self._start: Optional[float] = None

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            if self._start is None:
                self._start = self._clock()
            self._stages[stage] = (done, total)
        if self._echo is not None:
            self._echo(stage, done, total)

    def remaining_s(self) -> Optional[float]:
        """Seconds left: the planned seconds of what is left, scaled by this machine's pace so far
        (elapsed over the planned seconds of what is done). None before any stage has progressed."""
        with self._lock:
            stages, start = dict(self._stages), self._start
        if start is None:
            return None
        done_plan = left_plan = 0.0
        for name, secs in self._plan.items():
            done, total = stages.get(name, (0, 0))
            frac = min(1.0, done / total) if total else 0.0
            done_plan += secs * frac
            left_plan += secs * (1 - frac)
        if done_plan <= 0:
            return left_plan
        return left_plan * (self._clock() - start) / done_plan

    def markdown(self) -> str:
        with self._lock:
            stages = list(self._stages.items())
        if not stages:
            return "starting…"
        seen = dict(stages)
        # words, not emoji: a browser without an emoji font draws those as empty boxes
        lines = [f"- **{stage}**: {done:,} / {total:,} ({'done' if total and done >= total else 'running'})"
                 for stage, (done, total) in stages]
        lines += [f"- {name}: to do" for name in self._plan if name not in seen]
        left = self.remaining_s()
        if left is not None:
            lines.append(f"\nAbout {max(1, round(left / 60))} min left (estimated from this machine's pace so far).")
        return "\n".join(lines)


def build_page(progress: BuildProgress) -> gr.Blocks:
    with gr.Blocks(title=BUILDING_TITLE) as page:
        gr.Markdown("# Verbatim\nBuilding the demo store (once: scores, generations, retrieval, masks and "
                    "automatic labels with the embedded model; a few minutes on a CPU). This page opens the "
                    "review app by itself when it is ready.")
        shown = gr.Markdown(progress.markdown())
        gr.Timer(1.0).tick(progress.markdown, None, shown, api_name=False, show_progress="hidden")
    return page
