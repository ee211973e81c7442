"""DCS, ECS, Wen et al. and Carlini et al. against plain references, hand-made images and
batch / order invariance, on tiny random models (no trained weights needed)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from attack.bench.throughput import demo_architecture
from attack.scores.carlini import CarliniParams, carlini, carlini_from_images, largest_clique, tiled_rmse
from attack.scores.dcs import DCSParams, dcs
from attack.scores.ecs import ECSParams, ecs, ecs_from_images, edge_maps, sobel_magnitude
from attack.models import load_model
from attack.scores.base import ScoreInputError, params_json
from attack.scores.wen import WenParams, wen
from tests.assets.tiny_sd import tiny_sd_folder



CAPTIONS = ["a cat on the mat", "the dog", "at the station", "red sun", "a cat"]


@pytest.fixture(scope="module")
def sd(tmp_path_factory):
    return load_model(f"sd:{tiny_sd_folder(tmp_path_factory, 'epsilon')}")


@pytest.fixture(scope="module")
def sd_v(tmp_path_factory):
    return load_model(f"sd:{tiny_sd_folder(tmp_path_factory, 'v_prediction')}")


@pytest.fixture(scope="module")
def demo():
    return demo_architecture(CAPTIONS, channels=(32, 64), text_dim=32)


# --- DCS -----------------------------------------------------------------------------------

def reference_dcs(model, caption: str, seed: int = 0, guidance: float = 7.5) -> float:
    """Eq. 1 written plainly for one caption: fresh generator, x_T = sigma_max * eps, the raw
    UNet's eps at t = 999 (sigma_max is the last training sigma), D = x - sigma * eps_cfg."""
    eps = torch.randn(*model.latent_shape, generator=torch.Generator().manual_seed(seed))[None]
    sigma = model.sigma_max
    x = sigma * eps
    t = torch.tensor([999.0])
    with torch.no_grad():
        e_c = model.unet(x / math.sqrt(sigma ** 2 + 1), t, encoder_hidden_states=model.encode([caption])).sample
        e_u = model.unet(x / math.sqrt(sigma ** 2 + 1), t, encoder_hidden_states=model.encode([""])).sample
    d = x - sigma * (e_u + guidance * (e_c - e_u))
    return float(((x - d) ** 2).mean())


def test_dcs_matches_plain_reference_of_eq1(sd):
    r = dcs(sd, CAPTIONS, DCSParams(seed=0, guidance=7.5), batch_size=5)
    want = torch.tensor([reference_dcs(sd, c) for c in CAPTIONS])
    assert r.values.dtype == torch.float32 and r.values.shape == (len(CAPTIONS),)
    assert torch.allclose(r.values, want, rtol=1e-5, atol=1e-5)
    # 5 conditional rows + 1 unconditional row shared by the batch (same seed, same x_T)
    assert r.evals_per_caption == pytest.approx((5 + 1) / 2 / 5)
    assert dcs(sd, CAPTIONS[:1], batch_size=1).evals_per_caption == 1.0
    assert len(set(r.values.tolist())) == len(CAPTIONS)  # the caption matters


def test_dcs_seed_and_guidance_matter(sd):
    base = dcs(sd, CAPTIONS[:2]).values
    assert not torch.allclose(base, dcs(sd, CAPTIONS[:2], DCSParams(seed=1)).values)
    assert not torch.allclose(base, dcs(sd, CAPTIONS[:2], DCSParams(guidance=1.0)).values)
    assert float(dcs(sd, CAPTIONS[:1], DCSParams(seed=3)).values[0]) == pytest.approx(reference_dcs(sd, CAPTIONS[0], 3), rel=1e-5)


@pytest.mark.parametrize("which", ["sd", "sd_v", "demo"])
def test_dcs_batch_and_order_invariance(which, request):
    # Equal to float32 rounding: BLAS/conv kernels block by batch shape and row position, which
    # moves the last bits (DCS values are ~30-200 here, where one float32 ulp is 4e-6-1.5e-5).
    model = request.getfixturevalue(which)
    batched = dcs(model, CAPTIONS, batch_size=5).values
    alone = torch.cat([dcs(model, [c]).values for c in CAPTIONS])
    perm = [3, 0, 4, 2, 1]
    shuffled = dcs(model, [CAPTIONS[i] for i in perm], batch_size=2).values
    assert torch.allclose(batched, alone, rtol=1e-5, atol=1e-5)
    assert torch.allclose(shuffled, batched[perm], rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched, batched[perm], rtol=1e-5, atol=1e-5)  # tight enough to tell captions apart


