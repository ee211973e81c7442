"""Candidate tab: the evidence for one candidate, the label actions (and their keys), and the
mask editor. Every action is one durable store write and re-renders the view.

Triage (labels, undo, j/k/n) leaves the mask editor alone: giving gr.ImageEditor a new value
re-creates its canvas, which costs the browser about half a second of main-thread work per
candidate (software WebGL) and delays the next key. The editor is loaded by the hidden
``mask-load`` button, which review/assets/keys.js clicks when the editor is on screen or used;
``shown`` is what the editor was last given (so a load it already holds is skipped), and a mask
is only saved when the image the browser sends with it is the target's."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import gradio as gr

from store import Store

from . import render, views
from .session import gradio_errors, reviewer_name

# wires the before/after sliders of whatever the view renders (event delegation on the root)
SLIDER_JS = """
element.addEventListener('input', (e) => {
  const r = e.target;
  if (!r.classList || !r.classList.contains('vb-range')) return;
  const after = r.parentElement.querySelector('.vb-after');
  if (after) after.style.clipPath = 'inset(0 0 0 ' + r.value + '%)';
});
"""


def button_id(label: str) -> str:
    return "act-" + label.replace(":", "-")


@dataclass
class CandidateTab:
    nav: gr.State
    outputs: list            # what every show() returns, in order
    show: object             # (nav, status) -> tuple for outputs


@dataclass
class _Actions:
    labels: dict             # human label -> its button
    undo: gr.Button
    prev: gr.Button
    next: gr.Button
    next_unlabelled: gr.Button
    note: gr.Textbox


@dataclass
class _MaskPanel:
    image: gr.Dropdown       # which training image the editor shows
    info: gr.HTML
    editor: gr.ImageEditor
    save: gr.Button
    versions: gr.Dropdown
    restore: gr.Button
    load: gr.Button          # hidden: clicked by keys.js when the editor is on screen or used


def _action_bar() -> _Actions:
    with gr.Row(elem_id="vb-actions"):
        buttons = {}
        for key, label in render.LABEL_KEYS.items():
            if key == "0":
                continue
            variant = "primary" if label in ("MV", "TV", "RV") else "secondary"
            buttons[label] = gr.Button(f"{key} · {label}", elem_id=button_id(label), variant=variant,
                                       size="sm", min_width=60)
        undo_b = gr.Button("u · undo", elem_id="act-undo", size="sm", min_width=60)
    with gr.Row():
        prev_b = gr.Button("k · previous", elem_id="nav-prev", size="sm")
        next_b = gr.Button("j · next", elem_id="nav-next", size="sm")
        next_u = gr.Button("n · next unlabelled", elem_id="nav-unlabelled", size="sm")
        note = gr.Textbox(placeholder="note for the next label (optional)", show_label=False, scale=3,
                          elem_id="vb-note-field")
    return _Actions(buttons, undo_b, prev_b, next_b, next_u, note)


def _mask_panel() -> _MaskPanel:
    with gr.Accordion("Mask editor (brush keeps pixels, eraser drops them)", open=True, elem_id="vb-mask"):
        with gr.Row():
            image = gr.Dropdown([], label="Training image to mask", elem_id="mask-image", scale=2)
            info = gr.HTML()
        editor = gr.ImageEditor(
            label="mask over the training image", type="numpy", image_mode="RGBA", format="png",
            sources=(), transforms=(), layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
            brush=gr.Brush(colors=[("rgb(255, 0, 170)", 0.6)], default_size=2, color_mode="fixed"),
            eraser=gr.Eraser(default_size=2), canvas_size=(32, 32), elem_id="vb-editor", height=420,
            buttons=[])
        with gr.Row():
            save = gr.Button("Save mask (new version)", variant="primary", elem_id="mask-save")
            versions = gr.Dropdown([], label="Mask versions", elem_id="mask-versions", scale=2)
            restore = gr.Button("Restore this version", elem_id="mask-restore")
        load = gr.Button("load the editor", elem_id="mask-load", size="sm")   # hidden (review.css)
    return _MaskPanel(image, info, editor, save, versions, restore, load)


def _mask_info(m: Optional[views.MaskTarget]) -> str:
    return ("<p>No training image to mask for this candidate.</p>" if m is None else
            f"<p>Training image {m.train_image_id} ({m.size[0]}×{m.size[1]} px): "
            f"{len(m.versions)} mask version(s).</p>")


# triage answers in ~0.1 s: Gradio's progress overlays over every output only add repaints
TRIAGE = dict(concurrency_id="triage", show_progress="hidden")


def build(store: Store, reviewer: gr.Textbox) -> CandidateTab:
    nav = gr.State(views.Nav())
    mask_target = gr.State(None)
    shown = gr.State(None)          # the MaskTarget the editor holds (None: none loaded)
    status = gr.Markdown(elem_id="vb-status")
    actions = _action_bar()
    view = gr.HTML(elem_id="vb-view", js_on_load=SLIDER_JS)
    panel = _mask_panel()

    def show(n: views.Nav, message: str = "", editor_too: bool = True):
        """The outputs for candidate n; editor_too=False (triage) leaves the editor for mask-load."""
        cid = n.current
        if cid is None:
            v = views.empty_view("Nothing to show: the queue filter holds no candidates.")
        else:
            v = views.candidate_view(store, cid, n.position)
        m = v.mask
        choices = list(m.versions) if m else []
        return (n, v.html, v.editor if editor_too else gr.update(),
                gr.update(choices=choices, value=m.current_id if m else None), m,
                gr.update(choices=list(v.mask_choices), value=m.train_image_id if m else None), _mask_info(m),
                message, m if editor_too else gr.update())

    outputs = [nav, view, panel.editor, panel.versions, mask_target, panel.image, panel.info, status, shown]
    _wire_triage(store, actions, nav, reviewer, outputs, show)
    _wire_masks(store, panel, nav, reviewer, mask_target, shown, outputs, show)
    return CandidateTab(nav, outputs, show)


def _wire_triage(store: Store, actions: _Actions, nav: gr.State, reviewer: gr.Textbox, outputs: list,
                 show) -> None:
    """Label keys, undo and j/k/n: each one store write (or read) and the next candidate's view."""
    def labeller(label: str):
        @gradio_errors
        def act(n: views.Nav, typed: str, text: str, request: gr.Request):
            who = reviewer_name(request, typed)
            entry, nxt, moved = views.label_and_advance(store, n, label, who, text)
            msg = (f"Saved **{render.esc(label)}** for candidate {entry.caption_id} (by {render.esc(who)}). "
                   + (f"Now candidate {nxt.current}." if moved else "No further candidate to label in this queue."))
            return show(nxt, msg, editor_too=False) + ("",)
        return act

    for label, b in actions.labels.items():
        b.click(labeller(label), [nav, reviewer, actions.note], outputs + [actions.note],
                api_name="label_" + label.replace(":", "_"), concurrency_limit=1, **TRIAGE)

    @gradio_errors
    def do_undo(n: views.Nav, typed: str, request: gr.Request):
        entry, back = views.undo_last(store, n, reviewer_name(request, typed))
        return show(back, f"Undone: candidate {entry.caption_id} is now "
                          f"**{render.esc(entry.label or 'unlabelled')}**.", editor_too=False)

    actions.undo.click(do_undo, [nav, reviewer], outputs, api_name="undo", **TRIAGE)

    @gradio_errors
    def step(n: views.Nav, by: int):
        return show(views.nav_step(store, n, by), editor_too=False)

    actions.next.click(lambda n: step(n, 1), [nav], outputs, api_name="next", **TRIAGE)
    actions.prev.click(lambda n: step(n, -1), [nav], outputs, api_name="previous", **TRIAGE)

    @gradio_errors
    def unlabelled(n: views.Nav):
        nxt, found = views.nav_next_unlabelled(store, n)
        return show(nxt, "" if found else "No unlabelled candidate left in this queue.", editor_too=False)

    actions.next_unlabelled.click(unlabelled, [nav], outputs, api_name="next_unlabelled", **TRIAGE)


