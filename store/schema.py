"""Schema of store.db as an ordered list of migrations.

MIGRATIONS[i] moves a database from version i to i+1; the version lives in
``PRAGMA user_version`` and is bumped in the same transaction as the DDL, so a
crash mid-migration leaves the old version intact. Never edit a released
migration: append a new one.

Derived state is kept by triggers, in the same transaction as the write that
causes it, so it stays right whoever writes (Store methods, sqlite-utils, raw
SQL):
- ``caption_state``: one row per caption that has generations, labels or auto
  labels: its current human label (latest history row), latest auto label and
  flags, and the number of generations (a *candidate* has >= 1). Page queries
  filter on it instead of scanning label history.
- ``candidate_scores``: the scores of candidates only (a small copy of
  ``scores``), with ``is_latest`` marking the newest run per (caption, kind), so
  ranked pages walk one short index whichever way they sort.
- ``caption_flags``: (flag, caption) pairs of the latest auto label, to filter
  and count by flag through an index.
- ``captions_fts``: FTS5 external-content index over caption text.
"""
from __future__ import annotations

from .audited import AUDITED_COUNT, AUDITED_SCORES, model_labels_sql, of_audited_model

HUMAN_LABELS = ("MV", "TV", "RV", "N", "FP:texture", "FP:background", "FP:other", "skip")
REFERENCE_LABELS = ("MV", "TV", "RV", "N")


def _in(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


V1 = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    stage TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,                 -- canonical JSON (sort_keys)
    status TEXT NOT NULL DEFAULT 'running',
    evals INTEGER NOT NULL DEFAULT 0,     -- network evaluations spent
    started_at TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX runs_model ON runs(model);

CREATE TABLE captions (
    id INTEGER PRIMARY KEY,
    text TEXT NOT NULL UNIQUE,
    url TEXT,
    dup_count INTEGER,                    -- duplicate count from an imported list
    count INTEGER NOT NULL DEFAULT 1,     -- times ingested / merged
    reference_label TEXT CHECK (reference_label IS NULL OR reference_label IN {_in(REFERENCE_LABELS)}),
    source TEXT,
    extra TEXT                            -- JSON object
);

CREATE VIRTUAL TABLE captions_fts USING fts5(
    text, content='captions', content_rowid='id',
    tokenize='unicode61 remove_diacritics 2'
);
CREATE TRIGGER captions_fts_ai AFTER INSERT ON captions BEGIN
    INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text);
END;
CREATE TRIGGER captions_fts_ad AFTER DELETE ON captions BEGIN
    INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', old.id, old.text);
END;
CREATE TRIGGER captions_fts_au AFTER UPDATE OF text ON captions BEGIN
    INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', old.id, old.text);
    INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text);
END;

CREATE TABLE training_images (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL,
    caption_id INTEGER REFERENCES captions(id),
    path_or_url TEXT,
    meta TEXT                             -- JSON object
);
CREATE INDEX training_images_sha ON training_images(sha256, caption_id);
CREATE INDEX training_images_caption ON training_images(caption_id);

CREATE TABLE score_kinds (
    kind TEXT PRIMARY KEY
) WITHOUT ROWID;

CREATE TABLE scores (
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    kind TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(id),
    value REAL NOT NULL,
    PRIMARY KEY (caption_id, kind, run_id)
) WITHOUT ROWID;
-- top-K of one run (attack stages); covering thanks to the primary key
CREATE INDEX scores_rank ON scores(kind, run_id, value);

CREATE TABLE generations (
    id INTEGER PRIMARY KEY,
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    run_id INTEGER REFERENCES runs(id),
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    sampler TEXT NOT NULL,
    image_sha TEXT NOT NULL,
    meta TEXT,
    created_at TEXT NOT NULL
);
CREATE INDEX generations_caption ON generations(caption_id, id);

