"""Pure view functions: store data in, display-ready values out (tests call these directly)."""
from __future__ import annotations

from store import Store


def store_summary(store: Store) -> dict:
    """Counts per table and per current human label, for the overview tab."""
    return store.info()


def caption_rows(store: Store, text: str, limit: int = 50) -> list[list]:
    """Full-text caption search as table rows [id, caption, url]. Captions are untrusted web text:
    they go to a plain-text ("str") table column, never to a markdown or HTML one."""
    text = (text or "").strip()
    if not text:
        return []
    return [[h.caption_id, h.text, h.url or ""] for h in store.search(text, limit)]
