"""Label carry-over (issue 28, item 2): what a human confirmed for model A, proposed for model B.

For each caption of a comparison (attack/compare.py) whose A side has a human label (a skip
aside) and whose B side has none yet: when B's generations rest on the same training image as
the label A's reviewer confirmed, by the labeller's own rule (B's automatic label, decided from
B's generations alone, is a copy of that image), A's label is proposed for B with the evidence
"as confirmed for A by <reviewer>". A confirmed N (or FP:*) is carried too, when B's nearest
training image is the one A's reviewer judged not copied.

A proposal is computed, never stored: B's human label is written only when a reviewer confirms
a group (`confirm_group`), into the store's review when B is the audited model and into B's own
labels (store.model_labels) otherwise, with the proposal it came from; `undo_confirm` takes
a confirmed group back. Groups are (outcome, carried label), so one key confirms e.g. every
"persisting, carried MV" caption at once.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from attack.compare import COPY_LABELS, CompareResult, audited_model, with_human_labels
from attack.errors import AttackError
from store import Store


class CarryError(AttackError):
    """A carry-over that cannot be confirmed (an unknown group, nothing to confirm or undo)."""


@dataclass(frozen=True)
class Proposal:
    """A's human label proposed for B on one caption."""
    caption_id: int
    caption: str
    outcome: str                       # the comparison's outcome with B labelled automatically
    label: str                         # A's human label, proposed for B
    reviewer: str                      # who confirmed it for A
    train_image_id: int                # the training image both sides rest on
    b_auto_label: Optional[str]
    a_distance: Optional[float]
    b_distance: Optional[float]
    a_generation_id: Optional[int]
    b_generation_id: Optional[int]

    @property
    def evidence(self) -> str:
        return f"as confirmed for A by {self.reviewer}"


@dataclass(frozen=True)
class CarryGroup:
    """The proposals of one outcome that carry one label."""
    outcome: str
    label: str
    proposals: tuple[Proposal, ...]

    @property
    def key(self) -> str:
        return f"{self.outcome}:{self.label}"


def _carries(a_label: str, a_image: Optional[int], b_auto: Optional[str], b_image: Optional[int]) -> bool:
    """Whether B rests on the image A's reviewer judged: a copy of it by the labeller's rule for
    a carried copy label; its nearest training image for a carried N / FP."""
    if a_image is None or b_image != a_image:
        return False
    return b_auto in COPY_LABELS if a_label in COPY_LABELS else True


def proposals(store: Store, result: CompareResult) -> list[Proposal]:
    """Every caption of the comparison whose A label a human gave and B may take, by caption id,
    with the human labels as they are now."""
    return proposals_of(with_human_labels(store, result))


def proposals_of(result: CompareResult) -> list[Proposal]:
    """proposals of a comparison whose human labels are already as they are now (with_human_labels)."""
    out = []
    for r in result.rows:
        a, b = r.a, r.b
        if a.human_label in (None, "skip") or b.human_label not in (None, "skip"):
            continue
        if _carries(a.human_label, a.train_image_id, b.auto_label, b.train_image_id):
            out.append(Proposal(r.caption_id, r.caption, r.outcome, a.human_label, a.human_by or "",
                                a.train_image_id, b.auto_label, a.distance, b.distance, a.generation_id,
                                b.generation_id))
    return out


def groups(found: Sequence[Proposal]) -> list[CarryGroup]:
    """Proposals grouped by (outcome, carried label), largest group first."""
    by: dict[tuple[str, str], list[Proposal]] = {}
    for p in found:
        by.setdefault((p.outcome, p.label), []).append(p)
    out = [CarryGroup(o, lab, tuple(ps)) for (o, lab), ps in by.items()]
    return sorted(out, key=lambda g: (-len(g.proposals), g.outcome, g.label))


def _carried(result: CompareResult, p: Proposal) -> dict:
    return {"compare_run": result.run_id, "from_model": result.fingerprints[0], "label": p.label,
            "reviewer": p.reviewer, "train_image_id": p.train_image_id}


@dataclass(frozen=True)
class Confirmed:
    """A group confirmed: B's labels written (`batch` undoes them) and where they went."""
    key: str
    caption_ids: tuple[int, ...]
    label: str
    batch: str
    into: str                          # "review" (B is the audited model) | "model_labels"


def confirm_group(store: Store, result: CompareResult, key: str, reviewer: str) -> Confirmed:
    """Write the group's carried label as B's human label for each of its captions, in one batch."""
    found = {g.key: g for g in groups(proposals(store, result))}
    if key not in found:
        raise CarryError(f"confirm: expected a group among {', '.join(found) or 'none (nothing to carry)'}, "
                         f"got {key!r}")
    g = found[key]
    ids = tuple(p.caption_id for p in g.proposals)
    note = f"carried from A ({result.models[0]}) in compare run {result.run_id}"
    if result.fingerprints[1] == audited_model(store):
        entries = store.add_labels(list(ids), g.label, reviewer, note=note)
        return Confirmed(key, ids, g.label, entries[0].batch, "review")
    batch = store.add_model_labels(result.fingerprints[1], [(p.caption_id, p.label, _carried(result, p))
                                                            for p in g.proposals], reviewer, note=note)
    return Confirmed(key, ids, g.label, batch, "model_labels")


def undo_confirm(store: Store, result: CompareResult, done: Confirmed, reviewer: str) -> int:
    """Take a confirmed group back (captions relabelled since keep their newer label); returns
    how many captions went back."""
    if done.into == "review":
        return len(store.undo_batch(done.batch, reviewer))
    return len(store.undo_model_batch(result.fingerprints[1], reviewer, done.batch))
