"""The grid: a page of the queue as generation | match thumbnail pairs, grouped, for bulk labels.

Data (``grid_data``) and template (``grid_html``) are separate, as in the candidate view. The
match of a candidate is the pair its automatic label rests on (review.candidate's rule), read
from the stored label alone (no pixels compared) so a page of 120 builds in tens of ms.
Groups are formed within the page:
- family: template families: candidates whose TV match shares a training image, directly or
  through the siblings its automatic mask was built from (the layout the copies share);
- match: the retrieved (or own) training image of the match;
- auto: the automatic label.
"""
from __future__ import annotations

import base64
import io
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

from PIL import Image

from store import AutoLabel, Store

from .candidate import labelled_pair
from .explain import fmt
from .render import esc, label_badge
from .views import QueueFilter, ViewError

GROUPINGS = ("family", "match", "auto", "none")
THUMB_PX = 112             # thumbnails: the long side, whole-factor enlarged when smaller
THUMB_CACHE = 4096


@dataclass(frozen=True)
class GridItem:
    caption_id: int
    text: str
    human: Optional[str]
    auto: Optional[str]
    flags: tuple
    generation_sha: Optional[str]      # the match's generation
    match_sha: Optional[str]           # the match's training image
    match_id: Optional[int]
    kind: str                          # the match's label kind ('TV', 'MV', 'RV', 'closest', '')
    distance: Optional[float]          # the stored distance of the match
    family: tuple[int, ...]            # training images of its TV match's template (empty: none)


@dataclass(frozen=True)
class GridGroup:
    key: str
    title: str
    items: tuple[GridItem, ...]


@dataclass(frozen=True)
class GridData:
    groups: tuple[GridGroup, ...]
    total: int
    page: int                          # 0-based
    pages: int
    group_by: str


@dataclass(frozen=True)
class _Match:
    generation_sha: Optional[str] = None
    match_sha: Optional[str] = None
    match_id: Optional[int] = None
    kind: str = ""
    distance: Optional[float] = None
    family: tuple[int, ...] = ()


def _match_of(store: Store, caption_id: int) -> _Match:
    """The candidate's match from its stored automatic label (else its first generation's
    nearest neighbour), without reading any pixels."""
    gens = {g.id: g for g in store.generations(caption_id)}
    autos = store.auto_labels(caption_id)
    auto: Optional[AutoLabel] = autos[-1] if autos else None
    pair = labelled_pair(auto, gens)
    if pair is None and gens:
        g = next(iter(gens.values()))
        ns = store.neighbours(g.id)
        pair = ("closest", g.id, ns[0].train_image_id) if ns else None
    if pair is None:
        return _Match()
    kind, gid, match_id = pair
    distance = auto.distances.get(kind.lower()) if auto is not None and kind != "closest" else None
    family = tuple(sorted({match_id, *(auto.distances.get("tv_mask_siblings") or [])})) if kind == "TV" else ()
    return _Match(gens[gid].image_sha, store.get_training_image(match_id).sha256, match_id, kind, distance, family)


def _item(store: Store, row) -> GridItem:
    m = _match_of(store, row.caption_id)
    return GridItem(row.caption_id, row.text, row.human_label, row.auto_label, tuple(row.flags), m.generation_sha,
                    m.match_sha, m.match_id, m.kind, m.distance, m.family)


def _families(items: list[GridItem]) -> dict[int, int]:
    """caption id -> family representative: union of candidates sharing a template image."""
    parent: dict[object, object] = {}

    def find(x):
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for it in items:
        for tid in it.family:
            parent[find(("c", it.caption_id))] = find(("t", tid))
    roots: dict[object, int] = {}
    return {it.caption_id: roots.setdefault(find(("c", it.caption_id)), len(roots)) for it in items if it.family}


def _group(items: list[GridItem], group_by: str) -> list[GridGroup]:
    groups: "OrderedDict[str, list]" = OrderedDict()
    titles: dict[str, str] = {}
    fam = _families(items) if group_by == "family" else {}
    for it in items:             # in queue order: a group sits where its best-ranked member does
        if group_by == "family":
            key = f"family-{fam[it.caption_id]}" if it.caption_id in fam else "family-none"
            title = (f"template family of training images {', '.join(map(str, it.family[:6]))}"
                     f"{'…' if len(it.family) > 6 else ''}" if it.caption_id in fam else "no template family")
        elif group_by == "match":
            key = f"match-{it.match_id}"
            title = f"match: training image {it.match_id}" if it.match_id is not None else "no match"
        elif group_by == "auto":
            key, title = f"auto-{it.auto}", f"automatic label {it.auto or '(none)'}"
        else:
            key, title = "all", "in queue order"
        groups.setdefault(key, []).append(it)
        titles.setdefault(key, title)
    return [GridGroup(k, titles[k], tuple(v)) for k, v in groups.items()]


