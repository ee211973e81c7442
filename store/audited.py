"""SQL for the model audited in a store (schema v12): the model of its first generate run that
records one (runs are keyed by the model's content). A store may hold other models' runs too (a
comparison, a mitigation): the review (candidates, their generations, their scores, automatic
labels) is of the audited model; other models' generations are read through Store.only_runs.
"""
from __future__ import annotations

AUDITED_FP = ("(SELECT json_extract(a.params, '$.model_fingerprint') FROM runs a WHERE a.stage = 'generate' "
              "AND json_extract(a.params, '$.model_fingerprint') IS NOT NULL ORDER BY a.id LIMIT 1)")


def of_audited_model(run_col: str) -> str:
    """SQL, true when the run `run_col` names is of the audited model: no run, no model recorded
    (a run made by hand, or before fingerprints), no audited model yet, or the same fingerprint."""
    fp = f"(SELECT json_extract(r.params, '$.model_fingerprint') FROM runs r WHERE r.id = {run_col})"
    return f"({run_col} IS NULL OR {AUDITED_FP} IS NULL OR {fp} IS NULL OR {fp} = {AUDITED_FP})"


AUDITED_COUNT = f"(SELECT count(*) FROM generations g WHERE g.caption_id = caption_state.caption_id " \
                f"AND {of_audited_model('g.run_id')})"
AUDITED_SCORES = ("SELECT s.caption_id, s.kind, s.run_id, s.value, s.run_id = (SELECT max(s2.run_id) FROM scores s2 "
                  f"WHERE s2.caption_id = s.caption_id AND s2.kind = s.kind AND {of_audited_model('s2.run_id')}) "
                  "FROM scores s JOIN caption_state st ON st.caption_id = s.caption_id AND st.n_generations > 0 "
                  f"WHERE {of_audited_model('s.run_id')}")


def model_labels_sql(human_labels: tuple[str, ...]) -> str:
    """v13 (issue 28): human labels of a model other than the audited one, keyed by its
    fingerprint; append-only like `labels` (an undo appends the label before, NULL for none).
    `carried`: JSON naming the label a proposal carried over (compare run, model, reviewer,
    training image) when the label was confirmed from one; NULL when given directly."""
    allowed = ", ".join(f"'{v}'" for v in human_labels)
    return f"""
CREATE TABLE model_labels (
    id INTEGER PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    label TEXT CHECK (label IS NULL OR label IN ({allowed})),
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    undoes INTEGER REFERENCES model_labels(id),
    batch TEXT,
    carried TEXT
);
CREATE INDEX model_labels_caption ON model_labels (fingerprint, caption_id, id);
CREATE INDEX model_labels_batch ON model_labels (batch);
"""