def test_dcs_does_not_touch_global_rng(sd):
    state = torch.get_rng_state()
    dcs(sd, CAPTIONS[:2])
    assert torch.equal(state, torch.get_rng_state())


# --- ECS -----------------------------------------------------------------------------------

def _square(size: int = 256, lo: int = 64, hi: int = 192) -> torch.Tensor:
    img = torch.zeros(3, size, size)
    img[:, lo:hi, lo:hi] = 1.0
    return img


def test_sobel_matches_scipy_ndimage_on_hwc_arrays():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    for im in (rng.random((37, 53, 3), dtype=np.float32), np.round(rng.random((32, 32, 3)) * 255).astype(np.float32) / 255):
        want = np.hypot(ndimage.sobel(im, axis=0), ndimage.sobel(im, axis=1)).sum(2)
        got = sobel_magnitude(torch.from_numpy(im).permute(2, 0, 1)[None])[0].numpy()
        assert np.abs(got - want).max() < 1e-4


def test_edges_of_a_white_square_by_hand():
    # Binary image, equal channels: each channel's Sobel is 4x the 2-D Sobel (channel smoothing
    # [1,2,1] with reflected borders), nonzero exactly where the 3x3 neighbourhood is mixed:
    # the 3x3 dilation minus the 3x3 erosion of the square, (L+2)^2 - (L-2)^2 = 8L pixels.
    e = edge_maps(_square()[None])[0]
    assert int(e.sum()) == 8 * 128
    assert bool(e[63, 100]) and bool(e[64, 100]) and not bool(e[65, 100]) and not bool(e[62, 100])
    assert bool(e[63, 63]) and not bool(e[128, 128])


def test_ecs_votes_over_generations():
    sq, blank = _square(), torch.zeros(3, 256, 256)
    three = torch.stack([sq, sq, sq, blank])[None]
    two = torch.stack([sq, sq, blank, blank])[None]
    shifted = torch.stack([sq, sq, _square(lo=80, hi=208), _square(lo=80, hi=208)])[None]
    v = ecs_from_images(torch.cat([three, two, shifted]))
    assert float(v[0]) == 8 * 128 / 256 ** 2      # 3 of 4 > 0.5
    assert float(v[1]) == 0.0                     # 2 of 4 is not > 0.5
    # edges that move are not consistent, except where the two squares' edge bands cross:
    # 2 crossings of two 2-pixel bands = 8 pixels
    assert float(v[2]) == 8 / 256 ** 2
    assert float(ecs_from_images(torch.stack([blank] * 4)[None])[0]) == 0.0


@pytest.mark.parametrize("h,edge", [(0.03, False), (0.032, True)])
def test_ecs_threshold_on_channel_summed_magnitude(h, edge):
    # A gray step of height h on a straight edge: derivative 1 * row smoothing (1+2+1) * channel
    # smoothing (1+2+1, reflected borders) = 16h per channel, 48h summed over the 3 channels;
    # the threshold 1.5 sits between h = 0.03 (1.44) and h = 0.032 (1.536).
    img = torch.zeros(1, 3, 256, 256)
    img[0, :, 64:192, 64:192] = h
    assert float(sobel_magnitude(img)[0, 63, 128]) == pytest.approx(48 * h, rel=1e-5)
    assert bool(edge_maps(img)[0, 63, 128]) is edge


def test_ecs_resizes_with_lanczos_to_256():
    small = torch.zeros(1, 4, 3, 32, 32)
    small[..., 8:24, 8:24] = 1.0
    v = ecs_from_images(small)
    assert 0 < float(v[0]) < 0.1


