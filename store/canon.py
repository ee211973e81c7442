"""Canonical JSON: the one way dicts are written to the database and exports."""
from __future__ import annotations

import json
import math
from typing import Any, Optional

from .errors import StoreError


def canonical_json(obj: Any, what: str = "value") -> str:
    """Sorted keys, no spaces, UTF-8 text, no NaN: equal data gives equal text."""
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as e:
        raise StoreError(f"{what}: expected JSON-serialisable data without NaN/inf, got {e}") from e


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
