"""Frozen dataclasses passed into and returned by the store."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Optional, Sequence, Union

from .errors import StoreError
from .schema import HUMAN_LABELS, REFERENCE_LABELS


@dataclass(frozen=True)
class CaptionRow:
    """One caption to add; identical ``text`` merges with an existing caption."""
    text: str
    url: Optional[str] = None
    dup_count: Optional[int] = None
    reference_label: Optional[str] = None   # MV/TV/RV/N from an imported list (benchmarks only)
    source: Optional[str] = None
    extra: Optional[Mapping[str, Any]] = None


@dataclass(frozen=True)
class Caption:
    id: int
    text: str
    url: Optional[str]
    dup_count: Optional[int]
    count: int
    reference_label: Optional[str]
    source: Optional[str]
    extra: dict


RUN_STATUSES = ("running", "done", "failed", "interrupted")


@dataclass(frozen=True)
class Run:
    id: int
    stage: str
    model: str
    params: dict
    status: str                          # one of RUN_STATUSES
    evals: int
    started_at: str
    finished_at: Optional[str]
    reason: Optional[str] = None         # why a run failed or was interrupted


@dataclass(frozen=True)
class TrainingImage:
    id: int
    sha256: str
    caption_id: Optional[int]
    path_or_url: Optional[str]
    meta: dict


@dataclass(frozen=True)
class Generation:
    id: int
    caption_id: int
    run_id: Optional[int]
    seed: int
    steps: int
    sampler: str
    image_sha: str
    meta: dict
    created_at: str


@dataclass(frozen=True)
class Neighbour:
    """A retrieved training image for a generation; distances are RMSE on [0,1] pixels."""
    rank: int
    train_image_id: int
    similarity: Optional[float] = None
    rmse: Optional[float] = None
    masked_rmse: Optional[float] = None
    mask_id: Optional[int] = None


@dataclass(frozen=True)
class Mask:
    id: int
    train_image_id: int
    version: int
    image_sha: str
    source: str            # 'auto' | 'edited'
    author: Optional[str]
    parent_id: Optional[int]
    created_at: str
    meta: dict = field(default_factory=dict)   # provenance: for an auto mask, the siblings it came from


@dataclass(frozen=True)
class AutoLabel:
    id: int
    caption_id: int
    run_id: int
    label: str
    distances: dict
    flags: tuple
    created_at: str


@dataclass(frozen=True)
class LabelEntry:
    """One row of the append-only label history. ``label`` None = back to unlabelled (undo)."""
    id: int
    caption_id: int
    label: Optional[str]
    reviewer: str
    note: str
    created_at: str
    undoes: Optional[int] = None
    batch: Optional[str] = None      # shared by the entries of one bulk label (and of its undo)
    role: Optional[str] = None       # 'adjudication': the final say on a blind double review's conflict


@dataclass(frozen=True)
class Lease:
    """The candidate a reviewer has open, theirs until ``expires`` (unix seconds)."""
    reviewer: str
    caption_id: int
    expires: float


@dataclass(frozen=True)
class Withheld:
    """An opinion a reviewer gave and then withheld to keep another reviewer's label (the keep-theirs
    prompt): recorded, never in force. ``over_entry``: the label entry they kept."""
    id: int
    caption_id: int
    reviewer: str
    label: str
    over_entry: Optional[int]
    created_at: str


@dataclass(frozen=True)
class CaptionReviews:
    """Where one caption's reviews stand: each reviewer's own label (their latest entry that is
    not undone), the adjudication if any, and the final label and review state they give."""
    caption_id: int
    votes: dict                      # reviewer -> LabelEntry (their effective entry)
    adjudication: Optional[LabelEntry]
    label: Optional[str]             # the final label (None: not decided)
    state: Optional[str]             # 'pending' | 'conflict' | 'agreed' | 'adjudicated'; None with one review


LabelFilter = Union[None, str, Sequence[str]]

# page orders that are not score kinds
COLUMN_ORDERS = ("caption_id", "labelled_at")


def _as_tuple(value: LabelFilter, valid: Sequence[str], name: str) -> Optional[tuple]:
    if value is None:
        return None
    values = (value,) if isinstance(value, str) else tuple(value)
    for v in values:
        if v not in valid:
            raise StoreError(f"PageQuery.{name}: expected one of {', '.join(valid)}, got {v!r}")
    return values


@dataclass(frozen=True)
class PageQuery:
    """A ranked, filtered page of candidates (captions with >= 1 generation).

    order_by: a score kind ('dcs', 'ecs', 'wen', 'carlini', ...) or one of
    COLUMN_ORDERS. Without run_id/model the latest run's score of that kind is
    used; candidates lacking it come last. human_label: None (any),
    'unlabelled', 'labelled', 'conflict' (blind reviews that disagree, awaiting adjudication),
    a label or a sequence of these. auto_label: a
    label or sequence. flags: every listed flag must be present. score_min /
    score_max bound the order_by score (and drop candidates without it).
    search: full-text words that must all appear in the caption.
    """
    order_by: str = "dcs"
    descending: bool = True
    auto_label: LabelFilter = None
    human_label: LabelFilter = None
    flags: Optional[Sequence[str]] = None
    score_min: Optional[float] = None
    score_max: Optional[float] = None
    run_id: Optional[int] = None
    model: Optional[str] = None
    search: Optional[str] = None
    offset: int = 0
    limit: int = 50

    def __post_init__(self) -> None:
        object.__setattr__(self, "human_label", _as_tuple(
            self.human_label, HUMAN_LABELS + ("unlabelled", "labelled", "conflict"), "human_label"))
        object.__setattr__(self, "auto_label", _as_tuple(self.auto_label, REFERENCE_LABELS, "auto_label"))
        if self.flags is not None:
            flags = (self.flags,) if isinstance(self.flags, str) else tuple(self.flags)
            object.__setattr__(self, "flags", flags or None)
        if not isinstance(self.order_by, str) or not self.order_by:
            raise StoreError(f"PageQuery.order_by: expected a score kind or one of {COLUMN_ORDERS}, got {self.order_by!r}")
        if not (isinstance(self.limit, int) and 1 <= self.limit <= 10_000):
            raise StoreError(f"PageQuery.limit: expected an int in 1..10000, got {self.limit!r}")
        if not (isinstance(self.offset, int) and self.offset >= 0):
            raise StoreError(f"PageQuery.offset: expected an int >= 0, got {self.offset!r}")

    def to_json(self) -> dict:
        """Filter as a plain dict (for the exports table)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


