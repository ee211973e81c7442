"""Writes and reads of the evidence tables: scores, generations, neighbours and auto labels.

Every write is one transaction (or a savepoint inside the caller's). Inputs
are checked before SQL so errors name the offending value, not a constraint.
"""
from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence

from .audited import of_audited_model
from .canon import canonical_json, finite_float, load_json, optional_float
from .checks import check_int, check_text, integrity, json_or_none, require_row
from .db import utc_now
from .errors import NotFoundError, StoreError
from .images import check_sha
from .records import (
    AutoLabel,
    AutoLabelState,
    Generation,
    GenerationRef,
    Neighbour,
)
from .schema import REFERENCE_LABELS

# The generate runs `generations()` answers from in this thread or task (None: every run). A
# context variable, not store state: the review app's threads share one Store.
_GENERATION_RUNS: ContextVar[Optional[frozenset]] = ContextVar("verbatim_generation_runs", default=None)

# a generation `g` of the audited model (store/audited.py)
AUDITED_GENERATION = of_audited_model("g.run_id")
# a generation's current neighbours are the newest retrieval's set
CURRENT_NEIGHBOURS = "n.run_id = (SELECT max(n2.run_id) FROM neighbours n2 WHERE n2.generation_id = n.generation_id)"


class Evidence:
    """Scores, generations, neighbours and automatic labels. Methods of Store (store/store.py), which holds the connection."""

    # -- scores -------------------------------------------------------------------------------
    def add_scores(self, run_id: int, kind: str, values: Iterable[tuple[int, float]]) -> int:
        """Write (caption_id, value) scores of one kind for a run; rewriting replaces the value.

        Returns the number of rows written.
        """
        check_text(kind, "add_scores kind")
        rows = []
        for i, pair in enumerate(values):
            try:
                cid, value = pair
            except (TypeError, ValueError):
                raise StoreError(f"add_scores item {i}: expected a (caption_id, value) pair, got {pair!r}") from None
            rows.append((check_int(cid, f"add_scores item {i} caption_id"), kind, run_id,
                         finite_float(value, f"add_scores item {i} (caption {cid}) value")))
        with self.transaction() as conn:
            require_row(conn, "runs", run_id, "add_scores")
            conn.execute("INSERT OR IGNORE INTO score_kinds (kind) VALUES (?)", (kind,))
            try:
                conn.executemany("INSERT INTO scores (caption_id, kind, run_id, value) VALUES (?, ?, ?, ?) "
                                 "ON CONFLICT DO UPDATE SET value = excluded.value", rows)
            except sqlite3.IntegrityError as e:
                raise NotFoundError(f"add_scores run {run_id} kind {kind!r}: expected existing caption ids, "
                                    f"got at least one unknown ({e})") from e
        return len(rows)

    def scored_caption_ids(self, run_id: int, kind: str) -> set[int]:
        """Captions that hold a `kind` score of this run."""
        with self.snapshot() as conn:
            return {int(r[0]) for r in conn.execute("SELECT caption_id FROM scores WHERE run_id = ? AND kind = ?",
                                                   (run_id, kind))}

    def scored_among(self, run_id: int, kind: str, caption_ids: Sequence[int]) -> set[int]:
        """Those of ``caption_ids`` that hold a `kind` score of this run (a few, by index)."""
        return self._holding("SELECT 1 FROM scores WHERE run_id = ? AND kind = ? AND caption_id = ?",
                             caption_ids, lambda c: (run_id, kind, c))

    def _holding(self, sql: str, keys: Sequence, args: Callable[[Any], tuple]) -> set:
        """Those of ``keys`` for which ``sql`` (one indexed lookup, given args(key)) finds a row: what
        the work claims ask of a stage's run, a few keys at a time."""
        with self.snapshot() as conn:
            return {k for k in keys if conn.execute(sql, args(k)).fetchone()}

    def score_count(self, run_id: int, kind: str) -> int:
        with self.snapshot() as conn:
            return int(conn.execute("SELECT count(*) FROM scores WHERE run_id = ? AND kind = ?",
                                    (run_id, kind)).fetchone()[0])

    def latest_scores(self, kind: str, model: str, stage: str = "score") -> dict[int, float]:
        """caption id -> value of the newest run of this stage holding a `kind` score of one model:
        `model` is a fingerprint, or a label resolved to one (model_fingerprint). Runs of other weights
        are never merged in, whatever path they ran under; runs under any path of these weights are."""
        fp = self.model_fingerprint(model, stage)
        cond, arg = ("json_extract(r.params, '$.model_fingerprint') = ?", fp) if fp is not None else ("r.model = ?", model)
        with self.snapshot() as conn:
            rows = conn.execute("SELECT s.caption_id, s.value FROM scores s JOIN runs r ON r.id = s.run_id "
                                f"WHERE s.kind = ? AND {cond} AND r.stage = ? ORDER BY s.run_id",
                                (kind, arg, stage)).fetchall()
        return {int(cid): float(v) for cid, v in rows}  # newer runs overwrite older ones

    def scores_for(self, caption_id: int) -> dict[str, float]:
        """Latest run's value of each score kind for a caption, of the audited model's runs."""
        with self.snapshot() as conn:
            rows = conn.execute(f"SELECT kind, value FROM scores WHERE caption_id = ? AND "
                                f"{of_audited_model('scores.run_id')} ORDER BY kind, run_id", (caption_id,)).fetchall()
        return {kind: value for kind, value in rows}  # later runs overwrite earlier ones

    # -- generations ------------------------------------------------------------------------
    def add_generation(self, caption_id: int, run_id: Optional[int], seed: int, steps: int,
                       sampler: str, image_sha: str, meta: Optional[Mapping[str, Any]] = None) -> int:
        seed = check_int(seed, "add_generation seed")
        steps = check_int(steps, "add_generation steps")
        check_text(sampler, "add_generation sampler")
        self.images.require(check_sha(image_sha))
        meta_json = json_or_none(meta, "add_generation meta")
        with self.transaction() as conn:
            require_row(conn, "captions", caption_id, "add_generation")
            if run_id is not None:
                require_row(conn, "runs", run_id, "add_generation")
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

    def generations(self, caption_id: int) -> list[Generation]:
        """A caption's generations by the audited model (schema.AUDITED_FP), oldest first; inside
        `only_runs(...)`, those of its runs instead, whatever the model."""
        scope = _GENERATION_RUNS.get()
        audited = "" if scope is not None else f" AND {of_audited_model('generations.run_id')}"
        with self.snapshot() as conn:
            rows = conn.execute("SELECT id, caption_id, run_id, seed, steps, sampler, image_sha, meta, created_at "
                                f"FROM generations WHERE caption_id = ?{audited} ORDER BY id", (caption_id,)).fetchall()
        return [Generation(*r[:7], load_json(r[7], {}), r[8]) for r in rows if scope is None or r[2] in scope]

    def captions_generated_by(self, run_ids: Iterable[int]) -> set[int]:
        """Captions with a generation of these generate runs (any model)."""
        ids = [int(r) for r in run_ids]
        with self.snapshot() as conn:
            return {int(c) for (c,) in conn.execute(
                f"SELECT DISTINCT caption_id FROM generations WHERE run_id IN ({','.join('?' * len(ids))})", ids)}

    @contextmanager
    def only_runs(self, run_ids: Iterable[int]) -> Iterator[None]:
        """Within the block (this thread or task only), `generations()` answers from these generate
        runs alone: one model's side of a comparison is labelled from its own generations."""
        token = _GENERATION_RUNS.set(frozenset(int(r) for r in run_ids))
        try:
            yield
        finally:
            _GENERATION_RUNS.reset(token)

    def generated_among(self, run_id: int, pairs: Sequence[tuple[int, int]]) -> set[tuple[int, int]]:
        """Those of the (caption id, seed) ``pairs`` the run holds a generation for (by index)."""
        return self._holding("SELECT 1 FROM generations WHERE run_id = ? AND caption_id = ? AND seed = ?",
                             pairs, lambda cs: (run_id, *cs))

    def generated_pairs(self, run_id: int) -> set[tuple[int, int]]:
        """(caption id, seed) of every generation of a run."""
        with self.snapshot() as conn:
            return {(int(c), int(s)) for c, s in conn.execute(
                "SELECT caption_id, seed FROM generations WHERE run_id = ?", (run_id,))}

    def generation_refs(self, caption_ids: Optional[Sequence[int]] = None,
                        retrieve_run: Optional[int] = None) -> list[GenerationRef]:
        """Every generation (of these captions, when given), by id, with whether it has neighbours
        (from that retrieve run, when given)."""
        cond = "" if retrieve_run is None else " AND n.run_id = ?"
        with self.snapshot() as conn:
            rows = conn.execute("SELECT g.id, g.caption_id, g.image_sha, EXISTS (SELECT 1 FROM neighbours n "
                                f"WHERE n.generation_id = g.id{cond}) FROM generations g ORDER BY g.id",
                                () if retrieve_run is None else (retrieve_run,)).fetchall()
        wanted = None if caption_ids is None else set(caption_ids)
        return [GenerationRef(int(g), int(c), s, bool(done)) for g, c, s, done in rows
                if wanted is None or c in wanted]

    def candidate_ids(self) -> list[int]:
        """Captions with at least one generation (the candidates), by id."""
        with self.snapshot() as conn:
            return [int(r[0]) for r in conn.execute(
                "SELECT caption_id FROM caption_state WHERE n_generations > 0 ORDER BY caption_id")]

    def add_neighbours(self, generation_id: int, neighbours: Sequence[Neighbour], run_id: int = 0) -> None:
        """One retrieval's neighbours of a generation (run_id: the retrieve run; it becomes the
        generation's current set when it is the newest)."""
        rows, ranks = [], set()
        for i, n in enumerate(neighbours):
            what = f"add_neighbours generation {generation_id} item {i}"
            if not isinstance(n, Neighbour):
                raise StoreError(f"{what}: expected a Neighbour, got {type(n).__name__}")
            rank = check_int(n.rank, f"{what} rank")
            if rank in ranks:
                raise StoreError(f"{what}: expected unique ranks, got rank {rank} twice")
            ranks.add(rank)
            rows.append((generation_id, rank, check_int(n.train_image_id, f"{what} train_image_id"),
                         optional_float(n.similarity, f"{what} similarity"),
                         optional_float(n.rmse, f"{what} rmse"),
                         optional_float(n.masked_rmse, f"{what} masked_rmse"),
                         None if n.mask_id is None else check_int(n.mask_id, f"{what} mask_id")))
        run_id = check_int(run_id, "add_neighbours run_id")
        with self.transaction() as conn:
            require_row(conn, "generations", generation_id, "add_neighbours")
            if run_id:
                require_row(conn, "runs", run_id, "add_neighbours")
            for r in rows:
                require_row(conn, "training_images", r[2], f"add_neighbours generation {generation_id} rank {r[1]}")
                if r[6] is not None:
                    require_row(conn, "masks", r[6], f"add_neighbours generation {generation_id} rank {r[1]}")
            with integrity(f"add_neighbours generation {generation_id}"):
                conn.executemany(
                    "INSERT INTO neighbours (generation_id, run_id, rank, train_image_id, similarity, rmse, masked_rmse, "
                    "mask_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(r[0], run_id, *r[1:]) for r in rows])

    def neighbours(self, generation_id: int) -> list[Neighbour]:
        """The generation's current neighbours (its newest retrieval's), by rank."""
        with self.snapshot() as conn:
            rows = conn.execute("SELECT rank, train_image_id, similarity, rmse, masked_rmse, mask_id FROM neighbours n "
                                f"WHERE generation_id = ? AND {CURRENT_NEIGHBOURS} ORDER BY rank",
                                (generation_id,)).fetchall()
        return [Neighbour(*r) for r in rows]

    def neighbour_run(self, generation_id: int) -> Optional[int]:
        """The retrieve run of the generation's current neighbours (None: none yet)."""
        with self.snapshot() as conn:
            row = conn.execute("SELECT max(run_id) FROM neighbours WHERE generation_id = ?", (generation_id,)).fetchone()
        return None if row[0] is None else int(row[0])

    # -- auto labels -------------------------------------------------------------------------------
    def add_auto_label(self, caption_id: int, run_id: int, label: str,
                       distances: Mapping[str, Any], flags: Sequence[str] = ()) -> int:
        """A proposal from the labelling stage; the newest run's proposal is the caption's auto label."""
        if label not in REFERENCE_LABELS:
            raise StoreError(f"add_auto_label label: expected one of {', '.join(REFERENCE_LABELS)}, got {label!r}")
        if isinstance(flags, str) or not all(isinstance(f, str) and f for f in flags):
            raise StoreError(f"add_auto_label flags: expected a list of non-empty strings, got {flags!r}")
        distances_json = json_or_none(distances, "add_auto_label distances") or "{}"
        flags_json = canonical_json(sorted(set(flags)))
        with self.transaction() as conn:
            require_row(conn, "captions", caption_id, "add_auto_label")
            require_row(conn, "runs", run_id, "add_auto_label")
            with integrity(f"add_auto_label caption {caption_id} run {run_id}"):
                cur = conn.execute(
                    "INSERT INTO auto_labels (caption_id, run_id, label, distances, flags, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (caption_id, run_id, label, distances_json, flags_json, utc_now()))
            return int(cur.lastrowid)

    def auto_labels(self, caption_id: int) -> list[AutoLabel]:
        with self.snapshot() as conn:
            rows = conn.execute("SELECT id, caption_id, run_id, label, distances, flags, created_at "
                                "FROM auto_labels WHERE caption_id = ? ORDER BY run_id", (caption_id,)).fetchall()
        return [AutoLabel(r[0], r[1], r[2], r[3], load_json(r[4], {}), tuple(load_json(r[5], [])), r[6])
                for r in rows]

    def auto_labelled_among(self, run_id: int, caption_ids: Sequence[int]) -> set[int]:
        """Those of ``caption_ids`` that got an automatic label in this run (by index)."""
        return self._holding("SELECT 1 FROM auto_labels WHERE run_id = ? AND caption_id = ?", caption_ids,
                             lambda c: (run_id, c))

    def neighboured_among(self, run_id: int, generation_ids: Sequence[int]) -> set[int]:
        """Those of ``generation_ids`` that hold neighbours from this retrieve run (by index)."""
        return self._holding("SELECT 1 FROM neighbours WHERE generation_id = ? AND run_id = ? LIMIT 1",
                             generation_ids, lambda g: (g, run_id))

    def auto_labelled_ids(self, run_id: int) -> set[int]:
        """Captions that got an automatic label in this run."""
        with self.snapshot() as conn:
            return {int(r[0]) for r in conn.execute("SELECT caption_id FROM auto_labels WHERE run_id = ?", (run_id,))}

    def auto_label_states(self) -> list[AutoLabelState]:
        """Every caption's latest automatic label and flags, by caption id."""
        with self.snapshot() as conn:
            rows = conn.execute("SELECT caption_id, auto_label, flags FROM caption_state "
                                "WHERE auto_label IS NOT NULL ORDER BY caption_id").fetchall()
        return [AutoLabelState(int(c), lab, tuple(load_json(fl, []))) for c, lab, fl in rows]

    def remove_unreferenced_images(self, shas: Sequence[str]) -> int:
        """Delete image files among ``shas`` that no training image, generation or mask names."""
        removed = 0
        with self.snapshot() as conn:
            for sha in dict.fromkeys(shas):
                used = conn.execute(
                    "SELECT EXISTS (SELECT 1 FROM training_images WHERE sha256 = ?) "
                    "OR EXISTS (SELECT 1 FROM generations WHERE image_sha = ?) "
                    "OR EXISTS (SELECT 1 FROM masks WHERE image_sha = ?)", (sha, sha, sha)).fetchone()[0]
                if not used:
                    self.images.remove(check_sha(sha))
                    removed += 1
        return removed
