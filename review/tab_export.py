"""Export tab: the store's export (evidence rows, optionally with images) for the current
queue filter, offered as a download. Files are written under <store>/exports/."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional, Sequence

import gradio as gr

from store import HUMAN_LABELS, Store

from . import views
from .render import esc
from .session import gradio_errors

FORMATS = ("zip", "parquet", "csv", "jsonl", "evidence")
EXPORT_DIR = "exports"


def export_dir(store: Store) -> Path:
    return store.path / EXPORT_DIR


def run_export(store: Store, fmt: str, labels: Sequence[str], filt: Optional[views.QueueFilter]) -> tuple[Path, str]:
    """Write one export; returns its path and a one-line summary (with the warning of a 0-row export)."""
    path, msg, _ = run_export_warned(store, fmt, labels, filt)
    return path, msg


def run_export_warned(store: Store, fmt: str, labels: Sequence[str],
                      filt: Optional[views.QueueFilter]) -> tuple[Path, str, Optional[str]]:
    """run_export's path and summary, plus the 0-row warning (None when rows were exported)."""
    if fmt not in FORMATS:
        raise views.ViewError(f"export format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    name = f"{stamp}-{time.monotonic_ns() % 1_000_000:06d}"
    query = None if filt is None else filt.query(0, 1)   # export ignores order and paging
    if fmt == "evidence":
        from .evidence import export_evidence
        res = export_evidence(store, export_dir(store) / f"evidence-{name}.zip", tuple(labels), query,
                              make_parents=True)
    else:
        res = store.export(export_dir(store) / f"verbatims-{name}.{fmt}", fmt, labels=tuple(labels), query=query,
                           make_parents=True)
    where = "all candidates" if filt is None else "the current queue filter"
    msg = f"Exported **{res.rows}** rows ({', '.join(labels)}; {where}) as {fmt}, sha256 `{res.sha256[:16]}…`."
    if res.warning:
        msg += f"\n\n**Warning:** {esc(res.warning)}"
    return res.path, msg, res.warning


def build(store: Store, filt: gr.State) -> None:
    with gr.Row():
        fmt = gr.Dropdown(list(FORMATS), value="zip", label="Format")
        labels = gr.CheckboxGroup(list(HUMAN_LABELS), value=["MV", "TV", "RV"], label="Current human labels")
        use_filter = gr.Checkbox(True, label="only what the queue filter holds")
    go = gr.Button("Export", variant="primary", elem_id="export-go")
    result = gr.Markdown()
    download = gr.File(label="Download", interactive=False, elem_id="export-file")

    @gradio_errors
    def do_export(f: str, ls: list, only: bool, qf: views.QueueFilter):
        # the queue's human-label state filter is a triage view; export selects by label itself
        query_filter = None if not only else views.QueueFilter(**{**qf.__dict__, "human": "any"})
        path, msg, warning = run_export_warned(store, f, ls, query_filter)
        if warning:
            gr.Warning(warning)
        return str(path), msg

    go.click(do_export, [fmt, labels, use_filter, filt], [download, result], api_name="export")
