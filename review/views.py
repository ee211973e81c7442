"""Pure view functions: store data in, display-ready values out. Tests and the benchmark call
these directly; the Gradio callbacks in the tab modules only wrap them."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Optional, Sequence

from store import (
    HUMAN_LABELS,
    REFERENCE_LABELS,
    LabelEntry,
    LabelError,
    NotYourLabelError,
    Page,
    PageQuery,
    Store,
    StoreError,
)

from . import queries, render
from .candidate import candidate_data
from .checks import ViewError, check_reviewer
from .mask_views import MaskTarget, target_for, mask_editor
from .templates import candidate_html, head_html

QUEUE_HEADERS = ["#", "id", "caption", "score", "human", "auto", "flags", "gens"]


QUEUE_TYPES = ["number", "number", "str", "number", "str", "str", "str", "number"]


HUMAN_STATES = ("any", "unlabelled", "labelled", "conflict") + HUMAN_LABELS


NAV_WINDOW = 200          # candidate ids held for j/k navigation; more are fetched on demand


NEXT_UNLABELLED_WINDOWS = 5


UNDO_DEPTH = 100          # labels of a session that u can walk back through


def store_summary(store: Store) -> dict:
    """Counts per table and per current human label."""
    return store.info()


def caption_rows(store: Store, text: str, limit: int = 50) -> list[list]:
    """Full-text caption search as table rows [id, caption, url]. Captions are untrusted web text:
    they go to a plain-text ("str") table column, never to a markdown or HTML one."""
    text = (text or "").strip()
    if not text:
        return []
    return [[h.caption_id, h.text, h.url or ""] for h in store.search(text, limit)]


# -- queue ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows: one score ordering and the filters of store.PageQuery."""
    order_by: str = "dcs"
    descending: bool = True
    human: str = "unlabelled"                 # one of HUMAN_STATES
    auto: tuple[str, ...] = ()                # automatic labels (any of)
    flags: tuple[str, ...] = ()               # every listed flag must be present
    score_min: Optional[float] = None
    score_max: Optional[float] = None
    run_id: Optional[int] = None
    model: Optional[str] = None
    search: str = ""

    def __post_init__(self) -> None:
        if self.human not in HUMAN_STATES:
            raise ViewError(f"human label filter: expected one of {', '.join(HUMAN_STATES)}, got {self.human!r}")
        for a in self.auto:
            if a not in REFERENCE_LABELS:
                raise ViewError(f"auto label filter: expected any of {', '.join(REFERENCE_LABELS)}, got {a!r}")

    def query(self, offset: int = 0, limit: int = 50, human: Optional[str] = None) -> PageQuery:
        h = self.human if human is None else human
        return PageQuery(order_by=self.order_by, descending=self.descending,
                         human_label=None if h == "any" else h, auto_label=self.auto or None,
                         flags=self.flags or None, score_min=self.score_min, score_max=self.score_max,
                         run_id=self.run_id, model=self.model or None,
                         search=self.search.strip() or None, offset=offset, limit=limit)


@dataclass(frozen=True)
class QueueView:
    rows: list
    ids: tuple
    total: int
    page: int
    pages: int
    summary: str