CREATE TABLE masks (
    id INTEGER PRIMARY KEY,
    train_image_id INTEGER NOT NULL REFERENCES training_images(id),
    version INTEGER NOT NULL,
    image_sha TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('auto', 'edited')),
    author TEXT,
    parent_id INTEGER REFERENCES masks(id),
    created_at TEXT NOT NULL,
    UNIQUE (train_image_id, version)
);

CREATE TABLE neighbours (
    generation_id INTEGER NOT NULL REFERENCES generations(id),
    rank INTEGER NOT NULL,
    train_image_id INTEGER NOT NULL REFERENCES training_images(id),
    similarity REAL,
    rmse REAL,
    masked_rmse REAL,
    mask_id INTEGER REFERENCES masks(id),
    PRIMARY KEY (generation_id, rank)
) WITHOUT ROWID;
CREATE INDEX neighbours_train_image ON neighbours(train_image_id);

CREATE TABLE auto_labels (
    id INTEGER PRIMARY KEY,
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    run_id INTEGER NOT NULL REFERENCES runs(id),
    label TEXT NOT NULL CHECK (label IN {_in(REFERENCE_LABELS)}),
    distances TEXT NOT NULL,              -- JSON object
    flags TEXT NOT NULL,                  -- JSON list of strings
    created_at TEXT NOT NULL,
    UNIQUE (caption_id, run_id)
);

-- Append-only history; the current label is the newest row of a caption.
CREATE TABLE labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- ids never reused, even after a crash
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    label TEXT CHECK (label IS NULL OR label IN {_in(HUMAN_LABELS)}),  -- NULL: undo back to unlabelled
    reviewer TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    undoes INTEGER REFERENCES labels(id)
);
CREATE INDEX labels_caption ON labels(caption_id, id);
CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels BEGIN
    SELECT RAISE(ABORT, 'labels are append-only: expected INSERT, got UPDATE');
END;
CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels BEGIN
    SELECT RAISE(ABORT, 'labels are append-only: expected INSERT, got DELETE');
END;

CREATE TABLE exports (
    id INTEGER PRIMARY KEY,
    created_at TEXT NOT NULL,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    labels TEXT NOT NULL,                 -- JSON list
    query TEXT,                           -- JSON of the PageQuery filter, if any
    rows INTEGER NOT NULL,
    sha256 TEXT NOT NULL,                 -- of the written file
    tool_version TEXT NOT NULL
);

-- Derived state (see module docstring) -------------------------------------
CREATE TABLE caption_state (
    caption_id INTEGER PRIMARY KEY REFERENCES captions(id),
    n_generations INTEGER NOT NULL DEFAULT 0,
    label TEXT,
    label_entry_id INTEGER,
    reviewer TEXT,
    labelled_at TEXT,
    auto_label TEXT,
    auto_run_id INTEGER,
    flags TEXT                            -- JSON list, latest auto label
);
CREATE INDEX caption_state_candidates ON caption_state(label, auto_label) WHERE n_generations > 0;
CREATE INDEX caption_state_auto ON caption_state(auto_label, label) WHERE n_generations > 0;
CREATE INDEX caption_state_labelled_at ON caption_state(labelled_at) WHERE labelled_at IS NOT NULL;

CREATE TABLE candidate_scores (
    caption_id INTEGER NOT NULL,
    kind TEXT NOT NULL,
    run_id INTEGER NOT NULL,
    value REAL NOT NULL,
    is_latest INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (caption_id, kind, run_id)
) WITHOUT ROWID;
CREATE INDEX candidate_scores_latest ON candidate_scores(kind, is_latest, value);
CREATE INDEX candidate_scores_run ON candidate_scores(kind, run_id, value);

CREATE TABLE caption_flags (
    flag TEXT NOT NULL,
    caption_id INTEGER NOT NULL,
    PRIMARY KEY (flag, caption_id)
) WITHOUT ROWID;
CREATE INDEX caption_flags_caption ON caption_flags(caption_id);

