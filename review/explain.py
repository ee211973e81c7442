"""Why an automatic label is what it is, in sentences, from its stored distances alone.

The labeller (attack/stages/labels.py) checks TV, then MV, then RV, and the first distance at or under
its delta wins (the paper's public code); an N left by the distances may still be MV or RV on
aligned evidence (a crop, rescale or mirror). Under the default rule a pair under its delta must
also agree structurally (attack/images/structure.py: band-passed patches correlate), so two different
photos with close colours stay N; the paper's rule alone is kept as paper_label. A reviewer
needs which distance decided, why a smaller-looking one elsewhere did not, and where the
structural check overruled the paper's rule."""
from __future__ import annotations

from typing import Mapping, Optional

from store import AutoLabel

ORDER = ("TV", "MV", "RV")
WHAT = {"TV": "masked RMSE to a retrieved image under its template mask",
        "MV": "RMSE to the caption's own training image",
        "RV": "RMSE to a retrieved training image"}
WHY_MISSING = {"TV": "no retrieved image has a mask", "MV": "no own training image", "RV": "no retrieval"}
FLAG_WHY = {"suspect:texture": "the training image looks like a repeating texture, which any texture matches",
            "suspect:background": "the training image is nearly plain, which any plain picture matches"}


def fmt(value: object) -> str:
    """The one rounding of every distance in the app: 4 decimals."""
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


def _pair(d: Mapping, kind: str, seeds: Mapping[int, int]) -> str:
    k = kind.lower()
    seed = seeds.get(d.get(f"{k}_generation_id"))
    where = f" with seed {seed}" if seed is not None else ""
    tid = d.get(f"{k}_train_image_id")
    where += f" against training image {tid}" if tid is not None else ""
    if kind == "TV" and d.get("tv_mask_version") is not None:
        where += f" under mask v{d['tv_mask_version']}"
    return where


def _passes(d: Mapping, th: Mapping, kind: str) -> Optional[bool]:
    v, t = d.get(kind.lower()), th.get(kind.lower())
    return None if v is None or t is None else v <= t


def _structure(d: Mapping, auto_label: str) -> list[str]:
    """Sentences on the structural check: what it measured for the label's pair, and where it
    overruled the paper's rule."""
    st = d.get("structure") if isinstance(d.get("structure"), dict) else None
    if st is None:
        return []
    least, out = st.get("min_agreement"), []
    if auto_label in ORDER and d.get("evidence_kind") != "aligned":
        v = d.get(f"{auto_label.lower()}_structure")
        out.append(f"Structure agrees: {fmt(v)} ≥ {fmt(least)} (band-passed patches correlate)." if v is not None
                   else "Neither image has detail for a structural check (plain pictures): the distance decides.")
    refused = [c for c in st.get("checked") or [] if c[4] is not None and least is not None and c[4] < least]
    paper = d.get("paper_label")
    if refused and paper not in (None, auto_label):
        lab, _, tid, dist, v = refused[0]
        out.append(f"By the paper's rule alone this would be {paper}: {lab} {fmt(dist)} against training image {tid} "
                   f"is under δ, but the structure disagrees ({fmt(v)} < {fmt(least)}): close colours, different "
                   f"pictures.")
    return out


def explain(auto: Optional[AutoLabel], seeds: Mapping[int, int]) -> tuple[str, ...]:
    """Sentences for an automatic label; ``seeds`` maps generation id -> seed."""
    if auto is None:
        return ("No automatic label yet (run `python -m attack label`).",)
    d, th = auto.distances, auto.distances.get("thresholds") or {}
    al = d.get("aligned") if isinstance(d.get("aligned"), dict) else None
    out = []
    if d.get("evidence_kind") == "aligned" and al is not None:
        kind = str(al.get("label"))
        out.append(f"{kind} on aligned evidence: after a {'mirror, ' if al.get('mirrored') else ''}crop or rescale "
                   f"the aligned RMSE is {fmt(al.get('aligned_rmse'))} ≤ δ {fmt(th.get(kind.lower()))} with seed "
                   f"{seeds.get(al.get('generation_id'), '?')} against training image {al.get('train_image_id')}, "
                   f"on {float(al.get('overlap') or 0):.0%} of it; no plain distance was under its δ"
                   + (f"; the aligned structure agrees at {fmt(al['structure'])}, the RMSE over its detailed "
                      f"patches is {fmt(al.get('content_rmse'))}" if al.get("structure") is not None else "") + ".")
    elif auto.label in ORDER:
        k = auto.label
        out.append(f"{k} at {fmt(d.get(k.lower()))}{_pair(d, k, seeds)}: the {WHAT[k]} is "
                   f"≤ δ {fmt(th.get(k.lower()))}.")
        earlier = [o for o in ORDER[ORDER.index(k) + 1:] if _passes(d, th, o)]
        if earlier:
            also = ", ".join(f"{o} {fmt(d.get(o.lower()))} ≤ δ {fmt(th.get(o.lower()))}" for o in earlier)
            out.append(f"{also} also passed; {k} wins because the labels are checked in the paper's order "
                       f"TV, MV, RV and the first that passes is the label"
                       + (" (a template match names the shared layout, not just any copy)." if k == "TV" else "."))
    elif d.get("paper_label") not in (None, "N"):
        out.append("N: every pair under its δ disagrees structurally.")
    else:
        out.append("N: no distance is at or under its δ.")
    out += _structure(d, auto.label)
    failed = [o for o in ORDER if o != auto.label and _passes(d, th, o) is False]
    if failed:
        out.append("Over δ: " + ", ".join(f"{o} {fmt(d.get(o.lower()))} > {fmt(th.get(o.lower()))}" for o in failed)
                   + ".")
    missing = [o for o in ORDER if d.get(o.lower()) is None]
    if missing:
        out.append("Not measured: " + ", ".join(f"{o} ({WHY_MISSING[o]})" for o in missing) + ".")
    if al is not None and d.get("evidence_kind") != "aligned":
        out.append(f"The crop / rescale / mirror check aligned {al.get('label')} to an RMSE of "
                   f"{fmt(al.get('aligned_rmse'))} on {float(al.get('overlap') or 0):.0%} of the image"
                   + (f" (structure {fmt(al['structure'])}, inliers spanning {float(al.get('spread') or 0):.1%})"
                      if al.get("structure") is not None else "") + ": not evidence.")
    so = d.get("second_opinion") if isinstance(d.get("second_opinion"), dict) else None
    if so is not None:
        out.append(f"Second opinion: {so.get('embedder')} gives this pair a similarity of {fmt(so.get('similarity'))} "
                   f"(recorded, not deciding).")
    for f in auto.flags:
        out.append(f"Flagged {f}: {FLAG_WHY.get(f, 'a likely false positive')} (the paper pruned these by hand).")
    return tuple(out)
