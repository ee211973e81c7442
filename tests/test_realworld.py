"""Labels, masks and flags at real resolution: the realistic fixture world (attack/bench/realworld.py)
through the closed-model path, and the heuristics' thresholds shown to matter."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from attack.bench.labels import evaluate, run_world
from attack.bench.realworld import build_world, region
from attack.images.flags import FlagParams, suspect_flags
from attack.stages.masks import MaskParams, template_mask
from store import Store

TARGETS = {"precision": 0.95, "recall": 0.9, "flags": 0.9, "mask_iou": 0.9}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return build_world(tmp_path_factory.mktemp("real") / "world", size=256, seed=5)


@pytest.fixture(scope="module")
def labelled(world, tmp_path_factory):
    store_dir = tmp_path_factory.mktemp("real") / "store"
    timings = run_world(world, store_dir)
    with Store.open(store_dir, readonly=True) as s:
        return evaluate(s, world), timings, store_dir


@pytest.mark.slow
def test_labels_masks_and_flags_meet_the_targets_on_the_fixture_world(labelled):
    out, timings, _ = labelled
    for label in ("MV", "TV"):
        assert out["precision"][label] >= TARGETS["precision"] and out["recall"][label] >= TARGETS["recall"], out
    assert out["precision"]["RV"] >= 0.8 and out["recall"]["RV"] >= 0.8, out
    assert out["flag_precision"] >= TARGETS["flags"] and out["flag_recall"] >= TARGETS["flags"], out
    assert out["mask_iou_median"] >= TARGETS["mask_iou"] and out["tv_attribution"] == 1.0, out
    assert out["labels_by_kind"]["unique"] == {"N": 18}            # no unique is called a copy
    # crops, rescales and mirrors: the paper's misses, found on aligned evidence, nothing else is
    assert out["aligned_recall"] == 1.0 and out["aligned_false"] == 0, out
    assert timings["generations"] == 2 * len(out["labels_by_kind"]) or timings["generations"] > 0


@pytest.mark.slow
def test_tv_labels_name_their_siblings_and_n_labels_carry_no_flag(labelled, world):
    _, _, store_dir = labelled
    with Store.open(store_dir, readonly=True) as s:
        for case in world.cases:
            a = s.auto_labels(s.caption_id(case.caption))[-1]
            if a.label == "N":
                assert a.flags == ()
            if a.label == "TV":
                mask = s.get_mask(a.distances["tv_mask_id"])
                assert a.distances["tv_mask_siblings"] == mask.meta["siblings"] and len(mask.meta["siblings"]) >= 1
                members = set(world.families[case.family]["members"])
                names = {Path(s.get_training_image(t).path_or_url).name for t in mask.meta["siblings"]}
                assert names <= members                           # built from its own family only


def _targets(world) -> list[tuple[np.ndarray, str | None]]:
    """(training image a non-N label rests on, its planted flag) for every copy case."""
    out = []
    for c in world.cases:
        if c.expected != "N" and c.target:
            out.append((np.asarray(Image.open(world.train_dir / c.target).convert("RGB")), c.flag))
    return out


def _flag_scores(world, params: FlagParams) -> tuple[float, float]:
    imgs = _targets(world)
    x = torch.stack([torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1) for a, _ in imgs])
    got = [f[0] if f else None for f in suspect_flags(x, params)]
    truth = [f for _, f in imgs]
    flagged = [i for i, g in enumerate(got) if g]
    right = [i for i in flagged if got[i] == truth[i]]
    should = [i for i, t in enumerate(truth) if t]
    return len(right) / max(1, len(flagged)), len(right) / max(1, len(should))


def test_flags_meet_the_targets_on_every_planted_copy(world):
    precision, recall = _flag_scores(world, FlagParams())
    assert precision >= TARGETS["flags"] and recall >= TARGETS["flags"]


@pytest.mark.parametrize("change", [
    {"background_detail": 0.4},       # photos on a plain surround become backgrounds
    {"background_detail": 0.0},       # a backdrop with a small watermark is no longer plain
    {"texture_spread": 0.08},         # brick and gravel are no longer stationary
    {"texture_spread": 0.9},          # photos become textures
    {"detail_std": 0.2},              # nothing has detail: everything is a backdrop
])
def test_a_badly_changed_flag_threshold_fails_the_targets(world, change):
    precision, recall = _flag_scores(world, dataclasses.replace(FlagParams(), **change))
    assert precision < TARGETS["flags"] or recall < TARGETS["flags"]


def test_a_photo_on_a_plain_surround_is_no_background_and_a_backdrop_is():
    rng = np.random.default_rng(0)
    canvas = np.full((256, 256, 3), 245, np.uint8)
    canvas[70:190, 70:190] = rng.integers(0, 256, (120, 120, 3))      # a busy photo, 22% of the frame
    plain = np.clip(0.6 + np.linspace(-0.03, 0.03, 256)[None, :, None] + rng.normal(0, 0.004, (256, 256, 3)), 0, 1)
    x = torch.stack([torch.from_numpy(canvas.astype(np.float32) / 255).permute(2, 0, 1),
                     torch.from_numpy(plain.astype(np.float32)).permute(2, 0, 1)])
    assert suspect_flags(x) == [(), ("suspect:background",)]


# -- template masks that one wrong neighbour cannot break -----------------------------------------------------
def _family(size: int = 256, n: int = 5, seed: int = 0):
    rng = np.random.default_rng(seed)
    base = rng.random((3, size, size)).astype(np.float32) * 0.6 + 0.2
    where = torch.from_numpy(region("bottom", size))
    sibs = []
    for _ in range(n):
        s = base.copy()
        s[:, where.numpy()] = (rng.uniform(0.3, 0.5, 3)[:, None]).astype(np.float32)
        sibs.append(s)
    return torch.from_numpy(base), torch.from_numpy(np.stack(sibs)), ~where


def test_an_outlier_in_the_window_does_not_empty_the_mask():
    _, sibs, keep_truth = _family()
    ref, others = sibs[0], sibs[1:]
    outlier = (ref * 1.06 + 0.02).clamp(0, 1)          # the same picture brightened: inside the window
    d = float((outlier - ref).pow(2).mean().sqrt())
    p = MaskParams()
    assert p.rmse_min <= d <= p.rmse_max
    cands = torch.cat([outlier[None], others])
    tm = template_mask(ref, cands, p, list(range(len(cands))))
    assert tm is not None and 0 not in tm.dups        # the outlier is left out
    iou = float((tm.keep & keep_truth).sum() / (tm.keep | keep_truth).sum())
    assert iou > 0.95


def test_a_jpeg_re_encoding_is_a_copy_not_a_template_sibling():
    rng = np.random.default_rng(1)
    photo = (rng.random((256, 256, 3)) * 255).astype(np.uint8)
    photo = np.asarray(Image.fromarray(photo).resize((64, 64)).resize((256, 256), Image.BICUBIC))
    import io
    buf = io.BytesIO()
    Image.fromarray(photo).save(buf, format="JPEG", quality=60)
    again = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
    ref = torch.from_numpy(photo.astype(np.float32) / 255).permute(2, 0, 1)
    cand = torch.from_numpy(again.astype(np.float32) / 255).permute(2, 0, 1)[None]
    p = MaskParams()
    raw = float((cand[0] - ref).pow(2).mean().sqrt())
    assert raw >= p.rmse_min                          # the paper's window alone would take it
    assert template_mask(ref, cand, p) is None


def test_bench_labels_prints_one_json_object_last(world, labelled, tmp_path, capsys, monkeypatch):
    """The command's wiring and output, on the world and store the module's fixtures already built
    (building and labelling a second world here cost CI half a minute); the figures are evaluated anew."""
    import shutil

    from attack.bench import labels as bench_labels

    asked = []

    def built(folder, size, seed):
        asked.append((size, seed))
        return world

    def ran(w, store_dir):
        assert w is world
        shutil.copytree(labelled[2], store_dir)
        return labelled[1]

    monkeypatch.setattr(bench_labels, "build_world", built)
    monkeypatch.setattr(bench_labels, "run_world", ran)
    assert bench_labels.main(["--size", "256", "--seed", "3", "--world", "dev", "--dir", str(tmp_path), "--json"]) == 0
    assert asked == [(256, 3)]
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"dev", "caches", "thresholds", "embedder"} and "compare view" in last["caches"]
    dev = last["dev"]
    assert {"precision", "recall", "copy_recall", "precision_all_proposals", "precision_unflagged", "flag_precision",
            "flag_recall", "flags", "mask_iou_median", "families", "tv_attribution", "ms_per_generation",
            "compare_views_s", "ms_per_generation_with_compare_views"} <= set(dev)
    assert dev["ms_per_generation_with_compare_views"] >= dev["ms_per_generation"]
    assert set(dev["precision"]) == {"MV", "TV", "RV"} and dev["seed"] == 3 and dev["size"] == 256
    assert dev["precision"] == labelled[0]["precision"] and dev["recall"] == labelled[0]["recall"]
