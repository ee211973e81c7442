"""The demo world: planted groups as the issue specifies, and the committed truth matches the code."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest

from attack.demo.world import RESOLUTION, build_world

DEMO = Path(__file__).resolve().parents[1] / "attack" / "demo"


@pytest.fixture(scope="module")
def world():
    return build_world(0)


def _groups(world, kind):
    g = defaultdict(list)
    for r in world.rows:
        if r.kind == kind:
            g[r.group].append(r)
    return g


def test_images_are_rgb_at_the_demo_resolution(world):
    assert len(world.rows) >= 2000
    assert RESOLUTION >= 32
    for im in world.images:
        assert im.shape == (RESOLUTION, RESOLUTION, 3) and im.dtype == np.uint8


def test_exact_duplicates_one_image_one_caption_many_copies(world):
    groups = _groups(world, "exact")
    assert len(groups) >= 12
    for rows in groups.values():
        assert 20 <= len(rows) <= 200
        assert len({r.caption for r in rows}) == 1 and len({r.image_index for r in rows}) == 1
    assert len({rows[0].image_index for rows in groups.values()}) == len(groups)


def test_template_families_vary_one_region_and_the_caption_words(world):
    groups = _groups(world, "template")
    assert len(groups) >= 6
    for name, rows in groups.items():
        images = sorted({r.image_index for r in rows})
        captions = {r.caption for r in rows}
        assert len(images) >= 10 and len(captions) == len(images)
        keep = world.masks[name]
        stack = np.stack([world.images[i] for i in images]).astype(int)
        # the kept region is (nearly) identical across variants, the varying region is not
        spread = stack.max(0) - stack.min(0)
        assert spread[keep].mean() < 3, name
        assert spread[~keep].mean() > 40, name
        assert 0.2 < keep.mean() < 0.95, name
        # captions share all words but the variant's
        words = [set(c.lower().split()) for c in captions]
        common = set.intersection(*words)
        assert all(len(w - common) <= 2 for w in words), name


def test_retrieval_verbatims_duplicate_one_image_under_other_captions(world):
    groups = _groups(world, "retrieval")
    assert len(groups) >= 6
    attack = [a for a in world.attack if a.kind == "retrieval"]
    for name, rows in groups.items():
        assert len({r.image_index for r in rows}) == 1 and len({r.caption for r in rows}) == len(rows) >= 10
        mine = [a for a in attack if a.group == name]
        assert mine, name
        for a in mine:
            assert a.caption not in {r.caption for r in rows}  # the attacker's caption is not the image's
            assert a.own_image != rows[0].image_index and a.target_images == (rows[0].image_index,)


def test_textures_and_backgrounds_are_duplicated(world):
    groups = _groups(world, "texture")
    assert len(groups) >= 6
    assert all(len(rows) >= 10 for rows in groups.values())
    flat = [world.images[rows[0].image_index] for rows in groups.values()]
    assert sum(float(im.std()) < 10 for im in flat) >= 3  # plain or near-uniform backgrounds


def test_uniques_are_the_bulk_with_unique_captions(world):
    uniques = [r for r in world.rows if r.kind == "unique"]
    assert len(uniques) >= 1000
    assert len({r.caption.lower() for r in uniques}) == len(uniques)
    assert len({r.image_index for r in uniques}) == len(uniques)
    all_captions = Counter(r.caption.lower() for r in world.rows)
    assert all(all_captions[r.caption.lower()] == 1 for r in uniques)


def test_attack_list_covers_every_group_and_500_uniques(world):
    kinds = Counter(a.kind for a in world.attack)
    assert kinds["unique"] >= 500
    planted = {r.caption for r in world.rows if r.kind in ("exact", "template", "texture")}
    assert planted <= {a.caption for a in world.attack}
    assert {r.group for r in world.rows if r.group} <= {a.group for a in world.attack}


def test_same_seed_same_image_hashes_other_seed_other_images(world):
    import hashlib

    def hashes(w):
        return [hashlib.sha256(np.ascontiguousarray(im).tobytes()).hexdigest() for im in w.images]

    again = build_world(0)
    assert hashes(again) == hashes(world) and [r.caption for r in again.rows] == [r.caption for r in world.rows]
    assert again.fingerprint() == world.fingerprint() != build_world(1).fingerprint()


def test_committed_attack_list_and_truth_match_the_code(world):
    listed = (DEMO / "attack_list.txt").read_text(encoding="utf-8").splitlines()
    assert listed == [a.caption for a in world.attack]
    truth = json.loads((DEMO / "truth.json").read_text(encoding="utf-8"))
    assert truth["fingerprint"] == world.fingerprint()
    assert [a["caption"] for a in truth["attack"]] == listed
    assert {g["group"] for g in truth["groups"]} == {r.group for r in world.rows if r.group}


def test_memorization_bench_scores_a_copy_as_a_copy_and_a_stranger_as_not(world):
    from attack.bench.memorization import best_distance
    from attack.images.metrics import mask_to_compare, to_compare

    refs = to_compare(np.stack(world.images))
    masks = {g: mask_to_compare(m) for g, m in world.masks.items()}
    exact = next(a for a in world.attack if a.kind == "exact")
    other = next(a for a in world.attack if a.kind == "unique")
    assert best_distance(refs[[other.own_image, exact.own_image]], exact, refs, masks) == pytest.approx(0, abs=1e-6)
    assert best_distance(refs[[other.own_image]], exact, refs, masks) > 0.12
    # a template caption is copied by any variant of its family: the varying region is masked out
    fam = [a for a in world.attack if a.kind == "template" and a.group == "template-carpet"]
    variant = next(k for k in fam[0].target_images if k != fam[0].own_image)
    assert best_distance(refs[[variant]], fam[0], refs, masks) < 0.03
    assert float((refs[variant] - refs[fam[0].own_image]).pow(2).mean().sqrt()) > 0.12
    retrieval = next(a for a in world.attack if a.kind == "retrieval")
    assert best_distance(refs[[retrieval.own_image]], retrieval, refs, masks) > 0.12
    assert best_distance(refs[list(retrieval.target_images)], retrieval, refs, masks) == pytest.approx(0, abs=1e-6)
