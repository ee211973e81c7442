"""Canonical JSON: the one way dicts are written to the database and exports."""
from __future__ import annotations

import json
import math
from typing import Any, Optional

from .errors import StoreError


def unicode_text(value: str, what: str) -> str:
    """A string SQLite can store as UTF-8: no lone surrogates (what a JSON "\\ud800" escape
    or an undecodable file name leaves in Python text)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise StoreError(f"{what}: expected valid Unicode text, got a lone surrogate {value[e.start]!r} "
                         f"at character {e.start + 1}") from None
    return value


def canonical_json(obj: Any, what: str = "value") -> str:
    """Sorted keys, no spaces, UTF-8 text, no NaN: equal data gives equal text."""
    try:
        text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"{what}: expected JSON-serialisable data without NaN/inf, got {e}") from e
    except RecursionError:
        raise StoreError(f"{what}: expected JSON data nested a reasonable depth, got deeper") from None
    return unicode_text(text, what)


def load_json(text: Optional[str], default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def finite_float(value: Any, what: str) -> float:
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise StoreError(f"{what}: expected a number, got {value!r}") from None
    if not math.isfinite(f):
        raise StoreError(f"{what}: expected a finite number, got {value!r}")
    return f


def optional_float(value: Any, what: str) -> Optional[float]:
    return None if value is None else finite_float(value, what)