CREATE TRIGGER labels_state AFTER INSERT ON labels BEGIN
    INSERT INTO caption_state (caption_id, label, label_entry_id, reviewer, labelled_at)
    VALUES (new.caption_id, new.label, new.id, new.reviewer, new.created_at)
    ON CONFLICT (caption_id) DO UPDATE SET
        label = excluded.label, label_entry_id = excluded.label_entry_id,
        reviewer = excluded.reviewer, labelled_at = excluded.labelled_at;
END;

CREATE TRIGGER auto_labels_state AFTER INSERT ON auto_labels
WHEN new.run_id >= coalesce((SELECT auto_run_id FROM caption_state WHERE caption_id = new.caption_id), -1)
BEGIN
    INSERT INTO caption_state (caption_id, auto_label, auto_run_id, flags)
    VALUES (new.caption_id, new.label, new.run_id, new.flags)
    ON CONFLICT (caption_id) DO UPDATE SET
        auto_label = excluded.auto_label, auto_run_id = excluded.auto_run_id, flags = excluded.flags;
    DELETE FROM caption_flags WHERE caption_id = new.caption_id;
    INSERT OR IGNORE INTO caption_flags (flag, caption_id)
        SELECT value, new.caption_id FROM json_each(new.flags);
END;

CREATE TRIGGER generations_state AFTER INSERT ON generations BEGIN
    INSERT INTO caption_state (caption_id, n_generations) VALUES (new.caption_id, 1)
    ON CONFLICT (caption_id) DO UPDATE SET n_generations = n_generations + 1;
    -- first generation: the caption becomes a candidate, copy its scores
    INSERT OR IGNORE INTO candidate_scores (caption_id, kind, run_id, value, is_latest)
        SELECT s.caption_id, s.kind, s.run_id, s.value,
               s.run_id = (SELECT max(s2.run_id) FROM scores s2
                           WHERE s2.caption_id = s.caption_id AND s2.kind = s.kind)
        FROM scores s
        WHERE s.caption_id = new.caption_id
          AND (SELECT n_generations FROM caption_state WHERE caption_id = new.caption_id) = 1;
END;

CREATE TRIGGER scores_candidate_ai AFTER INSERT ON scores
WHEN EXISTS (SELECT 1 FROM caption_state WHERE caption_id = new.caption_id AND n_generations > 0)
BEGIN
    INSERT INTO candidate_scores (caption_id, kind, run_id, value) VALUES
        (new.caption_id, new.kind, new.run_id, new.value)
    ON CONFLICT DO UPDATE SET value = excluded.value;
    UPDATE candidate_scores SET is_latest = (run_id = (SELECT max(c2.run_id) FROM candidate_scores c2
            WHERE c2.caption_id = new.caption_id AND c2.kind = new.kind))
    WHERE caption_id = new.caption_id AND kind = new.kind;
END;

CREATE TRIGGER scores_candidate_au AFTER UPDATE OF value ON scores
WHEN EXISTS (SELECT 1 FROM caption_state WHERE caption_id = new.caption_id AND n_generations > 0)
BEGIN
    UPDATE candidate_scores SET value = new.value
    WHERE caption_id = new.caption_id AND kind = new.kind AND run_id = new.run_id;
END;
"""

# v2: add_captions indexes new captions in one bulk statement. FTS5 flushes its
# pending terms at every statement boundary, so a per-row trigger writes one
# tiny segment per caption, which is slow on a million captions. While the
# 'fts_bulk_insert' meta row exists (only inside add_captions' own transaction)
# the trigger stands aside; every other writer still gets per-row indexing.
V2 = """
DROP TRIGGER captions_fts_ai;
CREATE TRIGGER captions_fts_ai AFTER INSERT ON captions
WHEN NOT EXISTS (SELECT 1 FROM meta WHERE key = 'fts_bulk_insert')
BEGIN
    INSERT INTO captions_fts(rowid, text) VALUES (new.id, new.text);