@pytest.mark.parametrize("which", ["sd", "demo"])
def test_ecs_batch_and_order_invariance_and_evals(which, request):
    model = request.getfixturevalue(which)
    p = ECSParams(seeds=(0, 1, 2, 3))
    batched = ecs(model, CAPTIONS[:4], p, batch_size=4)
    alone = torch.cat([ecs(model, [c], p).values for c in CAPTIONS[:4]])
    perm = [2, 0, 3, 1]
    shuffled = ecs(model, [CAPTIONS[i] for i in perm], p, batch_size=3).values
    assert batched.evals_per_caption == pytest.approx((16 + 4) / 2 / 4)  # 4 shared uncond rows, one per seed
    assert ecs(model, CAPTIONS[:1], p, batch_size=1).evals_per_caption == 4.0
    # ECS counts pixels (1/65536 each) after 8-bit rounding and a threshold, so the float32
    # rounding differences between batch shapes can flip a pixel sitting on a boundary: allow
    # a handful (2e-4 = 13 pixels), far below the gaps between captions.
    assert torch.allclose(batched.values, alone, rtol=0, atol=2e-4)
    assert torch.allclose(shuffled, batched.values[perm], rtol=0, atol=2e-4)
    assert not torch.allclose(batched.values, batched.values[perm], rtol=0, atol=2e-4)


def test_one_step_generations_equal_the_models_own_sampler(sd):
    from attack.scores.ecs import one_step_generations

    caps, seeds = CAPTIONS[:3], (0, 2)
    shared = one_step_generations(sd, caps, seeds)
    plain = sd.sample([c for c in caps for _ in seeds], [s for _ in caps for s in seeds], steps=1).images
    assert shared.shape == plain.shape == (6, 3, 16, 16)
    assert torch.allclose(shared, plain, atol=1e-5)


# --- Wen et al. ----------------------------------------------------------------------------

def reference_wen_first_step(model, caption: str, seeds) -> float:
    """||eps_c - eps_u||_2 at sigma_max for each seed, averaged, from the raw UNet."""
    norms = []
    for s in seeds:
        x = model.sigma_max * torch.randn(*model.latent_shape, generator=torch.Generator().manual_seed(s))[None]
        t = torch.tensor([999.0])
        xin = x / math.sqrt(model.sigma_max ** 2 + 1)
        with torch.no_grad():
            e_c = model.unet(xin, t, encoder_hidden_states=model.encode([caption])).sample
            e_u = model.unet(xin, t, encoder_hidden_states=model.encode([""])).sample
        norms.append(float((e_c - e_u).norm()))
    return sum(norms) / len(norms)


def test_wen_first_step_matches_plain_reference(sd):
    r = wen(sd, CAPTIONS[:3], WenParams(seeds=(0, 1)))
    want = torch.tensor([reference_wen_first_step(sd, c, (0, 1)) for c in CAPTIONS[:3]])
    assert torch.allclose(r.values, want, rtol=1e-4, atol=1e-5)
    assert r.evals_per_caption == pytest.approx((6 + 2) / 2 / 3)


