"""Writes and reads of the evidence tables: runs, captions, training images,
scores, generations, neighbours, masks and auto labels.

Every write is one transaction (or a savepoint inside the caller's). Inputs
are checked before SQL so errors name the offending value, not a constraint.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Mapping, Optional, Sequence

import numpy as np

from .canon import canonical_json, finite_float, load_json, optional_float, unicode_text
from .db import utc_now
from .errors import Interrupted, MaskError, NotFoundError, StoreError
from .images import check_sha
from .records import (
    RUN_STATUSES, AutoLabel, AutoLabelState, Caption, CaptionRef, CaptionRow, Generation, GenerationRef, Mask, Neighbour,
    Run, RunHandle, TrainingImage, TrainingSetVersion,
)
from .schema import REFERENCE_LABELS

if TYPE_CHECKING:
    from .store import Store

MASK_SOURCES = ("auto", "edited")


@contextmanager
def integrity(what: str) -> Iterator[None]:
    """Turn a constraint failure into a StoreError that says what was being written."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        raise StoreError(f"{what}: expected rows that satisfy the store's constraints, got {e}") from e


def _require_row(conn: sqlite3.Connection, table: str, row_id: Any, what: str) -> None:
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise StoreError(f"{what}: expected an integer {table} id, got {row_id!r}")
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is None:
        raise NotFoundError(f"{what}: expected an existing {table} id, got {row_id}")


def _text(value: Any, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise StoreError(f"{what}: expected a non-empty string, got {value!r}")
    return unicode_text(value, what)


def _optional_text(value: Any, what: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"{what}: expected a string or None, got {value!r}")
    return unicode_text(value, what)


def _int(value: Any, what: str) -> int:
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)):
        raise StoreError(f"{what}: expected an integer, got {value!r}")
    return int(value)


def _meta(meta: Optional[Mapping[str, Any]], what: str) -> Optional[str]:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise StoreError(f"{what}: expected a mapping, got {type(meta).__name__}")
    return canonical_json(dict(meta), what)


# -- runs -----------------------------------------------------------------------
def start_run(store: "Store", stage: str, model: str, params: Mapping[str, Any]) -> int:
    _text(stage, "start_run stage")
    _text(model, "start_run model", allow_empty=True)
    params_json = _meta(params, "start_run params") or "{}"
    with store.transaction() as conn:
        cur = conn.execute(
            "INSERT INTO runs (stage, model, params, status, evals, started_at) VALUES (?, ?, ?, 'running', 0, ?)",
            (stage, model, params_json, utc_now()))
        return int(cur.lastrowid)


def finish_run(store: "Store", run_id: int, evals: int, status: str = "done", reason: Optional[str] = None) -> None:
    """Set a run's eval count and status; 'running' (a batch written) clears the end time,
    'failed' and 'interrupted' keep the reason."""
    evals = _int(evals, "finish_run evals")
    if evals < 0:
        raise StoreError(f"finish_run evals: expected >= 0, got {evals}")
    if status not in RUN_STATUSES:
        raise StoreError(f"finish_run status: expected one of {', '.join(RUN_STATUSES)}, got {status!r}")
    if reason is not None:
        reason = _text(reason, "finish_run reason")[:2000]
    with store.transaction() as conn:
        _require_row(conn, "runs", run_id, "finish_run")
        conn.execute("UPDATE runs SET evals = ?, status = ?, finished_at = ?, reason = ? WHERE id = ?",
                     (evals, status, None if status == "running" else utc_now(),
                      reason if status in ("failed", "interrupted") else None, run_id))


@contextmanager
def running(store: "Store", run_id: int) -> Iterator[None]:
    """Marks the run 'failed' (with the error) or 'interrupted' (with the signal) when the body
    raises, then re-raises; the body marks it done itself."""
    try:
        yield
    except BaseException as e:
        interrupted = isinstance(e, (KeyboardInterrupt, Interrupted))
        reason = ("SIGINT (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else
                  e.name if isinstance(e, Interrupted) else f"{type(e).__name__}: {e}")
        try:
            finish_run(store, run_id, get_run(store, run_id).evals, "interrupted" if interrupted else "failed",
                       reason or type(e).__name__)
        except Exception:  # noqa: BLE001 - the original error matters more than the bookkeeping
            pass
        raise


