"""Stats tab: precision vs verbatims found per score (Fig. 3), counts by type per run (Table 1),
the duplication histogram (Fig. 4), reviewer progress and agreement, all from the human labels; and
each reviewer's accuracy on gold candidates (store/gold.py), from their gold answers only."""
from __future__ import annotations

from typing import Optional, Sequence

import gradio as gr
import pandas as pd

from store import ReviewerGold, Store
from store.gold import DEFAULT_MIN_ACCURACY, DEFAULT_MIN_ANSWERS

from . import agreement, queries
from .render import esc, label_badge
from .session import gradio_errors

AT_FOUND = (5, 10, 25, 50, 100)


def precision_table(curves: pd.DataFrame, kinds: Optional[list[str]] = None) -> pd.DataFrame:
    """Each score's precision when it has found N verbatims: the plot's lines can coincide and hide
    each other (two scores ranking the labelled candidates alike), the table never does. ``kinds``:
    every score to list, with or without a curve (default: those with one)."""
    rows = []
    for score in (kinds if kinds is not None else sorted(set(curves["score"]))):
        c = curves[curves["score"] == score]
        row = {"score": score, "verbatims found": int(c["found"].max()) if len(c) else 0}
        for n in AT_FOUND:
            hit = c[c["found"] >= n]
            row[f"precision at {n}"] = None if hit.empty else round(float(hit["precision"].iloc[0]), 4)
        rows.append(row)
    return pd.DataFrame(rows, columns=["score", "verbatims found"] + [f"precision at {n}" for n in AT_FOUND])


GOLD_HEADERS = ("reviewer", "gold answers", "correct", "accuracy", "95% CI", "median s/label", "median s on gold",
                "flag")


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.1%}"


def _secs(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.1f}"


