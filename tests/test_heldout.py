"""Labels on data they were not tuned for: the structural check, the region rule for template
families and the flags, on images from the held-out world's generators (attack/bench/heldout.py),
and the whole held-out world at 512 px against the acceptance targets of `bench labels`."""
from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from attack.bench import heldout, pictures
from attack.images.flags import FlagParams, suspect_flags
from attack.stages.labels import label_stage
from attack.stages.masks import MaskParams, template_mask
from attack.images.metrics import pixel_rmse, to_compare
from attack.images.structure import StructureInputError, StructureParams, agreement, agrees, band
from review.explain import explain
from store import CaptionRow, Neighbour, Store

SIZE = 256


def _jpeg(a: np.ndarray, quality: int = 85) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


def _agree(a: np.ndarray, b: np.ndarray) -> float | None:
    return agreement(band(a), band(b))


@pytest.mark.parametrize("category", ["landscape", "sky", "portrait", "product"])
def test_two_pictures_of_one_kind_disagree_while_a_shifted_reencoded_copy_agrees(category):
    make = pictures.CATEGORIES[category]
    p = StructureParams()
    for seed in range(4):
        rng = np.random.default_rng(seed)
        a, b = make(rng, SIZE), make(rng, SIZE)
        copy = _jpeg(np.clip(a.astype(np.float32) * rng.uniform(0.88, 1.1, 3) + 6, 0, 255).astype(np.uint8), 80)
        assert agrees(_agree(copy, a), p), (category, seed, _agree(copy, a))
        assert not agrees(_agree(b, a), p), (category, seed, _agree(b, a))


def test_plain_images_have_no_structure_to_witness_and_bad_input_is_named():
    rng = np.random.default_rng(0)
    assert _agree(pictures.backdrop(rng, SIZE), pictures.backdrop(rng, SIZE)) is None
    assert agrees(None)
    with pytest.raises(StructureInputError, match=r"expected an image \[S,S,3\], got \(4, 4\)"):
        band(np.zeros((4, 4)))
    with pytest.raises(StructureInputError, match="expected 0 < sigma_fine < sigma_coarse, got 4, 1"):
        StructureParams(sigma_fine=4, sigma_coarse=1)


def _landscape_pair() -> tuple[np.ndarray, np.ndarray]:
    """Two different landscapes whose plain RMSE passes the paper's delta."""
    for seed in range(200):
        rng = np.random.default_rng(seed)
        a, b = pictures.landscape(rng, SIZE), pictures.landscape(rng, SIZE)
        if pixel_rmse(a, b) < 0.1:
            return a, b
    raise AssertionError("expected two landscapes within RMSE 0.1 among 200 seeds, got none")


def test_two_landscapes_are_a_copy_by_the_papers_rule_and_n_with_the_structural_check(tmp_path):
    own, gen = _landscape_pair()
    with Store.open(tmp_path / "s") as s:
        (cid,) = s.add_captions([CaptionRow("a valley at dawn")])
        tid = s.add_training_image(s.put_image(own), cid, "own.png")
        run = s.start_run("generate", "closed", {})
        gid = s.add_generation(cid, run, 0, 50, "images", s.put_image(gen))
        d = pixel_rmse(s.compare_pixels(s.generations(cid)[0].image_sha), s.compare_pixels(s.get_training_image(tid).sha256))
        s.add_neighbours(gid, [Neighbour(0, tid, 0.99, d, None, None)])
        label_stage(s, "paper")
        paper = s.auto_labels(cid)[-1]
        label_stage(s, "verbatim")
        ours = s.auto_labels(cid)[-1]
    assert paper.label == "MV" and "structure" not in paper.distances
    assert ours.label == "N" and ours.distances["paper_label"] == "MV"
    checked = ours.distances["structure"]["checked"]
    assert checked and all(c[4] < StructureParams().min_agreement for c in checked), checked
    why = explain(ours, {gid: 0})
    assert why[0] == "N: every pair under its δ disagrees structurally."
    assert why[1].startswith(f"By the paper's rule alone this would be MV: MV {checked[0][3]:.4f} against training "
                             f"image {tid} is under δ, but the structure disagrees"), why