_RUN_COLS = "id, stage, model, params, status, evals, started_at, finished_at, reason"


def _run(row: tuple) -> Run:
    return Run(row[0], row[1], row[2], load_json(row[3], {}), *row[4:9])


def get_run(store: "Store", run_id: int) -> Run:
    with store.snapshot() as conn:
        row = conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"get_run: expected an existing run id, got {run_id!r}")
    return _run(row)


# a run's model identity: the content fingerprint its params carry (attack.stages.score adds it), so
# one model under two paths is one model and new weights at one path are another
_FINGERPRINT = "json_extract(params, '$.model_fingerprint')"


def open_run(store: "Store", stage: str, model: str, params: Mapping[str, Any]) -> RunHandle:
    """The newest run of this stage, model and params (resumed), or a new one. Looked up and
    created in one write transaction, so two shard processes starting together share one run.
    When params carry a model_fingerprint, that is the model: a run made under another path (the
    same weights elsewhere, another machine's mount) is resumed, keeping its first path as label."""
    _text(stage, "open_run stage")
    canon = _meta(params, f"{stage} params") or "{}"
    keyed = isinstance(params, Mapping) and params.get("model_fingerprint") is not None
    with store.transaction() as conn:
        if keyed:
            row = conn.execute("SELECT id FROM runs WHERE stage = ? AND params = ? ORDER BY id DESC LIMIT 1",
                               (stage, canon)).fetchone()
        else:
            row = conn.execute("SELECT id FROM runs WHERE stage = ? AND model = ? AND params = ? "
                               "ORDER BY id DESC LIMIT 1", (stage, model, canon)).fetchone()
        if row is not None:
            return RunHandle(int(row[0]), True)
        return RunHandle(start_run(store, stage, model, params), False)


def runs(store: "Store", stage: Optional[str] = None, model: Optional[str] = None,
         fingerprint: Optional[str] = None) -> list[Run]:
    """Runs, oldest first, optionally of one stage, model label and/or model fingerprint."""
    conds, args = [], []
    for col, value in (("stage", stage), ("model", model), (_FINGERPRINT, fingerprint)):
        if value is not None:
            conds.append(f"{col} = ?")
            args.append(value)
    where = f" WHERE {' AND '.join(conds)}" if conds else ""
    with store.snapshot() as conn:
        rows = conn.execute(f"SELECT {_RUN_COLS} FROM runs{where} ORDER BY id", args).fetchall()
    return [_run(r) for r in rows]


# -- captions -------------------------------------------------------------------
_MERGE_CAPTION = """
INSERT INTO captions (text, url, dup_count, count, reference_label, source, extra)
VALUES (?, ?, ?, 1, ?, ?, ?)
ON CONFLICT (text) DO UPDATE SET
    count = captions.count + 1,
    url = coalesce(captions.url, excluded.url),
    dup_count = CASE WHEN excluded.dup_count IS NULL THEN captions.dup_count
                     WHEN captions.dup_count IS NULL THEN excluded.dup_count
                     ELSE max(captions.dup_count, excluded.dup_count) END,
    reference_label = coalesce(captions.reference_label, excluded.reference_label),
    source = coalesce(captions.source, excluded.source),
    extra = CASE WHEN excluded.extra IS NULL THEN captions.extra
                 WHEN captions.extra IS NULL THEN excluded.extra
                 ELSE json_patch(excluded.extra, captions.extra) END
RETURNING id
"""


def _caption_params(i: int, row: CaptionRow) -> tuple:
    what = f"add_captions row {i}"
    if not isinstance(row, CaptionRow):
        raise StoreError(f"{what}: expected a CaptionRow, got {type(row).__name__}")
    _text(row.text, f"{what} text")
    _optional_text(row.url, f"{what} url")
    _optional_text(row.source, f"{what} source")
    dup = None if row.dup_count is None else _int(row.dup_count, f"{what} dup_count")
    if row.reference_label is not None and row.reference_label not in REFERENCE_LABELS:
        raise StoreError(f"{what} reference_label: expected one of {', '.join(REFERENCE_LABELS)} "
                         f"or None, got {row.reference_label!r}")
    return (row.text, row.url, dup, row.reference_label, row.source, _meta(row.extra, f"{what} extra"))


