"""The Store: one folder holding store.db (SQLite) and images/ (content-addressed PNG).

This class owns the connection, the lock, transactions and the image files. The table logic is
its methods directly: each table module (runs.py, catalog.py, evidence.py, masks.py, labels.py,
reviews.py, gold.py, stats.py, queries.py, export.py) defines one class of methods that Store inherits,
so callers only ever need ``Store`` and no method is a hand-written forward.
"""
from __future__ import annotations

import errno
import os
import random
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Union

import numpy as np
import sqlite_utils
from PIL import Image

from .catalog import Catalog
from .compares import Compares
from .db import DEFAULT_BUSY_TIMEOUT_MS, check_readable, connect, migrate
from .errors import ReadOnlyStoreError, SchemaError, StoreError
from .evidence import Evidence
from .export import Exports
from .gold import Gold
from .images import PNG_COMPRESS_LEVEL, ImageFiles
from .labels import Labels
from .masks import Masks
from .model_labels import ModelLabels
from .queries import Queries
from .reviews import Reviews
from .runs import Runs
from .stats import Stats

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


def _png_level(conn: sqlite3.Connection) -> int:
    """The zlib level this store's images are written at (schema.V11); 6 for a store not yet migrated."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'png_compress_level'").fetchone()
    except sqlite3.OperationalError:     # a read-only store older than the meta table's use
        return PNG_COMPRESS_LEVEL
    return int(row[0]) if row else PNG_COMPRESS_LEVEL


class Store(Runs, Catalog, Evidence, Masks, Labels, Reviews, Gold, Stats, Queries, Exports, Compares, ModelLabels):
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
        self.images = ImageFiles(path / IMAGES_DIR, png_level=_png_level(conn))
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
                    self._disk_full(e)
                    raise
                self._depth = 0
                try:
                    self.conn.execute("COMMIT")
                except BaseException as e:
                    if self.conn.in_transaction:
                        self.conn.execute("ROLLBACK")
                    self._disk_full(e)
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

    def _disk_full(self, e: BaseException) -> None:
        """SQLite's "database or disk is full" names no file: raise it as the OSError it is, naming the store."""
        if isinstance(e, sqlite3.OperationalError) and "disk is full" in str(e):
            raise OSError(errno.ENOSPC, str(e), str(self.path / DB_NAME)) from e

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

    def put_image(self, img: Union[Image.Image, np.ndarray], compare_view: bool = False) -> str:
        """Store the image (PNG, named by its sha256); compare_view: also cache its compare view
        now, from the pixels in hand (ingest and generation: retrieval then decodes nothing again)."""
        self._writable()
        return self.images.put_image(img, compare_view=compare_view)

    def put_image_tracked(self, img: Union[Image.Image, np.ndarray], created: list, compare_view: bool = False) -> str:
        """put_image, appending the sha to ``created`` before it writes a new file (see
        remove_unreferenced_images)."""
        self._writable()
        return self.images.put_image(img, created, compare_view)

    def put_mask(self, mask: Union[Image.Image, np.ndarray]) -> str:
        self._writable()
        return self.images.put_mask(mask)

    def image_path(self, sha: str) -> Path:
        return self.images.path(sha)

    def load_image(self, sha: str) -> Image.Image:
        return self.images.load_image(sha)

    def image_bytes(self, sha: str) -> bytes:
        """The stored file's bytes, checked against its name (MissingImageError, DamagedImageError)."""
        return self.images.verified_bytes(sha)

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

    # -- backups and meta -----------------------------------------------------------------------
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

    def digest_cache(self) -> "DigestCache":
        """Weight-file digests kept in the store (meta rows), keyed by path, size, mtime and inode,
        so a model's whole-content fingerprint reads an unchanged file once per store."""
        return DigestCache(self)


def open_for_export(path: Union[str, Path]) -> Store:
    """Writable when the user may write the store (the export is recorded in it), else read-only."""
    try:
        return Store.open(path, create=False)
    except ReadOnlyStoreError:
        return Store.open(path, readonly=True)


def copy_store(src: Union[str, Path], dst: Union[str, Path]) -> Path:
    """A consistent copy of the store folder src in the new folder dst, src never written: SQLite's
    online backup of the database, then the image files (never rewritten, so a copy taken while
    others write is whole). A store of an older schema cannot be read without migrating it: its
    database files are copied as they are, and it is migrated on the copy when the copy is opened."""
    src, dst = Path(src), Path(dst)
    if not (src / DB_NAME).exists():
        raise StoreError(f"copy: expected a store folder with {DB_NAME}, got {src}")
    if dst.exists():
        raise StoreError(f"copy: expected a new folder, got an existing {dst}")
    dst.mkdir(parents=True)
    try:
        with Store.open(src, create=False, readonly=True) as s:
            s.backup_to(dst / DB_NAME)
    except SchemaError:
        for name in (DB_NAME, f"{DB_NAME}-wal"):
            if (src / name).exists():
                shutil.copy2(src / name, dst / name)
    if (src / "images").is_dir():
        shutil.copytree(src / "images", dst / "images", dirs_exist_ok=True)
    return dst
