"""The mask editor's views: which mask a candidate edits, the editor's layers, drafts kept across
image switches, saving and restoring a version, and the panel that says what a save relabelled."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np

from store import (
    Store,
)

from . import imaging, render
from .candidate import labelled_pair
from .checks import ViewError, check_reviewer
from .relabel import Relabel, relabel


# -- candidate --------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskTarget:
    """The training image whose mask the editor shows, and its versions."""
    train_image_id: int
    size: tuple                      # (width, height)
    versions: tuple                  # ((label, mask id), ...) oldest first
    current_id: Optional[int]
    scale: int = 1                   # the editor shows the image enlarged by this whole factor
    draft: bool = False              # the editor was given a reviewer's unsaved strokes


def _mask_versions(store: Store, train_image_id: int) -> tuple:
    return tuple((f"v{m.version} · {m.source}{' by ' + m.author if m.author else ''} · {m.created_at[:19]}", m.id)
                 for m in store.mask_versions(train_image_id))


def target_for(store: Store, train_image_id: int, size: tuple, cur, draft: bool = False) -> MaskTarget:
    return MaskTarget(train_image_id, size, _mask_versions(store, train_image_id), None if cur is None else cur.id,
                      imaging.editor_scale(size), draft)


def mask_editor(store: Store, train_image_id: int, image=None, cur=None, mask=None,
                draft: Optional[np.ndarray] = None) -> tuple[MaskTarget, dict]:
    """The editor for one training image's mask: its target and the gr.ImageEditor value (the
    image enlarged by a whole factor as background, the mask as a write-once RGBA layer file).
    ``draft``: unsaved strokes kept for this image, shown instead of the current mask."""
    t = store.get_training_image(int(train_image_id))
    image = image if image is not None else store.load_image(t.sha256)
    if cur is None:
        cur = store.current_mask(t.id)
        mask = store.load_mask(cur.image_sha) if cur is not None else None
    w, h = image.size
    k = imaging.editor_scale((w, h))
    if draft is not None and draft.shape == (h, w):
        layer = imaging.layer_file(draft, "draft-" + hashlib.sha256(np.packbits(draft).tobytes()).hexdigest()[:32], k)
    elif mask is not None and mask.shape == (h, w):
        layer = imaging.layer_file(mask, cur.image_sha, k)
    else:       # no usable mask yet: start from one that keeps every pixel
        layer = imaging.layer_file(np.ones((h, w), bool), f"all-{w}x{h}", k)
    target = target_for(store, t.id, (w, h), cur, draft is not None and draft.shape == (h, w))
    background = imaging.background_file(image, t.sha256, k) if k > 1 else store.image_path(t.sha256)
    return target, {"background": str(background), "layers": [str(layer)], "composite": None}


def editor_mask(store: Store, target: MaskTarget, value: Optional[dict]) -> Optional[np.ndarray]:
    """The mask an editor value holds for ``target`` (at the training image's size), or None when
    the editor does not show that image (still loading another) or holds no layer."""
    layers = (value or {}).get("layers") or []
    bg = (value or {}).get("background")
    if not layers or layers[0] is None or bg is None:
        return None
    t = store.get_training_image(target.train_image_id)
    k = target.scale
    if not imaging.shows_image(np.asarray(bg)[::k, ::k], np.asarray(store.load_image(t.sha256).convert("RGB"))):
        return None
    return imaging.mask_from_layer(np.asarray(layers[0]), target.size, k)


def keep_draft(store: Store, drafts: dict, target: Optional[MaskTarget], value: Optional[dict]) -> tuple[dict, bool]:
    """Before the editor switches away from ``target``: its strokes, when they differ from the
    image's current mask, are kept as that image's draft (returned dict, and whether kept)."""
    if target is None:
        return drafts, False
    mask = editor_mask(store, target, value)
    if mask is None:
        return drafts, False
    cur = store.current_mask(target.train_image_id)
    same = (np.array_equal(store.load_mask(cur.image_sha), mask) if cur is not None else bool(mask.all()))
    out = {k: v for k, v in drafts.items() if k != target.train_image_id}
    if not same:
        out[target.train_image_id] = mask
    return out, not same


# -- the match a save may move ----------------------------------------------------------------
def match_of(store: Store, caption_id: int) -> Optional[tuple]:
    """(kind, training image id) of the pair the candidate's automatic label rests on, or None."""
    autos = store.auto_labels(caption_id)
    pair = labelled_pair(autos[-1] if autos else None, {g.id: g for g in store.generations(caption_id)})
    return None if pair is None else (pair[0], pair[2])


def moved_match(before: Optional[tuple], after: Optional[tuple]) -> Optional[tuple]:
    """(before, after) when a relabel moved the match to another training image, else None."""
    if before is None or after is None or before[1] == after[1]:
        return None
    return before, after


def moved_notice(save: "MaskSave") -> str:
    """Plain words for a match that moved (empty when it did not): the reviewer must look again."""
    if save.moved is None:
        return ""
    (k0, t0), (k1, t1) = save.moved
    return (f"The {k1} match moved from training image {t0} ({k0}) to training image {t1}: the candidate's "
            f"strip now shows the new match.")


# -- masks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MaskSave:
    mask_id: int
    version: int
    kept: float                      # fraction of pixels kept
    relabel: Relabel
    moved: Optional[tuple] = None    # (kind, training image) of the match before and after, when it moved


def save_mask(store: Store, caption_id: int, target: MaskTarget, layer: np.ndarray, reviewer: str,
              background: Optional[np.ndarray] = None) -> MaskSave:
    """The edited layer becomes a new mask version (source 'edited', the reviewer as author);
    the caption's automatic label is recomputed from the current masks. ``background``, the
    editor's image as the browser sent it, must be the target training image (an editor still
    showing the previous candidate's image would put that image's mask on this one); a mask
    equal to the current version is not saved again."""
    reviewer = check_reviewer(reviewer)
    t = store.get_training_image(target.train_image_id)
    k = target.scale
    if background is not None and not imaging.shows_image(np.asarray(background)[::k, ::k],
                                                          np.asarray(store.load_image(t.sha256).convert("RGB"))):
        raise ViewError(f"save mask: expected the editor to show training image {t.id}, got another image "
                        "(the editor is still loading it: save again once it shows)")
    mask = imaging.mask_from_layer(np.asarray(layer), target.size, k)
    cur = store.current_mask(t.id)
    if cur is not None and np.array_equal(store.load_mask(cur.image_sha), mask):
        raise ViewError(f"save mask: expected a change, got the same mask as v{cur.version} (nothing saved)")
    # save_mask checks the size against the training image itself before writing anything
    before = match_of(store, caption_id)
    mask_id = store.save_mask(target.train_image_id, mask, source="edited", author=reviewer)
    r = relabel(store, caption_id)
    return MaskSave(mask_id, store.get_mask(mask_id).version, float(mask.mean()), r,
                    moved_match(before, match_of(store, caption_id)))


def restore_mask(store: Store, caption_id: int, target: MaskTarget, mask_id: int, reviewer: str) -> MaskSave:
    """An earlier version becomes current again as a new 'edited' version (history is kept)."""
    reviewer = check_reviewer(reviewer)
    old = store.get_mask(int(mask_id))
    if old.train_image_id != target.train_image_id:
        raise ViewError(f"restore mask {mask_id}: expected a mask of training image {target.train_image_id}, "
                        f"got one of {old.train_image_id}")
    before = match_of(store, caption_id)
    new_id = store.add_mask(target.train_image_id, old.image_sha, source="edited", author=reviewer, parent_id=old.id)
    kept = float(store.load_mask(old.image_sha).mean())
    r = relabel(store, caption_id)
    return MaskSave(new_id, store.get_mask(new_id).version, kept, r, moved_match(before, match_of(store, caption_id)))


def mask_info_html(store: Store, caption_id: Optional[int], target: Optional[MaskTarget], note: str = "") -> str:
    """Beside the editor: the candidate, the image being masked, and the candidate's automatic
    label now (what a save will recompute)."""
    if caption_id is None:
        return "<p>No candidate open: pick one in the Queue or the Grid.</p>"
    cap = store.get_caption(caption_id)
    out = [f'<p class="vb-mask-cand" data-caption-id="{caption_id}"><b>candidate {caption_id}</b>: '
           f'{render.esc(cap.text)}</p>']
    if target is None:
        out.append("<p>No training image to mask for this candidate.</p>")
    else:
        w, h = target.size
        out.append(f'<p data-testid="mask-target" data-train-image-id="{target.train_image_id}">training image '
                   f'{target.train_image_id} ({w}×{h} px{f", shown ×{target.scale}" if target.scale > 1 else ""}): '
                   f'{len(target.versions)} mask version(s){" · your unsaved strokes" if target.draft else ""}</p>')
    autos = store.auto_labels(caption_id)
    if autos:
        d = autos[-1].distances
        out.append(f"<p>Automatic label now {render.label_badge(autos[-1].label)} · TV (masked RMSE) "
                   f"{render.fmt(d.get('tv'))} · MV {render.fmt(d.get('mv'))} · RV {render.fmt(d.get('rv'))}. "
                   f"Saving a mask recomputes it.</p>")
    if note:
        out.append(f'<p class="vb-mask-note">{render.esc(note)}</p>')
    return "".join(out)


def relabel_html(save: MaskSave) -> str:
    r = save.relabel
    names = {"tv": "masked RMSE (TV)", "mv": "RMSE to own image (MV)", "rv": "RMSE to a neighbour (RV)"}
    dist = ", ".join(f"{render.esc(names.get(k, k))} {render.fmt(v) if isinstance(v, float) or v is None else render.esc(v)}"
                     for k, v in r.distances.items())
    moved = moved_notice(save)
    note = f'<p class="vb-mask-moved" role="alert"><b>{render.esc(moved)}</b></p>' if moved else ""
    return (f"<p>Saved mask v{save.version} (keeps {save.kept:.0%}). Automatic label now "
            f"{render.label_badge(r.label)} · {dist}</p>{note}")
