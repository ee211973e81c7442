"""The Compare tab's carry-over (attack/carry.py): A's human labels proposed for B, grouped by
outcome and carried label; one key confirms the group shown. Pure data functions and their HTML."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from attack.carry import CarryGroup, Confirmed, groups, proposals_of
from attack.compare import CompareResult, load_compare, with_human_labels
from store import Store

from .compare_view import generation_img, runs_of, training_img
from .render import esc, fmt, label_badge

SHOWN = 120      # proposals drawn at once; a group is confirmed whole whatever is drawn


@dataclass(frozen=True)
class CarryView:
    result: CompareResult
    groups: tuple[CarryGroup, ...]
    group: Optional[CarryGroup]        # the one shown (and confirmed by y)


def carry_view(store: Store, run_id: int, key: Optional[str] = None,
               result: Optional[CompareResult] = None) -> CarryView:
    """The comparison's carry-over groups now; `key` picks the group shown (default: the largest).
    result: the run with its human labels already as they are now (CompareView.result), so a page
    that shows both reads them once."""
    if result is None or result.run_id != int(run_id):
        result = with_human_labels(store, load_compare(store, int(run_id)))
    found = tuple(groups(proposals_of(result)))
    shown = next((g for g in found if g.key == key), found[0] if found else None)
    return CarryView(result, found, shown)


def group_choices(view: CarryView) -> list[tuple[str, str]]:
    """(label, key) per group: outcome, the carried label and how many captions."""
    return [(f"{g.outcome} · carry {g.label} · {len(g.proposals)}", g.key) for g in view.groups]


def carry_summary(view: CarryView) -> str:
    a, b = view.result.models
    if not view.groups:
        return (f"Nothing to carry from **A** `{a}` to **B** `{b}`: no caption has a human label for A that B "
                "rests on (same training image), or B's labels are all confirmed.")
    n = sum(len(g.proposals) for g in view.groups)
    return (f"**{n}** proposals from **A** `{a}` for **B** `{b}` in {len(view.groups)} groups, none written as B's "
            "label until confirmed · keys: `[` `]` group · `y` confirm the group as B's label · `u` undo")


def carry_html(store: Store, view: CarryView) -> str:
    """The shown group's proposals: B's generation, the training image, the evidence carried."""
    if view.group is None:
        return '<div id="vb-carry-root" class="vb-carry-empty"></div>'
    b_runs = runs_of(store, view.result)[1]
    tiles = []
    for p in view.group.proposals[:SHOWN]:
        tiles.append(
            f'<div class="vb-carry-tile" data-caption-id="{p.caption_id}">'
            f'{generation_img(store, b_runs, p.caption_id, p.b_generation_id, "B generation")}'
            f'{training_img(store, p.train_image_id)}'
            f'<p>{p.caption_id}: {esc(p.caption)}</p>'
            f'<p>proposed {label_badge(p.label)} <i>{esc(p.evidence)}</i> · B auto {esc(p.b_auto_label or "–")} '
            f'{fmt(p.b_distance) if p.b_distance is not None else ""}</p></div>')
    more = (f'<p>Showing {SHOWN} of {len(view.group.proposals)}; <b>y</b> confirms all of them.</p>'
            if len(view.group.proposals) > SHOWN else "")
    return (f'<div id="vb-carry-root" data-group="{esc(view.group.key)}" data-count="{len(view.group.proposals)}">'
            f'{more}{"".join(tiles)}</div>')


def confirmed_note(done: Confirmed, undone: Optional[int] = None) -> str:
    where = "the store's review" if done.into == "review" else "B's own labels"
    if undone is not None:
        return f"Undone: {undone} of {len(done.caption_ids)} captions of {done.key} back to their label before."
    return f"Confirmed {len(done.caption_ids)} captions of {done.key} as {done.label} for B (written to {where})."
