"""Copies under a crop, a rescale or a mirror (attack.stages.align) and the labels, view and export
built on them: found on real photos, refused on unrelated pairs, each rule shown to matter."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import skimage.data
from PIL import Image

from attack.bench.labels import evaluate, run_world
from attack.bench.realworld import COUNTS, Case, RealWorld, _noisy, build_world, geometric_copy
from attack.stages.align import AlignError, AlignParams, align, fit_similarity, warp_onto
from attack.stages.labels import label_stage
from store import Store

DELTA = 0.12


def _photo(name: str, size: int = 256) -> np.ndarray:
    a = getattr(skimage.data, name)()
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    h, w = a.shape[:2]
    s = min(h, w)
    a = np.ascontiguousarray(a[(h - s) // 2:(h - s) // 2 + s, (w - s) // 2:(w - s) // 2 + s])
    return np.asarray(Image.fromarray(a.astype(np.uint8)).resize((size, size), Image.LANCZOS))


def _f(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / 255


CASES = [("crop", 0, 0.9 ** 0.5), ("crop", 1, 0.8 ** 0.5), ("crop", 2, 0.7 ** 0.5),
         ("rescale", 0, 1 / 0.8), ("rescale", 1, 1 / 0.9), ("mirror", 0, 1.0), ("mirror", 1, 0.85 ** 0.5)]


@pytest.mark.parametrize("kind,i,scale", CASES)
@pytest.mark.parametrize("name", ["astronaut", "coffee", "chelsea"])
def test_crops_rescales_and_mirrors_of_a_photo_are_found(name, kind, i, scale):
    train = _photo(name)
    gen = _noisy(geometric_copy(train, kind, i), np.random.default_rng(i))
    plain = float(np.sqrt(np.mean((_f(gen) - _f(train)) ** 2)))
    a = align(_f(gen), _f(train))
    assert plain > DELTA                                  # the paper's distance misses it
    assert a is not None and a.rmse <= DELTA and a.overlap >= 0.5, (plain, a)
    assert a.mirrored == (kind == "mirror")
    assert a.scale == pytest.approx(scale, rel=0.05)      # generation px -> training px


@pytest.mark.parametrize("pair", [("astronaut", "coffee"), ("chelsea", "rocket"), ("camera", "horse"),
                                  ("coffee", "astronaut"), ("moon", "clock")])
def test_unrelated_photos_give_no_evidence(pair):
    a = align(_f(_photo(pair[0])), _f(_photo(pair[1])))
    assert a is None or a.rmse > DELTA, a


def test_the_overlap_rule_refuses_a_small_crop_and_is_what_refuses_it():
    train = _photo("astronaut")
    h = int(256 * 0.6)                                     # 64% of the area cut away: 36% left
    gen = _f(np.asarray(Image.fromarray(np.ascontiguousarray(train[:h, 256 - h:])).resize((256, 256), Image.LANCZOS)))
    assert align(gen, _f(train)) is None
    loose = align(gen, _f(train), AlignParams(min_overlap=0.3))
    assert loose is not None and loose.overlap == pytest.approx(0.36, abs=0.05) and loose.rmse <= DELTA


def test_fit_similarity_recovers_a_known_transform_among_outliers():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 128, (60, 2))
    angle, s, t = 0.3, 0.8, np.array([12.0, -7.0])
    rot = s * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    dst = src @ rot.T + t
    dst[:25] = rng.uniform(0, 128, (25, 2))               # 25 of 60 matches are wrong
    m, inliers = fit_similarity(src, dst, residual=0.5)
    np.testing.assert_allclose(m[:2, :2], rot, atol=1e-6)
    np.testing.assert_allclose(m[:2, 2], t, atol=1e-5)
    assert inliers[25:].all() and not inliers[:25].any()


def test_warp_onto_puts_a_pixel_where_the_transform_says():
    gen = np.zeros((32, 32, 3))
    gen[4, 6] = 1.0                                        # (x, y) = (6, 4)
    m = np.array([[2.0, 0, 3], [0, 2.0, 1], [0, 0, 1]])    # -> (15, 9)
    warped, inside = warp_onto(gen, m, (32, 32))
    assert np.unravel_index(warped[..., 0].argmax(), (32, 32)) == (9, 15)
    assert inside[1:, 3:].all() and not inside[0, 0]            # the warped image starts at (3, 1)


def test_bad_shapes_are_refused():
    with pytest.raises(AlignError, match=r"expected two \[S,S,3\] images of one size"):
        align(np.zeros((64, 64, 3)), np.zeros((32, 32, 3)))


# -- the labels, the view and the export on a small realistic world ---------------------------------
@pytest.fixture(scope="module")
def geo(tmp_path_factory):
    counts = {k: 0 for k in COUNTS} | {"crop": 3, "rescale": 2, "mirror": 2, "unique": 3, "texture_other": 2,
                                        "exact": 1}
    world = build_world(tmp_path_factory.mktemp("geo") / "world", size=256, seed=5, counts=counts)
    store_dir = tmp_path_factory.mktemp("geo") / "store"
    run_world(world, store_dir)
    return world, store_dir


def test_labels_find_the_geometric_copies_on_aligned_evidence_only(geo):
    world, store_dir = geo
    with Store.open(store_dir, readonly=True) as s:
        out = evaluate(s, world)
        assert out["aligned_recall"] == 1.0 and out["aligned_false"] == 0, out
        for case in world.cases:
            a = s.auto_labels(s.caption_id(case.caption))[-1]
            assert a.label == case.expected, (case, a.distances)
            if case.kind in ("crop", "rescale", "mirror"):
                al = a.distances["aligned"]
                assert a.distances["evidence_kind"] == "aligned" and al["passed"] and al["overlap"] >= 0.5
                assert a.distances["mv"] > DELTA                  # the plain distance stays beside it
                assert al["mirrored"] == (case.kind == "mirror")
                assert len(al["transform"]) == 9 and al["aligned_rmse"] <= DELTA


def _one_case_world(root, train: np.ndarray, gens: list[np.ndarray], caption: str) -> RealWorld:
    """A world of one caption: its training image and a closed model's generations of it."""
    (root / "train").mkdir(parents=True)
    (root / "gen").mkdir()
    Image.fromarray(train).save(root / "train" / "t.png")
    (root / "train" / "metadata.jsonl").write_text(json.dumps({"file_name": "t.png", "caption": caption}) + "\n")
    rows = ["caption,seed,steps,path"]
    for seed, g in enumerate(gens):
        Image.fromarray(g).save(root / "gen" / f"g{seed}.png")
        rows.append(f"{caption},{seed},50,g{seed}.png")
    (root / "gen" / "mapping.csv").write_text("\n".join(rows) + "\n")
    (root / "captions.txt").write_text(caption + "\n")
    case = Case(caption, "texture_other", "N", None, None, "t.png")
    return RealWorld(root, 256, root / "train", root / "captions.txt", root / "gen", (case,))


