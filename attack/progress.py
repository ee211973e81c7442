"""The one progress type of the attack stages, and its terminal rendering.

A stage calls ``progress(label, done, total)`` once with done=0, then as it advances; the
command line draws it as tqdm bars, the app's build page as text, tests record it.
"""
from __future__ import annotations

import sys
from collections.abc import Callable

Progress = Callable[[str, int, int], None]


def no_progress(label: str, done: int, total: int) -> None:
    """A Progress that shows nothing."""


def say(message: str) -> None:
    """A line on stderr that a drawing progress bar does not swallow (tqdm clears its bar, prints
    the line, redraws the bar); terminal-safe like every echo."""
    from tqdm import tqdm

    from store.terminal import terminal_safe

    tqdm.write(terminal_safe(message), file=sys.stderr)


def progress_bars() -> tuple[Progress, Callable[[], None]]:
    """A Progress drawing one tqdm bar (rate, ETA) per label on stderr, and its closer."""
    from tqdm import tqdm

    bars: dict = {}

    def update(label: str, done: int, total: int) -> None:
        bar = bars.get(label)
        if bar is None or done == 0:
            # stages run one after another: a new stage closes the others, so each bar's
            # elapsed time and rate are its own stage's and bars do not stack up
            close()
            bar = bars[label] = tqdm(total=total, desc=label, unit="item", file=sys.stderr, mininterval=0.5)
        bar.update(done - bar.n)
        if total and done >= total:
            bars.pop(label).close()

    def close() -> None:
        for bar in bars.values():
            bar.close()
        bars.clear()

    return update, close
