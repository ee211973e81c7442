"""Stats tab: precision vs verbatims found per score (Fig. 3), counts by type per run (Table 1),
the duplication histogram (Fig. 4), reviewer progress and agreement, all from the human labels."""
from __future__ import annotations

from typing import Optional

import gradio as gr
import pandas as pd

from store import Store

from . import agreement, queries
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


def stats_values(store: Store) -> tuple:
    """(precision frame, its table, Table 1 frame, duplication frame, reviewer frame, totals markdown,
    agreement frame (Cohen's kappa per reviewer pair), their confusion matrices as HTML)."""
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
            md + ("  \n" + blind if blind else ""), pd.DataFrame(r3, columns=h3), agreement.confusion_html(pairs))


def build(store: Store) -> tuple[gr.Button, list, object]:
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
    outputs = [precision, at, table1, dups, reviewers, totals, pairs, confusion]
    fn = gradio_errors(lambda: stats_values(store))
    refresh.click(fn, None, outputs, api_name="stats")
    return refresh, outputs, fn
