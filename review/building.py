"""The page served while `python app.py` builds the demo store: it shows the build's progress
and reloads itself once the review app has taken over the port."""
from __future__ import annotations

import threading
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


class BuildProgress:
    """Progress of the build, written by the build's callback and read by the page's timer."""

    def __init__(self, echo: Optional[Callable[[str, int, int], None]] = None) -> None:
        self._lock = threading.Lock()
        self._stages: dict[str, tuple[int, int]] = {}
        self._echo = echo

    def __call__(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._stages[stage] = (done, total)
        if self._echo is not None:
            self._echo(stage, done, total)

    def markdown(self) -> str:
        with self._lock:
            stages = list(self._stages.items())
        if not stages:
            return "starting…"
        # words, not emoji: a browser without an emoji font draws those as empty boxes
        return "\n".join(f"- **{stage}**: {done:,} / {total:,} ({'done' if total and done >= total else 'running'})"
                         for stage, (done, total) in stages)


def build_page(progress: BuildProgress) -> gr.Blocks:
    with gr.Blocks(title=BUILDING_TITLE) as page:
        gr.Markdown("# Verbatim\nBuilding the demo store (once: scores, generations, retrieval, masks and "
                    "automatic labels with the embedded model; a few minutes on a CPU). This page opens the "
                    "review app by itself when it is ready.")
        shown = gr.Markdown(progress.markdown())
        gr.Timer(1.0).tick(progress.markdown, None, shown, api_name=False, show_progress="hidden")
    return page
