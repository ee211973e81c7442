"""Grid tab: the queue's candidates as generation | match pairs, grouped by template family,
match or automatic label; select with the keyboard or the mouse (click, shift-click, ctrl-click,
"select group"), one key labels the selection (one transaction, one history entry each, undone
together by u); Enter opens the focused candidate. review/assets/keys.js keeps the selection
and sends each action through the hidden command box."""
from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from store import Store

from . import grid, render, views
from .session import gradio_errors, reviewer_name, typed_reviewer
from .tab_candidate import CandidateTab

UNDO_DEPTH = 50


@dataclass
class GridTab:
    group_by: gr.Radio
    page: gr.Number          # 1-based
    summary: gr.Markdown
    view: gr.HTML
    status: gr.Markdown
    command: gr.Textbox      # hidden: the JSON action keys.js sends
    run: gr.Button           # hidden: sends it
    undo: gr.Button
    batches: gr.State        # this session's bulk labels, latest last (what u undoes)


def build(store: Store) -> GridTab:
    with gr.Row(elem_id="grid-controls"):
        group_by = gr.Radio(list(grid.GROUPINGS), value="family", label="Group by", scale=2)
        prev_page = gr.Button("◀ page", size="sm", scale=0, elem_id="grid-prev")
        page = gr.Number(1, label="page", precision=0, minimum=1, scale=0, min_width=90, elem_id="grid-page")
        next_page = gr.Button("page ▶", size="sm", scale=0, elem_id="grid-next")
        undo = gr.Button("u undo last bulk label", size="sm", scale=0, elem_id="grid-undo")
    summary = gr.Markdown("Keys: arrows move · shift+arrows / shift-click extend · space or ctrl-click toggle · "
                          "s select group · a all · Esc none · 1-8 label the selection · u undo · Enter open")
    status = gr.Markdown(elem_id="grid-status")
    view = gr.HTML(elem_id="vb-grid")
    command = gr.Textbox(visible="hidden", elem_id="grid-cmd")
    run = gr.Button("run", elem_id="grid-run", visible="hidden")
    prev_page.click(lambda p: max(1, int(p or 1) - 1), page, page, api_name=False)
    next_page.click(lambda p: int(p or 1) + 1, page, page, api_name=False)
    return GridTab(group_by, page, summary, view, status, command, run, undo, gr.State(()))


def wire(store: Store, g: GridTab, tab: gr.Tab, filt: gr.State, cand: CandidateTab, reviewer: gr.Textbox,
         tabs: gr.Tabs) -> None:
    def render_grid(f: views.QueueFilter, group_by: str, page: float):
        data = grid.grid_data(store, f, group_by or "family", int(page or 1) - 1)
        return grid.grid_html(store, data), grid.summary(data), data.page + 1

    shown = [g.view, g.summary, g.page]
    q = dict(api_name=False, show_progress="hidden", concurrency_id="grid")
    tab.select(gradio_errors(render_grid), [filt, g.group_by, g.page], shown, **q)
    g.group_by.change(gradio_errors(lambda f, by: render_grid(f, by, 1)), [filt, g.group_by], shown, **q)
    g.page.change(gradio_errors(render_grid), [filt, g.group_by, g.page], shown, **q)

    @gradio_errors
    def run(cmd: str, f: views.QueueFilter, group_by: str, page: float, batches: tuple, n: views.Nav, typed: str,
            request: gr.Request):
        try:
            c = json.loads(cmd or "{}")
        except ValueError:
            raise views.ViewError(f"grid command: expected JSON, got {cmd[:80]!r}") from None
        keep = (gr.update(),) * len(cand.outputs) + (gr.update(),)
        if c.get("action") == "open":
            cid = views.caption_ids_of([c.get("id")])[0]
            nav = views.nav_at(store, views.Nav(filt=f, labelled=n.labelled, reviewer=typed_reviewer(request, typed)),
                               cid)
            return (gr.update(), gr.update(), gr.update(), "", batches) + cand.show(nav) + \
                (gr.Tabs(selected="candidate"),)
        if c.get("action") != "label":
            raise views.ViewError(f"grid command: expected action 'label' or 'open', got {c.get('action')!r}")
        entries = views.bulk_label(store, c.get("ids") or [], c.get("label"), reviewer_name(request, typed))
        msg = (f"Labelled **{len(entries)}** candidate(s) **{render.esc(c.get('label'))}** in one bulk label "
               f"(u undoes it).")
        return render_grid(f, group_by, page) + (msg, (batches + (entries[0].batch,))[-UNDO_DEPTH:]) + keep

    g.run.click(run, [g.command, filt, g.group_by, g.page, g.batches, cand.nav, reviewer],
                shown + [g.status, g.batches] + cand.outputs + [tabs], api_name="grid_command",
                concurrency_id="triage", show_progress="hidden")

    @gradio_errors
    def undo(f: views.QueueFilter, group_by: str, page: float, batches: tuple, typed: str, request: gr.Request):
        if not batches:     # the end of the stack is a plain status, not an error
            return render_grid(f, group_by, page) + ("Nothing left to undo: no bulk label of yours in this "
                                                     "session.", batches)
        entries = store.undo_batch(batches[-1], reviewer_name(request, typed))
        msg = f"Undone the last bulk label: {len(entries)} candidate(s) back to their label before it."
        return render_grid(f, group_by, page) + (msg, batches[:-1])

    g.undo.click(undo, [filt, g.group_by, g.page, g.batches, reviewer], shown + [g.status, g.batches],
                 api_name="grid_undo", concurrency_id="triage", show_progress="hidden")