def test_a_textured_training_image_gives_no_aligned_evidence(tmp_path):
    """Two overlapping crops of one grass photo align well; the texture flag keeps that from
    being called a copy (repeating content aligns anywhere)."""
    grass = np.stack([skimage.data.grass()] * 3, -1).astype(np.uint8)

    def crop(y, x):
        return np.asarray(Image.fromarray(np.ascontiguousarray(grass[y:y + 300, x:x + 300])).resize((256, 256)))

    world = _one_case_world(tmp_path / "w", crop(0, 0), [crop(40, 30), crop(40, 30)], "grass close-up")
    run_world(world, tmp_path / "store")
    with Store.open(tmp_path / "store", readonly=True) as s:
        a = s.auto_labels(s.caption_id("grass close-up"))[-1]
    al = a.distances["aligned"]
    assert al is not None and al["aligned_rmse"] <= DELTA and al["overlap"] >= 0.5    # it does align
    assert not al["passed"] and a.label == "N" and a.flags == ()


def test_without_alignment_the_papers_distances_miss_them(geo, tmp_path):
    world, store_dir = geo
    import shutil
    copy = tmp_path / "store"
    shutil.copytree(store_dir, copy)
    with Store.open(copy) as s:
        ids = [s.caption_id(c.caption) for c in world.cases if c.kind in ("crop", "rescale", "mirror")]
        rep = label_stage(s, caption_ids=ids, align_params=None)
        assert rep.labelled == len(ids) and rep.counts == {"N": len(ids)}
        # and switching it back on is new evidence: they are labelled again, as MV
        rep = label_stage(s, caption_ids=ids)
        assert rep.counts == {"MV": len(ids)}


