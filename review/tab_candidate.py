"""Candidate tab: one screen per candidate (a sticky header with the caption and the label keys,
the strip of pictures a decision rests on, a side panel with the rest) and its triage actions.
Every action is one durable store write and re-renders the view.

Triage never touches the mask editor (review/tab_mask.py): giving gr.ImageEditor a new value
re-creates its canvas, about half a second of main-thread work per candidate. A view only sets
``mask_target``; the Mask tab loads it when it is on screen."""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Optional

import gradio as gr

from store import LabelConflictError, LabelEntry, Store

from . import gold as review_gold
from . import mask_views, render, views
from .session import MissingName, gradio_errors, reviewer_name, typed_reviewer

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
    key_cid: gr.Textbox      # the caption id on screen when the key (or click) was given: set by keys.js
    idle: gr.Button          # keys.js: no key or pointer for a minute, the lease is given up
    resume: gr.Button        # keys.js: the first key or pointer after that, the lease is taken again


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
        key_cid = gr.Textbox("", visible="hidden", elem_id="vb-key-cid")
        idle = gr.Button("idle", visible="hidden", elem_id="vb-idle")
        resume = gr.Button("resume", visible="hidden", elem_id="vb-resume")
    return _Actions(buttons, undo_b, prev_b, next_b, next_u, note, key_cid, idle, resume)


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

# every response's head carries a fresh number: keys.js waits for it before it sends a queued key
_ACKS = itertools.count(1)


def _ack(refused: bool = False) -> str:
    return f'<span class="vb-ack" hidden data-ack="{next(_ACKS)}" data-refused="{int(refused)}"></span>'


def not_applied(e: views.KeyNotApplied) -> str:
    return (f"Key not applied: it was pressed while candidate {e.pressed_on} was on screen and candidate "
            f"{e.current} is open now. Nothing written: press it again on the candidate you mean.")


def build(store: Store, reviewer: gr.Textbox, gold: Optional[review_gold.GoldMixer] = None) -> CandidateTab:
    """gold: how gold candidates are mixed into the reviewer's queue (review/gold.py; default none)."""
    gold = gold or review_gold.GoldMixer(store)
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
             prompt: Optional[tuple[str, dict]] = None, refused: bool = False):
        """The outputs for candidate n (the mask editor is left to the Mask tab); ``mask_target``
        overrides the view's (after a save the editor stays on the image just saved). Opening a
        candidate leases it to the reviewer and notes who else has it open. The keep / override
        prompt shows ``prompt`` (its text, the label waiting on it), else it is hidden. ``refused``: a key
        was not applied (the page shakes). A gold candidate served to the reviewer shows as an unlabelled
        one, unleased and without notes: nothing tells it apart."""
        cid = n.current
        if cid is None:
            v = views.empty_view("Nothing to show: the queue filter holds no candidates.")
        else:
            is_gold = gold.is_gold(n, n.reviewer)
            v = views.candidate_view(store, cid, n.position, with_editor=False, viewer=n.reviewer, gold=is_gold)
            n = replace(n, seen=v.latest_entry)
            if not is_gold:
                notes = (views.lease_note(store, n), views.opinions_back_note(store, n))
                message = " ".join(m for m in (message,) + notes if m)
        text, pending = prompt or ("", None)
        return (n, v.head + _ack(refused), v.html, gr.update(visible=prompt is not None), text, pending, message,
                mask_target or v.mask, v.mask_choices)

    outputs = [nav, head, view, conflict.row, conflict.text, conflict.pending, status, mask_target, mask_choices]
    _wire_triage(store, gold, actions, conflict, nav, reviewer, outputs, show)
    _wire_idle(store, gold, actions, nav, reviewer, status)
    return CandidateTab(nav, mask_target, mask_choices, head, view, status, outputs, show, reviewer)


def _saved(label: str, who: str, caption_id: int, nxt: views.Nav, moved: bool, role: str = "") -> str:
    """The status line after a label, and after a gold answer (word for word the same)."""
    role = " as the adjudication" if role else ""
    return (f"Saved **{render.esc(label)}** for candidate {caption_id} (by {render.esc(who)}{role}). "
            + (f"Now candidate {nxt.current}." if moved else "No further candidate to label in this queue."))


def _mix_gold(gold: review_gold.GoldMixer, nxt: views.Nav, who: str, moved: bool) -> tuple[views.Nav, bool]:
    """After a label: a gold candidate due for the reviewer is shown next (only in queues of unlabelled
    candidates, where an unlabelled-looking one is no tell)."""
    if nxt.filt.human not in ("any", "unlabelled"):
        return nxt, moved
    shown = gold.after_label(nxt, who)
    return shown, moved or shown is not nxt


