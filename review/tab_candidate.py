"""Candidate tab: one screen per candidate (a sticky header with the caption and the label keys,
the strip of pictures a decision rests on, a side panel with the rest) and its triage actions.
Every action is one durable store write and re-renders the view.

Triage never touches the mask editor (review/tab_mask.py): giving gr.ImageEditor a new value
re-creates its canvas, about half a second of main-thread work per candidate. A view only sets
``mask_target``; the Mask tab loads it when it is on screen."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import gradio as gr

from store import LabelConflictError, LabelEntry, Store

from . import mask_views, render, views
from .session import gradio_errors, reviewer_name, typed_reviewer

# wires the compare tile (swipe / onion skin) of whatever the view renders (event delegation)
COMPARE_JS = """
element.addEventListener('input', (e) => {
  const r = e.target;
  if (!r.classList || !r.classList.contains('vb-range')) return;
  const box = r.parentElement.querySelector('.vb-compare');
  if (box && window.__vbCompare) window.__vbCompare(box, r.value);
});
"""


def button_id(label: str) -> str:
    return "act-" + label.replace(":", "-")


@dataclass
class CandidateTab:
    nav: gr.State
    mask_target: gr.State    # mask_views.MaskTarget of the current candidate's match (None: none)
    mask_choices: gr.State   # ((label, training image id), ...) the editor can switch to
    head: gr.HTML
    view: gr.HTML
    status: gr.Markdown
    outputs: list            # what every show() returns, in order
    show: object             # (nav, message) -> tuple for outputs
    reviewer: gr.Textbox     # the reviewer's name (hidden behind --auth)


@dataclass
class _Conflict:
    """The keep / override prompt shown when someone labelled the candidate since it was opened."""
    row: gr.Row
    text: gr.Markdown
    keep: gr.Button
    override: gr.Button
    pending: gr.State        # {caption_id, label, note, latest}: the label the reviewer asked for


@dataclass
class _Actions:
    labels: dict             # human label -> its button
    undo: gr.Button
    prev: gr.Button
    next: gr.Button
    next_unlabelled: gr.Button
    note: gr.Textbox


def _action_bar() -> _Actions:
    """One row: the label keys, undo, navigation and the note (the `/` key focuses it)."""
    with gr.Row(elem_id="vb-actions", equal_height=True):
        buttons = {}
        for key, label in render.LABEL_KEYS.items():
            if key == "0":
                continue
            variant = "primary" if label in ("MV", "TV", "RV") else "secondary"
            buttons[label] = gr.Button(f"{key} {label}", elem_id=button_id(label), variant=variant,
                                       size="sm", min_width=40, scale=0)
        undo_b = gr.Button("u undo", elem_id="act-undo", size="sm", min_width=40, scale=0)
        prev_b = gr.Button("k prev", elem_id="nav-prev", size="sm", min_width=40, scale=0)
        next_b = gr.Button("j next", elem_id="nav-next", size="sm", min_width=40, scale=0)
        next_u = gr.Button("n next unlabelled", elem_id="nav-unlabelled", size="sm", min_width=40, scale=0)
        note = gr.Textbox(placeholder="/ note for the next label", show_label=False, container=False, scale=1,
                          min_width=160, elem_id="vb-note-field")
    return _Actions(buttons, undo_b, prev_b, next_b, next_u, note)


def _conflict_prompt() -> _Conflict:
    with gr.Row(visible=False, elem_id="vb-conflict", equal_height=True) as row:
        text = gr.Markdown(elem_id="vb-conflict-text")
        keep = gr.Button("Esc keep theirs", elem_id="act-keep", size="sm", min_width=150, scale=0)
        override = gr.Button("o override with mine", elem_id="act-override", variant="primary", size="sm",
                             min_width=180, scale=0)
    return _Conflict(row, text, keep, override, gr.State(None))


def conflict_text(latest: LabelEntry, label: str) -> str:
    return (f"**{render.esc(latest.reviewer)}** labelled candidate {latest.caption_id} "
            f"**{render.esc(latest.label or 'unlabelled')}** at {render.esc(latest.created_at[11:19])} UTC since you "
            f"opened it. Keep theirs (<kbd>Esc</kbd>) or override with your **{render.esc(label)}** (<kbd>o</kbd>).")


# triage answers faster than a progress overlay is useful: Gradio's overlays over every output only add repaints
TRIAGE = dict(concurrency_id="triage", show_progress="hidden")


def build(store: Store, reviewer: gr.Textbox) -> CandidateTab:
    nav = gr.State(views.Nav())
    mask_target = gr.State(None)
    mask_choices = gr.State(())
    with gr.Column(elem_id="vb-sticky"):
        head = gr.HTML(elem_id="vb-head")
        actions = _action_bar()
        conflict = _conflict_prompt()
        status = gr.Markdown(elem_id="vb-status")
    view = gr.HTML(elem_id="vb-view", js_on_load=COMPARE_JS)

    def show(n: views.Nav, message: str = "", mask_target: Optional[mask_views.MaskTarget] = None,
             prompt: Optional[tuple[str, dict]] = None):
        """The outputs for candidate n (the mask editor is left to the Mask tab); ``mask_target``
        overrides the view's (after a save the editor stays on the image just saved). Opening a
        candidate leases it to the reviewer and notes who else has it open. The keep / override
        prompt shows ``prompt`` (its text, the label waiting on it), else it is hidden."""
        cid = n.current
        if cid is None:
            v = views.empty_view("Nothing to show: the queue filter holds no candidates.")
        else:
            v = views.candidate_view(store, cid, n.position, with_editor=False, viewer=n.reviewer)
            n = replace(n, seen=v.latest_entry)
            message = " ".join(m for m in (message, views.lease_note(store, n)) if m)
        text, pending = prompt or ("", None)
        return (n, v.head, v.html, gr.update(visible=prompt is not None), text, pending, message,
                mask_target or v.mask, v.mask_choices)

    outputs = [nav, head, view, conflict.row, conflict.text, conflict.pending, status, mask_target, mask_choices]
    _wire_triage(store, actions, conflict, nav, reviewer, outputs, show)
    return CandidateTab(nav, mask_target, mask_choices, head, view, status, outputs, show, reviewer)


def _saved(label: str, who: str, entry: LabelEntry, nxt: views.Nav, moved: bool) -> str:
    role = " as the adjudication" if entry.role else ""
    return (f"Saved **{render.esc(label)}** for candidate {entry.caption_id} (by {render.esc(who)}{role}). "
            + (f"Now candidate {nxt.current}." if moved else "No further candidate to label in this queue."))


def _wire_triage(store: Store, actions: _Actions, conflict: _Conflict, nav: gr.State, reviewer: gr.Textbox,
                 outputs: list, show) -> None:
    """Label keys, undo and j/k/n: each one store write (or read) and the next candidate's view."""
    def labeller(label: str):
        @gradio_errors
        def act(n: views.Nav, typed: str, text: str, request: gr.Request):
            who = reviewer_name(request, typed)
            n = replace(n, reviewer=who)
            try:
                entry, nxt, moved = views.label_and_advance(store, n, label, who, text)
            except LabelConflictError as e:    # shown again with their label, and the prompt
                pending = {"caption_id": n.current, "label": label, "note": text, "latest": e.latest.id}
                return show(n, prompt=(conflict_text(e.latest, label), pending)) + (gr.update(),)  # note kept
            return show(nxt, _saved(label, who, entry, nxt, moved)) + ("",)
        return act

    for label, b in actions.labels.items():
        b.click(labeller(label), [nav, reviewer, actions.note], outputs + [actions.note],
                api_name="label_" + label.replace(":", "_"), concurrency_limit=1, **TRIAGE)

    @gradio_errors
    def override(n: views.Nav, pending: Optional[dict], typed: str, request: gr.Request):
        if not pending or pending.get("caption_id") != n.current:
            raise views.ViewError("override: expected a label waiting on the keep / override prompt, got none")
        who = reviewer_name(request, typed)
        n = replace(n, reviewer=who, seen=int(pending["latest"]))    # override exactly the label shown
        try:
            entry, nxt, moved = views.label_and_advance(store, n, pending["label"], who, pending["note"])
        except LabelConflictError as e:    # yet another label came in meanwhile: ask again
            again = dict(pending, latest=e.latest.id)
            return show(n, prompt=(conflict_text(e.latest, pending["label"]), again)) + (gr.update(),)
        return show(nxt, _saved(pending["label"], who, entry, nxt, moved)) + ("",)

    conflict.override.click(override, [nav, conflict.pending, reviewer], outputs + [actions.note],
                            api_name="override", concurrency_limit=1, **TRIAGE)

    @gradio_errors
    def keep(n: views.Nav, pending: Optional[dict], typed: str, request: gr.Request):
        nxt, found = views.nav_next_unlabelled(store, replace(n, reviewer=typed_reviewer(request, typed)))
        kept = f"Kept the other reviewer's label for candidate {n.current}." if pending else ""
        return show(nxt, kept + ("" if found else " No unlabelled candidate left in this queue."))

    conflict.keep.click(keep, [nav, conflict.pending, reviewer], outputs, api_name="keep", **TRIAGE)

    @gradio_errors
    def do_undo(n: views.Nav, typed: str, request: gr.Request):
        u = views.undo_last(store, n, reviewer_name(request, typed))
        skipped = (f" Not undone (relabelled by others since; only they can undo theirs): candidate(s) "
                   f"{', '.join(map(str, u.skipped))}." if u.skipped else "")
        return show(u.nav, f"Undone: candidate {u.entry.caption_id} is now "
                           f"**{render.esc(u.entry.label or 'unlabelled')}**.{skipped}")

    actions.undo.click(do_undo, [nav, reviewer], outputs, api_name="undo", **TRIAGE)

    def stepper(by: int):
        @gradio_errors
        def step(n: views.Nav, typed: str, request: gr.Request):
            return show(views.nav_step(store, replace(n, reviewer=typed_reviewer(request, typed)), by))
        return step

    actions.next.click(stepper(1), [nav, reviewer], outputs, api_name="next", **TRIAGE)
    actions.prev.click(stepper(-1), [nav, reviewer], outputs, api_name="previous", **TRIAGE)

    @gradio_errors
    def unlabelled(n: views.Nav, typed: str, request: gr.Request):
        nxt, found = views.nav_next_unlabelled(store, replace(n, reviewer=typed_reviewer(request, typed)))
        return show(nxt, "" if found else "No unlabelled candidate left in this queue.")

    actions.next_unlabelled.click(unlabelled, [nav, reviewer], outputs, api_name="next_unlabelled", **TRIAGE)
