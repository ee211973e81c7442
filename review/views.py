"""Pure view functions: store data in, display-ready values out. Tests and the benchmark call
these directly; the Gradio callbacks in the tab modules only wrap them."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional, Sequence

from store import (
    HUMAN_LABELS,
    GoldAnswer,
    GoldError,
    LabelEntry,
    LabelError,
    NotYourLabelError,
    Store,
    StoreError,
)

from . import gold as review_gold
from . import queries, render
from .candidate import candidate_data
from .checks import ViewError, check_reviewer
from .mask_views import MaskTarget, mask_editor, target_for
from .queue_view import (  # noqa: F401 - the queue's names, as views always offered them
    HUMAN_STATES,
    QUEUE_HEADERS,
    QUEUE_TYPES,
    QueueFilter,
    QueueView,
    make_filter,
    parse_float,
    queue_view,
)
from .templates import candidate_html, head_html

# "next unlabelled" offers only the ids this keeps (review/gold.GoldMixer.hold_out: no gold candidates)
HoldOut = Callable[[Sequence[int]], Sequence[int]]


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


# -- navigation -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Nav:
    """Where the reviewer is: a window of the filtered queue (ids from ``offset``) and a position."""
    filt: QueueFilter = field(default_factory=QueueFilter)
    ids: tuple = ()
    offset: int = 0
    pos: int = 0
    labelled: tuple = ()    # captions labelled through this navigation, latest last: what u undoes (a gold
                            # answer is a review_gold.GoldMark there: u takes it back like a label)
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


def nav_first_unlabelled(store: Store, filt: QueueFilter, reviewer: str = "",
                         hold_out: Optional[HoldOut] = None) -> Nav:
    """Where a session starts: the filter's first candidate still open to the reviewer (leased to
    them), or its first candidate when none is or the filter holds labelled ones only. With
    ``hold_out`` (gold mixed in), before a name is given too: no one starts on a gold candidate."""
    ids = _window(store, filt, 0)
    if (reviewer or hold_out is not None) and filt.human in ("any", "unlabelled"):
        nav, found = nav_next_unlabelled(store, Nav(filt, ids, 0, -1, reviewer=reviewer), hold_out)
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


def nav_next_unlabelled(store: Store, nav: Nav, hold_out: Optional[HoldOut] = None) -> tuple[Nav, bool]:
    """The first unlabelled candidate after the current one in queue order, loading later windows
    as needed; then, wrapping around, the top unlabelled one of the filter. (nav, found).
    ``hold_out``: what of a window may be offered (default all of it). A candidate whose label the
    reviewer kept over their own, since undone, comes first: it asks them again."""
    owed = _owed(store, nav)
    if owed is not None:
        return owed, True
    ids, offset, pos = nav.ids, nav.offset, nav.pos + 1
    for _ in range(NEXT_UNLABELLED_WINDOWS):
        rest = ids[pos:]
        free = _free(store, nav, rest, hold_out)
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
    free = _free(store, nav, tuple(c for c in top if c != nav.current), hold_out)
    if not free:
        return nav, False
    first = next(c for c in top if c in free)
    return replace(nav, filt=replace(nav.filt, human="unlabelled"), ids=top, offset=0, pos=top.index(first),
                   seen=-1), True


def _owed(store: Store, nav: Nav) -> Optional[Nav]:
    """The first candidate (other than the open one) where the reviewer withheld their label to keep
    someone else's that has since been undone, leased to them when it is still open to them."""
    if not nav.reviewer:
        return None
    for w in store.opinions_owed(nav.reviewer):
        if w.caption_id != nav.current and store.lease_first([w.caption_id], nav.reviewer) == w.caption_id:
            return replace(nav_at(store, nav, w.caption_id), seen=-1)
    return None