def grid_data(store: Store, filt: QueueFilter, group_by: str = "family", page: int = 0,
              page_size: int = 120) -> GridData:
    """One page of the queue, grouped."""
    if group_by not in GROUPINGS:
        raise ViewError(f"grid grouping: expected one of {', '.join(GROUPINGS)}, got {group_by!r}")
    page = max(0, int(page))
    result = store.page(filt.query(page * page_size, page_size))
    pages = max(1, -(-result.total // page_size))
    if page >= pages and result.total:
        page = pages - 1
        result = store.page(filt.query(page * page_size, page_size))
    items = [_item(store, r) for r in result.rows]
    return GridData(tuple(_group(items, group_by)), result.total, page, pages, group_by)


_thumbs: "OrderedDict[tuple, tuple[str, tuple[int, int]]]" = OrderedDict()


def thumb(store: Store, sha: str, px: int = THUMB_PX, enlarge: bool = False) -> tuple[str, tuple[int, int]]:
    """A small lossless thumbnail as a data URI and its pixel size (cached by sha): a grid page of
    real 512-px images must not send every full-size file. ``enlarge``: a small image is enlarged
    by the largest whole factor that fits ``px`` (nearest neighbour: each pixel a crisp square), so
    the page shows it at its own size (Gradio's table drops width and height attributes)."""
    key = (str(store.path), sha, px, enlarge)
    if key in _thumbs:
        _thumbs.move_to_end(key)
        return _thumbs[key]
    im = store.load_image(sha).convert("RGB")
    if max(im.size) > px:
        im.thumbnail((px, px), Image.LANCZOS)
    elif enlarge and whole_factor(im.size, px) != im.size:
        im = im.resize(whole_factor(im.size, px), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    _thumbs[key] = ("data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), im.size)
    if len(_thumbs) > THUMB_CACHE:
        _thumbs.popitem(last=False)
    return _thumbs[key]


def thumb_uri(store: Store, sha: str, px: int = THUMB_PX) -> str:
    return thumb(store, sha, px)[0]


def _thumb(store: Store, sha: Optional[str], alt: str) -> str:
    if sha is None:
        return f'<span class="vb-thumb vb-thumb-none">no {esc(alt)}</span>'
    return f'<img class="vb-px vb-thumb" src="{thumb_uri(store, sha)}" alt="{esc(alt)}" decoding="sync">'


def cell_html(store: Store, it: GridItem, index: int, group: int) -> str:
    d = f" {fmt(it.distance)}" if it.distance is not None else ""
    flags = f' <span class="vb-flag">{esc(", ".join(it.flags))}</span>' if it.flags else ""
    return (f'<div class="vb-cell" data-caption-id="{it.caption_id}" data-index="{index}" data-group="{group}" '
            f'data-auto="{esc(it.auto or "")}">'
            f'<div class="vb-pair">{_thumb(store, it.generation_sha, "generation")}'
            f'{_thumb(store, it.match_sha, "match")}</div>'
            f'<div class="vb-cell-meta">#{it.caption_id} {label_badge(it.human)} auto {esc(it.kind or "–")}{d}'
            f'{flags}</div><div class="vb-cell-text" title="{esc(it.text)}">{esc(it.text)}</div></div>')


def grid_html(store: Store, data: GridData) -> str:
    """The grid: one section per group, each with its 'select group' button and its cells."""
    if not data.groups:
        return '<div class="vb-grid vb-empty" id="vb-grid-root">No candidates match the queue filter.</div>'
    parts, index = [], 0
    for g_i, g in enumerate(data.groups):
        cells = []
        for it in g.items:
            cells.append(cell_html(store, it, index, g_i))
            index += 1
        parts.append(f'<section class="vb-group" data-group="{g_i}"><h4>{esc(g.title)} · {len(g.items)} '
                     f'<button type="button" class="vb-selgroup" data-group="{g_i}">select group (s)</button></h4>'
                     f'<div class="vb-cells">{"".join(cells)}</div></section>')
    return f'<div class="vb-grid" id="vb-grid-root" data-page="{data.page}">{"".join(parts)}</div>'


def summary(data: GridData) -> str:
    shown = sum(len(g.items) for g in data.groups)
    return (f"**{data.total:,}** candidates match · page {data.page + 1} of {data.pages:,} · {shown} shown in "
            f"{len(data.groups)} group(s) by {data.group_by}")


QUEUE_THUMB_PX = 64        # queue thumbnails: at most this size, whole factors only (crisp, not blurry)


def whole_factor(size: tuple[int, int], box: int) -> tuple[int, int]:
    """Display size of a thumbnail no larger than ``box``: its pixels times the largest whole factor
    that fits (1 for a thumbnail already at the box)."""
    k = max(1, box // max(size[0], size[1], 1))
    return size[0] * k, size[1] * k


def queue_thumbnails(store: Store, caption_ids, px: int = QUEUE_THUMB_PX) -> list[str]:
    """The generation | match thumbnails of queue rows, side by side, as HTML cells (our own markup:
    two images with data URIs, no text from the store)."""
    out = []
    for cid in caption_ids:
        m = _match_of(store, cid)
        imgs = []
        for sha, what in ((m.generation_sha, "generation"), (m.match_sha, "match")):
            if sha is None:
                continue
            uri, (w, h) = thumb(store, sha, px, enlarge=True)
            imgs.append(f'<img class="vb-qthumb" src="{uri}" width="{w}" height="{h}" alt="{what}">')
        out.append(f'<span class="vb-qpair">{"".join(imgs)}</span>')
    return out
