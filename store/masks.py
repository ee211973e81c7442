"""Template masks of training images: versioned, auto or edited, each a binary PNG of the image's size."""
from __future__ import annotations

import sqlite3
from typing import Any, Mapping, Optional

import numpy as np

from .canon import load_json, optional_float
from .checks import json_or_none, require_row
from .db import utc_now
from .errors import MaskError, NotFoundError, StoreError
from .evidence import CURRENT_NEIGHBOURS
from .images import check_sha
from .records import (
    Mask,
)

MASK_SOURCES = ("auto", "edited")


# -- masks ---------------------------------------------------------------------------------
_MASK_COLS = "id, train_image_id, version, image_sha, source, author, parent_id, created_at, meta"


def _mask(row: tuple) -> Mask:
    return Mask(*row[:8], load_json(row[8], {}))


class Masks:
    """Template mask versions of training images. Methods of Store (store/store.py), which holds the connection."""

    def _image_size(self, sha: str) -> tuple[int, int]:
        from PIL import Image
        with Image.open(self.images.require(sha)) as im:  # reads the header only
            return im.size

    def _check_mask_size(self, conn: sqlite3.Connection, train_image_id: int, size: tuple[int, int]) -> None:
        """A mask covers its training image pixel for pixel: same width and height."""
        require_row(conn, "training_images", train_image_id, "add_mask")
        (train_sha,) = conn.execute("SELECT sha256 FROM training_images WHERE id = ?", (train_image_id,)).fetchone()
        want = self._image_size(train_sha)
        if tuple(size) != want:
            raise MaskError(f"mask for training image {train_image_id}: expected {want[0]}x{want[1]} "
                            f"(the training image's size), got {size[0]}x{size[1]}")

    def _check_binary_mask(self, sha: str) -> None:
        from PIL import Image
        with Image.open(self.images.require(sha)) as im:
            arr = np.asarray(im.convert("RGB"))
        if not (np.all(arr[:, :, 0] == arr[:, :, 1]) and np.all(arr[:, :, 1] == arr[:, :, 2])):
            raise StoreError(f"add_mask image {sha}: expected a grey 0/255 mask, got a colour image")
        values = np.unique(arr[:, :, 0])
        if not set(values.tolist()) <= {0, 255}:
            raise StoreError(f"add_mask image {sha}: expected only values 0 and 255, got {values[:8].tolist()}")

    def add_mask(self, train_image_id: int, image_sha: str, source: str = "auto",
                 author: Optional[str] = None, parent_id: Optional[int] = None,
                 meta: Optional[Mapping[str, Any]] = None) -> int:
        """Save a new mask version (previous + 1); an edit's parent defaults to the current mask."""
        if source not in MASK_SOURCES:
            raise StoreError(f"add_mask source: expected one of {', '.join(MASK_SOURCES)}, got {source!r}")
        if author is not None and not isinstance(author, str):
            raise StoreError(f"add_mask author: expected a string or None, got {author!r}")
        self._check_binary_mask(check_sha(image_sha))
        with self.transaction() as conn:
            self._check_mask_size(conn, train_image_id, self._image_size(image_sha))
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
                (train_image_id, version, image_sha, source, author, parent_id, utc_now(), json_or_none(meta, "add_mask meta")))
            return int(cur.lastrowid)

    def save_mask(self, train_image_id: int, mask: Any, source: str = "auto",
                  author: Optional[str] = None, parent_id: Optional[int] = None,
                  meta: Optional[Mapping[str, Any]] = None) -> int:
        """Check a mask array / image against its training image, then write its file and a new
        version; a wrong size raises MaskError before anything (file included) is written."""
        from .images import to_mask_array
        arr = to_mask_array(mask)
        with self.snapshot() as conn:
            self._check_mask_size(conn, train_image_id, (arr.shape[1], arr.shape[0]))
        return self.add_mask(train_image_id, self.put_mask(arr), source, author, parent_id, meta)

    def set_neighbour_mask(self, generation_id: int, rank: int, masked_rmse: Optional[float],
                           mask_id: Optional[int]) -> None:
        """Refresh a neighbour's masked distance after its training image got a new mask version."""
        value = optional_float(masked_rmse, f"set_neighbour_mask generation {generation_id} rank {rank} masked_rmse")
        with self.transaction() as conn:
            if mask_id is not None:
                require_row(conn, "masks", mask_id, f"set_neighbour_mask generation {generation_id} rank {rank}")
            cur = conn.execute("UPDATE neighbours AS n SET masked_rmse = ?, mask_id = ? WHERE generation_id = ? AND rank = ? "
                               f"AND {CURRENT_NEIGHBOURS}", (value, mask_id, generation_id, rank))
            if cur.rowcount != 1:
                raise NotFoundError(f"set_neighbour_mask: expected an existing neighbour (generation {generation_id}, "
                                    f"rank {rank}), got none")

    def current_mask(self, train_image_id: int) -> Optional[Mask]:
        with self.snapshot() as conn:
            row = conn.execute(f"SELECT {_MASK_COLS} FROM masks WHERE train_image_id = ? "
                               "ORDER BY version DESC LIMIT 1", (train_image_id,)).fetchone()
        return None if row is None else _mask(row)

    def mask_versions(self, train_image_id: int) -> list[Mask]:
        with self.snapshot() as conn:
            rows = conn.execute(f"SELECT {_MASK_COLS} FROM masks WHERE train_image_id = ? ORDER BY version",
                                (train_image_id,)).fetchall()
        return [_mask(r) for r in rows]

    def get_mask(self, mask_id: int) -> Mask:
        with self.snapshot() as conn:
            row = conn.execute(f"SELECT {_MASK_COLS} FROM masks WHERE id = ?", (mask_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"get_mask: expected an existing mask id, got {mask_id!r}")
        return _mask(row)