def queue_view(store: Store, filt: QueueFilter, page: int = 0, page_size: int = 50) -> QueueView:
    """One page of the ranked queue as table rows, plus what the filter holds."""
    page = max(0, int(page))
    result: Page = store.page(filt.query(page * page_size, page_size))
    pages = max(1, -(-result.total // page_size))
    if page >= pages and result.total:
        page = pages - 1
        result = store.page(filt.query(page * page_size, page_size))
    rows = [[page * page_size + i + 1, r.caption_id, r.text, None if r.score is None else round(r.score, 6),
             r.human_label or "", r.auto_label or "", ", ".join(r.flags), r.n_generations]
            for i, r in enumerate(result.rows)]
    totals = queries.label_totals(store)
    done = sum(v for k, v in totals.items() if k != "unlabelled")
    summary = (f"**{result.total:,}** candidates match · page {page + 1} of {pages:,} · "
               f"store: {done:,} labelled, {totals['unlabelled']:,} unlabelled")
    return QueueView(rows, tuple(r.caption_id for r in result.rows), result.total, page, pages, summary)


# -- navigation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nav:
    """Where the reviewer is: a window of the filtered queue (ids from ``offset``) and a position."""
    filt: QueueFilter = field(default_factory=QueueFilter)
    ids: tuple = ()
    offset: int = 0
    pos: int = 0
    labelled: tuple = ()    # captions labelled through this navigation, latest last: what u undoes
    reviewer: str = ""      # who is reviewing ('' until a name is given): leases and blind reviews
    seen: int = -1          # the newest label entry shown for the current candidate (0: none, -1: unknown)

    @property
    def current(self) -> Optional[int]:
        return self.ids[self.pos] if 0 <= self.pos < len(self.ids) else None

    @property
    def position(self) -> str:
        return "" if self.current is None else f"queue position {self.offset + self.pos + 1}"


def _window(store: Store, filt: QueueFilter, offset: int, human: Optional[str] = None) -> tuple:
    return tuple(r.caption_id for r in store.page(filt.query(max(0, offset), NAV_WINDOW, human)).rows)


def nav_open(store: Store, filt: QueueFilter, queue_index: int, labelled: tuple = ()) -> Nav:
    """Navigation positioned on the queue's ``queue_index``-th (0-based) candidate; ``labelled``
    carries the session's undo history over."""
    offset = max(0, queue_index - NAV_WINDOW // 2)
    ids = _window(store, filt, offset)
    if not ids and offset > 0:      # past the end of the queue: its start instead
        return nav_open(store, filt, 0, labelled)
    return Nav(filt, ids, offset, min(queue_index - offset, max(len(ids) - 1, 0)), labelled)


def nav_first_unlabelled(store: Store, filt: QueueFilter, reviewer: str = "") -> Nav:
    """Where a session starts: the filter's first candidate still open to the reviewer (leased to
    them), or its first candidate when none is or the filter holds labelled ones only."""
    ids = _window(store, filt, 0)
    if reviewer and filt.human in ("any", "unlabelled"):
        nav, found = nav_next_unlabelled(store, Nav(filt, ids, 0, -1, reviewer=reviewer))
        if found:
            return nav
    return replace(nav_open(store, filt, 0), reviewer=reviewer)


def nav_at(store: Store, nav: Nav, caption_id: int) -> Nav:
    """Navigation positioned on a caption: within the window if it is there, else at its rank in
    the whole queue (every candidate, same score order), else a window of that caption alone."""
    if caption_id in nav.ids:
        return replace(nav, pos=nav.ids.index(caption_id))
    every = QueueFilter(order_by=nav.filt.order_by, descending=nav.filt.descending, human="any")
    value = store.scores_for(caption_id).get(every.order_by)
    if value is not None and every.descending:
        rank = queries.ranks(store, {every.order_by: value})[every.order_by][0]
        found = nav_open(store, every, rank - 1, nav.labelled)
        if found.current == caption_id:
            return replace(found, reviewer=nav.reviewer)
    return Nav(every, (caption_id,), 0, 0, nav.labelled, nav.reviewer)


def nav_step(store: Store, nav: Nav, step: int) -> Nav:
    """The next (step=+1) or previous (-1) candidate of the queue; stays put at either end."""
    pos = nav.pos + step
    if 0 <= pos < len(nav.ids):
        return replace(nav, pos=pos)
    if pos >= len(nav.ids):
        ids = _window(store, nav.filt, nav.offset + len(nav.ids))
        return replace(nav, ids=ids, offset=nav.offset + len(nav.ids), pos=0) if ids else nav
    if nav.offset == 0:
        return nav
    start = max(0, nav.offset - NAV_WINDOW)
    ids = _window(store, nav.filt, start)
    return replace(nav, ids=ids, offset=start, pos=min(nav.offset - start - 1, len(ids) - 1)) if ids else nav


def nav_next_unlabelled(store: Store, nav: Nav) -> tuple[Nav, bool]:
    """The first unlabelled candidate after the current one in queue order, loading later windows
    as needed; then, wrapping around, the top unlabelled one of the filter. (nav, found)."""
    ids, offset, pos = nav.ids, nav.offset, nav.pos + 1
    for _ in range(NEXT_UNLABELLED_WINDOWS):
        rest = ids[pos:]
        free = _free(store, nav, rest)
        for i, cid in enumerate(rest):
            if cid in free:
                return replace(nav, ids=ids, offset=offset, pos=pos + i, seen=-1), True
        if len(ids) < NAV_WINDOW:
            break
        offset, pos = offset + len(ids), 0
        ids = _window(store, nav.filt, offset)
        if not ids:
            break
    if nav.filt.human not in ("any", "unlabelled"):
        return nav, False   # the filter holds labelled candidates only
    top = _window(store, nav.filt, 0, human="unlabelled")
    free = _free(store, nav, tuple(c for c in top if c != nav.current))
    if not free:
        return nav, False
    first = next(c for c in top if c in free)
    return replace(nav, filt=replace(nav.filt, human="unlabelled"), ids=top, offset=0, pos=top.index(first),
                   seen=-1), True


def _free(store: Store, nav: Nav, ids: Sequence[int]) -> set:
    """Of ids, what "next unlabelled" may open: with a reviewer, the first one still open to them,
    leased to them at once (so no one else is handed it); without, every unlabelled one."""
    if not nav.reviewer:
        return queries.unlabelled_among(store, ids)
    got = store.lease_first(ids, nav.reviewer)
    return set() if got is None else {got}


@dataclass(frozen=True)
class CandidateView:
    caption_id: int
    html: str                        # the strip and the side panel
    head: str                        # the header above the label keys: id, status, caption
    label: Optional[str]
    mask: Optional[MaskTarget]
    editor: Optional[dict]           # gr.ImageEditor value: background + one mask layer
    mask_choices: tuple = ()         # ((label, training image id), ...) the editor can switch to
    latest_entry: int = 0            # the newest label entry's id (0: none): what a label expects


def candidate_view(store: Store, caption_id: int, position: str = "", with_editor: bool = True,
                   viewer: str = "") -> CandidateView:
    """Everything a reviewer needs to decide one candidate, as HTML, and the mask editor's target
    (with its value unless ``with_editor`` is False: triage leaves the editor to the Mask tab).
    ``viewer``: who looks; with blind reviews others' labels stay hidden until they gave theirs."""
    try:
        data = candidate_data(store, caption_id, viewer)
    except StoreError as e:
        raise ViewError(f"candidate {caption_id}: {e}") from e
    mask_target = editor = None
    if data.editor is not None:
        e = data.editor
        if with_editor:
            mask_target, editor = mask_editor(store, e.train_image_id, e.image, e.mask, e.keep)
        else:
            mask_target = target_for(store, e.train_image_id, e.image.size, e.mask)
    return CandidateView(caption_id, candidate_html(data), head_html(data, position), data.label, mask_target,
                         editor, data.mask_choices, data.latest_entry)


def empty_view(message: str) -> CandidateView:
    return CandidateView(0, f'<div class="vb-cand vb-empty">{render.esc(message)}</div>',
                         '<div class="vb-headbar vb-empty"></div>', None, None, None, ())


def record_label(store: Store, caption_id: int, label: str, reviewer: str, note: str = "",
                 seen: int = -1) -> LabelEntry:
    """One durable write: a new entry in the caption's label history. ``seen``: the newest entry
    the reviewer was shown (0: none; -1: not known, no check); someone else's newer label raises
    store.LabelConflictError (keep theirs, or label again with ``seen`` = their entry to override)."""
    if label not in HUMAN_LABELS:
        raise ViewError(f"label: expected one of {', '.join(HUMAN_LABELS)}, got {label!r}")
    expect = {} if seen < 0 else {"expect_latest": seen or None}
    return store.add_label(caption_id, label, check_reviewer(reviewer), note or "", **expect)


def label_and_advance(store: Store, nav: Nav, label: str, reviewer: str, note: str = "") -> tuple[LabelEntry, Nav, bool]:
    """Label the current candidate (expecting the label entry it was shown with: nav.seen), then
    move to the next unlabelled one. (entry, nav, moved)."""
    if nav.current is None:
        raise ViewError("label: expected an open candidate, got none (pick one in the Queue tab)")
    entry = record_label(store, nav.current, label, reviewer, note, nav.seen)
    nav = replace(nav, labelled=(nav.labelled + (entry.caption_id,))[-UNDO_DEPTH:], reviewer=entry.reviewer)
    if nav.filt.human not in ("any", "unlabelled"):
        # re-reviewing labelled candidates (e.g. the MV queue): the next one in the queue
        nxt = nav_step(store, nav, 1)
        return entry, nxt, nxt.current != nav.current
    nxt, found = nav_next_unlabelled(store, nav)
    return entry, nxt, found


def bulk_label(store: Store, caption_ids: Sequence[int], label: str, reviewer: str,
               note: str = "") -> list[LabelEntry]:
    """The grid's bulk label: one transaction, one history entry per candidate, one batch id."""
    if label not in HUMAN_LABELS:
        raise ViewError(f"label: expected one of {', '.join(HUMAN_LABELS)}, got {label!r}")
    if not caption_ids:
        raise ViewError("bulk label: expected at least one selected candidate, got none")
    return store.add_labels(caption_ids_of(caption_ids), label, check_reviewer(reviewer), note or "")


def caption_ids_of(values: Sequence[object]) -> list[int]:
    """Caption ids sent by the page (JSON numbers or strings), checked."""
    try:
        if any(isinstance(v, bool) for v in values):
            raise TypeError
        return [int(v) for v in values]
    except (TypeError, ValueError):
        raise ViewError(f"caption ids: expected integers, got {list(values)[:5]!r}") from None


def undo(store: Store, caption_id: int, reviewer: str) -> LabelEntry:
    """Undo is a new history entry restoring the previous label."""
    return store.undo_label(caption_id, check_reviewer(reviewer))


@dataclass(frozen=True)
class Undo:
    entry: LabelEntry
    nav: Nav                         # on the candidate whose label was undone
    skipped: tuple = ()              # labels of this session not undone: someone labelled it since


def undo_last(store: Store, nav: Nav, reviewer: str) -> Undo:
    """The u key: undo your last label given through this navigation and go back to its
    candidate (to label it again); labels someone else has replaced since are theirs and are
    skipped (named in ``skipped``). With none left, undo the current candidate's last label,
    if it is yours."""
    reviewer = check_reviewer(reviewer)
    rest, skipped = nav.labelled, []
    while rest:
        caption_id, rest = rest[-1], rest[:-1]
        try:
            entry = undo(store, caption_id, reviewer)
        except NotYourLabelError:
            skipped.append(caption_id)
            continue
        except LabelError:          # already undone (another tab, the k-then-u path)
            continue
        return Undo(entry, replace(nav_at(store, nav, caption_id), labelled=rest, seen=-1), tuple(skipped))
    if nav.current is None:
        raise ViewError("undo: expected a label given in this session or an open candidate, got neither"
                        + (f" (candidates {', '.join(map(str, skipped))} were relabelled by others since)"
                           if skipped else ""))
    entry = undo(store, nav.current, reviewer)
    return Undo(entry, replace(nav_at(store, nav, nav.current), labelled=(), seen=-1), tuple(skipped))


def claim(store: Store, nav: Nav) -> tuple[Nav, str]:
    """A reviewer just gave their name on the open candidate: it stays theirs unless someone else
    has it open (both opened the app at once), in which case the next candidate open to them is
    opened instead. (nav, a note saying so)."""
    cid = nav.current
    if not nav.reviewer or cid is None or nav.filt.human not in ("any", "unlabelled"):
        return nav, ""
    if not any(lease.caption_id == cid and lease.reviewer != nav.reviewer for lease in store.leases()):
        return nav, ""
    nxt, found = nav_next_unlabelled(store, nav)
    if not found:
        return nav, ""
    return nxt, f"Candidate {cid} is open by another reviewer: you have candidate {nxt.current}."


def lease_note(store: Store, nav: Nav) -> str:
    """Opening a candidate leases it to the reviewer; the others who have it open, if any."""
    if not nav.reviewer or nav.current is None:
        return ""
    others = store.lease(nav.current, nav.reviewer)
    if not others:
        return ""
    names = ", ".join(render.esc(o.reviewer) for o in others)
    return f"{names} {'has' if len(others) == 1 else 'have'} this candidate open too."


def parse_float(text: object, what: str) -> Optional[float]:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ViewError(f"{what}: expected a number, got {text!r}") from None


def make_filter(order_by: str, descending: bool, human: str, auto: Sequence[str], flags: Sequence[str],
                score_min: object, score_max: object, run: Optional[str], search: str) -> QueueFilter:
    """A QueueFilter from the queue tab's widgets; ``run`` is '' (all), 'run N' or 'model NAME'."""
    run_id = model = None
    run = (run or "").strip()
    if run.startswith("run "):
        run_id = int(run.split()[1])
    elif run.startswith("model "):
        model = run[len("model "):]
    return QueueFilter(order_by=order_by or "dcs", descending=bool(descending), human=human or "any",
                       auto=tuple(auto or ()), flags=tuple(flags or ()),
                       score_min=parse_float(score_min, "score min"), score_max=parse_float(score_max, "score max"),
                       run_id=run_id, model=model, search=search or "")