def add_captions(store: "Store", rows: Iterable[CaptionRow]) -> list[int]:
    """Insert or merge captions (identical text: count += 1, fill missing fields).

    Fields already set on a caption win over later ones, except dup_count which
    keeps the maximum. Returns the caption id of each row, in order.
    """
    params = [_caption_params(i, row) for i, row in enumerate(rows)]
    ids = []
    with store.transaction() as conn, integrity("add_captions"):
        # new rows get ids above the current max; index them in one statement (see schema V2)
        max_before = conn.execute("SELECT coalesce(max(id), 0) FROM captions").fetchone()[0]
        conn.execute("INSERT INTO meta (key, value) VALUES ('fts_bulk_insert', '1')")
        for p in params:
            ids.append(conn.execute(_MERGE_CAPTION, p).fetchone()[0])
        conn.execute("INSERT INTO captions_fts (rowid, text) SELECT id, text FROM captions WHERE id > ?",
                     (max_before,))
        conn.execute("DELETE FROM meta WHERE key = 'fts_bulk_insert'")
    return ids


def caption_id(store: "Store", text: str) -> Optional[int]:
    with store.snapshot() as conn:
        row = conn.execute("SELECT id FROM captions WHERE text = ?", (text,)).fetchone()
    return None if row is None else int(row[0])


def caption_ids(store: "Store", texts: Sequence[str]) -> list[Optional[int]]:
    """The id of each caption text (None where the store has no such caption), in one snapshot."""
    with store.snapshot() as conn:
        out = []
        for t in texts:
            row = conn.execute("SELECT id FROM captions WHERE text = ?", (t,)).fetchone()
            out.append(None if row is None else int(row[0]))
    return out


def caption_refs(store: "Store") -> list[CaptionRef]:
    """Every caption's id and text, by id."""
    with store.snapshot() as conn:
        return [CaptionRef(int(i), t) for i, t in conn.execute("SELECT id, text FROM captions ORDER BY id")]


def caption_count(store: "Store", source: Optional[str] = None) -> int:
    """Captions in the store (of one source, when given)."""
    with store.snapshot() as conn:
        if source is None:
            return int(conn.execute("SELECT count(*) FROM captions").fetchone()[0])
        return int(conn.execute("SELECT count(*) FROM captions WHERE source = ?", (source,)).fetchone()[0])


def get_caption(store: "Store", caption_id: int) -> Caption:
    with store.snapshot() as conn:
        row = conn.execute("SELECT id, text, url, dup_count, count, reference_label, source, extra "
                           "FROM captions WHERE id = ?", (caption_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"get_caption: expected an existing caption id, got {caption_id!r}")
    return Caption(*row[:7], load_json(row[7], {}))


# -- training images -------------------------------------------------------------------
def add_training_image(store: "Store", sha: str, caption_id: Optional[int] = None,
                       path_or_url: Optional[str] = None,
                       meta: Optional[Mapping[str, Any]] = None) -> int:
    """Idempotent: the same (sha, caption, path) returns the existing id."""
    store.images.require(check_sha(sha))
    _optional_text(path_or_url, "add_training_image path_or_url")
    meta_json = _meta(meta, "add_training_image meta")
    with store.transaction() as conn:
        if caption_id is not None:
            _require_row(conn, "captions", caption_id, "add_training_image")
        row = conn.execute(
            "SELECT id FROM training_images WHERE sha256 = ? AND caption_id IS ? AND path_or_url IS ?",
            (sha, caption_id, path_or_url)).fetchone()
        if row is not None:
            return int(row[0])
        cur = conn.execute(
            "INSERT INTO training_images (sha256, caption_id, path_or_url, meta) VALUES (?, ?, ?, ?)",
            (sha, caption_id, path_or_url, meta_json))
        return int(cur.lastrowid)


def _training_image(row: tuple) -> TrainingImage:
    return TrainingImage(row[0], row[1], row[2], row[3], load_json(row[4], {}))


def get_training_image(store: "Store", train_image_id: int) -> TrainingImage:
    with store.snapshot() as conn:
        row = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images "
                           "WHERE id = ?", (train_image_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"get_training_image: expected an existing training image id, got {train_image_id!r}")
    return _training_image(row)


def training_set_version(store: "Store") -> TrainingSetVersion:
    with store.snapshot() as conn:
        n, hi = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM training_images").fetchone()
    return TrainingSetVersion(int(n), int(hi))


def distinct_training_images(store: "Store") -> list[tuple[int, str]]:
    """(lowest training image id, sha256) per distinct image, by id."""
    with store.snapshot() as conn:
        rows = conn.execute("SELECT min(id), sha256 FROM training_images GROUP BY sha256 ORDER BY 1").fetchall()
    return [(int(i), s) for i, s in rows]


def training_image_at(store: "Store", path_or_url: str) -> Optional[TrainingImage]:
    """The first training image recorded with this path or URL, if any."""
    with store.snapshot() as conn:
        row = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images "
                           "WHERE path_or_url = ? ORDER BY id LIMIT 1", (path_or_url,)).fetchone()
    return None if row is None else _training_image(row)