def _free(store: Store, nav: Nav, ids: Sequence[int], hold_out: Optional[HoldOut] = None) -> set:
    """Of ids (less what hold_out leaves out), what "next unlabelled" may open: with a reviewer, the
    first one still open to them, leased to them at once (so no one else is handed it); without,
    every unlabelled one."""
    if hold_out is not None and ids:
        ids = tuple(hold_out(ids))
    if not ids:
        return set()
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
                   viewer: str = "", gold: bool = False) -> CandidateView:
    """Everything a reviewer needs to decide one candidate, as HTML, and the mask editor's target
    (with its value unless ``with_editor`` is False: triage leaves the editor to the Mask tab).
    ``viewer``: who looks; with blind reviews others' labels stay hidden until they gave theirs.
    ``gold``: a gold candidate served blind (review/gold.py): shown as any unlabelled candidate is."""
    try:
        data = candidate_data(store, caption_id, viewer)
    except StoreError as e:
        raise ViewError(f"candidate {caption_id}: {e}") from e
    if gold:
        data = review_gold.blank(data)
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


def label_and_advance(store: Store, nav: Nav, label: str, reviewer: str, note: str = "",
                      hold_out: Optional[HoldOut] = None) -> tuple[LabelEntry, Nav, bool]:
    """Label the current candidate (expecting the label entry it was shown with: nav.seen), then
    move to the next unlabelled one (of what hold_out keeps). (entry, nav, moved)."""
    if nav.current is None:
        raise ViewError("label: expected an open candidate, got none (pick one in the Queue tab)")
    entry = record_label(store, nav.current, label, reviewer, note, nav.seen)
    nav = replace(nav, labelled=(nav.labelled + (entry.caption_id,))[-UNDO_DEPTH:], reviewer=entry.reviewer)
    if nav.filt.human not in ("any", "unlabelled"):
        # re-reviewing labelled candidates (e.g. the MV queue): the next one in the queue
        nxt = nav_step(store, nav, 1)
        return entry, nxt, nxt.current != nav.current
    nxt, found = nav_next_unlabelled(store, nav, hold_out)
    return entry, nxt, found


def answer_gold_and_advance(store: Store, mixer: review_gold.GoldMixer, nav: Nav, label: str,
                            reviewer: str) -> tuple[GoldAnswer, Nav, bool]:
    """The key on a gold candidate served to the reviewer: a gold answer, never a label of the audit;
    then the next unlabelled candidate, as after a label. u takes it back like a label (undo_last).
    (answer, nav, moved)."""
    if label not in HUMAN_LABELS:
        raise ViewError(f"label: expected one of {', '.join(HUMAN_LABELS)}, got {label!r}")
    step = mixer.answer(nav, label, check_reviewer(reviewer))
    mark = review_gold.GoldMark(step.answer.caption_id, step.answer.id)
    nav = replace(step.nav, labelled=(nav.labelled + (mark,))[-UNDO_DEPTH:], reviewer=step.answer.reviewer)
    nxt, found = nav_next_unlabelled(store, nav, mixer.hold_out)
    return step.answer, nxt, found


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
    entry: Optional[LabelEntry]      # None: a gold answer was taken back (the candidate is unlabelled)
    nav: Nav                         # on the candidate whose label was undone
    skipped: tuple = ()              # labels of this session not undone: someone labelled it since
    gold_caption: Optional[int] = None   # the gold candidate whose answer was taken back

    @property
    def caption_id(self) -> int:
        return self.entry.caption_id if self.entry is not None else int(self.gold_caption)

    @property
    def label(self) -> Optional[str]:
        return self.entry.label if self.entry is not None else None


class NothingToUndo(ViewError):
    """u at the end of the undo stack: ``plain`` says so in the reviewer's words (the message keeps
    the library's)."""

    def __init__(self, plain: str, message: str):
        self.plain = plain
        super().__init__(message)


