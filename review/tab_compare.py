"""Compare tab: a comparison of two models (`python -m attack compare`): pick the run, filter by
outcome, rows with A's generation | B's generation | the training image; a click (or Enter) on a
row opens both models' strips. review/assets/compare.js sends the opened row's caption id."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from attack.errors import AttackError
from store import Store, StoreError

from . import compare_view as cv


@dataclass
class CompareTab:
    run: gr.Dropdown
    outcome: gr.Radio
    summary: gr.Markdown
    rows: gr.HTML
    opened: gr.HTML
    command: gr.Textbox      # hidden: the caption id compare.js sends
    go: gr.Button            # hidden: sends it


def _errors(fn):
    def wrapper(*args):
        try:
            return fn(*args)
        except (StoreError, AttackError, ValueError) as e:
            raise gr.Error(str(e)) from None
    return wrapper


def build(store: Store) -> CompareTab:
    choices = cv.compare_choices(store)
    with gr.Row(elem_id="compare-controls"):
        run = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Comparison", scale=3,
                          elem_id="vb-compare-run")
        outcome = gr.Radio(list(cv.FILTERS), value="all", label="Outcome", scale=3, elem_id="vb-compare-outcome")
    summary = gr.Markdown(elem_id="vb-compare-summary")
    rows = gr.HTML(elem_id="vb-cmp-rows")
    opened = gr.HTML(elem_id="vb-cmp-strips")
    command = gr.Textbox(visible="hidden", elem_id="vb-compare-cmd")
    go = gr.Button("open", visible="hidden", elem_id="vb-compare-go")
    return CompareTab(run, outcome, summary, rows, opened, command, go)


def wire(store: Store, t: CompareTab, tab: gr.Tab) -> None:
    @_errors
    def show(run_id, outcome: str):
        choices = cv.compare_choices(store)
        if not choices:
            return (gr.update(choices=[]), "No comparison in this store yet: run `python -m attack compare --store "
                    "DIR --model A --model B`.", "", "")
        run_id = run_id if run_id in [c[1] for c in choices] else choices[0][1]
        view = cv.compare_view(store, int(run_id), outcome or "all")
        return gr.update(choices=choices, value=run_id), cv.summary(view), cv.compare_html(store, view), ""

    @_errors
    def open_row(run_id, caption_id: str):
        if run_id is None or not str(caption_id).strip().isdigit():
            return gr.update()
        return cv.strips_html(store, cv.load_compare(store, int(run_id)), int(caption_id))

    q = dict(api_name=False, show_progress="hidden")
    outs = [t.run, t.summary, t.rows, t.opened]
    tab.select(show, [t.run, t.outcome], outs, **q)
    t.run.input(show, [t.run, t.outcome], outs, **q)
    t.outcome.input(show, [t.run, t.outcome], outs, **q)
    t.go.click(open_row, [t.run, t.command], t.opened, **q)
