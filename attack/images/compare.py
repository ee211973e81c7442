"""A store's images at the compare size (256x256 Lanczos) for the distances of attack.images.metrics,
as uint8 arrays in a bounded LRU; no torch (attack.stages.retrieve.CompareImages adds tensors)."""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from store import Store


class ComparePixels:
    """Images by sha256 as read-only uint8 [256,256,3] arrays (the store caches the resize on
    disk; this keeps the most recent max_items in memory)."""

    def __init__(self, store: Store, max_items: int = 2048):
        self.store, self.max_items = store, max_items
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def pixels(self, sha: str) -> np.ndarray:
        hit = self._cache.get(sha)
        if hit is None:
            hit = self.store.compare_pixels(sha)
            hit.flags.writeable = False      # shared by every caller: nobody may change it
            self._cache[sha] = hit
            if len(self._cache) > self.max_items:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(sha)
        return hit
