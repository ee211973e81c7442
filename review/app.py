"""Builds the Gradio review app from one builder per tab (review/tab_*.py); callbacks only call
store/, attack/ and the pure view functions in review/views.py, and show library errors as gr.Error.

Gradio 6 takes page-level css/js/head at launch(), so ``launch_options`` returns them together
with the only folders the app may serve files from: the open store's images and exports (and
what the app itself made, in a private folder of this process: review/folders.py).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import gradio as gr

from store import Store, check_store

from . import gold, render, tab_candidate, tab_compare, tab_export, tab_grid, tab_mask, tab_queue, tab_stats, views
from .folders import private_gradio_folders
from .session import gradio_errors, typed_reviewer

ASSETS = Path(__file__).parent / "assets"


def launch_options(store: Store) -> dict:
    """Keyword arguments for ``build_app(store).launch(...)``: assets and the served folders."""
    tab_export.export_dir(store).mkdir(parents=True, exist_ok=True)
    return {"css": (ASSETS / "review.css").read_text(), "js": page_script(),
            "allowed_paths": [str(store.images.root.resolve()), str(tab_export.export_dir(store).resolve())]}


def page_script() -> str:
    """Gradio runs one page-level function: it calls each script of assets/ (each a function
    expression), keys.js first (the shortcuts), then the others in name order."""
    scripts = [ASSETS / "keys.js"] + sorted(p for p in ASSETS.glob("*.js") if p.name != "keys.js")
    calls = "\n".join(f"({p.read_text().strip().rstrip(';')})();" for p in scripts)
    return f"() => {{\n{calls}\n}}"


def build_app(store: Store, auth: bool = False, gold_rate: float = 0.0) -> gr.Blocks:
    """The review app over one open store. auth: the app runs behind a login, so the reviewer is
    the logged-in user and the name field is hidden. gold_rate: the share of candidates shown that
    are gold candidates, mixed in blind (review/gold.py; 0: none)."""
    mixer = gold.GoldMixer(store, gold_rate)      # checks the rate before anything is built
    start_hold_out = mixer.hold_out if mixer.active else None     # where a page starts: never on gold
    private_gradio_folders()          # before the Blocks: it takes its upload folder when created
    with gr.Blocks(title=f"Verbatim: {store.path.name}", fill_width=True) as app:
        k = store.reviews_per_candidate()
        blind = f" · <b>blind review</b>: {k} reviews per candidate" if k > 1 else ""
        with gr.Row(elem_id="vb-title", equal_height=True):
            gr.HTML(f'<div class="vb-apptitle"><b>Verbatim review</b> · store <code>{render.esc(store.path.name)}'
                    f'</code>{blind} · press <kbd>?</kbd> for keys</div>{render.help_overlay()}', padding=False)
            # no default name: labels, leases and undo are each reviewer's own
            reviewer = gr.Textbox(value="", placeholder="Your name (required to label)", show_label=False,
                                  container=False, visible=not auth, elem_id="vb-reviewer", scale=0, min_width=200)
        problems = check_store(store, quick=True)     # a damaged store says so before anyone labels on it
        if not problems.ok:
            gr.HTML(render.store_problems_banner(problems), elem_id="vb-store-problems", padding=False)
        if not store.info()["candidates"]:
            gr.Markdown("**This store has no candidates yet** (captions without generations). Build the demo "
                        "store end to end with `python -m attack demo`, or run `python -m attack run` on yours.")
        with gr.Tabs() as tabs:
            with gr.Tab("Queue", id="queue") as queue_tab:
                queue = tab_queue.build(store)
            with gr.Tab("Grid", id="grid") as grid_tab:
                grid = tab_grid.build(store)
            with gr.Tab("Candidate", id="candidate"):
                cand = tab_candidate.build(store, reviewer, gold=mixer)
            with gr.Tab("Mask", id="mask"):
                mask = tab_mask.build()
            with gr.Tab("Stats", id="stats") as stats_tab:
                _, stats_out, stats_fn = tab_stats.build(store)
            with gr.Tab("Export", id="export"):
                tab_export.build(store, queue.filt)
            with gr.Tab("Compare", id="compare") as compare_tab:
                compare = tab_compare.build(store)
            with gr.Tab("Overview", id="overview"):
                build_overview(store)

        @gradio_errors
        def open_row(f: views.QueueFilter, old: views.Nav, typed: str, request: gr.Request, evt: gr.SelectData):
            row = evt.row_value
            n = views.nav_open(store, f, int(row[0]) - 1, old.labelled)   # u still undoes earlier labels
            n = replace(n, reviewer=typed_reviewer(request, typed))
            if n.current != int(row[1]):    # the queue moved since it was shown: open the row's caption
                n = views.nav_at(store, n, int(row[1]))
            return cand.show(n) + (gr.Tabs(selected="candidate"),)

        queue.table.select(open_row, [queue.filt, cand.nav, reviewer], cand.outputs + [tabs], api_name=False)
        tab_mask.wire(store, mask, cand, reviewer)
        tab_grid.wire(store, grid, grid_tab, queue.filt, cand, reviewer, tabs)
        tab_compare.wire(store, compare, compare_tab, reviewer)

        # the typed reviewer name survives a reload (the browser's localStorage); once given, the open
        # candidate is leased to them
        saved_name = gr.BrowserState("", storage_key="verbatim-reviewer")

        @gradio_errors
        def set_name(name: str, n: views.Nav, f: views.QueueFilter, request: gr.Request):
            who = typed_reviewer(request, name)
            if who == n.reviewer:
                return (who,) + tuple(gr.update() for _ in cand.outputs)
            if n.current is None:       # named before the page's first candidate was shown
                return (who,) + cand.show(views.nav_first_unlabelled(store, f, who, start_hold_out))
            n, note = views.claim(store, replace(n, reviewer=who), mixer.hold_out)
            return (who,) + cand.show(n, note)

        for event in (reviewer.blur, reviewer.submit):
            event(set_name, [reviewer, cand.nav, queue.filt], [saved_name] + cand.outputs, api_name=False,
                  **tab_candidate.TRIAGE)

        @gradio_errors
        def on_load(f: views.QueueFilter, name: str, request: gr.Request):
            who = typed_reviewer(request, name)
            n = views.nav_first_unlabelled(store, f, who, start_hold_out)     # leased: two reviewers get two candidates
            return queue.show(f, 1) + cand.show(n) + (name if name and not auth else gr.update(),)

        # in the triage group: a name typed while the page loads is taken after the first view
        app.load(on_load, [queue.filt, saved_name],
                 [queue.table, queue.summary, queue.page] + cand.outputs + [reviewer], api_name=False,
                 concurrency_id="triage", show_progress="hidden")
        stats_tab.select(stats_fn, None, stats_out, api_name=False)
        # back on the queue after triage: show the labels just written
        queue_tab.select(queue.show, [queue.filt, queue.page], [queue.table, queue.summary, queue.page],
                         api_name=False, concurrency_id=tab_queue.QUEUE_EVENTS, show_progress="hidden")

        @gradio_errors
        def open_caption(caption_id: float, old: views.Nav, typed: str, request: gr.Request):
            n = views.Nav(labelled=old.labelled, reviewer=typed_reviewer(request, typed))
            return cand.show(views.nav_at(store, n, int(caption_id))) + (gr.Tabs(selected="candidate"),)

        # for gradio_client and deep links: open one caption by id
        hidden_id = gr.Number(visible=False)
        hidden_id.change(open_caption, [hidden_id, cand.nav, reviewer], cand.outputs + [tabs], api_name="open")
    return app


def build_overview(store: Store) -> None:
    summary = gr.JSON(value=views.store_summary(store), label="Store")
    query = gr.Textbox(label="Search captions", placeholder="words that must all appear")
    table = gr.Dataframe(headers=["id", "caption", "url"], datatype=["number", "str", "str"],
                         interactive=False, wrap=True)
    query.submit(gradio_errors(lambda text: views.caption_rows(store, text)), query, table, api_name="search")
    gr.Button("Refresh counts").click(lambda: views.store_summary(store), None, summary, api_name=False)
