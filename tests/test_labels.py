"""Automatic labels: TV -> MV -> RV -> N, presets, suspect flags, relabel after a mask edit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attack.images.flags import FlagInputError, FlagParams, suspect_flags
from attack.images.metrics import mask_to_compare, masked_rmse, rmse, to_compare
from attack.stages.labels import label_stage, relabel
from attack.stages.rules import PRESETS, LabelInputError, Thresholds, decide, preset
from store import CaptionRow, Neighbour, NotFoundError, Store

from .conftest import snapshot


def test_order_is_tv_then_mv_then_rv_then_n():
    th = Thresholds()
    assert decide({"tv": 0.05, "mv": 0.01, "rv": 0.01}, th) == "TV"  # TV wins even when MV is closer
    assert decide({"tv": 0.13, "mv": 0.11, "rv": 0.01}, th) == "MV"
    assert decide({"tv": None, "mv": 0.2, "rv": 0.119}, th) == "RV"
    assert decide({"tv": 0.121, "mv": 0.121, "rv": 0.121}, th) == "N"
    assert decide({"tv": None, "mv": None, "rv": None}, th) == "N"
    assert decide({}, th) == "N"
    assert decide({"mv": 0.12}, th) == "MV"  # delta itself passes (<=)


def test_presets_are_the_paper_and_the_public_codes_sse():
    assert PRESETS["paper"] == Thresholds(0.12, 0.12, 0.12)
    code = preset("onestep-code")
    n = 3 * 256 * 256
    assert code.tv == code.mv == pytest.approx(np.sqrt(2.5e3 / n), abs=5e-4)
    assert code.rv == pytest.approx(np.sqrt(3e3 / n), abs=5e-4)
    d = {"tv": None, "mv": 0.118, "rv": 0.118}
    assert decide(d, preset("paper")) == "MV" and decide(d, code) == "RV"
    with pytest.raises(LabelInputError, match="expected a threshold preset among verbatim, paper, onestep-code, got 'strict'"):
        preset("strict")
    with pytest.raises(LabelInputError, match=r"Thresholds.mv: expected an RMSE in \(0, 1\], got -0.1"):
        Thresholds(mv=-0.1)


def test_flags_plain_backgrounds_and_textures_but_not_a_scene():
    plain = torch.full((1, 3, 32, 32), 0.93)
    plain[..., :4, :] = 0.9  # a faint band: still near-uniform
    rng = np.random.default_rng(0)
    tile = torch.from_numpy(rng.uniform(0.2, 0.8, (3, 8, 8))).float()
    texture = tile.repeat(1, 8, 8)[None]  # a periodic texture, 64x64
    scene = torch.zeros(1, 3, 64, 64)
    scene[..., :32, :] = torch.linspace(0, 1, 64)  # sky gradient over a dark ground with an object
    scene[:, 0, 40:60, 10:30] = 0.9
    flags = suspect_flags(torch.cat([plain, torch.nn.functional.interpolate(texture, size=32), scene[..., ::2, ::2]]))
    assert flags == [("suspect:background",), ("suspect:texture",), ()]
    assert suspect_flags(plain, FlagParams(background_detail=-0.01)) == [()]
    with pytest.raises(FlagInputError, match=r"expected images \[N,3,H,W\], got \(3, 8, 8\)"):
        suspect_flags(torch.rand(3, 8, 8))


def _img(seed: int, size: int = 32) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.1, 0.9, (size // 4, size // 4, 3))
    return (np.kron(base, np.ones((4, 4, 1))) * 255).round().astype(np.uint8)


def _cmp(a: np.ndarray) -> torch.Tensor:
    return to_compare(a)


@pytest.fixture
def template_store(tmp_path):
    """A caption whose generation copies a retrieved template sibling outside the varying
    square, and differs from its own image; the sibling has an auto mask hiding the square."""
    own = _img(1)
    sibling = own.copy()
    sibling[:16, :16] = [200, 30, 30]  # the varying region: another colour
    gen = sibling.copy()
    gen[:16, :16] = [20, 200, 20]  # the generation paints the region in a third colour
    keep = np.ones((32, 32), bool)
    keep[:16, :16] = False
    path = tmp_path / "s"
    with Store.open(path) as s:
        (cid, other) = s.add_captions([CaptionRow("Velvet sofa in Burgundy"), CaptionRow("Velvet sofa in Navy")])
        own_id = s.add_training_image(s.put_image(own), cid, "own.png")
        sib_id = s.add_training_image(s.put_image(sibling), other, "sib.png")
        run = s.start_run("generate", "demo", {})
        gid = s.add_generation(cid, run, 0, 16, "heun-karras", s.put_image(gen))
        mid = s.save_mask(sib_id, keep)
        g, t, o = _cmp(gen), _cmp(sibling), _cmp(own)
        md = float(masked_rmse(g, t, mask_to_compare(keep))[0])
        s.add_neighbours(gid, [Neighbour(0, sib_id, 0.99, float(rmse(g, t)[0]), md, mid),
                               Neighbour(1, own_id, 0.95, float(rmse(g, o)[0]), None, None)])
    return {"path": path, "caption_id": cid, "sibling": sib_id, "own": own_id, "generation": gid,
            "masked": md, "rmse_sib": float(rmse(g, t)[0]), "rmse_own": float(rmse(g, o)[0]), "mask": mid}


def test_label_stage_writes_tv_with_every_distance_and_resumes(template_store):
    t = template_store
    with Store.open(t["path"]) as s:
        rep = label_stage(s, "paper")
        assert (rep.labelled, rep.skipped, rep.counts) == (1, 0, {"TV": 1})
        (al,) = s.auto_labels(t["caption_id"])
        assert al.label == "TV"
        d = al.distances
        assert d["tv"] == pytest.approx(t["masked"], abs=1e-5) and d["tv"] < 0.05  # ringing at the mask edge only
        assert d["tv_train_image_id"] == t["sibling"] and d["tv_mask_id"] == t["mask"] and d["tv_mask_version"] == 1
        assert d["mv"] == pytest.approx(t["rmse_own"], abs=1e-5) and d["mv_train_image_id"] == t["own"]
        assert d["rv"] == pytest.approx(min(t["rmse_sib"], t["rmse_own"]), abs=1e-5)
        assert d["thresholds"] == {"tv": 0.12, "mv": 0.12, "rv": 0.12}
        again = label_stage(s, "paper")
        assert (again.run_id, again.labelled, again.skipped) == (rep.run_id, 0, 1)
        other = label_stage(s, "onestep-code")
        assert other.run_id != rep.run_id and other.labelled == 1


def test_relabel_after_an_edited_mask_uses_the_current_version(template_store):
    t = template_store
    with Store.open(t["path"]) as s:
        first = relabel(s, t["caption_id"])
        assert first.label == "TV" and first.distances["tv_mask_version"] == 1
        # the reviewer widens the kept area over the varying square: the masked RMSE now sees it
        s.save_mask(t["sibling"], np.ones((32, 32), bool), source="edited", author="ann")
        second = relabel(s, t["caption_id"])
        assert second.distances["tv_mask_version"] == 2
        assert second.distances["tv"] == pytest.approx(t["rmse_sib"], abs=1e-5)
        assert second.label == decide(second.distances)
        assert second.run_id > first.run_id
        history = s.auto_labels(t["caption_id"])
        assert [a.id for a in history] == [first.auto_label_id, second.auto_label_id]
        # the neighbour row now carries the distance under the edited mask (export reads it)
        n0 = s.neighbours(t["generation"])[0]
        assert n0.mask_id == second.distances["tv_mask_id"] and n0.masked_rmse == pytest.approx(t["rmse_sib"], abs=1e-5)
        assert s.get_run(second.run_id).stage == "relabel"
        stricter = relabel(s, t["caption_id"], Thresholds(tv=0.01, mv=0.01, rv=0.01))
        assert stricter.label == "N" and stricter.distances["thresholds"]["tv"] == 0.01


def test_relabel_of_an_unknown_caption_changes_nothing(template_store):
    before = snapshot(template_store["path"])
    with Store.open(template_store["path"]) as s:
        with pytest.raises(NotFoundError, match="expected an existing caption id, got 999"):
            relabel(s, 999)
        with pytest.raises(LabelInputError, match="expected a threshold preset"):
            relabel(s, template_store["caption_id"], "nope")
    assert snapshot(template_store["path"]) == before


def test_a_caption_without_own_image_or_mask_falls_through_to_rv_or_n(tmp_path):
    with Store.open(tmp_path / "s") as s:
        (cid, other) = s.add_captions([CaptionRow("Classic cameraman portrait"), CaptionRow("Film cameraman archive")])
        dup = _img(7)
        tid = s.add_training_image(s.put_image(dup), other, "dup.png")
        run = s.start_run("generate", "demo", {})
        near = np.clip(dup.astype(int) + 8, 0, 255).astype(np.uint8)
        g1 = s.add_generation(cid, run, 0, 16, "heun-karras", s.put_image(near))
        d = float(rmse(_cmp(near), _cmp(dup))[0])
        s.add_neighbours(g1, [Neighbour(0, tid, 0.99, d, None, None)])
        out = relabel(s, cid)
        assert out.label == "RV" and out.distances["rv"] == pytest.approx(d, abs=1e-6)
        assert out.distances["tv"] is None and out.distances["mv"] is None
        assert relabel(s, cid, Thresholds(rv=d / 2)).label == "N"


# -- the labeller runs on numpy (no torch in `python -m attack label`); it agrees with the torch forms --------
def _torch_flags(images: torch.Tensor, params: FlagParams = FlagParams(), keep: torch.Tensor | None = None) -> list:
    """The flags as the labeller computed them on torch until issue 15 (kept here as the reference)."""
    F = torch.nn.functional

    def tile_stats(lum, tiles):
        n, s = lum.shape[0], lum.shape[-1] // tiles
        t = lum.view(n, tiles, s, tiles, s).permute(0, 1, 3, 2, 4).reshape(n, tiles * tiles, s * s)
        return t.std(2), t.mean(2)

    def kept_tiles(keep, n, size, tiles):
        if keep is None:
            return torch.ones(n, tiles * tiles, dtype=torch.bool)
        k = keep.float().reshape(-1, 1, *keep.shape[-2:]).expand(n, 1, *keep.shape[-2:])
        return tile_stats(F.interpolate(k, size=(size, size), mode="nearest")[:, 0], tiles)[1] >= 0.5

    def share(values, where):
        return (values & where).float().sum(1) / where.float().sum(1).clamp_min(1)

    x = F.interpolate(images.float().clamp(0, 1), size=(params.size, params.size), mode="bilinear", antialias=True,
                      align_corners=False)
    lum = 0.299 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2]
    b_std, _ = tile_stats(lum, params.background_tiles)
    backdrop = share(b_std >= params.detail_std, kept_tiles(keep, len(x), params.size, params.background_tiles)) \
        <= params.background_detail
    t_std, t_mean = tile_stats(lum, params.texture_tiles)
    detailed = (t_std >= params.detail_std).float().mean(1) >= params.texture_detail
    spread = torch.maximum(t_std.std(1) / t_std.mean(1).clamp_min(1e-6),
                           t_mean.std(1) / lum.flatten(1).std(1).clamp_min(1e-6))
    stationary = detailed & (spread <= params.texture_spread)
    return [("suspect:background",) if bool(b) else ("suspect:texture",) if bool(t) else ()
            for b, t in zip(backdrop, stationary)]


def test_flags_equal_the_torch_reference_on_the_realistic_world_and_at_odd_sizes():
    from attack.bench.realworld import backdrop, drawing, on_surround, texture
    from attack.images.flags import _nearest, _resize_aa

    rng = np.random.default_rng(3)
    for h, w in ((256, 256), (512, 384), (32, 32), (17, 129)):     # the thumbnail: torch's antialiased resize
        x = rng.random((2, 3, h, w))
        ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(128, 128), mode="bilinear", antialias=True,
                                              align_corners=False).numpy()
        assert np.abs(_resize_aa(x, 128) - ref).max() < 1e-12
        same = torch.nn.functional.interpolate(torch.from_numpy(x), size=(h, w), mode="bilinear", antialias=True,
                                               align_corners=False).numpy()
        if h == w:          # to its own size: every value back (the 256-px compare images' flags)
            assert np.array_equal(_resize_aa(x, h), x) and np.array_equal(same, x)
        keep = torch.from_numpy(rng.random((h, w)) < 0.5)
        nearest = torch.nn.functional.interpolate(keep.float()[None, None], size=(128, 128), mode="nearest")[0, 0]
        assert np.array_equal(keep.numpy()[_nearest(h, 128)][:, _nearest(w, 128)], nearest.numpy() > 0.5)
    photos = [on_surround(rng, 256, lambda side: drawing(rng, side)) for _ in range(3)]
    pictures = [texture(rng, 256) for _ in range(4)] + [backdrop(rng, 256, mark=i % 2 == 1) for i in range(4)] + \
        [drawing(rng, 256) for _ in range(4)] + photos + [rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)]
    x = torch.from_numpy(np.stack([np.asarray(p, np.float32) / 255 for p in pictures])).permute(0, 3, 1, 2)
    flags = suspect_flags(x)
    assert flags == _torch_flags(x)
    assert {f for f in flags} == {("suspect:texture",), ("suspect:background",), ()}   # every outcome is compared
    keep = torch.zeros(256, 256, dtype=torch.bool)
    keep[:, :96] = True                                                     # a template that keeps a plain strip
    assert suspect_flags(x, keep=keep.numpy()) == _torch_flags(x, keep=keep)


def test_pixel_distances_agree_with_the_torch_ones_to_float32_rounding():
    from attack.images.metrics import DistanceInputError, pixel_masked_rmse, pixel_rmse

    rng = np.random.default_rng(4)
    for i in range(40):
        a = rng.integers(0, 256, (256, 256, 3), dtype=np.uint8)
        b = np.clip(a.astype(int) + rng.integers(-i - 1, i + 2, a.shape), 0, 255).astype(np.uint8)
        keep = rng.random((256, 256)) < 0.6
        ta, tb = (torch.from_numpy(v).permute(2, 0, 1).float()[None] / 255.0 for v in (a, b))
        for got, ref in ((pixel_rmse(a, b), float(rmse(ta, tb)[0])),
                         (pixel_masked_rmse(a, b, keep), float(masked_rmse(ta, tb, torch.from_numpy(keep))[0]))):
            assert abs(got - ref) <= 2 * np.spacing(np.float32(ref)), (i, got, ref)
    assert pixel_rmse(a, a) == 0.0 and pixel_masked_rmse(a, b, np.zeros((256, 256), bool)) == 0.0
    with pytest.raises(DistanceInputError, match=r"expected two uint8 images of one shape, got uint8 \(256, 256, 3\) "
                                                 r"and float32"):
        pixel_rmse(a, a.astype(np.float32))
    with pytest.raises(DistanceInputError, match=r"expected a keep-mask of shape \(256, 256\), got \(8, 8\)"):
        pixel_masked_rmse(a, b, np.ones((8, 8), bool))