def gold_html(rows: Sequence[ReviewerGold], min_accuracy: float = DEFAULT_MIN_ACCURACY,
              min_answers: int = DEFAULT_MIN_ANSWERS) -> str:
    """Each reviewer's accuracy on gold (with its Wilson 95% interval and count), median seconds per
    label (the gaps between their decisions) and on gold, a visible flag under ``min_accuracy``,
    and their confusion on gold (rows: the gold label, columns: what they answered)."""
    if not any(r.answers or r.skipped for r in rows):
        return ("<p>No gold answers yet. Gold candidates (known labels) are added with <code>python -m store gold "
                "--store DIR --from-labels</code> (or <code>--from FILE</code>, <code>--from-reference</code>) and "
                "mixed blind into queues with <code>python app.py --gold-rate 0.05</code>.</p>")
    flagged = [r for r in rows if r.flagged]
    out = []
    if flagged:
        names = ", ".join(f"<b>{esc(r.reviewer)}</b> ({r.correct}/{r.answers})" for r in flagged)
        style = "color:#a40000;font-weight:bold"       # visible without review.css
        out.append(f'<p class="vb-gold-flag" data-testid="gold-flag" style="{style}">⚠ Gold accuracy under '
                   f'{min_accuracy:.0%} (at least {min_answers} answers): {names}</p>')
    head = "".join(f"<th>{esc(h)}</th>" for h in GOLD_HEADERS)
    body = []
    for r in rows:
        ci = "–" if r.ci is None else f"{r.ci.low:.1%} – {r.ci.high:.1%}"
        flag = f"⚠ under {min_accuracy:.0%}" if r.flagged else ""
        cells = [esc(r.reviewer), str(r.answers) + (f" (+{r.skipped} skipped)" if r.skipped else ""), str(r.correct),
                 _pct(r.accuracy), ci, _secs(r.median_seconds_per_label), _secs(r.median_seconds_gold), flag]
        cls = ' class="vb-gold-flagged" style="background:#fde2e1"' if r.flagged else ""   # visible without review.css
        body.append(f'<tr data-reviewer="{esc(r.reviewer)}" data-flagged="{int(r.flagged)}"{cls}>'
                    + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    out.append(f'<table class="vb-confusion vb-gold" data-testid="gold-accuracy"><tr>{head}</tr>{"".join(body)}'
               "</table>")
    for r in rows:
        if not r.confusion:
            continue
        gold = sorted({c.gold for c in r.confusion})
        answered = sorted({c.answered for c in r.confusion})
        n = {(c.gold, c.answered): c.n for c in r.confusion}
        top = "".join(f"<th>{label_badge(a)}</th>" for a in answered)
        cells = "".join(f"<tr><th>{label_badge(g)}</th>" + "".join(
            f'<td class="{"vb-diag" if g == a else ""}">{n.get((g, a), 0)}</td>' for a in answered) + "</tr>"
            for g in gold)
        out.append(f'<table class="vb-confusion" data-gold-reviewer="{esc(r.reviewer)}"><caption>{esc(r.reviewer)} on '
                   f'gold: gold label (rows) × answer (columns)</caption><tr><th></th>{top}</tr>{cells}</table>')
    return "".join(out)


def stats_values(store: Store, min_accuracy: float = DEFAULT_MIN_ACCURACY,
                 min_answers: int = DEFAULT_MIN_ANSWERS) -> tuple:
    """(precision frame, its table, Table 1 frame, duplication frame, reviewer frame, totals markdown,
    agreement frame (Cohen's kappa per reviewer pair), their confusion matrices as HTML, accuracy on gold as HTML)."""
    kinds = queries.score_kinds(store)
    curves = pd.DataFrame(queries.precision_curves(store, kinds), columns=["score", "labelled", "found", "precision"])
    h1, r1 = queries.counts_by_run(store)
    dups = pd.DataFrame(queries.dup_histogram(store), columns=["duplicates", "group", "candidates", "order"])
    h2, r2 = queries.reviewer_progress(store)
    totals = queries.label_totals(store)
    done = sum(v for k, v in totals.items() if k != "unlabelled")
    md = (f"**{done:,}** of **{done + totals['unlabelled']:,}** candidates labelled · "
          + " · ".join(f"{k}: {v:,}" for k, v in totals.items() if k != "unlabelled"))
    reviews = store.caption_reviews()       # every labelled caption's reviews, read once
    h3, r3, pairs = agreement.agreement_rows(reviews)
    blind = agreement.review_summary(reviews, store.reviews_per_candidate())
    return (curves, precision_table(curves, kinds), pd.DataFrame(r1, columns=h1), dups, pd.DataFrame(r2, columns=h2),
            md + ("  \n" + blind if blind else ""), pd.DataFrame(r3, columns=h3), agreement.confusion_html(pairs),
            gold_html(store.gold_stats(min_accuracy, min_answers), min_accuracy, min_answers))


def build(store: Store, min_accuracy: float = DEFAULT_MIN_ACCURACY,
          min_answers: int = DEFAULT_MIN_ANSWERS) -> tuple[gr.Button, list, object]:
    totals = gr.Markdown()
    refresh = gr.Button("Refresh", size="sm")
    precision = gr.LinePlot(x="found", y="precision", color="score", title="Precision vs verbatims found "
                            "(human labels; candidates ranked by each score)", y_lim=[0, 1.05],
                            x_title="verbatims found (MV+TV+RV)", y_title="precision", height=320)
    at = gr.Dataframe(headers=["score", "verbatims found"] + [f"precision at {n}" for n in AT_FOUND],
                      interactive=False, datatype=["str"] + ["number"] * (1 + len(AT_FOUND)),
                      label="Precision when N verbatims are found (lines that coincide in the plot are listed here)")
    gr.Markdown("**Counts by type per generation run** (current human labels)")
    table1 = gr.Dataframe(headers=list(queries.RUN_COUNT_HEADERS), interactive=False,
                          datatype=["number", "str"] + ["number"] * (len(queries.RUN_COUNT_HEADERS) - 2))
    dups = gr.BarPlot(x="duplicates", y="candidates", color="group", sort=[f"{b}+" for b in queries.DUP_BINS],
                      height=300,
                      title="Candidates by training-set duplicate count", x_title="duplicates (bin start)")
    gr.Markdown("**Reviewer progress**")
    reviewers = gr.Dataframe(headers=list(queries.REVIEWER_HEADERS), interactive=False,
                             datatype=["str", "number", "number", "number", "str", "str"])
    gr.Markdown("**Agreement between reviewers** (candidates both labelled; each reviewer's own label; a skip "
                "is no label)")
    pairs = gr.Dataframe(headers=list(agreement.AGREEMENT_HEADERS), interactive=False,
                         datatype=["str", "str", "number", "number", "number"], elem_id="vb-agreement")
    confusion = gr.HTML(elem_id="vb-confusion")
    gr.Markdown("**Accuracy on gold candidates** (known labels mixed blind into the queues; a gold answer is "
                "never a label of the audit)")
    gold = gr.HTML(elem_id="vb-gold")
    outputs = [precision, at, table1, dups, reviewers, totals, pairs, confusion, gold]
    fn = gradio_errors(lambda: stats_values(store, min_accuracy, min_answers))
    refresh.click(fn, None, outputs, api_name="stats")
    return refresh, outputs, fn