def undo_last(store: Store, nav: Nav, reviewer: str) -> Undo:
    """The u key: undo your last label given through this navigation and go back to its
    candidate (to label it again); labels someone else has replaced since are theirs and are
    skipped (named in ``skipped``). With none left, undo the current candidate's last label,
    if it is yours."""
    reviewer = check_reviewer(reviewer)
    rest, skipped = nav.labelled, []
    while rest:
        caption_id, rest = rest[-1], rest[:-1]
        if isinstance(caption_id, review_gold.GoldMark):
            # a gold answer: taken back and the gold candidate served again, where the reviewer is
            # (it is in no queue), so it reads as any undone first label
            try:
                store.undo_gold_answer(reviewer, caption_id.answer_id)
            except GoldError:           # taken out of gold since: nothing to take back
                continue
            back = review_gold.splice(nav, caption_id.caption_id)
            return Undo(None, replace(back, labelled=rest), tuple(skipped), caption_id.caption_id)
        try:
            entry = undo(store, caption_id, reviewer)
        except NotYourLabelError:
            skipped.append(caption_id)
            continue
        except LabelError:          # already undone (another tab, the k-then-u path)
            continue
        return Undo(entry, replace(nav_at(store, nav, caption_id), labelled=rest, seen=-1), tuple(skipped))
    if nav.current is None:
        raise NothingToUndo("Nothing left to undo: no label of yours in this session and no candidate open.",
                            "undo: expected a label given in this session or an open candidate, got neither"
                            + (f" (candidates {', '.join(map(str, skipped))} were relabelled by others since)"
                               if skipped else ""))
    try:
        entry = undo(store, nav.current, reviewer)
    except NotYourLabelError:
        raise
    except LabelError as e:          # the end of the undo stack: say so plainly
        raise NothingToUndo(f"Nothing left to undo on candidate {nav.current}.", str(e)) from e
    return Undo(entry, replace(nav_at(store, nav, nav.current), labelled=(), seen=-1), tuple(skipped))


def claim(store: Store, nav: Nav, hold_out: Optional[HoldOut] = None) -> tuple[Nav, str]:
    """A reviewer just gave their name on the open candidate: it stays theirs unless someone else
    has it open (both opened the app at once) and it has no room for them (one review per candidate;
    with k blind reviews, k reviewers hold it or voted), in which case the next candidate open to
    them is opened instead. (nav, a note saying so)."""
    cid = nav.current
    if not nav.reviewer or cid is None or nav.filt.human not in ("any", "unlabelled"):
        return nav, ""
    if not any(lease.caption_id == cid and lease.reviewer != nav.reviewer for lease in store.leases()):
        return nav, ""
    if store.lease_first([cid], nav.reviewer) == cid:    # blind review: room for one more reviewer on it
        return nav, ""
    nxt, found = nav_next_unlabelled(store, nav, hold_out)
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


def opinions_back_note(store: Store, nav: Nav) -> str:
    """A label the reviewer withheld on the open candidate (keeping someone else's) whose kept label
    has since been undone by its author: offered back to them, so nothing they decided is lost."""
    if not nav.reviewer or nav.current is None:
        return ""
    back = store.opinions_back(nav.current, nav.reviewer)
    if not back:
        return ""
    keys = {v: k for k, v in reversed(render.LABEL_KEYS.items())}
    w = back[-1]
    return (f"You kept another reviewer's label here over your **{render.esc(w.label)}**; they have undone it, "
            f"so the candidate is open again: press <kbd>{render.esc(keys.get(w.label, '?'))}</kbd> to give "
            f"your **{render.esc(w.label)}**, or label it anew.")


def check_on_screen(nav: Nav, shown: object) -> None:
    """A key applies to the candidate that was on screen when it was pressed: ``shown`` is that
    caption id as the page sent it ('' or None: not known, e.g. an API call, no check)."""
    if shown is None or (isinstance(shown, str) and not shown.strip()):
        return
    try:
        cid = int(shown)
    except (TypeError, ValueError):
        raise ViewError(f"key: expected the caption id on screen, got {shown!r}") from None
    if cid != nav.current:
        raise KeyNotApplied(cid, nav.current)


class KeyNotApplied(ViewError):
    """A key pressed for one candidate reached the server when another was open: nothing written."""

    def __init__(self, pressed_on: int, current: Optional[int]):
        self.pressed_on, self.current = pressed_on, current
        super().__init__(f"key: expected candidate {pressed_on} (on screen when pressed) to be open, got "
                         f"{current if current is not None else 'none'}")
