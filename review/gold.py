"""Gold candidates in the review app (``python app.py --gold-rate R``): pure helpers the candidate tab
calls, over the store's gold API (store/gold.py).

- After a label, ``GoldMixer.after_label`` asks the store whether a gold candidate is due for the
  reviewer and, if so, puts it in the navigation window just before the next candidate, so the
  page shows it next with the position the next candidate would have had.
- ``GoldMixer.is_gold`` says whether the open candidate is the gold candidate served to this
  reviewer: their key then records a gold answer (``GoldMixer.answer``), never an audit label, and
  the gold candidate leaves the window.
- ``blank`` makes a served gold candidate's view look like any unlabelled candidate (no label,
  history or reviews: the gold label may be an audit label someone gave), so nothing in the page
  tells it apart.
- ``GoldMixer.hold_out`` keeps gold candidates out of "next unlabelled" while gold is mixed in:
  their label is known, and a gold answer leaves them unlabelled, so the queue would offer them again.
- u right after a gold answer takes it back (store ``undo_gold_answer``) and serves the candidate
  again, as u after a label would reopen it unlabelled: the page never tells the two apart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Any, Optional, Sequence

from store import GoldAnswer, Store
from store.gold import check_rate


def blank(data: Any) -> Any:
    """A candidate view model (review/candidate.CandidateData) as an unlabelled candidate shows it:
    no current label, no history, no reviews; with blind reviews, 0 of k in."""
    return replace(data, label=None, history=(), reviews=None, blind=data.reviews_needed > 1, latest_entry=0,
                   votes_in=0)


def splice(nav: Any, caption_id: int) -> Any:
    """nav (review/views.Nav) with caption_id put at its position: shown now, the candidate that was
    there follows it."""
    pos = max(0, min(nav.pos, len(nav.ids)))
    ids = tuple(c for c in nav.ids[:pos]) + (caption_id,) + tuple(nav.ids[pos:])
    return replace(nav, ids=ids, pos=pos, seen=-1)


def drop(nav: Any) -> Any:
    """nav without its current candidate (a gold candidate just answered), placed just before where it
    was: "next unlabelled" from it starts at the candidate that followed."""
    if nav.current is None:
        return nav
    ids = nav.ids[:nav.pos] + nav.ids[nav.pos + 1:]
    return replace(nav, ids=ids, pos=nav.pos - 1, seen=-1)


@dataclass(frozen=True)
class GoldMark:
    """A gold answer in a navigation's undo stack (review/views.Nav.labelled), so u takes it back."""
    caption_id: int
    answer_id: int


@dataclass(frozen=True)
class GoldStep:
    answer: GoldAnswer
    nav: Any                         # the window without the gold candidate (see drop)


@dataclass(frozen=True)
class GoldMixer:
    """How the app mixes gold into reviewers' queues: ``rate`` (0: off) is the share of candidates
    shown that are gold, on average."""
    store: Store
    rate: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "rate", check_rate(self.rate))

    @property
    def active(self) -> bool:
        return self.rate > 0

    def hold_out(self, caption_ids: Sequence[int]) -> tuple:
        """caption_ids without gold candidates (all of them when gold is off)."""
        if not self.active:
            return tuple(caption_ids)
        gold = self.store.gold_ids()
        return tuple(c for c in caption_ids if c not in gold)

    def after_label(self, nav: Any, reviewer: str, now: Optional[float] = None) -> Any:
        """The navigation after a label: with a gold candidate due for the reviewer, it is put first."""
        if not self.active or not reviewer:
            return nav
        served = self.store.serve_gold(reviewer, self.rate, now)
        if served is None or served.caption_id == nav.current:
            return nav
        return splice(nav, served.caption_id)

    def is_gold(self, nav: Any, reviewer: str) -> bool:
        """Is the open candidate the gold candidate served to this reviewer?"""
        return self.active and bool(reviewer) and self.store.is_served_gold(reviewer, nav.current)

    def answer(self, nav: Any, label: str, reviewer: str, now: Optional[float] = None) -> GoldStep:
        """Record the reviewer's key on the served gold candidate as a gold answer (seconds from when
        it was served) and take it out of the window."""
        a = self.store.answer_served_gold(reviewer, nav.current, label, time.time() if now is None else now)
        return GoldStep(a, drop(nav))