def _wire_masks(store: Store, panel: _MaskPanel, nav: gr.State, reviewer: gr.Textbox, mask_target: gr.State,
                shown: gr.State, outputs: list, show) -> None:
    """Loading the editor, switching its image, saving and restoring mask versions."""
    def load_editor(target: Optional[views.MaskTarget], held: Optional[views.MaskTarget]):
        if target == held:
            return gr.update(), gr.update()
        if target is None:
            return None, None
        m, value = views.mask_editor(store, target.train_image_id)
        return value, m

    panel.load.click(gradio_errors(load_editor), [mask_target, shown], [panel.editor, shown], api_name=False,
                     show_progress="hidden", concurrency_id="triage")

    @gradio_errors
    def switch_image(train_image_id):
        if train_image_id in (None, ""):
            return gr.update(), gr.update(), gr.update(), gr.update(), gr.update()
        m, value = views.mask_editor(store, int(train_image_id))
        return value, gr.update(choices=list(m.versions), value=m.current_id), m, _mask_info(m), m

    panel.image.input(switch_image, [panel.image], [panel.editor, panel.versions, mask_target, panel.info, shown],
                      api_name="mask_image")

    def after_mask(n: views.Nav, target: views.MaskTarget, saved: views.MaskSave, message: str):
        """The re-rendered view, with the editor kept on the image just masked."""
        out = show(n)
        m, value = views.mask_editor(store, target.train_image_id)
        return (out[0], out[1], value, gr.update(choices=list(m.versions), value=m.current_id), m,
                gr.update(value=m.train_image_id), views.relabel_html(saved), message, m)

    @gradio_errors
    def save(n: views.Nav, target: Optional[views.MaskTarget], value: Optional[dict], typed: str,
             request: gr.Request):
        if n.current is None or target is None:
            raise views.ViewError("save mask: expected a candidate with a training image, got none")
        # which image the editor shows is checked on the image the browser sent (views.save_mask),
        # not on `shown`: that changes when a load is answered, before the browser has redrawn
        layers = (value or {}).get("layers") or []
        if not layers or layers[0] is None:
            raise views.ViewError("save mask: expected the editor's mask layer, got none")
        if value.get("background") is None:
            raise views.ViewError("save mask: expected the editor's image with its mask layer, got no image")
        saved = views.save_mask(store, n.current, target, layers[0], reviewer_name(request, typed),
                                background=value["background"])
        return after_mask(n, target, saved, f"Saved mask v{saved.version}.")

    panel.save.click(save, [nav, mask_target, panel.editor, reviewer], outputs, api_name="save_mask",
                     concurrency_id="triage")

    @gradio_errors
    def restore(n: views.Nav, target: Optional[views.MaskTarget], mask_id, typed: str, request: gr.Request):
        if n.current is None or target is None or mask_id in (None, ""):
            raise views.ViewError("restore mask: expected a mask version to restore, got none")
        saved = views.restore_mask(store, n.current, target, int(mask_id), reviewer_name(request, typed))
        return after_mask(n, target, saved, f"Restored as mask v{saved.version}.")

    panel.restore.click(restore, [nav, mask_target, panel.versions, reviewer], outputs, api_name="restore_mask",
                        concurrency_id="triage")