def test_the_candidate_view_shows_the_aligned_pair(geo):
    from review.candidate import candidate_data
    from review.templates import candidate_html

    world, store_dir = geo
    with Store.open(store_dir, readonly=True) as s:
        mirror = s.caption_id(next(c.caption for c in world.cases if c.kind == "mirror"))
        d = candidate_data(s, mirror)
        html = candidate_html(d)
        plain = candidate_data(s, s.caption_id(next(c.caption for c in world.cases if c.kind == "exact")))
    assert d.aligned is not None and d.aligned.evidence["passed"]
    assert 'data-testid="aligned-pair"' in html and "mirrored" in html and "evidence for MV" in html
    # the strip's match is the aligned pair, its difference the aligned one, its distance the stored one
    assert d.match.kind == "aligned MV" and d.match.distance == d.aligned.evidence["aligned_rmse"]
    assert (d.match.heatmap == d.aligned.heatmap).all() and "aligned MV match" in html
    assert d.explanation[0].startswith("MV on aligned evidence: after a mirror, crop or rescale")
    # the warped generation lands on the training image: close to it where it covers it
    train = np.asarray(Image.open(d.aligned.train_picture.path).convert("RGB"), np.float32)
    assert d.aligned.warped.shape == train.shape
    assert np.sqrt(np.mean(((d.aligned.warped - train) / 255) ** 2)) < 0.2
    assert plain.aligned is None


def test_the_export_names_the_alignment_it_rests_on(geo, tmp_path):

    world, store_dir = geo
    with Store.open(store_dir, readonly=True) as s:
        rows, _ = s.collect_rows(auto=True)
        by_caption = {r["caption"]: r for r in rows}
    for case in world.cases:
        row = by_caption[case.caption]
        if case.kind in ("crop", "rescale", "mirror"):
            assert row["match_kind"] == "aligned" and row["match_distance"] <= DELTA
            assert row["alignment"]["mirrored"] == (case.kind == "mirror")
            assert row["train_path_or_url"].endswith(case.target)
        else:
            assert row["alignment"] is None
    json.dumps(rows)                                           # every row is plain JSON


def test_align_params_are_frozen_and_serialisable():
    p = AlignParams()
    assert json.loads(json.dumps(dataclasses.asdict(p)))["min_overlap"] == 0.5
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.size = 3  # type: ignore[misc]


def test_grid_orb_and_its_matches_are_scikit_images():
    """attack.images.orb replaces two loops of scikit-image's ORB and match_descriptors; every
    keypoint, descriptor and match must come out the same (photos, a drawing-like blocky image,
    noise, a plain image ORB finds nothing in, and their mirrors)."""
    from skimage.feature import ORB, match_descriptors

    from attack.images.orb import GridORB, cross_checked_matches
    from attack.stages.align import _grey

    rng = np.random.default_rng(0)
    blocks = np.kron(rng.integers(0, 256, (16, 16, 3)), np.ones((16, 16, 1))).astype(np.uint8)
    images = [_photo(n) for n in ("astronaut", "coffee", "camera", "moon")] + \
        [blocks, rng.integers(0, 256, (256, 256, 3), dtype=np.uint8), np.full((256, 256, 3), 90, np.uint8)]
    p = AlignParams()
    described = []
    for img in images:
        for grey in (_grey(_f(img), p.size), _grey(_f(img[:, ::-1]), p.size)):
            ours, theirs = (cls(n_keypoints=p.keypoints, fast_threshold=p.fast_threshold, n_scales=p.scales)
                            for cls in (GridORB, ORB))
            outcomes = []
            for orb in (ours, theirs):
                try:
                    orb.detect_and_extract(grey)
                    outcomes.append(None)
                except RuntimeError as e:       # nothing found: both must say so
                    outcomes.append(str(e))
            assert outcomes[0] == outcomes[1]
            if outcomes[0] is None:
                for name in ("keypoints", "descriptors", "scales", "orientations", "responses"):
                    assert np.array_equal(getattr(ours, name), getattr(theirs, name)), name
                described.append(ours.descriptors)
    assert len(described) >= 10
    ties = np.concatenate([described[0][:40], described[0][:40]])     # equal rows: the first must win
    for a, b in [(described[i], described[j]) for i, j in ((0, 1), (0, 2), (2, 3), (4, 5), (1, 8))] + \
            [(ties, described[0]), (described[0], ties)]:
        assert np.array_equal(cross_checked_matches(a, b), match_descriptors(a, b, cross_check=True))


def test_the_grey_image_keypoints_are_found_on_is_numpys_channel_mean():
    from attack.stages.align import _channel_mean

    rng = np.random.default_rng(1)
    for img in [_f(_photo(n)) for n in ("astronaut", "coffee")] + [rng.random((64, 48, 3), dtype=np.float32)]:
        assert np.array_equal(_channel_mean(img), img.mean(-1))