def _wire_triage(store: Store, gold: review_gold.GoldMixer, actions: _Actions, conflict: _Conflict, nav: gr.State,
                 reviewer: gr.Textbox, outputs: list, show) -> None:
    """Label keys, undo and j/k/n: each one store write (or read) and the next candidate's view."""
    def labeller(label: str):
        @gradio_errors
        def act(n: views.Nav, typed: str, text: str, shown: str = "", request: gr.Request = None):
            try:
                who = reviewer_name(request, typed)
            except MissingName as e:   # in the status line: a toast would cover the name field
                return show(n, f"**{e}**") + (gr.update(),)
            n = replace(n, reviewer=who)
            try:
                views.check_on_screen(n, shown)
            except views.KeyNotApplied as e:      # nothing written; the note is kept
                return show(n, not_applied(e), refused=True) + (gr.update(),)
            if gold.is_gold(n, who):          # a gold answer, never a label; said as a label is
                answer, nxt, moved = views.answer_gold_and_advance(store, gold, n, label, who)
                return show(nxt, _saved(label, who, answer.caption_id, nxt, moved)) + ("",)
            try:
                entry, nxt, moved = views.label_and_advance(store, n, label, who, text, gold.hold_out)
            except LabelConflictError as e:    # shown again with their label, and the prompt
                pending = {"caption_id": n.current, "label": label, "note": text, "latest": e.latest.id}
                return show(n, prompt=(conflict_text(e.latest, label), pending)) + (gr.update(),)  # note kept
            nxt, moved = _mix_gold(gold, nxt, who, moved)
            return show(nxt, _saved(label, who, entry.caption_id, nxt, moved, entry.role)) + ("",)
        return act

    for label, b in actions.labels.items():
        b.click(labeller(label), [nav, reviewer, actions.note, actions.key_cid], outputs + [actions.note],
                api_name="label_" + label.replace(":", "_"), concurrency_limit=1, **TRIAGE)

    @gradio_errors
    def override(n: views.Nav, pending: Optional[dict], typed: str, shown: str = "", request: gr.Request = None):
        try:
            views.check_on_screen(n, shown)
        except views.KeyNotApplied as e:
            return show(n, not_applied(e), refused=True) + (gr.update(),)
        if not pending or pending.get("caption_id") != n.current:
            raise views.ViewError("override: expected a label waiting on the keep / override prompt, got none")
        who = reviewer_name(request, typed)
        n = replace(n, reviewer=who, seen=int(pending["latest"]))    # override exactly the label shown
        try:
            entry, nxt, moved = views.label_and_advance(store, n, pending["label"], who, pending["note"],
                                                        gold.hold_out)
        except LabelConflictError as e:    # yet another label came in meanwhile: ask again
            again = dict(pending, latest=e.latest.id)
            return show(n, prompt=(conflict_text(e.latest, pending["label"]), again)) + (gr.update(),)
        nxt, moved = _mix_gold(gold, nxt, who, moved)
        return show(nxt, _saved(pending["label"], who, entry.caption_id, nxt, moved, entry.role)) + ("",)

    conflict.override.click(override, [nav, conflict.pending, reviewer, actions.key_cid], outputs + [actions.note],
                            api_name="override", concurrency_limit=1, **TRIAGE)

    @gradio_errors
    def keep(n: views.Nav, pending: Optional[dict], typed: str, shown: str = "", request: gr.Request = None):
        try:
            views.check_on_screen(n, shown)
        except views.KeyNotApplied as e:
            return show(n, not_applied(e), refused=True)
        kept = ""
        if pending and pending.get("caption_id") == n.current:
            # theirs stays in force; yours is recorded (withheld) and offered back if they undo theirs
            w = store.withhold_label(int(pending["caption_id"]), reviewer_name(request, typed), pending["label"],
                                     int(pending["latest"]))
            kept = (f"Kept the other reviewer's label for candidate {w.caption_id}; your **{render.esc(w.label)}** "
                    "is recorded as withheld (offered back to you if they undo theirs).")
        nxt, found = views.nav_next_unlabelled(store, replace(n, reviewer=typed_reviewer(request, typed)),
                                               gold.hold_out)
        return show(nxt, kept + ("" if found else " No unlabelled candidate left in this queue."))

    conflict.keep.click(keep, [nav, conflict.pending, reviewer, actions.key_cid], outputs, api_name="keep", **TRIAGE)

    @gradio_errors
    def do_undo(n: views.Nav, typed: str, request: gr.Request):
        try:
            u = views.undo_last(store, n, reviewer_name(request, typed))
        except MissingName as e:
            return show(n, f"**{e}**")
        except views.NothingToUndo as e:
            return show(n, e.plain)
        skipped = (f" Not undone (relabelled by others since; only they can undo theirs): candidate(s) "
                   f"{', '.join(map(str, u.skipped))}." if u.skipped else "")
        return show(u.nav, f"Undone: candidate {u.caption_id} is now "
                           f"**{render.esc(u.label or 'unlabelled')}**.{skipped}")

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
        nxt, found = views.nav_next_unlabelled(store, replace(n, reviewer=typed_reviewer(request, typed)),
                                               gold.hold_out)
        return show(nxt, "" if found else "No unlabelled candidate left in this queue.")

    actions.next_unlabelled.click(unlabelled, [nav, reviewer], outputs, api_name="next_unlabelled", **TRIAGE)


def _wire_idle(store: Store, gold: review_gold.GoldMixer, actions: _Actions, nav: gr.State, reviewer: gr.Textbox,
               status: gr.Markdown) -> None:
    """An idle page (keys.js: no key or pointer for a minute) gives its lease up, so a page nobody
    looks at does not hold a candidate (or, under blind review, a vote's place) from the others; the
    next key or click takes it again. The lease's own expiry still covers a closed page."""
    @gradio_errors
    def idle(n: views.Nav, typed: str, request: gr.Request):
        who = typed_reviewer(request, typed)
        if not who or n.current is None or not store.release_lease(who, n.current):
            return gr.update()
        return (f"Idle: candidate {n.current} is free for other reviewers again; your next key or click "
                "takes it back.")

    @gradio_errors
    def resume(n: views.Nav, typed: str, request: gr.Request):
        n = replace(n, reviewer=typed_reviewer(request, typed))
        if gold.is_gold(n, n.reviewer):      # a served gold candidate is not leased (show() does not either)
            return ""
        return views.lease_note(store, n) or ""

    actions.idle.click(idle, [nav, reviewer], [status], api_name="release_lease", **TRIAGE)
    actions.resume.click(resume, [nav, reviewer], [status], api_name="resume_lease", **TRIAGE)
