"""The Store: one folder holding store.db (SQLite) and images/ (content-addressed PNG).

This class owns the connection, the lock and transactions; the table logic
lives in evidence.py, labels.py and queries.py and is exposed here as thin
methods so callers only ever need ``Store``.
"""
from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Optional, Sequence, Union

import numpy as np
import sqlite_utils
from PIL import Image

from . import evidence, labels, queries, reviews, stats
from .db import DEFAULT_BUSY_TIMEOUT_MS, check_readable, connect, migrate
from .errors import ReadOnlyStoreError, StoreError
from .images import ImageFiles
from .records import (
    AutoLabel, AutoLabelState, CandidateDup, Caption, CaptionRef, CaptionReviews, CaptionRow, Generation, GenerationRef,
    LabelEntry, Lease, Mask, Neighbour, Page, PageQuery, ReviewerActivity, Run, RunHandle, RunLabelCount, ScoreRank,
    SearchHit, TrainingImage, TrainingSetVersion,
)

DB_NAME = "store.db"
IMAGES_DIR = "images"


class DigestCache:
    """File digests in the store's meta table (attack.models.fingerprint.DigestCache); a
    read-only store reads them and does not keep new ones."""

    PREFIX = "file-digest|"

    def __init__(self, store: "Store") -> None:
        self.store = store

    def get(self, key: str) -> Optional[str]:
        return self.store.get_meta(self.PREFIX + key)

    def put(self, key: str, digest: str) -> None:
        if not self.store.readonly:
            self.store.set_meta(self.PREFIX + key, digest)