def masked_training_images(store: "Store") -> list[TrainingImage]:
    """Training images that have at least one mask version, by id."""
    with store.snapshot() as conn:
        rows = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images t "
                            "WHERE EXISTS (SELECT 1 FROM masks m WHERE m.train_image_id = t.id) ORDER BY id").fetchall()
    return [_training_image(r) for r in rows]


def training_images_for(store: "Store", caption_id: int) -> list[TrainingImage]:
    with store.snapshot() as conn:
        rows = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images "
                            "WHERE caption_id = ? ORDER BY id", (caption_id,)).fetchall()
    return [_training_image(r) for r in rows]


# -- scores -------------------------------------------------------------------------------
def add_scores(store: "Store", run_id: int, kind: str, values: Iterable[tuple[int, float]]) -> int:
    """Write (caption_id, value) scores of one kind for a run; rewriting replaces the value.

    Returns the number of rows written.
    """
    _text(kind, "add_scores kind")
    rows = []
    for i, pair in enumerate(values):
        try:
            cid, value = pair
        except (TypeError, ValueError):
            raise StoreError(f"add_scores item {i}: expected a (caption_id, value) pair, got {pair!r}") from None
        rows.append((_int(cid, f"add_scores item {i} caption_id"), kind, run_id,
                     finite_float(value, f"add_scores item {i} (caption {cid}) value")))
    with store.transaction() as conn:
        _require_row(conn, "runs", run_id, "add_scores")
        conn.execute("INSERT OR IGNORE INTO score_kinds (kind) VALUES (?)", (kind,))
        try:
            conn.executemany("INSERT INTO scores (caption_id, kind, run_id, value) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT DO UPDATE SET value = excluded.value", rows)
        except sqlite3.IntegrityError as e:
            raise NotFoundError(f"add_scores run {run_id} kind {kind!r}: expected existing caption ids, "
                                f"got at least one unknown ({e})") from e
    return len(rows)


def scored_caption_ids(store: "Store", run_id: int, kind: str) -> set[int]:
    """Captions that hold a `kind` score of this run."""
    with store.snapshot() as conn:
        return {int(r[0]) for r in conn.execute("SELECT caption_id FROM scores WHERE run_id = ? AND kind = ?",
                                               (run_id, kind))}


def score_count(store: "Store", run_id: int, kind: str) -> int:
    with store.snapshot() as conn:
        return int(conn.execute("SELECT count(*) FROM scores WHERE run_id = ? AND kind = ?",
                                (run_id, kind)).fetchone()[0])


def model_fingerprint(store: "Store", model: str, stage: str = "score") -> Optional[str]:
    """The fingerprint `model` names: itself when a run carries it, else the fingerprint of the
    newest run of this stage labelled `model` (the weights that last ran under that path); None
    when no run of that label carries one (a store written before fingerprints)."""
    with store.snapshot() as conn:
        if conn.execute(f"SELECT 1 FROM runs WHERE {_FINGERPRINT} = ? LIMIT 1", (model,)).fetchone():
            return model
        row = conn.execute(f"SELECT {_FINGERPRINT} FROM runs WHERE stage = ? AND model = ? "
                           f"AND {_FINGERPRINT} IS NOT NULL ORDER BY id DESC LIMIT 1", (stage, model)).fetchone()
    return None if row is None else row[0]


