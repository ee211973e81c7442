"""What every view refuses: ViewError (a StoreError the app shows as it is) and an empty reviewer name."""
from __future__ import annotations

from typing import Optional

from store import (
    StoreError,
)


class ViewError(StoreError):
    """Bad input to a view (an unknown filter value, a missing candidate)."""


# -- actions ----------------------------------------------------------------------------------
def check_reviewer(name: Optional[str]) -> str:
    name = (name or "").strip()
    if not name:
        raise ViewError("reviewer: expected a name (type it in the Reviewer field), got none")
    return name
