"""Agreement between reviewers: Cohen's kappa per reviewer pair and their confusion matrix, over
the candidates both labelled (each reviewer's own label in force; a 'skip' is no label)."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from itertools import combinations
from typing import Optional, Sequence

from store import HUMAN_LABELS, CaptionReviews

from .render import esc, label_badge

AGREEMENT_HEADERS = ("reviewer A", "reviewer B", "candidates both labelled", "agreement", "Cohen's kappa")


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    n: int                              # candidates both labelled
    observed: float                     # fraction where they gave the same label
    kappa: Optional[float]              # None when undefined (both only ever gave one and the same label)
    labels: tuple[str, ...]             # the confusion matrix's rows and columns, in HUMAN_LABELS order
    confusion: tuple[tuple[int, ...], ...]   # [label of a][label of b]


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> Optional[float]:
    """Cohen (1960): (p_o - p_e) / (1 - p_e) for two raters' labels of the same items."""
    if len(a) != len(b) or not a:
        raise ValueError(f"cohen_kappa: expected two equally long, non-empty label lists, got {len(a)} and {len(b)}")
    n = len(a)
    p_o = sum(x == y for x, y in zip(a, b)) / n
    ca, cb = Counter(a), Counter(b)
    p_e = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return None if p_e == 1 else (p_o - p_e) / (1 - p_e)


def pair_agreement(a: str, b: str, pairs: Sequence[tuple[str, str]]) -> PairAgreement:
    la, lb = [x for x, _ in pairs], [y for _, y in pairs]
    labels = tuple(h for h in HUMAN_LABELS if h in set(la) | set(lb))
    index = {h: i for i, h in enumerate(labels)}
    m = [[0] * len(labels) for _ in labels]
    for x, y in pairs:
        m[index[x]][index[y]] += 1
    return PairAgreement(a, b, len(pairs), sum(x == y for x, y in pairs) / len(pairs), cohen_kappa(la, lb), labels,
                         tuple(tuple(r) for r in m))


def agreement(reviews: Sequence[CaptionReviews]) -> list[PairAgreement]:
    """Every pair of reviewers who labelled at least one candidate in common, by name."""
    common: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for r in reviews:
        votes = {name: e.label for name, e in r.votes.items() if e.label not in (None, "skip")}
        for x, y in combinations(sorted(votes), 2):
            common.setdefault((x, y), []).append((votes[x], votes[y]))
    return [pair_agreement(x, y, pairs) for (x, y), pairs in sorted(common.items())]


def agreement_rows(reviews: Sequence[CaptionReviews]) -> tuple[list[str], list[list], list[PairAgreement]]:
    """(headers, one row per reviewer pair, the pairs) for the Stats tab."""
    pairs = agreement(reviews)
    rows = [[p.a, p.b, p.n, round(p.observed, 4), None if p.kappa is None else round(p.kappa, 4)] for p in pairs]
    return list(AGREEMENT_HEADERS), rows, pairs


def confusion_html(pairs: Sequence[PairAgreement]) -> str:
    """Each pair's confusion matrix: rows the first reviewer's labels, columns the second's."""
    if not pairs:
        return "<p>No two reviewers have labelled the same candidate yet.</p>"
    out = []
    for p in pairs:
        head = "".join(f"<th>{label_badge(h)}</th>" for h in p.labels)
        body = "".join(f"<tr><th>{label_badge(h)}</th>" + "".join(
            f'<td class="{"vb-diag" if i == j else ""}">{v}</td>' for j, v in enumerate(row)) + "</tr>"
            for i, (h, row) in enumerate(zip(p.labels, p.confusion)))
        kappa = "undefined" if p.kappa is None else f"{p.kappa:.4f}"
        out.append(f'<table class="vb-confusion" data-pair="{esc(p.a)}|{esc(p.b)}"><caption>{esc(p.a)} (rows) × '
                   f'{esc(p.b)} (columns): {p.n} candidates, agreement {p.observed:.1%}, kappa {kappa}</caption>'
                   f'<tr><th></th>{head}</tr>{body}</table>')
    return "".join(out)


def review_summary(reviews: Sequence[CaptionReviews], k: int) -> str:
    """With blind reviews: how many candidates are agreed, adjudicated, in conflict, pending."""
    if k <= 1:
        return ""
    states = Counter(r.state for r in reviews)
    return (f"Blind review, {k} per candidate: **{states['agreed']}** agreed · **{states['adjudicated']}** "
            f"adjudicated · **{states['conflict']}** in conflict (Queue → Human label: conflict) · "
            f"**{states['pending']}** pending")
