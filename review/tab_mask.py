"""Mask tab: the mask editor of the current candidate's match (the training image its automatic
label rests on), or any other image the candidate shows.

It never loses a stroke: the image is shown enlarged by a whole factor (crisp pixels, a usable
brush); switching images or candidates keeps unsaved strokes as that image's draft (shown again
when it comes back); errors leave the editor as it is (a toast, not gr.Error, which would blank
it); a save shows what it did to the candidate's automatic label beside the editor.

The editor is loaded by the hidden ``mask-load`` button, which review/assets/keys.js clicks when
the editor is on screen; ``shown`` is the MaskTarget the editor holds, so a load it already
holds is skipped."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import gradio as gr

from store import Store

from . import mask_views, views
from .session import gradio_errors, reviewer_name, warn_errors
from .tab_candidate import CandidateTab


@dataclass
class MaskPanel:
    info: gr.HTML
    image: gr.Dropdown       # which training image the editor shows
    editor: gr.ImageEditor
    save: gr.Button
    effect: gr.HTML          # what the last save did to the automatic label
    versions: gr.Dropdown
    restore: gr.Button
    load: gr.Button          # hidden: clicked by keys.js when the editor is on screen
    shown: gr.State          # the MaskTarget the editor holds (None: none loaded)
    drafts: gr.State         # training image id -> unsaved mask (bool array)


def build() -> MaskPanel:
    with gr.Row(elem_id="vb-mask"):
        with gr.Column(scale=3):
            editor = gr.ImageEditor(
                label="mask over the training image (brush keeps pixels, eraser drops them)", type="numpy",
                image_mode="RGBA", format="png", sources=(), transforms=(),
                layers=gr.LayerOptions(allow_additional_layers=False, layers=["mask"]),
                brush=gr.Brush(colors=[("rgb(255, 0, 170)", 0.6)], default_size=16, color_mode="fixed"),
                eraser=gr.Eraser(default_size=16), canvas_size=(512, 512), elem_id="vb-editor", height=600,
                buttons=[])
        with gr.Column(scale=2, min_width=320):
            info = gr.HTML(elem_id="vb-mask-info")
            image = gr.Dropdown([], label="Training image to mask", elem_id="mask-image", allow_custom_value=True)
            save = gr.Button("Save mask (new version)", variant="primary", elem_id="mask-save")
            effect = gr.HTML(elem_id="vb-mask-effect")
            versions = gr.Dropdown([], label="Mask versions", elem_id="mask-versions")
            restore = gr.Button("Restore this version", elem_id="mask-restore")
            load = gr.Button("load the editor", elem_id="mask-load", size="sm")   # hidden (review.css)
    return MaskPanel(info, image, editor, save, effect, versions, restore, load, gr.State(None), gr.State({}))


def _loaded(store: Store, caption_id: Optional[int], m: mask_views.MaskTarget, value: dict, choices, drafts: dict,
            note: str = "") -> tuple:
    """Outputs after the editor was given ``value`` for target ``m``."""
    return (value, gr.update(choices=list(choices or ()), value=m.train_image_id),
            gr.update(choices=list(m.versions), value=m.current_id),
            mask_views.mask_info_html(store, caption_id, m, note), m, drafts)


def wire(store: Store, panel: MaskPanel, cand: CandidateTab, reviewer: gr.Textbox) -> None:
    loaded = [panel.editor, panel.image, panel.versions, panel.info, panel.shown, panel.drafts]

    def switch_to(n: views.Nav, tid: int, choices, held: Optional[mask_views.MaskTarget], value, drafts: dict):
        drafts, kept = mask_views.keep_draft(store, drafts or {}, held, value)
        m, v = mask_views.mask_editor(store, tid, draft=(drafts or {}).get(tid))
        note = (f"Your unsaved strokes on training image {held.train_image_id} are kept: switch back to it to "
                f"continue or save them." if kept else "")
        return _loaded(store, n.current, m, v, choices, drafts, note)

    @warn_errors(len(loaded))
    def load_editor(n: views.Nav, target: Optional[mask_views.MaskTarget], choices, held: Optional[mask_views.MaskTarget],
                    value, drafts: dict):
        if target is None:
            return (gr.update(), gr.update(choices=[], value=None), gr.update(choices=[], value=None),
                    mask_views.mask_info_html(store, n.current, None), held, drafts)
        if held is not None and held.train_image_id == target.train_image_id and held.current_id == target.current_id:
            return (gr.update(), gr.update(choices=list(choices or ()), value=held.train_image_id), gr.update(),
                    mask_views.mask_info_html(store, n.current, held), held, drafts)
        return switch_to(n, target.train_image_id, choices, held, value, drafts)

    panel.load.click(load_editor, [cand.nav, cand.mask_target, cand.mask_choices, panel.shown, panel.editor,
                                   panel.drafts], loaded, api_name=False, show_progress="hidden",
                     concurrency_id="triage")

    @warn_errors(len(loaded) + 1)
    def switch_image(n: views.Nav, tid, choices, held, value, drafts):
        if tid in (None, "") or (held is not None and int(tid) == held.train_image_id):
            return tuple(gr.update() for _ in range(len(loaded) + 1))      # already shown
        out = switch_to(n, int(tid), choices, held, value, drafts)
        return out + (out[4],)

    # select, not input: Gradio's dropdown also fires input on blur, with the value it showed then,
    # and that late echo could switch the editor back to the previous image after a pick. The pick
    # also becomes the candidate's mask target: a later load of the same candidate (keys.js clicks
    # mask-load on the next click in the panel once the candidate view re-rendered) keeps it, instead
    # of switching the editor back to the match or the image saved last. No progress overlay, as
    # for the other editor events: on a busy machine it could stay on, the editor blank, after the pick
    panel.image.select(switch_image, [cand.nav, panel.image, cand.mask_choices, panel.shown, panel.editor,
                                     panel.drafts], loaded + [cand.mask_target], api_name="mask_image",
                       concurrency_id="triage", show_progress="hidden")

    @gradio_errors
    def save(n: views.Nav, held: Optional[mask_views.MaskTarget], value: Optional[dict], drafts: dict, typed: str,
             request: gr.Request):
        if n.current is None or held is None:
            raise views.ViewError("save mask: expected a candidate with a training image in the editor, got none")
        layers = (value or {}).get("layers") or []
        if not layers or layers[0] is None:
            raise views.ViewError("save mask: expected the editor's mask layer, got none")
        if value.get("background") is None:
            raise views.ViewError("save mask: expected the editor's image with its mask layer, got no image")
        saved = mask_views.save_mask(store, n.current, held, layers[0], reviewer_name(request, typed),
                                background=value["background"])
        m, _ = mask_views.mask_editor(store, held.train_image_id)
        drafts = {k: v for k, v in (drafts or {}).items() if k != held.train_image_id}
        # the editor stays on the image just saved, whatever the new match
        moved = mask_views.moved_notice(saved)
        if moved:
            gr.Info(moved)    # the strip changed under the reviewer's eyes: say so where they look
        out = cand.show(n, f"Saved mask v{saved.version} of training image {held.train_image_id}. {moved}".strip(), m)
        return out + (gr.update(choices=list(m.versions), value=m.current_id), mask_views.relabel_html(saved),
                      mask_views.mask_info_html(store, n.current, m), m, drafts)

    # the editor is no output of a save: it already shows what was saved, and an error keeps it
    panel.save.click(save, [cand.nav, panel.shown, panel.editor, panel.drafts, reviewer],
                     cand.outputs + [panel.versions, panel.effect, panel.info, panel.shown, panel.drafts],
                     api_name="save_mask", concurrency_id="triage", show_progress="hidden")

    @warn_errors(len(cand.outputs) + 7)
    def restore(n: views.Nav, held: Optional[mask_views.MaskTarget], mask_id, choices, drafts: dict, typed: str,
                request: gr.Request):
        if n.current is None or held is None or mask_id in (None, ""):
            raise views.ViewError("restore mask: expected a mask version to restore, got none")
        saved = mask_views.restore_mask(store, n.current, held, int(mask_id), reviewer_name(request, typed))
        m, v = mask_views.mask_editor(store, held.train_image_id)
        drafts = {k: d for k, d in (drafts or {}).items() if k != held.train_image_id}
        return (cand.show(n, f"Restored as mask v{saved.version}. {mask_views.moved_notice(saved)}".strip(), m)
                + _loaded(store, n.current, m, v, choices, drafts) + (mask_views.relabel_html(saved),))

    panel.restore.click(restore, [cand.nav, panel.shown, panel.versions, cand.mask_choices, panel.drafts, reviewer],
                        cand.outputs + loaded + [panel.effect], api_name="restore_mask", concurrency_id="triage",
                        show_progress="hidden")
