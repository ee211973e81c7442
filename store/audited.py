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
