"""Templates of the candidate view: review.candidate.CandidateData in, HTML out.

One screen: a header (id, status, caption), a strip of the pictures a decision rests on (the J
generations, the own image, the match, their difference with its colour scale, and a swipe /
onion-skin comparison) and a side panel with everything else (why the automatic label, scores,
the label's other pairs, the mask, the aligned pair, neighbours, history). Every text from the
store goes through render.esc (render.py's rule); every distance is a stored one, shown with
explain.fmt's rounding."""
from __future__ import annotations

from .candidate import AlignedItem, CandidateData, GenerationItem, Match, NeighbourItem, OtherPair, OwnItem
from .explain import fmt
from .imaging import png_data_uri
from .render import TILE_PX, esc, figure, file_url, img, label_badge, section, table, tile_size, tile_vars, url_html

SMALL_PX = 96       # side-panel pictures

# abs_diff_heatmap's ramp: black, red, yellow, white at a mean |difference| of 0, 1/6, 1/3, 1/2
HEAT_SCALE = ('<div class="vb-scale" title="mean |generation − training| per channel">'
              '<span class="vb-scale-bar"></span><span class="vb-scale-ticks">'
              '<span>0</span><span>0.17</span><span>0.33</span><span>≥0.5</span></span></div>')


def _row(figures: list[str], cls: str = "vb-row") -> str:
    return f'<div class="{cls}">{"".join(figures)}</div>'


def head_html(d: CandidateData, position: str) -> str:
    """The header: id, human label, queue position, automatic label, caption, url."""
    cap = d.caption
    auto = f' · auto {label_badge(d.auto.label)}' if d.auto is not None else ""
    dup = f" · duplicates: {esc(cap.dup_count)}" if cap.dup_count else ""
    return (f'<div class="vb-headbar" data-caption-id="{cap.id}"><div class="vb-head">'
            f'<span class="vb-id">candidate {cap.id}</span> {label_badge(d.label)}{reviews_html(d)}'
            f' <span class="vb-pos">{esc(position)}</span>{auto}'
            f'<span class="vb-meta">{url_html(cap.url)}{dup}</span></div>'
            f'<div class="vb-caption" data-testid="caption" title="{esc(cap.text)}">{esc(cap.text)}</div></div>')


def reviews_html(d: CandidateData) -> str:
    """With blind reviews: how many are in (hidden until the viewer labels), or each reviewer's
    label, where they stand, and the adjudication."""
    if d.reviews_needed <= 1:
        return ""
    if d.blind:
        return (f' <span class="vb-reviews vb-blind" data-review="blind">blind review: {d.votes_in} of '
                f'{d.reviews_needed} in, others\' labels hidden until you label</span>')
    r = d.reviews
    votes = " · ".join(f"{esc(name)} {label_badge(e.label)}" for name, e in sorted(r.votes.items())) if r else ""
    judge = f" · adjudicated by {esc(r.adjudication.reviewer)}" if r and r.adjudication else ""
    state = esc(r.state) if r else "pending"
    return f' <span class="vb-reviews vb-{state}" data-review="{state}">{state}: {votes}{judge}</span>'


def generation_figure(item: GenerationItem) -> str:
    g = item.generation
    line = f"seed {esc(g.seed)}" + (f" · to own {fmt(item.rmse_own)}" if item.rmse_own is not None else "")
    cls = "vb-gen vb-in-match" if item.in_match else "vb-gen"
    return figure(img(file_url(item.picture.path), item.picture.size, f"generation seed {g.seed}", cls, TILE_PX),
                  [line + (" · in the match" if item.in_match else "")], item.picture.size)


def own_figure(item: OwnItem, box: int = TILE_PX) -> str:
    t = item.train
    return figure(img(file_url(item.picture.path), item.picture.size, "own training image", "vb-own", box),
                  [f"own: training image {t.id}"], item.picture.size if box == TILE_PX else None)