class Store:
    """Open with ``Store.open(path)``; use as a context manager or call ``close()``.

    Thread safety: one connection guarded by a re-entrant lock, so a Store may
    be shared by the threads of one process. Each process opens its own Store;
    SQLite's WAL + busy timeout serialise writers across processes.
    Do not call sqlite-utils write helpers (``store.db[t].insert``) inside
    ``store.transaction()``: they COMMIT on their own.
    """

    def __init__(self, path: Path, conn: sqlite3.Connection,
                 busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, readonly: bool = False) -> None:
        self.path = path
        self.readonly = readonly
        self._busy_timeout_ms = busy_timeout_ms
        self.conn = conn
        self.db = sqlite_utils.Database(conn, recursive_triggers=False, execute_plugins=False)
        self.images = ImageFiles(path / IMAGES_DIR)
        self._lock = threading.RLock()
        self._depth = 0

    # -- lifecycle ---------------------------------------------------------
    @classmethod
    def open(cls, path: Union[str, Path], create: bool = True,
             busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS, durable: bool = True,
             readonly: bool = False) -> "Store":
        """Open (or create) a store folder. durable: fsync every commit (see db.connect).
        readonly: open the database with SQLite's mode=ro (works on a store the user may not
        write; every write then raises ReadOnlyStoreError); implies create=False."""
        path = Path(path)
        db_path = path / DB_NAME
        if path.exists() and not path.is_dir():
            raise StoreError(f"{path}: expected a store folder, got a file")
        if not db_path.exists():
            if not create or readonly:
                raise StoreError(f"{path}: expected a store folder containing {DB_NAME}, got none")
        if readonly:
            conn = connect(db_path, busy_timeout_ms, durable, readonly=True)
            try:
                check_readable(conn, db_path)
            except BaseException:
                conn.close()
                raise
            return cls(path, conn, busy_timeout_ms, readonly=True)
        images = path / IMAGES_DIR
        if db_path.exists() and not (os.access(db_path, os.W_OK) and os.access(path, os.W_OK)
                                     and (not images.exists() or os.access(images, os.W_OK | os.X_OK))):
            raise ReadOnlyStoreError(f"store is read-only: {db_path} (permission denied)")
        try:
            path.mkdir(parents=True, exist_ok=True)
            (path / IMAGES_DIR).mkdir(exist_ok=True)
        except OSError as e:
            raise StoreError(f"{path}: expected a folder we can write, got {e.strerror or e}") from e
        conn = connect(db_path, busy_timeout_ms, durable)
        try:
            migrate(conn, db_path)
        except BaseException:
            conn.close()
            raise
        return cls(path, conn, busy_timeout_ms)

    def close(self) -> None:
        with self._lock:
            if self.conn is not None:
                self.conn.close()
                self.conn = None  # type: ignore[assignment]

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- transactions --------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One durable write transaction; nested calls become savepoints.

        BEGIN IMMEDIATE takes the write lock first (waiting up to the busy
        timeout), so no "database is locked" surfaces from a lock upgrade later.
        """
        with self._lock:
            if self.conn is None:
                raise StoreError(f"{self.path}: expected an open store, got a closed one")
            if self.readonly:
                raise ReadOnlyStoreError(f"store is read-only: {self.path / DB_NAME} (opened for reading)")
            if self._depth == 0:
                self._begin_immediate()
                self._depth = 1
                try:
                    yield self.conn
                except BaseException as e:
                    self._depth = 0
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    if isinstance(e, sqlite3.OperationalError) and "readonly" in str(e):
                        raise ReadOnlyStoreError(f"store is read-only: {self.path / DB_NAME} (permission denied)") from e
                    raise
                self._depth = 0
                try:
                    self.conn.execute("COMMIT")
                except BaseException:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    raise
            else:
                name = f"sp{self._depth}"
                self.conn.execute(f"SAVEPOINT {name}")
                self._depth += 1
                try:
                    yield self.conn
                except BaseException:
                    self.conn.execute(f"ROLLBACK TO {name}")
                    self.conn.execute(f"RELEASE {name}")
                    raise
                else:
                    self.conn.execute(f"RELEASE {name}")
                finally:
                    self._depth -= 1

    def _begin_immediate(self) -> None:
        """Take the write lock, retrying at short random intervals until the busy timeout.

        SQLite's own busy handler backs off to 100 ms sleeps, so a writer that has
        waited long polls rarely while fresh writers grab the lock: with many
        writer processes one can starve past the timeout. Equal, short, jittered
        retries give every waiter the same chance.
        """
        deadline = time.monotonic() + self._busy_timeout_ms / 1000
        self.conn.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.conn.execute("BEGIN IMMEDIATE")
                    return
                except sqlite3.OperationalError as e:
                    if "readonly" in str(e):
                        raise ReadOnlyStoreError(f"store is read-only: {self.path / DB_NAME} (permission denied)") from e
                    if "locked" not in str(e) and "busy" not in str(e):
                        raise
                    if time.monotonic() >= deadline:
                        raise StoreError(f"{self.path}: expected the write lock within "
                                         f"{self._busy_timeout_ms} ms, got {e}") from e
                    time.sleep(random.uniform(0.0002, 0.002))
        finally:
            self.conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")

    @contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A read transaction, so several SELECTs see one consistent state."""
        with self._lock:
            if self.conn is None:
                raise StoreError(f"{self.path}: expected an open store, got a closed one")
            if self._depth > 0:
                yield self.conn
                return
            self.conn.execute("BEGIN")
            self._depth = 1
            try:
                yield self.conn
            finally:
                self._depth = 0
                if self.conn.in_transaction:
                    self.conn.execute("COMMIT")

    # -- images --------------------------------------------------------------
    def _writable(self) -> None:
        if self.readonly:
            raise ReadOnlyStoreError(f"store is read-only: {self.path / DB_NAME} (opened for reading)")

    def put_image(self, img: Union[Image.Image, np.ndarray]) -> str:
        self._writable()
        return self.images.put_image(img)

    def put_image_tracked(self, img: Union[Image.Image, np.ndarray], created: list) -> str:
        """put_image, appending the sha to ``created`` before it writes a new file (see
        remove_unreferenced_images)."""
        self._writable()
        return self.images.put_image(img, created)

    def remove_unreferenced_images(self, shas: Sequence[str]) -> int:
        """Delete the files of these images that no row refers to (what an ingest that failed
        had written); returns how many were removed."""
        return evidence.remove_unreferenced_images(self, shas)

    def put_mask(self, mask: Union[Image.Image, np.ndarray]) -> str:
        self._writable()
        return self.images.put_mask(mask)

    def image_path(self, sha: str) -> Path:
        return self.images.path(sha)

    def load_image(self, sha: str) -> Image.Image:
        return self.images.load_image(sha)

    def load_mask(self, sha: str) -> np.ndarray:
        return self.images.load_mask(sha)

    def image_size(self, sha: str) -> tuple[int, int]:
        """(width, height) from the file's header, without decoding it."""
        with Image.open(self.images.require(sha)) as im:
            return im.size

    def compare_pixels(self, sha: str) -> np.ndarray:
        """The image at the compare size (256x256x3 uint8, Lanczos), decoded once per store and
        cached in cache/ (not on a read-only store)."""
        return self.images.compare_pixels(sha, write=not self.readonly)

    # -- runs ------------------------------------------------------------------
    def start_run(self, stage: str, model: str, params: Mapping[str, Any]) -> int:
        return evidence.start_run(self, stage, model, params)

    def finish_run(self, run_id: int, evals: int, status: str = "done", reason: Optional[str] = None) -> None:
        evidence.finish_run(self, run_id, evals, status, reason)

    def running(self, run_id: int):
        """Context manager: a failure or signal inside marks the run 'failed' / 'interrupted'."""
        return evidence.running(self, run_id)

    def get_run(self, run_id: int) -> Run:
        return evidence.get_run(self, run_id)

    def open_run(self, stage: str, model: str, params: Mapping[str, Any]) -> RunHandle:
        """The newest run with this stage, model and params (to resume), or a new one."""
        return evidence.open_run(self, stage, model, params)

    def runs(self, stage: Optional[str] = None, model: Optional[str] = None,
             fingerprint: Optional[str] = None) -> list[Run]:
        return evidence.runs(self, stage, model, fingerprint)

    def model_fingerprint(self, model: str, stage: str = "score") -> Optional[str]:
        return evidence.model_fingerprint(self, model, stage)

    def models(self) -> list[str]:
        return stats.models(self)

    # -- captions ----------------------------------------------------------------
    def add_captions(self, rows: Iterable[CaptionRow]) -> list[int]:
        return evidence.add_captions(self, rows)

    def caption_id(self, text: str) -> Optional[int]:
        return evidence.caption_id(self, text)

    def get_caption(self, caption_id: int) -> Caption:
        return evidence.get_caption(self, caption_id)

    def caption_ids(self, texts: Sequence[str]) -> list[Optional[int]]:
        return evidence.caption_ids(self, texts)

    def caption_refs(self) -> list[CaptionRef]:
        return evidence.caption_refs(self)

    def caption_count(self, source: Optional[str] = None) -> int:
        return evidence.caption_count(self, source)

    # -- training images -------------------------------------------------------------
    def add_training_image(self, sha: str, caption_id: Optional[int] = None,
                           path_or_url: Optional[str] = None,
                           meta: Optional[Mapping[str, Any]] = None) -> int:
        return evidence.add_training_image(self, sha, caption_id, path_or_url, meta)

    def get_training_image(self, train_image_id: int) -> TrainingImage:
        return evidence.get_training_image(self, train_image_id)

    def training_images_for(self, caption_id: int) -> list[TrainingImage]:
        return evidence.training_images_for(self, caption_id)

    def training_set_version(self) -> TrainingSetVersion:
        return evidence.training_set_version(self)

    def distinct_training_images(self) -> list[tuple[int, str]]:
        return evidence.distinct_training_images(self)

    def training_image_at(self, path_or_url: str) -> Optional[TrainingImage]:
        return evidence.training_image_at(self, path_or_url)

    def masked_training_images(self) -> list[TrainingImage]:
        return evidence.masked_training_images(self)

    # -- scores ------------------------------------------------------------------------
    def add_scores(self, run_id: int, kind: str, values: Iterable[tuple[int, float]]) -> int:
        return evidence.add_scores(self, run_id, kind, values)

    def scores_for(self, caption_id: int) -> dict[str, float]:
        return evidence.scores_for(self, caption_id)

    def scored_caption_ids(self, run_id: int, kind: str) -> set[int]:
        return evidence.scored_caption_ids(self, run_id, kind)

    def score_count(self, run_id: int, kind: str) -> int:
        return evidence.score_count(self, run_id, kind)

    def latest_scores(self, kind: str, model: str, stage: str = "score") -> dict[int, float]:
        return evidence.latest_scores(self, kind, model, stage)

    def score_kinds(self) -> list[str]:
        return stats.score_kinds(self)

    def score_ranks(self, scores: Mapping[str, float]) -> dict[str, ScoreRank]:
        return stats.score_ranks(self, scores)

    # -- generations and neighbours -----------------------------------------------------------
    def add_generation(self, caption_id: int, run_id: Optional[int], seed: int, steps: int,
                       sampler: str, image_sha: str,
                       meta: Optional[Mapping[str, Any]] = None) -> int:
        return evidence.add_generation(self, caption_id, run_id, seed, steps, sampler, image_sha, meta)

    def generations(self, caption_id: int) -> list[Generation]:
        return evidence.generations(self, caption_id)

    def add_neighbours(self, generation_id: int, neighbours: Sequence[Neighbour], run_id: int = 0) -> None:
        evidence.add_neighbours(self, generation_id, neighbours, run_id)

    def neighbours(self, generation_id: int) -> list[Neighbour]:
        """The generation's current neighbours (its newest retrieval's), by rank."""
        return evidence.neighbours(self, generation_id)

    def neighbour_run(self, generation_id: int) -> Optional[int]:
        return evidence.neighbour_run(self, generation_id)

    def generated_pairs(self, run_id: int) -> set[tuple[int, int]]:
        return evidence.generated_pairs(self, run_id)

    def generation_refs(self, caption_ids: Optional[Sequence[int]] = None,
                        retrieve_run: Optional[int] = None) -> list[GenerationRef]:
        return evidence.generation_refs(self, caption_ids, retrieve_run)

    def candidate_ids(self) -> list[int]:
        """Captions with at least one generation, by id."""
        return evidence.generated_caption_ids(self)

    def candidate_count(self) -> int:
        return stats.candidate_count(self)

    # -- masks -------------------------------------------------------------------------------
    def add_mask(self, train_image_id: int, image_sha: str, source: str = "auto",
                 author: Optional[str] = None, parent_id: Optional[int] = None,
                 meta: Optional[Mapping[str, Any]] = None) -> int:
        return evidence.add_mask(self, train_image_id, image_sha, source, author, parent_id, meta)

    def save_mask(self, train_image_id: int, mask: Union[Image.Image, np.ndarray], source: str = "auto",
                  author: Optional[str] = None, parent_id: Optional[int] = None,
                  meta: Optional[Mapping[str, Any]] = None) -> int:
        """Size-checked put_mask + add_mask: a wrong size raises MaskError and writes nothing."""
        return evidence.save_mask(self, train_image_id, mask, source, author, parent_id, meta)

    def set_neighbour_mask(self, generation_id: int, rank: int, masked_rmse: Optional[float],
                           mask_id: Optional[int]) -> None:
        evidence.set_neighbour_mask(self, generation_id, rank, masked_rmse, mask_id)

    def current_mask(self, train_image_id: int) -> Optional[Mask]:
        return evidence.current_mask(self, train_image_id)

    def mask_versions(self, train_image_id: int) -> list[Mask]:
        return evidence.mask_versions(self, train_image_id)

    def get_mask(self, mask_id: int) -> Mask:
        return evidence.get_mask(self, mask_id)

    # -- auto labels -----------------------------------------------------------------------------
    def add_auto_label(self, caption_id: int, run_id: int, label: str,
                       distances: Mapping[str, Any], flags: Sequence[str] = ()) -> int:
        return evidence.add_auto_label(self, caption_id, run_id, label, distances, flags)

    def auto_labels(self, caption_id: int) -> list[AutoLabel]:
        return evidence.auto_labels(self, caption_id)

    def auto_labelled_ids(self, run_id: int) -> set[int]:
        return evidence.auto_labelled_ids(self, run_id)

    def auto_label_states(self) -> list[AutoLabelState]:
        return evidence.auto_label_states(self)

    def flags(self) -> list[str]:
        return stats.flags(self)

    # -- human labels ---------------------------------------------------------------------------
    def add_label(self, caption_id: int, label: str, reviewer: str, note: str = "",
                  expect_latest: object = labels.ANY) -> LabelEntry:
        return labels.add_label(self, caption_id, label, reviewer, note, expect_latest)

    def undo_label(self, caption_id: int, reviewer: str) -> LabelEntry:
        return labels.undo_label(self, caption_id, reviewer)

    def add_labels(self, caption_ids: Sequence[int], label: str, reviewer: str, note: str = "") -> list[LabelEntry]:
        return labels.add_labels(self, caption_ids, label, reviewer, note)

    def undo_batch(self, batch: str, reviewer: str) -> list[LabelEntry]:
        return labels.undo_batch(self, batch, reviewer)

    def current_label(self, caption_id: int) -> Optional[str]:
        return labels.current_label(self, caption_id)

    def current_label_entry(self, caption_id: int) -> Optional[LabelEntry]:
        return labels.current_label_entry(self, caption_id)

    def label_history(self, caption_id: int) -> list[LabelEntry]:
        return labels.label_history(self, caption_id)

    # -- several reviewers ---------------------------------------------------------------------
    def reviews_per_candidate(self) -> int:
        with self.snapshot() as conn:
            return reviews.reviews_per_candidate(conn)

    def set_reviews_per_candidate(self, k: int) -> int:
        return reviews.set_reviews_per_candidate(self, k)

    def caption_reviews(self, caption_ids: Optional[Sequence[int]] = None) -> list[CaptionReviews]:
        return reviews.reviews_of(self, caption_ids)

    def lease(self, caption_id: int, reviewer: str, now: Optional[float] = None) -> list[Lease]:
        return reviews.lease(self, caption_id, labels.check_reviewer(reviewer), now)

    def lease_first(self, caption_ids: Sequence[int], reviewer: str, now: Optional[float] = None) -> Optional[int]:
        return reviews.lease_first(self, caption_ids, labels.check_reviewer(reviewer), now)

    def leases(self, now: Optional[float] = None) -> list[Lease]:
        return reviews.live_leases(self, now)

    def unlabelled_among(self, caption_ids: Sequence[int]) -> set[int]:
        return stats.unlabelled_among(self, caption_ids)

    def label_totals(self) -> dict[str, int]:
        return stats.label_totals(self)

    def decided_labels_by_score(self, kind: str) -> list[str]:
        return stats.decided_labels_by_score(self, kind)

    def label_counts_by_run(self) -> list[RunLabelCount]:
        return stats.label_counts_by_run(self)

    def candidate_dup_counts(self) -> list[CandidateDup]:
        return stats.candidate_dup_counts(self)

    def reviewer_activity(self) -> list[ReviewerActivity]:
        return stats.reviewer_activity(self)

    # -- queries ------------------------------------------------------------------------------------
    def page(self, query: Optional[PageQuery] = None) -> Page:
        return queries.page(self, query or PageQuery())

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        return queries.search(self, text, limit)

    def backup_to(self, path: Union[str, Path]) -> None:
        """A consistent copy of the database at ``path`` (SQLite's online backup), even while
        others write; the image files are the caller's to copy (they are never rewritten)."""
        path = Path(path)
        if path.exists():
            raise StoreError(f"backup: expected a new file, got an existing {path}")
        dst = sqlite3.connect(str(path))
        try:
            self.conn.backup(dst)
        finally:
            dst.close()

    def info(self) -> dict:
        return queries.info(self)

    def get_meta(self, key: str) -> Optional[str]:
        return evidence.get_meta(self, key)

    def set_meta(self, key: str, value: str) -> None:
        evidence.set_meta(self, key, value)

    def digest_cache(self) -> "DigestCache":
        """Weight-file digests kept in the store (meta rows), keyed by path, size, mtime and inode,
        so a model's whole-content fingerprint reads an unchanged file once per store."""
        return DigestCache(self)

    def export(self, out: Union[str, Path], fmt: Optional[str] = None,
               labels: Sequence[str] = ("MV", "TV", "RV"), query: Optional[PageQuery] = None,
               make_parents: bool = False, force: bool = False, raw_csv: bool = False):
        from .export import export
        return export(self, out, fmt, labels=labels, query=query, make_parents=make_parents, force=force,
                      raw_csv=raw_csv)