@dataclass(frozen=True)
class PageRow:
    caption_id: int
    text: str
    url: Optional[str]
    score: Optional[float]              # the order_by score, if it is a score kind
    scores: dict                        # latest value of every score kind
    human_label: Optional[str]
    reviewer: Optional[str]
    labelled_at: Optional[str]
    auto_label: Optional[str]
    flags: tuple
    n_generations: int


@dataclass(frozen=True)
class Page:
    rows: tuple
    total: int
    query: PageQuery = field(default_factory=PageQuery)


@dataclass(frozen=True)
class SearchHit:
    caption_id: int
    text: str
    url: Optional[str]
    rank: float                          # FTS5 bm25 rank: lower is better


@dataclass(frozen=True)
class RunHandle:
    """A run a stage writes to: its id, and whether it existed (the stage resumes it)."""
    id: int
    resumed: bool


@dataclass(frozen=True)
class CaptionRef:
    id: int
    text: str


@dataclass(frozen=True)
class GenerationRef:
    """A generation as the retrieval stage needs it: its image and whether it has neighbours."""
    id: int
    caption_id: int
    image_sha: str
    has_neighbours: bool


@dataclass(frozen=True)
class AutoLabelState:
    """A caption's latest automatic label and its suspect flags."""
    caption_id: int
    label: str
    flags: tuple


@dataclass(frozen=True)
class TrainingSetVersion:
    """What identifies the set of training images: how many rows and the highest id (rows are
    only ever added, so the pair changes whenever the set does)."""
    count: int
    max_id: int


@dataclass(frozen=True)
class RunLabelCount:
    """Candidates of one generation run holding one current human label ('unlabelled' for none)."""
    run_id: int
    model: str
    label: str
    candidates: int


@dataclass(frozen=True)
class CandidateDup:
    """A candidate's duplicate count and its current human label (None: unlabelled)."""
    caption_id: int
    dup_count: int
    label: Optional[str]


@dataclass(frozen=True)
class ReviewerActivity:
    reviewer: str
    entries: int
    undos: int
    current_labels: int
    first: str
    last: str


@dataclass(frozen=True)
class ScoreRank:
    """Rank (1 = highest) of a value among the candidates' latest scores of its kind, of total."""
    rank: int
    total: int
