"""Put the demo world into a store: its captions (with the planted truth as reference labels,
for benchmarks only) and its training images, in one transaction. Idempotent."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from attack.demo.world import World, build_world
from store import CaptionRow, Store

# planted kind -> the reference label a published list would carry
REFERENCE = {"exact": "MV", "template": "TV", "retrieval": "RV", "texture": "N", "unique": "N"}
SOURCE = "demo-world"


@dataclass(frozen=True)
class DemoIngest:
    captions: int
    training_images: int
    already_present: bool


def ingest_world(store: Store, world: World | None = None) -> DemoIngest:
    """Add the world's attack captions and every training pair; a second call adds nothing."""
    world = world or build_world(0)
    existing = store.caption_count(source=SOURCE)
    if existing:
        return DemoIngest(existing, store.training_set_version().count, True)
    shas = [store.put_image(im) for im in world.images]  # content-addressed: safe before the transaction
    attack_kind = {a.caption: a.kind for a in world.attack}
    # The training pairs' captions (attack captions carry their planted reference label); one
    # training image per distinct (image, caption) pair, however many copies the world holds.
    copies = Counter(r.caption for r in world.rows)
    rows, seen = [], set()
    for r in world.rows:
        if r.caption in seen:
            continue
        seen.add(r.caption)
        kind = attack_kind.get(r.caption)
        dup = copies[r.caption] if copies[r.caption] > 1 else None
        rows.append(CaptionRow(text=r.caption, dup_count=dup, source=SOURCE,
                               reference_label=REFERENCE[kind] if kind else None,
                               extra={"planted": r.kind, "group": r.group, "attack": kind is not None}))
    pairs = sorted({(r.image_index, r.caption) for r in world.rows})
    with store.transaction():
        ids = store.add_captions(rows)
        cid = dict(zip((r.text for r in rows), ids))
        for k, caption in pairs:
            store.add_training_image(shas[k], caption_id=cid[caption], path_or_url=f"demo://{k:05d}.png",
                                     meta={"image_index": k})
    return DemoIngest(len(rows), len(pairs), False)
