"""Queue tab: candidates ranked by a chosen score, filtered, searched, paged; a row opens it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gradio as gr

from store import REFERENCE_LABELS, Store

from . import grid, queries, views
from .session import gradio_errors

PAGE_SIZE = 50
THUMB_HEADERS = ["generation | match"]


@dataclass
class QueueTab:
    filt: gr.State
    table: gr.Dataframe
    summary: gr.Markdown
    page: gr.Number
    refresh: gr.Button
    show: Callable[[views.QueueFilter, float], tuple]   # (filter, page) -> (rows, summary, page)


QUEUE_EVENTS = "vb-queue"  # concurrency group of every event that rewrites the queue table


def run_choices(store: Store) -> list[str]:
    """'' = latest scores; 'run N' = one score run; 'model NAME' = that model's latest runs."""
    return [""] + [f"run {i} ({stage}, {model})" for i, stage, model in queries.runs(store) if stage == "score"] \
        + [f"model {m}" for m in queries.models(store)]


def more_filters_label(f: views.QueueFilter) -> str:
    """The collapsed filters' title: one line naming those that are set (they narrow the queue
    although hidden)."""
    parts = [] if f.descending else ["lowest first"]
    if f.auto:
        parts.append("auto " + ", ".join(f.auto))
    if f.flags:
        parts.append("flags " + ", ".join(f.flags))
    if f.score_min is not None:
        parts.append(f"score ≥ {f.score_min:g}")
    if f.score_max is not None:
        parts.append(f"score ≤ {f.score_max:g}")
    return "More filters" + (": " + " · ".join(parts) if parts else " (none set)")


def build(store: Store) -> QueueTab:
    kinds = queries.score_kinds(store)
    # the filters used most in one row; the rest folded away so the rows start near the top
    with gr.Row(elem_id="vb-queue-filters", equal_height=True):
        order_by = gr.Dropdown(kinds, value=kinds[0], label="Rank by", scale=1, min_width=110)
        human = gr.Dropdown(list(views.HUMAN_STATES), value="unlabelled", label="Human label", scale=1, min_width=130)
        run = gr.Dropdown(run_choices(store), value="", label="Run / model", scale=1, min_width=130)
        search = gr.Textbox(label="Search captions", placeholder="words that must all appear", scale=3)
        apply = gr.Button("Apply", variant="primary", scale=0, min_width=80)
    with gr.Accordion(more_filters_label(views.QueueFilter()), open=False, elem_id="vb-more-filters") as more:
        with gr.Row():
            descending = gr.Checkbox(True, label="highest first", scale=1)
            auto = gr.CheckboxGroup(list(REFERENCE_LABELS), label="Automatic label (any of)", scale=2)
            flags = gr.CheckboxGroup(queries.flags(store), label="Suspect flags (all of)", scale=2)
            score_min = gr.Textbox(label="score ≥", scale=1)
            score_max = gr.Textbox(label="score ≤", scale=1)
    summary = gr.Markdown(elem_id="vb-queue-summary")
    # short rows: captions on at most two lines beside 64-px thumbnails (review.css), the row focus
    # of review/assets/queue.js
    table = gr.Dataframe(headers=views.QUEUE_HEADERS + THUMB_HEADERS, datatype=views.QUEUE_TYPES + ["html"],
                         interactive=False, wrap=True, elem_id="vb-queue", max_height=720, buttons=[],
                         column_widths=["48px", "56px", "auto", "112px", "72px", "60px", "150px", "60px", "150px"])
    with gr.Row():
        prev_page = gr.Button("◀ page", size="sm")
        page = gr.Number(1, label="page", precision=0, minimum=1, scale=0, min_width=120)
        next_page = gr.Button("page ▶", size="sm")
        refresh = gr.Button("Refresh", size="sm")
    filt = gr.State(views.QueueFilter())

    @gradio_errors
    def show(f: views.QueueFilter, p: float):
        """Rows of page p (1-based, as shown) with their thumbnails, the summary, the page shown."""
        q = views.queue_view(store, f, int(p or 1) - 1, PAGE_SIZE)
        thumbs = grid.queue_thumbnails(store, q.ids)
        return [r + [t] for r, t in zip(q.rows, thumbs)], q.summary, q.page + 1

    @gradio_errors
    def set_filter(*widgets):
        f = views.make_filter(*widgets)
        return (f,) + show(f, 1) + (gr.Accordion(label=more_filters_label(f)),)

    widgets = [order_by, descending, human, auto, flags, score_min, score_max, run, search]
    outs = [table, summary, page]
    # one concurrency group: table updates apply in the order they were asked for, so a slow
    # refresh can never land after (and overwrite) a newer search; no progress text (fast events)
    q = {"concurrency_id": QUEUE_EVENTS, "api_name": False, "show_progress": "hidden"}
    apply.click(set_filter, widgets, [filt] + outs + [more], api_name="queue", concurrency_id=QUEUE_EVENTS,
                show_progress="hidden")
    search.submit(set_filter, widgets, [filt] + outs + [more], **q)
    prev_page.click(lambda f, p: show(f, max(1, int(p or 1) - 1)), [filt, page], outs, **q)
    next_page.click(lambda f, p: show(f, int(p or 1) + 1), [filt, page], outs, **q)
    page.submit(show, [filt, page], outs, **q)
    refresh.click(show, [filt, page], outs, **q)
    return QueueTab(filt, table, summary, page, refresh, show)