def latest_scores(store: "Store", kind: str, model: str, stage: str = "score") -> dict[int, float]:
    """caption id -> value of the newest run of this stage holding a `kind` score of one model:
    `model` is a fingerprint, or a label resolved to one (model_fingerprint). Runs of other weights
    are never merged in, whatever path they ran under; runs under any path of these weights are."""
    fp = model_fingerprint(store, model, stage)
    cond, arg = ("json_extract(r.params, '$.model_fingerprint') = ?", fp) if fp is not None else ("r.model = ?", model)
    with store.snapshot() as conn:
        rows = conn.execute("SELECT s.caption_id, s.value FROM scores s JOIN runs r ON r.id = s.run_id "
                            f"WHERE s.kind = ? AND {cond} AND r.stage = ? ORDER BY s.run_id",
                            (kind, arg, stage)).fetchall()
    return {int(cid): float(v) for cid, v in rows}  # newer runs overwrite older ones


def scores_for(store: "Store", caption_id: int) -> dict[str, float]:
    """Latest run's value of each score kind for a caption."""
    with store.snapshot() as conn:
        rows = conn.execute("SELECT kind, value FROM scores WHERE caption_id = ? ORDER BY kind, run_id",
                            (caption_id,)).fetchall()
    return {kind: value for kind, value in rows}  # later runs overwrite earlier ones


