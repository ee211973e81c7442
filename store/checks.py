"""Checks every write makes before SQL, so an error names the offending value, not a constraint."""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Optional

import numpy as np

from .canon import canonical_json, unicode_text
from .errors import NotFoundError, StoreError


@contextmanager
def integrity(what: str) -> Iterator[None]:
    """Turn a constraint failure into a StoreError that says what was being written."""
    try:
        yield
    except sqlite3.IntegrityError as e:
        raise StoreError(f"{what}: expected rows that satisfy the store's constraints, got {e}") from e


def require_row(conn: sqlite3.Connection, table: str, row_id: Any, what: str) -> None:
    if not isinstance(row_id, int) or isinstance(row_id, bool):
        raise StoreError(f"{what}: expected an integer {table} id, got {row_id!r}")
    if conn.execute(f"SELECT 1 FROM {table} WHERE id = ?", (row_id,)).fetchone() is None:
        raise NotFoundError(f"{what}: expected an existing {table} id, got {row_id}")


def check_text(value: Any, what: str, allow_empty: bool = False) -> str:
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise StoreError(f"{what}: expected a non-empty string, got {value!r}")
    return unicode_text(value, what)


def check_optional_text(value: Any, what: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise StoreError(f"{what}: expected a string or None, got {value!r}")
    return unicode_text(value, what)


def check_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)):
        raise StoreError(f"{what}: expected an integer, got {value!r}")
    return int(value)


def json_or_none(meta: Optional[Mapping[str, Any]], what: str) -> Optional[str]:
    if meta is None:
        return None
    if not isinstance(meta, Mapping):
        raise StoreError(f"{what}: expected a mapping, got {type(meta).__name__}")
    return canonical_json(dict(meta), what)