def match_figures(m: Match) -> list[str]:
    """The match, the difference (with its colour scale) and the swipe / onion comparison."""
    size = m.train_picture.size
    what = f"{esc(m.kind)} match" if m.kind != "closest" else "closest"
    match = figure(img(file_url(m.train_picture.path), size, f"match: training image {m.train.id}", "vb-match",
                       TILE_PX),
                   [f"{what}: training image {m.train.id}{' (own)' if m.own else ''}"], size)
    diff = figure(img(png_data_uri(m.heatmap), size, "absolute difference", "vb-diff", TILE_PX),
                  [f"|seed {esc(m.generation.seed)} − match| · {esc(m.distance_name)} {fmt(m.distance)}", HEAT_SCALE],
                  size)
    return [match, diff, compare_html(m)]


def compare_html(m: Match) -> str:
    """Generation under, match over: a range input swipes (clip) or fades (onion skin) the match;
    keys.js toggles the mode with c and flips to the generation while space is held. Its size
    comes from the figure's tile_vars, as every strip picture's does."""
    w, h = tile_size(*m.train_picture.size)
    gen, train = file_url(m.generation_picture.path), file_url(m.train_picture.path)
    return (f'<figure class="vb-fig" style="{tile_vars(m.train_picture.size)}">'
            f'<div class="vb-compare" data-mode="swipe">'
            f'<img class="vb-px vb-before" src="{esc(gen)}" width="{w}" height="{h}" alt="generation" decoding="sync">'
            f'<img class="vb-px vb-after" src="{esc(train)}" width="{w}" height="{h}" alt="match" decoding="sync" '
            f'style="clip-path: inset(0 0 0 50%)"></div>'
            f'<input class="vb-range" type="range" min="0" max="100" value="50" aria-label="swipe / onion skin">'
            f'<figcaption><div>compare: <b class="vb-mode">swipe</b> (<kbd>c</kbd> swipe / onion) · hold '
            f'<kbd>space</kbd> to flip</div></figcaption></figure>')


def strip_html(d: CandidateData) -> str:
    """The decision strip: generations on one line; own image, match, difference, compare on the next."""
    gens = [generation_figure(item) for item in d.generations] or ["<p>no generations</p>"]
    second = [own_figure(o) for o in d.own[:1]] or ['<p class="vb-none-own">no own training image</p>']
    if d.match is not None:
        second += match_figures(d.match)
    return (f'<div class="vb-strip" data-testid="generations">{"".join(gens)}</div>'
            f'<div class="vb-strip" data-testid="evidence">{"".join(second)}</div>')


def scores_html(d: CandidateData) -> str:
    rows = [[esc(s.kind), f"{s.value:.5g}", f"{s.rank:,} of {s.total:,}"] for s in d.scores]
    return section("Scores", table(["score", "value", "rank"], rows) if rows else "<p>no scores</p>")


def auto_html(d: CandidateData) -> str:
    """The automatic label, explained in sentences, with its thresholds."""
    if d.auto is None:
        return section("Automatic label", "".join(f"<p>{esc(s)}</p>" for s in d.explanation))
    flags = ", ".join(esc(f) for f in d.auto.flags) or "none"
    body = "".join(f"<p>{esc(s)}</p>" for s in d.explanation)
    return section("Automatic label", f'<p>{label_badge(d.auto.label)} (run {esc(d.auto.run_id)}) · flags: {flags}</p>'
                   f'<div class="vb-why" data-testid="why">{body}</div>')


def other_html(o: OtherPair) -> str:
    return figure('<div class="vb-pairimgs">'
                  + img(file_url(o.generation_picture.path), o.generation_picture.size, f"seed {o.generation.seed}",
                        box=SMALL_PX)
                  + img(file_url(o.train_picture.path), o.train_picture.size, f"training image {o.train.id}",
                        box=SMALL_PX) + '</div>',
                  [f"{esc(o.kind)} {fmt(o.distance)}: seed {esc(o.generation.seed)} vs training image {o.train.id}"])


def mask_html(m: Match) -> str:
    if m.mask is None or m.overlay is None:
        return ""
    return section("Template mask of the match", cls="vb-mask-sec", body=figure(
        img(png_data_uri(m.overlay), m.train_picture.size, "mask overlay", "vb-maskimg", SMALL_PX * 2),
        [f"mask v{m.mask.version} ({esc(m.mask.source)}) keeps {m.kept:.0%} · press <kbd>m</kbd> to edit"]))


