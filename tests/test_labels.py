"""Automatic labels: TV -> MV -> RV -> N, presets, suspect flags, relabel after a mask edit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from attack.labels import (PRESETS, FlagParams, LabelInputError, Thresholds, decide, label_stage, preset, relabel,
                           suspect_flags)
from attack.metrics import mask_to_compare, masked_rmse, rmse, to_compare
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
    with pytest.raises(LabelInputError, match="expected a threshold preset among paper, onestep-code, got 'strict'"):
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
    with pytest.raises(LabelInputError, match=r"expected images \[N,3,H,W\], got \(3, 8, 8\)"):
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
