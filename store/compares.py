"""Compare runs (attack.compare): one row per caption attacked under both of a run's models."""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .canon import canonical_json
from .checks import check_int, require_row
from .errors import NotFoundError, StoreError

OUTCOMES = ("removed", "persisting", "new", "neither")


@dataclass(frozen=True)
class CompareRecord:
    """A stored compare row: the outcome and each model's side as written (dicts of plain values)."""
    run_id: int
    caption_id: int
    outcome: str
    a: dict
    b: dict


class Compares:
    """Compare rows. Methods of Store (store/store.py), which holds the connection."""

    def add_compare_rows(self, run_id: int,
                         rows: Sequence[tuple[int, str, Mapping[str, Any], Mapping[str, Any]]]) -> int:
        """Write (caption_id, outcome, side a, side b) rows of a compare run in one transaction."""
        values = []
        for i, row in enumerate(rows):
            try:
                cid, outcome, a, b = row
            except (TypeError, ValueError):
                raise StoreError(f"add_compare_rows item {i}: expected (caption_id, outcome, a, b), "
                                 f"got {row!r}") from None
            if outcome not in OUTCOMES:
                raise StoreError(f"add_compare_rows item {i}: expected an outcome among {', '.join(OUTCOMES)}, "
                                 f"got {outcome!r}")
            values.append((run_id, check_int(cid, f"add_compare_rows item {i} caption_id"), outcome,
                           canonical_json(dict(a)), canonical_json(dict(b))))
        with self.transaction() as conn:
            require_row(conn, "runs", run_id, "add_compare_rows")
            stage = conn.execute("SELECT stage FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
            if stage != "compare":
                raise StoreError(f"add_compare_rows: expected a compare run, got run {run_id} of stage {stage!r}")
            conn.executemany("INSERT INTO compare_rows (run_id, caption_id, outcome, a, b) VALUES (?, ?, ?, ?, ?) "
                             "ON CONFLICT DO UPDATE SET outcome = excluded.outcome, a = excluded.a, b = excluded.b",
                             values)
        return len(values)

    def compare_rows(self, run_id: int) -> list[CompareRecord]:
        """A compare run's rows, by caption id; NotFoundError for a run that is not a compare run."""
        with self.snapshot() as conn:
            row = conn.execute("SELECT stage FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] != "compare":
                got = "no such run" if row is None else f"a {row[0]} run"
                raise NotFoundError(f"expected a compare run id, got {run_id} ({got})")
            rows = conn.execute("SELECT caption_id, outcome, a, b FROM compare_rows WHERE run_id = ? "
                                "ORDER BY caption_id", (run_id,)).fetchall()
        return [CompareRecord(run_id, int(c), o, json.loads(a), json.loads(b)) for c, o, a, b in rows]