def _family(kind: str, members: int = 4):
    rng = np.random.default_rng(3)
    fam = heldout.Family(kind, rng, SIZE)
    return fam, [fam.member(rng) for _ in range(members)]


def _mask(ref: np.ndarray, others: list[np.ndarray], params: MaskParams = MaskParams()):
    return template_mask(to_compare(ref)[0], torch.cat([to_compare(o) for o in others]), params)


@pytest.mark.parametrize("kind", heldout.FAMILIES)
def test_the_region_rule_finds_mockup_families_the_papers_window_misses(kind):
    fam, members = _family(kind)
    ref, others = members[0], members[1:]
    if min(pixel_rmse(ref, o) for o in others) > MaskParams().rmse_max:   # every sibling outside the paper's window
        assert _mask(ref, others, MaskParams(rule="window")) is None
    tm = _mask(ref, others)
    assert tm is not None and len(tm.dups) >= 2, kind
    want = ~fam.region
    got = tm.keep.numpy()
    iou = (got & want).sum() / (got | want).sum()
    assert iou >= 0.8, (kind, iou)


def _on_white(rng: np.random.Generator) -> np.ndarray:
    """A product on pure white (LAION's catalogue shots share that surround to the pixel)."""
    from PIL import ImageDraw

    im = Image.new("RGB", (SIZE, SIZE), (255, 255, 255))
    c = tuple(int(v) for v in rng.integers(0, 200, 3))
    w, h = rng.integers(50, 90, 2)
    box = [128 - w, 128 - h, 128 + w, 128 + h]
    (ImageDraw.Draw(im).ellipse if rng.random() < 0.5 else ImageDraw.Draw(im).rectangle)(box, fill=c)
    return np.asarray(im)


def test_products_sharing_a_white_surround_are_no_family():
    rng = np.random.default_rng(5)
    products = [_on_white(rng) for _ in range(5)]
    assert _mask(products[0], products[1:]) is None
    assert _mask(products[0], products[1:], MaskParams(shared_detail=0.0)) is not None   # the detail rule is what refuses them


def test_flags_tell_fine_textures_from_backdrops():
    rng = np.random.default_rng(2)
    images = [pictures.noise_texture(rng, SIZE), pictures.fabric(rng, SIZE), pictures.wood(rng, SIZE),
              pictures.backdrop(rng, SIZE), pictures.landscape(rng, SIZE)]
    x = np.stack([i.astype(np.float32) / 255 for i in images]).transpose(0, 3, 1, 2)
    assert suspect_flags(x) == [("suspect:texture",)] * 3 + [("suspect:background",), ()]
    # on the old half-size thumbnail a fine grain averages away into a backdrop
    assert suspect_flags(x[:1], FlagParams(size=128, detail_std=0.03)) == [("suspect:background",)]


@pytest.mark.slow
def test_the_held_out_world_meets_the_acceptance_targets(tmp_path):
    from attack.bench.labels import bench_world

    out = bench_world("test", size=512, folder=tmp_path)
    assert out["copy_recall"] >= 0.95, out
    assert out["precision_all_proposals"] >= 0.9 and out["precision_unflagged"] >= 0.97, out
    same_category = {k: v for k, v in out["labels_by_kind"].items() if k.startswith("negative:")}
    assert all(set(v) == {"N"} for v in same_category.values()), same_category
    assert out["recall"]["TV"] >= 0.8 and out["mask_iou_median"] >= 0.8 and out["tv_attribution"] == 1.0, out
    for kind, f in out["flags"].items():
        assert f["precision"] == 1.0 and f["recall"] == 1.0, (kind, f)
