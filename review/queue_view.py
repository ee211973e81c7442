"""The ranked queue as the Queue tab shows it: its filter (QueueFilter, also what navigation walks),
one page of rows, and the filter made from the tab's widgets. Pure: store data in, values out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

from store import HUMAN_LABELS, REFERENCE_LABELS, Page, PageQuery, Store

from . import queries
from .checks import ViewError

QUEUE_HEADERS = ["#", "id", "caption", "score", "human", "auto", "flags", "gens"]


QUEUE_TYPES = ["number", "number", "str", "number", "str", "str", "str", "number"]


HUMAN_STATES = ("any", "unlabelled", "labelled", "conflict") + HUMAN_LABELS


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
