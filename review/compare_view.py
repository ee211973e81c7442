"""The Compare tab's views (attack/compare.py's runs): pure data functions and their HTML.

A row shows A's generation | B's generation | the training image the copy rests on, with each
side's label and distance; opening a row shows both models' strips (every generation of the
caption under each model, read through Store.only_runs) beside the match."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from attack.compare import OUTCOMES, CompareResult, CompareRow, load_compare, with_human_labels
from store import Store

from .checks import ViewError
from .grid import thumb_uri
from .render import esc, fmt, label_badge

FILTERS = ("all",) + OUTCOMES
SHOWN = 200      # rows drawn at once (each draws three thumbnails); the summary says when there are more


def compare_choices(store: Store) -> list[tuple[str, int]]:
    """(label, run id) of the store's compare runs, newest first."""
    runs = [r for r in store.runs(stage="compare") if r.status == "done"]
    return [(f"run {r.id}: {r.model} ({r.started_at[:16].replace('T', ' ')})", r.id) for r in reversed(runs)]


@dataclass(frozen=True)
class CompareView:
    result: CompareResult
    outcome: str
    rows: tuple[CompareRow, ...]       # those of the outcome (all: every row)


def compare_view(store: Store, run_id: int, outcome: str = "all") -> CompareView:
    """A compare run's rows of one outcome ('all': every one), in caption id order, with the human
    labels given since it was made (a confirmed carry-over) folded into labels and outcomes."""
    if outcome not in FILTERS:
        raise ViewError(f"expected an outcome among {', '.join(FILTERS)}, got {outcome!r}")
    result = with_human_labels(store, load_compare(store, int(run_id)))
    rows = tuple(r for r in result.rows if outcome == "all" or r.outcome == outcome)
    return CompareView(result, outcome, rows)


def summary(view: CompareView) -> str:
    c = view.result.counts()
    a, b = view.result.models
    more = f" (the first {SHOWN}: filter by outcome for the rest)" if len(view.rows) > SHOWN else ""
    return (f"**A** `{a}` · **B** `{b}` · " + " · ".join(f"{o} **{c[o]}**" for o in OUTCOMES)
            + f" · showing {len(view.rows)}{more}")


def generation_img(store: Store, run_ids, caption_id: int, generation_id: Optional[int], alt: str) -> str:
    """The thumbnail of a model's generation (its runs `run_ids`), or a placeholder."""
    return _img(store, _generation_sha(store, run_ids, caption_id, generation_id), alt)


def training_img(store: Store, train_image_id: Optional[int]) -> str:
    sha = store.get_training_image(train_image_id).sha256 if train_image_id is not None else None
    return _img(store, sha, "training image")


def _generation_sha(store: Store, run_ids, caption_id: int, generation_id: Optional[int]) -> Optional[str]:
    with store.only_runs(run_ids):
        gens = store.generations(caption_id)
    hit = [g for g in gens if g.id == generation_id] or gens[:1]
    return hit[0].image_sha if hit else None


def _img(store: Store, sha: Optional[str], alt: str) -> str:
    if sha is None:
        return f'<span class="vb-thumb vb-thumb-none">no {esc(alt)}</span>'
    return f'<img class="vb-px vb-thumb" src="{thumb_uri(store, sha)}" alt="{esc(alt)}" decoding="sync">'


def _side(label: Optional[str], distance: Optional[float]) -> str:
    return f"{label_badge(label)} {fmt(distance) if distance is not None else ''}"


def compare_html(store: Store, view: CompareView) -> str:
    """The rows as a table: caption, outcome, A's generation, B's generation, the match, each side's label."""
    runs = runs_of(store, view.result)
    body = []
    for r in view.rows[:SHOWN]:
        tid = r.a.train_image_id if r.a.copy or not r.b.copy else r.b.train_image_id
        body.append(
            f'<tr class="vb-cmp-row" data-caption-id="{r.caption_id}" data-outcome="{r.outcome}">'
            f'<td>{r.caption_id}</td><td>{esc(r.caption)}</td><td class="vb-outcome">{esc(r.outcome)}</td>'
            f'<td>{generation_img(store, runs[0], r.caption_id, r.a.generation_id, "A generation")}'
            f'<br>{_side(r.a.label, r.a.distance)}</td>'
            f'<td>{generation_img(store, runs[1], r.caption_id, r.b.generation_id, "B generation")}'
            f'<br>{_side(r.b.label, r.b.distance)}</td>'
            f'<td>{training_img(store, tid)}</td></tr>')
    if not body:
        return f'<p class="vb-cmp-empty">No caption with outcome {esc(view.outcome)} in this comparison.</p>'
    head = "".join(f"<th>{h}</th>" for h in ("id", "caption", "outcome", "A", "B", "training image"))
    return f'<table class="vb-table vb-cmp-table" data-testid="compare-rows"><tr>{head}</tr>{"".join(body)}</table>'


def runs_of(store: Store, result: CompareResult) -> tuple[list[int], list[int]]:
    """The generate runs each side of a comparison rests on."""
    run = store.get_run(result.run_id)
    a, b = run.params["generate_runs"]
    return list(a), list(b)


def strips_html(store: Store, result: CompareResult, caption_id: int) -> str:
    """One row opened: both models' strips (every generation of the caption under each) and the match."""
    row = next((r for r in result.rows if r.caption_id == int(caption_id)), None)
    if row is None:
        return f"<p>Caption {int(caption_id)} is not in comparison run {result.run_id}.</p>"
    out = [f'<div class="vb-cmp-open" data-caption-id="{row.caption_id}"><p><b>{esc(row.caption)}</b> · '
           f'{esc(row.outcome)}</p>']
    for name, runs, side, model in zip("AB", runs_of(store, result), (row.a, row.b), result.models):
        with store.only_runs(runs):
            gens = store.generations(row.caption_id)
        imgs = "".join(_img(store, g.image_sha, f"{name} seed {g.seed}") for g in gens)
        by = f" by {esc(side.human_by)}" if side.human_by else ""
        out.append(f'<div class="vb-cmp-strip" data-side="{name}"><p>{name} <code>{esc(model)}</code> · '
                   f'{_side(side.label, side.distance)} · auto {esc(side.auto_label or "–")} · human '
                   f'{esc(side.human_label or "–")}{by}</p>{imgs}</div>')
    tids = {t for t in (row.a.train_image_id, row.b.train_image_id) if t is not None}
    matches = "".join(_img(store, store.get_training_image(t).sha256, f"training image {t}") for t in sorted(tids))
    out.append(f'<div class="vb-cmp-strip" data-side="match"><p>training image</p>{matches}</div></div>')
    return "".join(out)
