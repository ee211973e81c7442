"""Stats tab: precision vs verbatims found per score (Fig. 3), counts by type per run (Table 1),
the duplication histogram (Fig. 4) and reviewer progress, all from the human labels."""
from __future__ import annotations

import gradio as gr
import pandas as pd

from store import Store

from . import queries
from .session import gradio_errors


def stats_values(store: Store) -> tuple:
    """(precision frame, Table 1 frame, duplication frame, reviewer frame, totals markdown)."""
    curves = pd.DataFrame(queries.precision_curves(store, queries.score_kinds(store)),
                          columns=["score", "labelled", "found", "precision"])
    h1, r1 = queries.counts_by_run(store)
    dups = pd.DataFrame(queries.dup_histogram(store), columns=["duplicates", "group", "candidates", "order"])
    h2, r2 = queries.reviewer_progress(store)
    totals = queries.label_totals(store)
    done = sum(v for k, v in totals.items() if k != "unlabelled")
    md = (f"**{done:,}** of **{done + totals['unlabelled']:,}** candidates labelled · "
          + " · ".join(f"{k}: {v:,}" for k, v in totals.items() if k != "unlabelled"))
    return curves, pd.DataFrame(r1, columns=h1), dups, pd.DataFrame(r2, columns=h2), md


def build(store: Store) -> tuple[gr.Button, list, object]:
    totals = gr.Markdown()
    refresh = gr.Button("Refresh", size="sm")
    precision = gr.LinePlot(x="found", y="precision", color="score", title="Precision vs verbatims found "
                            "(human labels; candidates ranked by each score)", y_lim=[0, 1.05],
                            x_title="verbatims found (MV+TV+RV)", y_title="precision", height=320)
    gr.Markdown("**Counts by type per generation run** (current human labels)")
    table1 = gr.Dataframe(headers=list(queries.RUN_COUNT_HEADERS), interactive=False,
                          datatype=["number", "str"] + ["number"] * (len(queries.RUN_COUNT_HEADERS) - 2))
    dups = gr.BarPlot(x="duplicates", y="candidates", color="group", sort=[f"{b}+" for b in queries.DUP_BINS],
                      height=300,
                      title="Candidates by training-set duplicate count", x_title="duplicates (bin start)")
    gr.Markdown("**Reviewer progress**")
    reviewers = gr.Dataframe(headers=list(queries.REVIEWER_HEADERS), interactive=False,
                             datatype=["str", "number", "number", "number", "str", "str"])
    outputs = [precision, table1, dups, reviewers, totals]
    fn = gradio_errors(lambda: stats_values(store))
    refresh.click(fn, None, outputs, api_name="stats")
    return refresh, outputs, fn
