"""Which of a store's captions a stage works on (no torch: `label --captions` uses it too)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from attack.errors import ScoreInputError
from store import Store, StoreError


@dataclass(frozen=True)
class Selection:
    """Captions to work on, as store ids and texts, in a stable order."""
    ids: tuple[int, ...]
    texts: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.ids)


def select_captions(store: Store, texts: Sequence[str] | None = None) -> Selection:
    """The store's captions in id order, or `texts` (first occurrence order, duplicates merged)
    which must all be in the store already."""
    if texts is None:
        rows = [(c.id, c.text) for c in store.caption_refs()]
    else:
        unique = list(dict.fromkeys(texts))
        found = store.caption_ids(unique)
        missing = [t for t, i in zip(unique, found) if i is None]
        if missing:
            raise StoreError(f"{store.path}: expected captions already in the store (run `python -m attack "
                             f"ingest` first), got {len(missing)} unknown, e.g. {missing[0]!r}")
        rows = list(zip(found, unique))
    if not rows:
        raise ScoreInputError(f"{store.path}: expected at least one caption to work on, got none")
    return Selection(tuple(r[0] for r in rows), tuple(r[1] for r in rows))
