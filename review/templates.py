"""Templates of the candidate view: review.candidate.CandidateData in, one HTML block out.
Every text from the store goes through render.esc (render.py's rule)."""
from __future__ import annotations

from .candidate import AlignedItem, CandidateData, GenerationItem, NeighbourItem, OwnItem, PairItem
from .imaging import png_data_uri
from .render import (auto_label_html, esc, figure, file_url, fmt, img, label_badge, section, slider, table,
                     url_html)


def _row(figures: list[str]) -> str:
    return f'<div class="vb-row">{"".join(figures)}</div>'


def head_html(d: CandidateData, position: str) -> str:
    cap = d.caption
    return (f'<div class="vb-head"><span class="vb-id">candidate {cap.id}</span> {label_badge(d.label)}'
            f' <span class="vb-pos">{esc(position)}</span></div>'
            f'<div class="vb-caption" data-testid="caption">{esc(cap.text)}</div>'
            f'<div class="vb-meta">{url_html(cap.url)}'
            f'{" · duplicates: " + esc(cap.dup_count) if cap.dup_count else ""}</div>')


def scores_html(d: CandidateData) -> str:
    rows = [[esc(s.kind), fmt(s.value, 5), f"{s.rank:,} of {s.total:,}"] for s in d.scores]
    return section("Scores", table(["score", "value", "rank among candidates"], rows) if rows else "<p>no scores</p>")


def generation_figure(item: GenerationItem, with_own: bool) -> str:
    g = item.generation
    lines = [f"seed {esc(g.seed)} · {esc(g.steps)} step(s)"]
    if with_own:
        lines.append(f"RMSE to own image {fmt(item.rmse_own)}")
    return figure(img(file_url(item.picture.path), item.picture.size, f"generation seed {g.seed}"), lines)


def generations_html(d: CandidateData) -> str:
    figs = [generation_figure(item, bool(d.own)) for item in d.generations]
    return section(f"Generations (J = {len(d.generations)})", _row(figs) if figs else "<p>none</p>")


def own_figure(item: OwnItem) -> str:
    t = item.train
    return figure(img(file_url(item.picture.path), item.picture.size, "own training image"),
                  [f"training image {t.id}", esc(t.path_or_url or "")])


def neighbour_figure(item: NeighbourItem) -> str:
    n, t = item.neighbour, item.train
    lines = [f"#{n.rank} · training image {t.id}{' (own)' if item.own else ''}",
             f"similarity {fmt(n.similarity, 3)} · RMSE {fmt(n.rmse)}"]
    if n.masked_rmse is not None:
        lines.append(f"masked RMSE {fmt(n.masked_rmse)}")
    lines.append(f"vs seed {esc(item.seed)}")
    return figure(img(file_url(item.picture.path), item.picture.size, f"neighbour {n.rank}"), lines)


def pair_html(p: PairItem) -> str:
    size = p.train_picture.size
    figs = [figure(img(png_data_uri(p.heatmap), size, "absolute difference"),
                   ["|generation − training| (black = equal)", f"RMSE {fmt(p.rmse)}"])]
    if p.mask is not None:
        figs.append(figure(img(png_data_uri(p.overlay), size, "mask overlay"),
                           [f"mask v{p.mask.version} ({esc(p.mask.source)}) · keeps {p.kept:.0%}",
                            f"masked RMSE {fmt(p.masked_rmse)}"]))
    s = slider(file_url(p.generation_picture.path), file_url(p.train_picture.path), size,
               f"generation seed {p.generation.seed}", f"training image {p.train.id}")
    return section(f"{p.title}: seed {p.generation.seed} vs training image {p.train.id}",
                   f'<div class="vb-row">{"".join(figs)}<figure class="vb-fig">{s}</figure></div>')


def aligned_html(a: AlignedItem) -> str:
    """The crop / rescale / mirror check: generation warped onto the training image."""
    ev, size = a.evidence, a.train_picture.size
    how = ("mirrored, " if ev.get("mirrored") else "") + f"scale {fmt(ev.get('scale'), 3)}"
    verdict = (f"evidence for {esc(ev.get('label'))} (aligned)" if ev.get("passed")
               else "not evidence: the aligned RMSE is over the threshold, or the training image is flagged")
    figs = [figure(img(file_url(a.generation_picture.path), a.generation_picture.size,
                       f"generation seed {a.generation.seed}"), [f"generation seed {esc(a.generation.seed)}"]),
            figure(img(png_data_uri(a.warped), size, "generation aligned onto the training image"),
                   [f"aligned: {how}", f"covers {float(ev.get('overlap') or 0):.0%} of the training image",
                    f"{esc(ev.get('inliers'))} matching keypoints"]),
            figure(img(png_data_uri(a.heatmap), size, "aligned difference"),
                   ["|aligned − training| on the overlap", f"aligned RMSE {fmt(ev.get('aligned_rmse'))}"
                    + (f" (δ {fmt(a.threshold, 3)})" if a.threshold is not None else "")]),
            figure(img(file_url(a.train_picture.path), size, f"training image {a.train.id}"),
                   [f"training image {a.train.id}", esc(a.train.path_or_url or "")])]
    return section(f"Aligned pair (crop / rescale / mirror): {verdict}",
                   f'<div class="vb-row" data-testid="aligned-pair">{"".join(figs)}</div>')


def history_html(d: CandidateData) -> str:
    if not d.history:
        return section("Label history", "<p>no labels yet</p>")
    rows = [[esc(e.created_at[:19]), label_badge(e.label), esc(e.reviewer), esc(e.note), "undo" if e.undoes else ""]
            for e in reversed(d.history)]
    return section("Label history (newest first)", table(["when (UTC)", "label", "reviewer", "note", ""], rows))


def candidate_html(d: CandidateData, position: str = "") -> str:
    """The whole candidate view: header, scores, generations, own image, neighbours, pairs,
    automatic label, label history."""
    parts = [head_html(d, position), scores_html(d), generations_html(d)]
    if d.own:
        parts.append(section("The caption's own training image", _row([own_figure(o) for o in d.own])))
    if d.neighbours:
        parts.append(section("Top retrieved neighbours", _row([neighbour_figure(n) for n in d.neighbours])))
    parts += [pair_html(p) for p in d.pairs]
    if d.aligned is not None:
        parts.append(aligned_html(d.aligned))
    if d.auto is not None:
        parts.append(section("Automatic label", auto_label_html(d.auto)))
    parts.append(history_html(d))
    return f'<div class="vb-cand" data-caption-id="{d.caption.id}">{"".join(parts)}</div>'
