"""Compare tab: a comparison of two models (`python -m attack compare`): pick the run, filter by
outcome, rows with A's generation | B's generation | the training image; a click (or Enter) on a
row opens both models' strips. Below, the carry-over: A's human labels proposed for B, grouped by
outcome and carried label; `y` confirms the group shown as B's label, `u` undoes the session's
last confirmed group. review/assets/compare.js sends the opened row and the keys."""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from attack.carry import confirm_group, undo_confirm
from attack.compare import with_human_labels
from store import Store

from . import carry_view as kv
from . import compare_view as cv
from .session import gradio_errors, typed_reviewer


@dataclass
class CompareTab:
    run: gr.Dropdown
    outcome: gr.Radio
    summary: gr.Markdown
    rows: gr.HTML
    opened: gr.HTML
    command: gr.Textbox      # hidden: the caption id compare.js sends
    go: gr.Button            # hidden: sends it
    carry_summary: gr.Markdown
    carry_group: gr.Radio
    carry: gr.HTML
    confirm: gr.Button
    undo: gr.Button
    carry_status: gr.Markdown
    confirmed: gr.State      # this session's confirmed groups, latest last (what u undoes)


def build(store: Store) -> CompareTab:
    choices = cv.compare_choices(store)
    with gr.Row(elem_id="compare-controls"):
        run = gr.Dropdown(choices, value=choices[0][1] if choices else None, label="Comparison", scale=3,
                          elem_id="vb-compare-run")
        outcome = gr.Radio(list(cv.FILTERS), value="all", label="Outcome", scale=3, elem_id="vb-compare-outcome")
    summary = gr.Markdown(elem_id="vb-compare-summary")
    with gr.Accordion("Carry-over: A's human labels proposed for B", open=True, elem_id="vb-carry"):
        carry_summary = gr.Markdown(elem_id="vb-carry-summary")
        with gr.Row():
            carry_group = gr.Radio([], label="Group (outcome · carried label · captions)", scale=4,
                                   elem_id="vb-carry-group")
            confirm = gr.Button("y confirm group as B's label", size="sm", scale=0, elem_id="vb-carry-confirm")
            undo = gr.Button("u undo", size="sm", scale=0, elem_id="vb-carry-undo")
        carry_status = gr.Markdown(elem_id="vb-carry-status")
        carry = gr.HTML(elem_id="vb-carry-tiles")
    rows = gr.HTML(elem_id="vb-cmp-rows")
    opened = gr.HTML(elem_id="vb-cmp-strips")
    command = gr.Textbox(visible="hidden", elem_id="vb-compare-cmd")
    go = gr.Button("open", visible="hidden", elem_id="vb-compare-go")
    return CompareTab(run, outcome, summary, rows, opened, command, go, carry_summary, carry_group, carry, confirm,
                      undo, carry_status, gr.State(()))


def _carry_outputs(store: Store, run_id, key=None, result=None) -> tuple:
    view = kv.carry_view(store, int(run_id), key, result)
    return (kv.carry_summary(view), gr.update(choices=kv.group_choices(view),
                                              value=view.group.key if view.group else None),
            kv.carry_html(store, view))


def wire(store: Store, t: CompareTab, tab: gr.Tab, reviewer: gr.Textbox) -> None:
    @gradio_errors
    def show(run_id, outcome: str):
        choices = cv.compare_choices(store)
        if not choices:
            return (gr.update(choices=[]), "No comparison in this store yet: run `python -m attack compare --store "
                    "DIR --model A --model B`.", "", "", "", gr.update(choices=[], value=None), "")
        run_id = run_id if run_id in [c[1] for c in choices] else choices[0][1]
        view = cv.compare_view(store, int(run_id), outcome or "all")
        return (gr.update(choices=choices, value=run_id), cv.summary(view), cv.compare_html(store, view), "") + \
            _carry_outputs(store, run_id, result=view.result)

    @gradio_errors
    def open_row(run_id, caption_id: str):
        if run_id is None or not str(caption_id).strip().isdigit():
            return gr.update()
        return cv.strips_html(store, with_human_labels(store, cv.load_compare(store, int(run_id))), int(caption_id))

    @gradio_errors
    def pick_group(run_id, key):
        if run_id is None:
            return gr.update()
        return kv.carry_html(store, kv.carry_view(store, int(run_id), key))

    @gradio_errors
    def confirm(run_id, key, outcome, done: tuple, typed: str, request: gr.Request):
        if run_id is None or not key:
            raise gr.Error("Nothing to confirm: pick a comparison with carry-over proposals.")
        who = typed_reviewer(request, typed)
        if not who:
            return (gr.update(),) * 6 + ("Type your name at the top right to confirm. Nothing written.", done)
        got = confirm_group(store, cv.load_compare(store, int(run_id)), key, who)
        view = cv.compare_view(store, int(run_id), outcome or "all")
        return (cv.summary(view), cv.compare_html(store, view), "") + \
            _carry_outputs(store, run_id, result=view.result) + \
            (kv.confirmed_note(got), done + (got,))

    @gradio_errors
    def undo(run_id, outcome, done: tuple, typed: str, request: gr.Request):
        who = typed_reviewer(request, typed)
        if run_id is None or not done:
            return (gr.update(),) * 6 + ("Nothing left to undo: no group confirmed in this session.", done)
        last = done[-1]
        n = undo_confirm(store, cv.load_compare(store, int(run_id)), last, who)
        view = cv.compare_view(store, int(run_id), outcome or "all")
        return (cv.summary(view), cv.compare_html(store, view), "") + \
            _carry_outputs(store, run_id, last.key, view.result) + \
            (kv.confirmed_note(last, n), done[:-1])

    q = dict(api_name=False, show_progress="hidden")
    outs = [t.run, t.summary, t.rows, t.opened, t.carry_summary, t.carry_group, t.carry]
    tab.select(show, [t.run, t.outcome], outs, **q)
    t.run.input(show, [t.run, t.outcome], outs, **q)
    t.outcome.input(show, [t.run, t.outcome], outs, **q)
    t.go.click(open_row, [t.run, t.command], t.opened, **q)
    t.carry_group.input(pick_group, [t.run, t.carry_group], t.carry, **q)
    written = [t.summary, t.rows, t.opened, t.carry_summary, t.carry_group, t.carry, t.carry_status, t.confirmed]
    t.confirm.click(confirm, [t.run, t.carry_group, t.outcome, t.confirmed, reviewer], written, **q)
    t.undo.click(undo, [t.run, t.outcome, t.confirmed, reviewer], written, **q)