def neighbour_figure(item: NeighbourItem) -> str:
    n, t = item.neighbour, item.train
    d = f"masked {fmt(n.masked_rmse)}" if n.masked_rmse is not None else f"RMSE {fmt(n.rmse)}"
    return figure(img(file_url(item.picture.path), item.picture.size, f"neighbour {item.number}", box=SMALL_PX),
                  [f"#{item.number} · image {t.id}{' (own)' if item.own else ''}",
                   f"{d} · seed {esc(item.seed)}", f"similarity {fmt(n.similarity)}"])


def aligned_html(a: AlignedItem) -> str:
    """The crop / rescale / mirror check: generation warped onto the training image."""
    ev, size = a.evidence, a.train_picture.size
    how = ("mirrored, " if ev.get("mirrored") else "") + f"scale {fmt(ev.get('scale'))}"
    verdict = (f"evidence for {esc(ev.get('label'))}" if ev.get("passed")
               else "not evidence: the aligned RMSE is over δ, the training image is flagged, or the aligned "
                    "structure disagrees")
    figs = [figure(img(png_data_uri(a.warped), size, "generation aligned onto the training image", box=SMALL_PX),
                   [f"aligned: {how}", f"covers {float(ev.get('overlap') or 0):.0%}"]),
            figure(img(png_data_uri(a.heatmap), size, "aligned difference", box=SMALL_PX),
                   [f"aligned RMSE {fmt(ev.get('aligned_rmse'))}"
                    + (f" (δ {fmt(a.threshold)})" if a.threshold is not None else "")]
                   + ([f"structure {fmt(ev.get('structure'))}"] if ev.get("structure") is not None else [])),
            figure(img(file_url(a.train_picture.path), size, f"training image {a.train.id}", box=SMALL_PX),
                   [f"training image {a.train.id}", f"{esc(ev.get('inliers'))} keypoints"])]
    return section(f"Aligned pair (crop / rescale / mirror): {verdict}",
                   f'<div class="vb-row" data-testid="aligned-pair">{"".join(figs)}</div>')


def history_html(d: CandidateData) -> str:
    if d.blind:
        body = table(["when (UTC)", "label", "reviewer", "note", ""],
                     [[esc(e.created_at[:19]), label_badge(e.label), esc(e.reviewer), esc(e.note), ""]
                      for e in reversed(d.history)]) if d.history else "<p>none of yours yet</p>"
        return section("Your labels (blind review: others' are hidden until you label)", body)
    if not d.history:
        return section("Label history", "<p>no labels yet</p>")
    rows = [[esc(e.created_at[:19]), label_badge(e.label), esc(e.reviewer), esc(e.note),
             " ".join(w for w, on in (("undo", e.undoes), ("bulk", e.batch), ("adjudication", e.role)) if on)]
            for e in reversed(d.history)]
    return section("Label history (newest first)", table(["when (UTC)", "label", "reviewer", "note", ""], rows))


def side_html(d: CandidateData) -> str:
    # the mask first: a template verbatim is judged on it, so it must be on screen without scrolling
    parts = [mask_html(d.match) if d.match is not None else "", auto_html(d), scores_html(d)]
    if d.others:
        parts.append(section("The label's other distances", _row([other_html(o) for o in d.others])))
    if d.aligned is not None:
        parts.append(aligned_html(d.aligned))
    if d.neighbours:
        parts.append(section("Retrieved neighbours (best row per image)",
                             _row([neighbour_figure(n) for n in d.neighbours])))
    if len(d.own) > 1:
        parts.append(section("More own training images", _row([own_figure(o, SMALL_PX) for o in d.own[1:]])))
    parts.append(history_html(d))
    return f'<aside class="vb-side">{"".join(parts)}</aside>'


def candidate_html(d: CandidateData) -> str:
    """The strip and the side panel (the header is head_html, rendered above the label keys).
    data-auto: the automatic label, for the layout's tests and bench (one figure per kind)."""
    auto = esc(d.auto.label) if d.auto is not None else ""
    return (f'<div class="vb-cand" data-caption-id="{d.caption.id}" data-auto="{auto}"><div class="vb-main">'
            f'{strip_html(d)}</div>'
            f'{side_html(d)}</div>')
