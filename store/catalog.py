"""Captions and training images: what an audit attacks and what it compares with."""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Optional, Sequence

from .canon import load_json
from .checks import check_int, check_optional_text, check_text, integrity, json_or_none, require_row
from .errors import NotFoundError, StoreError
from .images import check_sha
from .records import (
    Caption,
    CaptionRef,
    CaptionRow,
    TrainingImage,
    TrainingSetVersion,
)
from .schema import REFERENCE_LABELS

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
    check_text(row.text, f"{what} text")
    check_optional_text(row.url, f"{what} url")
    check_optional_text(row.source, f"{what} source")
    dup = None if row.dup_count is None else check_int(row.dup_count, f"{what} dup_count")
    if row.reference_label is not None and row.reference_label not in REFERENCE_LABELS:
        raise StoreError(f"{what} reference_label: expected one of {', '.join(REFERENCE_LABELS)} "
                         f"or None, got {row.reference_label!r}")
    return (row.text, row.url, dup, row.reference_label, row.source, json_or_none(row.extra, f"{what} extra"))


def _training_image(row: tuple) -> TrainingImage:
    return TrainingImage(row[0], row[1], row[2], row[3], load_json(row[4], {}))


class Catalog:
    """Captions and training images. Methods of Store (store/store.py), which holds the connection."""

    def add_captions(self, rows: Iterable[CaptionRow]) -> list[int]:
        """Insert or merge captions (identical text: count += 1, fill missing fields).

        Fields already set on a caption win over later ones, except dup_count which
        keeps the maximum. Returns the caption id of each row, in order.
        """
        params = [_caption_params(i, row) for i, row in enumerate(rows)]
        ids = []
        with self.transaction() as conn, integrity("add_captions"):
            # new rows get ids above the current max; index them in one statement (see schema V2)
            max_before = conn.execute("SELECT coalesce(max(id), 0) FROM captions").fetchone()[0]
            conn.execute("INSERT INTO meta (key, value) VALUES ('fts_bulk_insert', '1')")
            for p in params:
                ids.append(conn.execute(_MERGE_CAPTION, p).fetchone()[0])
            conn.execute("INSERT INTO captions_fts (rowid, text) SELECT id, text FROM captions WHERE id > ?",
                         (max_before,))
            conn.execute("DELETE FROM meta WHERE key = 'fts_bulk_insert'")
        return ids

    def caption_id(self, text: str) -> Optional[int]:
        with self.snapshot() as conn:
            row = conn.execute("SELECT id FROM captions WHERE text = ?", (text,)).fetchone()
        return None if row is None else int(row[0])

    def caption_ids(self, texts: Sequence[str]) -> list[Optional[int]]:
        """The id of each caption text (None where the store has no such caption), in one snapshot."""
        with self.snapshot() as conn:
            out = []
            for t in texts:
                row = conn.execute("SELECT id FROM captions WHERE text = ?", (t,)).fetchone()
                out.append(None if row is None else int(row[0]))
        return out

    def caption_refs(self) -> list[CaptionRef]:
        """Every caption's id and text, by id."""
        with self.snapshot() as conn:
            return [CaptionRef(int(i), t) for i, t in conn.execute("SELECT id, text FROM captions ORDER BY id")]

    def caption_count(self, source: Optional[str] = None) -> int:
        """Captions in the store (of one source, when given)."""
        with self.snapshot() as conn:
            if source is None:
                return int(conn.execute("SELECT count(*) FROM captions").fetchone()[0])
            return int(conn.execute("SELECT count(*) FROM captions WHERE source = ?", (source,)).fetchone()[0])

    def get_caption(self, caption_id: int) -> Caption:
        with self.snapshot() as conn:
            row = conn.execute("SELECT id, text, url, dup_count, count, reference_label, source, extra "
                               "FROM captions WHERE id = ?", (caption_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"get_caption: expected an existing caption id, got {caption_id!r}")
        return Caption(*row[:7], load_json(row[7], {}))

    # -- training images -------------------------------------------------------------------
    def add_training_image(self, sha: str, caption_id: Optional[int] = None,
                           path_or_url: Optional[str] = None,
                           meta: Optional[Mapping[str, Any]] = None) -> int:
        """Idempotent: the same (sha, caption, path) returns the existing id."""
        self.images.require(check_sha(sha))
        check_optional_text(path_or_url, "add_training_image path_or_url")
        meta_json = json_or_none(meta, "add_training_image meta")
        with self.transaction() as conn:
            if caption_id is not None:
                require_row(conn, "captions", caption_id, "add_training_image")
            row = conn.execute(
                "SELECT id FROM training_images WHERE sha256 = ? AND caption_id IS ? AND path_or_url IS ?",
                (sha, caption_id, path_or_url)).fetchone()
            if row is not None:
                return int(row[0])
            cur = conn.execute(
                "INSERT INTO training_images (sha256, caption_id, path_or_url, meta) VALUES (?, ?, ?, ?)",
                (sha, caption_id, path_or_url, meta_json))
            return int(cur.lastrowid)

    def get_training_image(self, train_image_id: int) -> TrainingImage:
        with self.snapshot() as conn:
            row = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images "
                               "WHERE id = ?", (train_image_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"get_training_image: expected an existing training image id, got {train_image_id!r}")
        return _training_image(row)

    def training_set_version(self) -> TrainingSetVersion:
        with self.snapshot() as conn:
            n, hi = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM training_images").fetchone()
        return TrainingSetVersion(int(n), int(hi))

    def distinct_training_images(self) -> list[tuple[int, str]]:
        """(lowest training image id, sha256) per distinct image, by id."""
        with self.snapshot() as conn:
            rows = conn.execute("SELECT min(id), sha256 FROM training_images GROUP BY sha256 ORDER BY 1").fetchall()
        return [(int(i), s) for i, s in rows]

    def training_image_at(self, path_or_url: str) -> Optional[TrainingImage]:
        """The first training image recorded with this path or URL, if any."""
        with self.snapshot() as conn:
            row = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images "
                               "WHERE path_or_url = ? ORDER BY id LIMIT 1", (path_or_url,)).fetchone()
        return None if row is None else _training_image(row)

    def masked_training_images(self) -> list[TrainingImage]:
        """Training images that have at least one mask version, by id."""
        with self.snapshot() as conn:
            rows = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images t "
                                "WHERE EXISTS (SELECT 1 FROM masks m WHERE m.train_image_id = t.id) ORDER BY id").fetchall()
        return [_training_image(r) for r in rows]

    def training_images_for(self, caption_id: int) -> list[TrainingImage]:
        with self.snapshot() as conn:
            rows = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images "
                                "WHERE caption_id = ? ORDER BY id", (caption_id,)).fetchall()
        return [_training_image(r) for r in rows]