def test_wen_more_steps_cost_more_and_stay_batch_invariant(sd):
    p = WenParams(seeds=(0, 5), steps=3, schedule_steps=10)
    batched = wen(sd, CAPTIONS, p, batch_size=3)
    alone = torch.cat([wen(sd, [c], p).values for c in CAPTIONS])
    # first step shares the uncond rows per seed, the two later steps are full pairs
    assert batched.evals_per_caption == pytest.approx(((6 + 2) / 2 + 12 + (4 + 2) / 2 + 8) / 5)
    assert torch.allclose(batched.values, alone, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(batched.values, wen(sd, CAPTIONS, WenParams(seeds=(0, 5))).values)


# --- Carlini et al. ------------------------------------------------------------------------

def _near_copies(k: int, others: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(3, 256, 256, generator=g)
    copies = [(base + 0.05 * (torch.rand(3, 256, 256, generator=g) - 0.5)).clamp(0, 1) for _ in range(k)]
    noise = [torch.rand(3, 256, 256, generator=g) for _ in range(others)]
    return torch.stack(copies + noise)


def test_tiled_rmse_matches_plain_loop():
    imgs = _near_copies(3, 2)[:, :, :64, :64]
    d = tiled_rmse(imgs, tiles=4)
    for i in range(5):
        for j in range(5):
            tiles = [float(((imgs[i, :, a:a + 16, b:b + 16] - imgs[j, :, a:a + 16, b:b + 16]) ** 2).mean().sqrt())
                     for a in range(0, 64, 16) for b in range(0, 64, 16)]
            assert float(d[i, j]) == pytest.approx(0.0 if i == j else max(tiles), abs=1e-5)


def test_tiled_distance_catches_one_changed_tile():
    a = torch.zeros(2, 3, 256, 256)
    a[1, :, :64, :64] = 0.3  # one tile of 16 differs: global RMSE 0.075, tiled 0.3
    assert float(tiled_rmse(a)[0, 1]) == pytest.approx(0.3, abs=1e-5)
    assert float((a[0] - a[1]).pow(2).mean().sqrt()) < 0.15


def test_ten_near_copies_are_flagged_nine_are_not():
    p = CarliniParams()
    ten = carlini_from_images(_near_copies(10, 30), p)
    assert ten.flagged and ten.size == 10 and ten.members == tuple(range(10))
    nine = carlini_from_images(_near_copies(9, 31), p)
    assert not nine.flagged and nine.size == 9


def test_largest_clique_is_exact_on_a_small_graph():
    adj = torch.zeros(7, 7, dtype=torch.bool)
    for i, j in [(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (4, 5), (3, 5), (2, 4), (2, 5)]:
        adj[i, j] = adj[j, i] = True
    assert largest_clique(adj) == (2, 3, 4, 5)


def test_carlini_on_a_model_reports_clique_and_cost(sd):
    r = carlini(sd, CAPTIONS[:2], CarliniParams(n=12, steps=2, min_clique=3), batch_size=5)
    assert r.values.shape == (2,) and r.flagged.dtype == torch.bool
    assert r.evals_per_caption == 12 * 3  # Heun: 2 steps -> 3 guided calls
    assert all(len(c) == int(v) for c, v in zip(r.cliques, r.values))


# --- bad input and bookkeeping -------------------------------------------------------------

@pytest.mark.parametrize("score", [dcs, ecs, wen, carlini])
def test_empty_caption_list_is_a_named_error(score, sd):
    with pytest.raises(ScoreInputError, match="at least one caption"):
        score(sd, [])
    with pytest.raises(ScoreInputError, match="single string"):
        score(sd, "a cat")


def test_bad_shapes_and_params_are_named_errors(sd):
    with pytest.raises(ScoreInputError, match=r"\[B,J,3,H,W\]"):
        ecs_from_images(torch.zeros(4, 3, 8, 8))
    with pytest.raises(ScoreInputError, match="steps"):
        wen(sd, ["a"], WenParams(steps=0))
    with pytest.raises(ScoreInputError, match="batch size"):
        dcs(sd, ["a"], batch_size=0)


def test_params_serialise_as_json():
    for p in (DCSParams(), ECSParams(), WenParams(), CarliniParams()):
        d = json.loads(params_json(p))
        assert type(p)(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}) == p
    with pytest.raises(Exception):
        DCSParams().seed = 3  # frozen


def test_ecs_equals_the_public_codes_scipy_scoring_of_the_same_images():
    # The throughput bench's loop scores like run_bb_attack.py (PIL Lanczos to 256, scipy Sobel
    # per image); the batched path must give the same ECS on the same generations.
    from PIL import Image

    from attack.bench.throughput import paper_edge_score

    gen = torch.Generator().manual_seed(3)
    imgs = torch.rand(3, 4, 3, 32, 32, generator=gen)
    imgs[:, :, :, 8:24, 8:24] = 1.0  # a shared square: consistent edges, so ECS is not ~0
    p = ECSParams()
    got = ecs_from_images(imgs, p)
    for b in range(3):
        group = []
        for j in range(4):
            u8 = (imgs[b, j].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            group.append(np.asarray(Image.fromarray(u8).resize((256, 256), Image.LANCZOS)).astype(np.float32))
        want = paper_edge_score(group, p)
        assert want > 0.01
        assert float(got[b]) == pytest.approx(want, abs=2 / 256 ** 2)
