"""A store's images at the compare size (256x256 Lanczos) for the distances of attack.images.metrics,
as uint8 arrays in a bounded LRU; no torch (attack.stages.retrieve.CompareImages adds tensors)."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

import numpy as np

from store import Store

V = TypeVar("V")


class Lru(Generic[V]):
    """The most recently used max_items values by key, each made once by a callable on a miss."""

    def __init__(self, max_items: int):
        self.max_items = max_items
        self._items: OrderedDict[Hashable, V] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def get(self, key: Hashable, make: Callable[[], V]) -> V:
        hit = self._items.get(key)
        if hit is None:
            return self.put(key, make())
        self._items.move_to_end(key)
        return hit

    def put(self, key: Hashable, value: V) -> V:
        self._items[key] = value
        self._items.move_to_end(key)
        if len(self._items) > self.max_items:
            self._items.popitem(last=False)
        return value


class ComparePixels:
    """Images by sha256 as read-only uint8 [256,256,3] arrays (the store caches the resize on
    disk; this keeps the most recent max_items in memory)."""

    def __init__(self, store: Store, max_items: int = 2048):
        self.store, self.max_items = store, max_items
        self._cache: Lru[np.ndarray] = Lru(max_items)

    def pixels(self, sha: str) -> np.ndarray:
        return self._cache.get(sha, lambda: self._read(sha))

    def _read(self, sha: str) -> np.ndarray:
        arr = self.store.compare_pixels(sha)
        arr.flags.writeable = False      # shared by every caller: nobody may change it
        return arr