# -- generations ------------------------------------------------------------------------
def add_generation(store: "Store", caption_id: int, run_id: Optional[int], seed: int, steps: int,
                   sampler: str, image_sha: str, meta: Optional[Mapping[str, Any]] = None) -> int:
    seed = _int(seed, "add_generation seed")
    steps = _int(steps, "add_generation steps")
    _text(sampler, "add_generation sampler")
    store.images.require(check_sha(image_sha))
    meta_json = _meta(meta, "add_generation meta")
    with store.transaction() as conn:
        _require_row(conn, "captions", caption_id, "add_generation")
        if run_id is not None:
            _require_row(conn, "runs", run_id, "add_generation")
        if run_id is not None:
            # one generation per (run, caption, seed): asking again (a second shard process) returns the first
            have = conn.execute("SELECT id FROM generations WHERE run_id = ? AND caption_id = ? AND seed = ?",
                                (run_id, caption_id, seed)).fetchone()
            if have is not None:
                return int(have[0])
        cur = conn.execute(
            "INSERT INTO generations (caption_id, run_id, seed, steps, sampler, image_sha, meta, created_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (caption_id, run_id, seed, steps, sampler, image_sha, meta_json, utc_now()))
        return int(cur.lastrowid)


def generations(store: "Store", caption_id: int) -> list[Generation]:
    with store.snapshot() as conn:
        rows = conn.execute("SELECT id, caption_id, run_id, seed, steps, sampler, image_sha, meta, created_at "
                            "FROM generations WHERE caption_id = ? ORDER BY id", (caption_id,)).fetchall()
    return [Generation(*r[:7], load_json(r[7], {}), r[8]) for r in rows]


def generated_pairs(store: "Store", run_id: int) -> set[tuple[int, int]]:
    """(caption id, seed) of every generation of a run."""
    with store.snapshot() as conn:
        return {(int(c), int(s)) for c, s in conn.execute(
            "SELECT caption_id, seed FROM generations WHERE run_id = ?", (run_id,))}


def generation_refs(store: "Store", caption_ids: Optional[Sequence[int]] = None,
                    retrieve_run: Optional[int] = None) -> list[GenerationRef]:
    """Every generation (of these captions, when given), by id, with whether it has neighbours
    (from that retrieve run, when given)."""
    cond = "" if retrieve_run is None else " AND n.run_id = ?"
    with store.snapshot() as conn:
        rows = conn.execute("SELECT g.id, g.caption_id, g.image_sha, EXISTS (SELECT 1 FROM neighbours n "
                            f"WHERE n.generation_id = g.id{cond}) FROM generations g ORDER BY g.id",
                            () if retrieve_run is None else (retrieve_run,)).fetchall()
    wanted = None if caption_ids is None else set(caption_ids)
    return [GenerationRef(int(g), int(c), s, bool(done)) for g, c, s, done in rows
            if wanted is None or c in wanted]


def generated_caption_ids(store: "Store") -> list[int]:
    """Captions with at least one generation (the candidates), by id."""
    with store.snapshot() as conn:
        return [int(r[0]) for r in conn.execute(
            "SELECT caption_id FROM caption_state WHERE n_generations > 0 ORDER BY caption_id")]


def add_neighbours(store: "Store", generation_id: int, neighbours: Sequence[Neighbour], run_id: int = 0) -> None:
    """One retrieval's neighbours of a generation (run_id: the retrieve run; it becomes the
    generation's current set when it is the newest)."""
    rows, ranks = [], set()
    for i, n in enumerate(neighbours):
        what = f"add_neighbours generation {generation_id} item {i}"
        if not isinstance(n, Neighbour):
            raise StoreError(f"{what}: expected a Neighbour, got {type(n).__name__}")
        rank = _int(n.rank, f"{what} rank")
        if rank in ranks:
            raise StoreError(f"{what}: expected unique ranks, got rank {rank} twice")
        ranks.add(rank)
        rows.append((generation_id, rank, _int(n.train_image_id, f"{what} train_image_id"),
                     optional_float(n.similarity, f"{what} similarity"),
                     optional_float(n.rmse, f"{what} rmse"),
                     optional_float(n.masked_rmse, f"{what} masked_rmse"),
                     None if n.mask_id is None else _int(n.mask_id, f"{what} mask_id")))
    run_id = _int(run_id, "add_neighbours run_id")
    with store.transaction() as conn:
        _require_row(conn, "generations", generation_id, "add_neighbours")
        if run_id:
            _require_row(conn, "runs", run_id, "add_neighbours")
        for r in rows:
            _require_row(conn, "training_images", r[2], f"add_neighbours generation {generation_id} rank {r[1]}")
            if r[6] is not None:
                _require_row(conn, "masks", r[6], f"add_neighbours generation {generation_id} rank {r[1]}")
        with integrity(f"add_neighbours generation {generation_id}"):
            conn.executemany(
                "INSERT INTO neighbours (generation_id, run_id, rank, train_image_id, similarity, rmse, masked_rmse, "
                "mask_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(r[0], run_id, *r[1:]) for r in rows])


# a generation's current neighbours are the newest retrieval's set
CURRENT_NEIGHBOURS = "n.run_id = (SELECT max(n2.run_id) FROM neighbours n2 WHERE n2.generation_id = n.generation_id)"


def neighbours(store: "Store", generation_id: int) -> list[Neighbour]:
    """The generation's current neighbours (its newest retrieval's), by rank."""
    with store.snapshot() as conn:
        rows = conn.execute("SELECT rank, train_image_id, similarity, rmse, masked_rmse, mask_id FROM neighbours n "
                            f"WHERE generation_id = ? AND {CURRENT_NEIGHBOURS} ORDER BY rank",
                            (generation_id,)).fetchall()
    return [Neighbour(*r) for r in rows]


def neighbour_run(store: "Store", generation_id: int) -> Optional[int]:
    """The retrieve run of the generation's current neighbours (None: none yet)."""
    with store.snapshot() as conn:
        row = conn.execute("SELECT max(run_id) FROM neighbours WHERE generation_id = ?", (generation_id,)).fetchone()
    return None if row[0] is None else int(row[0])


# -- masks ---------------------------------------------------------------------------------
_MASK_COLS = "id, train_image_id, version, image_sha, source, author, parent_id, created_at, meta"


def _mask(row: tuple) -> Mask:
    return Mask(*row[:8], load_json(row[8], {}))


def _image_size(store: "Store", sha: str) -> tuple[int, int]:
    from PIL import Image
    with Image.open(store.images.require(sha)) as im:  # reads the header only
        return im.size


def _check_mask_size(store: "Store", conn: sqlite3.Connection, train_image_id: int, size: tuple[int, int]) -> None:
    """A mask covers its training image pixel for pixel: same width and height."""
    _require_row(conn, "training_images", train_image_id, "add_mask")
    (train_sha,) = conn.execute("SELECT sha256 FROM training_images WHERE id = ?", (train_image_id,)).fetchone()
    want = _image_size(store, train_sha)
    if tuple(size) != want:
        raise MaskError(f"mask for training image {train_image_id}: expected {want[0]}x{want[1]} "
                        f"(the training image's size), got {size[0]}x{size[1]}")


def _check_binary_mask(store: "Store", sha: str) -> None:
    from PIL import Image
    with Image.open(store.images.require(sha)) as im:
        arr = np.asarray(im.convert("RGB"))
    if not (np.all(arr[:, :, 0] == arr[:, :, 1]) and np.all(arr[:, :, 1] == arr[:, :, 2])):
        raise StoreError(f"add_mask image {sha}: expected a grey 0/255 mask, got a colour image")
    values = np.unique(arr[:, :, 0])
    if not set(values.tolist()) <= {0, 255}:
        raise StoreError(f"add_mask image {sha}: expected only values 0 and 255, got {values[:8].tolist()}")


def add_mask(store: "Store", train_image_id: int, image_sha: str, source: str = "auto",
             author: Optional[str] = None, parent_id: Optional[int] = None,
             meta: Optional[Mapping[str, Any]] = None) -> int:
    """Save a new mask version (previous + 1); an edit's parent defaults to the current mask."""
    if source not in MASK_SOURCES:
        raise StoreError(f"add_mask source: expected one of {', '.join(MASK_SOURCES)}, got {source!r}")
    if author is not None and not isinstance(author, str):
        raise StoreError(f"add_mask author: expected a string or None, got {author!r}")
    _check_binary_mask(store, check_sha(image_sha))
    with store.transaction() as conn:
        _check_mask_size(store, conn, train_image_id, _image_size(store, image_sha))
        current = conn.execute("SELECT id, version FROM masks WHERE train_image_id = ? "
                               "ORDER BY version DESC LIMIT 1", (train_image_id,)).fetchone()
        if parent_id is None and source == "edited" and current is not None:
            parent_id = current[0]
        if parent_id is not None:
            owner = conn.execute("SELECT train_image_id FROM masks WHERE id = ?", (parent_id,)).fetchone()
            if owner is None or owner[0] != train_image_id:
                raise StoreError(f"add_mask parent_id: expected a mask of training image {train_image_id}, "
                                 f"got {parent_id!r}")
        version = 1 if current is None else current[1] + 1
        cur = conn.execute(
            "INSERT INTO masks (train_image_id, version, image_sha, source, author, parent_id, created_at, meta) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (train_image_id, version, image_sha, source, author, parent_id, utc_now(), _meta(meta, "add_mask meta")))
        return int(cur.lastrowid)


def save_mask(store: "Store", train_image_id: int, mask: Any, source: str = "auto",
              author: Optional[str] = None, parent_id: Optional[int] = None,
              meta: Optional[Mapping[str, Any]] = None) -> int:
    """Check a mask array / image against its training image, then write its file and a new
    version; a wrong size raises MaskError before anything (file included) is written."""
    from .images import to_mask_array
    arr = to_mask_array(mask)
    with store.snapshot() as conn:
        _check_mask_size(store, conn, train_image_id, (arr.shape[1], arr.shape[0]))
    return add_mask(store, train_image_id, store.put_mask(arr), source, author, parent_id, meta)


def set_neighbour_mask(store: "Store", generation_id: int, rank: int, masked_rmse: Optional[float],
                       mask_id: Optional[int]) -> None:
    """Refresh a neighbour's masked distance after its training image got a new mask version."""
    value = optional_float(masked_rmse, f"set_neighbour_mask generation {generation_id} rank {rank} masked_rmse")
    with store.transaction() as conn:
        if mask_id is not None:
            _require_row(conn, "masks", mask_id, f"set_neighbour_mask generation {generation_id} rank {rank}")
        cur = conn.execute("UPDATE neighbours AS n SET masked_rmse = ?, mask_id = ? WHERE generation_id = ? AND rank = ? "
                           f"AND {CURRENT_NEIGHBOURS}", (value, mask_id, generation_id, rank))
        if cur.rowcount != 1:
            raise NotFoundError(f"set_neighbour_mask: expected an existing neighbour (generation {generation_id}, "
                                f"rank {rank}), got none")


def current_mask(store: "Store", train_image_id: int) -> Optional[Mask]:
    with store.snapshot() as conn:
        row = conn.execute(f"SELECT {_MASK_COLS} FROM masks WHERE train_image_id = ? "
                           "ORDER BY version DESC LIMIT 1", (train_image_id,)).fetchone()
    return None if row is None else _mask(row)


def mask_versions(store: "Store", train_image_id: int) -> list[Mask]:
    with store.snapshot() as conn:
        rows = conn.execute(f"SELECT {_MASK_COLS} FROM masks WHERE train_image_id = ? ORDER BY version",
                            (train_image_id,)).fetchall()
    return [_mask(r) for r in rows]


def get_mask(store: "Store", mask_id: int) -> Mask:
    with store.snapshot() as conn:
        row = conn.execute(f"SELECT {_MASK_COLS} FROM masks WHERE id = ?", (mask_id,)).fetchone()
    if row is None:
        raise NotFoundError(f"get_mask: expected an existing mask id, got {mask_id!r}")
    return _mask(row)


# -- auto labels -------------------------------------------------------------------------------
def add_auto_label(store: "Store", caption_id: int, run_id: int, label: str,
                   distances: Mapping[str, Any], flags: Sequence[str] = ()) -> int:
    """A proposal from the labelling stage; the newest run's proposal is the caption's auto label."""
    if label not in REFERENCE_LABELS:
        raise StoreError(f"add_auto_label label: expected one of {', '.join(REFERENCE_LABELS)}, got {label!r}")
    if isinstance(flags, str) or not all(isinstance(f, str) and f for f in flags):
        raise StoreError(f"add_auto_label flags: expected a list of non-empty strings, got {flags!r}")
    distances_json = _meta(distances, "add_auto_label distances") or "{}"
    flags_json = canonical_json(sorted(set(flags)))
    with store.transaction() as conn:
        _require_row(conn, "captions", caption_id, "add_auto_label")
        _require_row(conn, "runs", run_id, "add_auto_label")
        with integrity(f"add_auto_label caption {caption_id} run {run_id}"):
            cur = conn.execute(
                "INSERT INTO auto_labels (caption_id, run_id, label, distances, flags, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (caption_id, run_id, label, distances_json, flags_json, utc_now()))
        return int(cur.lastrowid)


def auto_labels(store: "Store", caption_id: int) -> list[AutoLabel]:
    with store.snapshot() as conn:
        rows = conn.execute("SELECT id, caption_id, run_id, label, distances, flags, created_at "
                            "FROM auto_labels WHERE caption_id = ? ORDER BY run_id", (caption_id,)).fetchall()
    return [AutoLabel(r[0], r[1], r[2], r[3], load_json(r[4], {}), tuple(load_json(r[5], [])), r[6])
            for r in rows]


def auto_labelled_ids(store: "Store", run_id: int) -> set[int]:
    """Captions that got an automatic label in this run."""
    with store.snapshot() as conn:
        return {int(r[0]) for r in conn.execute("SELECT caption_id FROM auto_labels WHERE run_id = ?", (run_id,))}


def auto_label_states(store: "Store") -> list[AutoLabelState]:
    """Every caption's latest automatic label and flags, by caption id."""
    with store.snapshot() as conn:
        rows = conn.execute("SELECT caption_id, auto_label, flags FROM caption_state "
                            "WHERE auto_label IS NOT NULL ORDER BY caption_id").fetchall()
    return [AutoLabelState(int(c), lab, tuple(load_json(fl, []))) for c, lab, fl in rows]


# -- meta --------------------------------------------------------------------------------------
def get_meta(store: "Store", key: str) -> Optional[str]:
    with store.snapshot() as conn:
        row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else row[0]


def set_meta(store: "Store", key: str, value: str) -> None:
    _text(key, "set_meta key")
    _text(value, "set_meta value", allow_empty=True)
    with store.transaction() as conn:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                     (key, value))


def remove_unreferenced_images(store: "Store", shas: Sequence[str]) -> int:
    """Delete image files among ``shas`` that no training image, generation or mask names."""
    removed = 0
    with store.snapshot() as conn:
        for sha in dict.fromkeys(shas):
            used = conn.execute(
                "SELECT EXISTS (SELECT 1 FROM training_images WHERE sha256 = ?) "
                "OR EXISTS (SELECT 1 FROM generations WHERE image_sha = ?) "
                "OR EXISTS (SELECT 1 FROM masks WHERE image_sha = ?)", (sha, sha, sha)).fetchone()[0]
            if not used:
                store.images.remove(check_sha(sha))
                removed += 1
    return removed