END;
"""

# v3: candidate_counts keeps the number of candidates per (human label, auto
# label), so a page's total under label filters is a sum over a few rows
# instead of counting ~100k index entries. '' stands for NULL in the keys.
V3 = """
CREATE TABLE candidate_counts (
    label_key TEXT NOT NULL,
    auto_key TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (label_key, auto_key)
) WITHOUT ROWID;
INSERT INTO candidate_counts (label_key, auto_key, n)
    SELECT coalesce(label, ''), coalesce(auto_label, ''), count(*) FROM caption_state
    WHERE n_generations > 0 GROUP BY 1, 2;
CREATE TRIGGER caption_state_count_ai AFTER INSERT ON caption_state WHEN new.n_generations > 0 BEGIN
    INSERT INTO candidate_counts (label_key, auto_key, n)
    VALUES (coalesce(new.label, ''), coalesce(new.auto_label, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER caption_state_count_au AFTER UPDATE OF label, auto_label, n_generations ON caption_state BEGIN
    UPDATE candidate_counts SET n = n - 1
    WHERE old.n_generations > 0 AND label_key = coalesce(old.label, '') AND auto_key = coalesce(old.auto_label, '');
    INSERT INTO candidate_counts (label_key, auto_key, n)
    SELECT coalesce(new.label, ''), coalesce(new.auto_label, ''), 1 WHERE new.n_generations > 0
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER caption_state_count_ad AFTER DELETE ON caption_state WHEN old.n_generations > 0 BEGIN
    UPDATE candidate_counts SET n = n - 1
    WHERE label_key = coalesce(old.label, '') AND auto_key = coalesce(old.auto_label, '');
END;
"""

# v4: why a run ended as it did: runs.status is 'running', 'done', 'failed' or 'interrupted',
# and a failed or interrupted run keeps the reason (the error or the signal).
V4 = """
ALTER TABLE runs ADD COLUMN reason TEXT;
"""

# v5: results that are never stale.
# - generations: one per (run, caption, seed). A generation run is keyed by what makes an image
#   (model fingerprint, sampler, steps, guidance), so a second identical image cannot be stored;
#   duplicates an older version could leave (two processes on one shard) are folded first.
# - neighbours: versioned by the retrieval run that found them (run_id; 0 for rows written
#   outside a run). A retrieval over a changed training set writes a new set and the old one
#   stays as history; readers take each generation's newest set.
V5 = """
DELETE FROM neighbours WHERE generation_id IN (
    SELECT g.id FROM generations g WHERE g.run_id IS NOT NULL AND EXISTS (
        SELECT 1 FROM generations g2 WHERE g2.run_id = g.run_id AND g2.caption_id = g.caption_id
        AND g2.seed = g.seed AND g2.id < g.id));
DELETE FROM generations WHERE run_id IS NOT NULL AND EXISTS (
    SELECT 1 FROM generations g2 WHERE g2.run_id = generations.run_id AND g2.caption_id = generations.caption_id
    AND g2.seed = generations.seed AND g2.id < generations.id);
UPDATE caption_state SET n_generations = (SELECT count(*) FROM generations g WHERE g.caption_id = caption_state.caption_id)
WHERE n_generations <> (SELECT count(*) FROM generations g WHERE g.caption_id = caption_state.caption_id);
CREATE UNIQUE INDEX generations_once ON generations(run_id, caption_id, seed);

CREATE TABLE neighbours_v5 (
    generation_id INTEGER NOT NULL REFERENCES generations(id),
    run_id INTEGER NOT NULL DEFAULT 0,    -- the retrieve run that found it (0: none recorded)
    rank INTEGER NOT NULL,
    train_image_id INTEGER NOT NULL REFERENCES training_images(id),
    similarity REAL,
    rmse REAL,
    masked_rmse REAL,
    mask_id INTEGER REFERENCES masks(id),
    PRIMARY KEY (generation_id, run_id, rank)
) WITHOUT ROWID;
INSERT INTO neighbours_v5 (generation_id, run_id, rank, train_image_id, similarity, rmse, masked_rmse, mask_id)
    SELECT generation_id, coalesce((SELECT max(id) FROM runs WHERE stage = 'retrieve'), 0), rank, train_image_id,
           similarity, rmse, masked_rmse, mask_id FROM neighbours;
DROP TABLE neighbours;
ALTER TABLE neighbours_v5 RENAME TO neighbours;
CREATE INDEX neighbours_train_image ON neighbours(train_image_id);
"""

# v6: where an automatic mask came from (JSON: the sibling training images it was built from,
# their distances, the kept fraction), so a TV label can say which family its mask is.
V6 = """
ALTER TABLE masks ADD COLUMN meta TEXT;
"""

# v7: labels given together (the grid's bulk labels) share a batch id, so they undo as a unit.
V7 = """
ALTER TABLE labels ADD COLUMN batch TEXT;
"""

# v8: several reviewers (store/reviews.py).
# - labels.role: NULL for a review; 'adjudication' for the final say on a blind double review's
#   conflict (given by someone who did not vote on it).
# - caption_state.review: with reviews_per_candidate > 1 (a meta row), where a caption's blind
#   reviews stand ('pending', 'conflict', 'agreed', 'adjudicated'); its label is then the final one
#   (NULL until agreed or adjudicated). NULL with one review per candidate.
# - leases: the candidate a reviewer has open, held for a few minutes so that "next unlabelled"
#   never gives it to someone else. One per reviewer.
V8 = """
ALTER TABLE labels ADD COLUMN role TEXT CHECK (role IS NULL OR role = 'adjudication');
ALTER TABLE caption_state ADD COLUMN review TEXT
    CHECK (review IS NULL OR review IN ('pending', 'conflict', 'agreed', 'adjudicated'));
CREATE INDEX caption_state_review ON caption_state(review) WHERE review IS NOT NULL;
CREATE TABLE leases (
    reviewer TEXT PRIMARY KEY,
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    expires REAL NOT NULL                 -- unix seconds
);
CREATE INDEX leases_caption ON leases(caption_id, expires);
"""

# v9: work claims. Processes running one stage on one store (two `attack run` at once) share its
# run; each claims the units it computes (a caption, or a caption and seed) for a while, so no unit
# is computed twice. A claim whose process died expires and is taken over.
V9 = """
CREATE TABLE work_claims (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    unit TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires REAL NOT NULL,               -- unix seconds
    PRIMARY KEY (run_id, unit)
) WITHOUT ROWID;
"""

# v10: a review team's day (issue 27).
# - withheld: an opinion a reviewer gave and then withheld to keep another reviewer's label (the
#   keep-theirs prompt): recorded, never in force, so nothing a reviewer decided is lost and an
#   undo of the kept label can offer it back. over_entry: the label entry that was kept.
# - gold: candidates with a known label (honeypots), mixed blind into reviewers' queues; source
#   says where the label came from ('adjudicated', 'labels', a file name, 'demo').
# - gold_answers: what a reviewer answered on a gold candidate; never a label of the audit.
#   seconds: from the candidate shown to the answer (NULL when unknown).
V10 = f"""
CREATE TABLE withheld (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    reviewer TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN {_in(HUMAN_LABELS)}),
    over_entry INTEGER REFERENCES labels(id),
    created_at TEXT NOT NULL
);
CREATE INDEX withheld_caption ON withheld(caption_id, id);
CREATE TABLE gold (
    caption_id INTEGER PRIMARY KEY REFERENCES captions(id),
    label TEXT NOT NULL CHECK (label IN {_in(HUMAN_LABELS)}),
    source TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE gold_answers (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    caption_id INTEGER NOT NULL REFERENCES gold(caption_id),
    reviewer TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN {_in(HUMAN_LABELS)}),
    created_at TEXT NOT NULL,
    seconds REAL
);
CREATE INDEX gold_answers_reviewer ON gold_answers(reviewer, id);
"""

# v11: the zlib level of the store's image PNGs (meta png_compress_level). Images are named by the
# sha256 of their PNG bytes, so one store keeps one level: a store that already holds images keeps
# 6 (PIL's default, what it was written with); a new store writes level 1, several times faster
# to encode at 512 px (ingest and generation spent most of their time compressing) for somewhat
# larger files. Masks stay at 6 in every store (small, and looked up by the sha of their bytes).
V11 = """
INSERT OR IGNORE INTO meta (key, value) SELECT 'png_compress_level',
    CASE WHEN EXISTS (SELECT 1 FROM training_images) OR EXISTS (SELECT 1 FROM generations) THEN '6' ELSE '1' END;
"""

# v12: before and after (issue 28).
# - compare_rows: a compare run (stage 'compare') holds one row per caption attacked under both of
#   its models: the outcome and each model's side as JSON (its automatic and human label, the match
#   it rests on, its distance, score and rank), so a comparison is read back and exported as it was
#   made, whatever is labelled since.
# - the audited model (AUDITED_FP): only its generations make a caption a candidate and count in
#   n_generations, only its scores are candidate scores; both recounted here.
V12 = f"""
DROP TRIGGER generations_state;
CREATE TRIGGER generations_state AFTER INSERT ON generations WHEN {of_audited_model('new.run_id')} BEGIN
    INSERT INTO caption_state (caption_id, n_generations) VALUES (new.caption_id, 1)
    ON CONFLICT (caption_id) DO UPDATE SET n_generations = n_generations + 1;
    -- first generation: the caption becomes a candidate, copy its scores (the audited model's)
    INSERT OR IGNORE INTO candidate_scores (caption_id, kind, run_id, value, is_latest)
        SELECT s.caption_id, s.kind, s.run_id, s.value,
               s.run_id = (SELECT max(s2.run_id) FROM scores s2
                           WHERE s2.caption_id = s.caption_id AND s2.kind = s.kind AND {of_audited_model('s2.run_id')})
        FROM scores s
        WHERE s.caption_id = new.caption_id AND {of_audited_model('s.run_id')}
          AND (SELECT n_generations FROM caption_state WHERE caption_id = new.caption_id) = 1;
END;
DROP TRIGGER scores_candidate_ai;
CREATE TRIGGER scores_candidate_ai AFTER INSERT ON scores
WHEN EXISTS (SELECT 1 FROM caption_state WHERE caption_id = new.caption_id AND n_generations > 0)
     AND {of_audited_model('new.run_id')}
BEGIN
    INSERT INTO candidate_scores (caption_id, kind, run_id, value) VALUES
        (new.caption_id, new.kind, new.run_id, new.value)
    ON CONFLICT DO UPDATE SET value = excluded.value;
    UPDATE candidate_scores SET is_latest = (run_id = (SELECT max(c2.run_id) FROM candidate_scores c2
            WHERE c2.caption_id = new.caption_id AND c2.kind = new.kind))
    WHERE caption_id = new.caption_id AND kind = new.kind;
END;
UPDATE caption_state SET n_generations = {AUDITED_COUNT} WHERE n_generations <> {AUDITED_COUNT};
DELETE FROM candidate_scores;
INSERT INTO candidate_scores (caption_id, kind, run_id, value, is_latest) {AUDITED_SCORES};
CREATE TABLE compare_rows (
    run_id INTEGER NOT NULL REFERENCES runs(id),
    caption_id INTEGER NOT NULL REFERENCES captions(id),
    outcome TEXT NOT NULL CHECK (outcome IN ('removed', 'persisting', 'new', 'neither')),
    a TEXT NOT NULL,
    b TEXT NOT NULL,
    PRIMARY KEY (run_id, caption_id)
) WITHOUT ROWID;
"""

V13 = model_labels_sql(HUMAN_LABELS)      # a compared model's own human labels (issue 28, carry-over)

MIGRATIONS: tuple[str, ...] = (V1, V2, V3, V4, V5, V6, V7, V8, V9, V10, V11, V12, V13)
SCHEMA_VERSION = len(MIGRATIONS)
