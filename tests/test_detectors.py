"""The newer one-step detectors, each checked against a plain per-caption reference written from
its paper's formula: Wen et al. with n generations, Jeon et al.'s initial-step sharpness (the
exact Hessian-vector product by autograd, where the library takes a finite difference) and
Asthana & Belagiannis's anisotropy; on the demo network and on tiny random SD (eps and v)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.attention
import torch.nn.functional as F

from attack.scores.anisotropy import AnisotropyParams, anisotropy
from attack.models import load_model
from attack.models.demo import DemoModel
from attack.scores import score_spec
from attack.scores.base import ScoreInputError
from attack.scores.sharpness import SharpnessParams, sharpness
from attack.scores.wen import WenParams, wen
from tests.test_demo_model import tiny_net

CAPTIONS = ["red brick wall", "orange cat close up", "blue carpet in a living room", "moon photo", "a living room"]


@pytest.fixture(scope="module")
def demo():
    return DemoModel(tiny_net(0))


@pytest.fixture(scope="module", params=["epsilon", "v_prediction"])
def sd(request, tmp_path_factory):
    from tests.assets.tiny_sd import tiny_sd_folder
    return load_model(f"sd:{tiny_sd_folder(tmp_path_factory, request.param)}")


def _delta_s(model, x, sigma, caption):
    """s(x, c) - s(x, empty), one caption, differentiable (the adapter's own calls run under
    no_grad): (D_c - D_u) / sigma^2 straight from the unguided denoiser."""
    cond, unc = model.encode([caption]), model.encode([""])
    s = torch.full((x.shape[0],), sigma)
    with torch.enable_grad():
        dc = model._denoise(x, s, cond.expand(x.shape[0], *cond.shape[1:])).float()
        du = model._denoise(x, s, unc.expand(x.shape[0], *unc.shape[1:])).float()
    return (dc - du) / sigma ** 2


def sharpness_reference(model, caption: str, seeds) -> float:
    """Jeon et al.: ||H_delta(x_T) s_delta(x_T)||_2 with the exact Jacobian-vector product."""
    vals = []
    for seed in seeds:
        x = model.noise([caption], [seed]).float() * model.sigma_max
        v = _delta_s(model, x, model.sigma_max, caption).detach()
        # the math attention kernel: the fused CPU kernels have no double backward
        with torch.nn.attention.sdpa_kernel(torch.nn.attention.SDPBackend.MATH):
            _, jv = torch.autograd.functional.jvp(lambda y: _delta_s(model, y, model.sigma_max, caption), x, v)
        vals.append(float(jv.flatten().norm()))
    return sum(vals) / len(vals)


def anisotropy_reference(model, caption: str, p: AnisotropyParams) -> float:
    """Asthana & Belagiannis: gamma_1 ||eps_c - eps_u|| at sigma_max + gamma_2 mean over positions
    of cos(eps_u, eps_c - eps_u) across channels at the low noise level, per seed, averaged."""
    vals = []
    cond = model.encode([caption])
    for seed in p.seeds:
        z = model.noise([caption], [seed]).float()
        parts = []
        for sigma, x in ((model.sigma_max, z * model.sigma_max), (p.cosine_sigma, z * (1 + p.cosine_sigma ** 2) ** 0.5)):
            du, dc = model.denoise_pair(x, torch.full((1,), sigma), cond)
            parts.append(((x - du) / sigma, (x - dc) / sigma))
        (eu, ec), (eu2, ec2) = parts
        n = float((ec - eu).flatten().norm())
        a = float(F.cosine_similarity(eu2, ec2 - eu2, dim=1).mean())
        vals.append(p.gamma_norm * n + p.gamma_cos * a)
    return sum(vals) / len(vals)


def wen_reference(model, caption: str, seeds) -> float:
    """Wen et al., first step: mean over seeds of ||eps_c - eps_u||_2 at x_T."""
    vals = []
    cond = model.encode([caption])
    for seed in seeds:
        x = model.noise([caption], [seed]).float() * model.sigma_max
        du, dc = model.denoise_pair(x, torch.full((1,), model.sigma_max), cond)
        vals.append(float(((du - dc) / model.sigma_max).flatten().norm()))
    return sum(vals) / len(vals)


@pytest.mark.parametrize("n", [1, 4])
def test_wen_with_n_generations_matches_the_per_caption_reference(demo, n):
    got = wen(demo, CAPTIONS, WenParams(seeds=tuple(range(n))), batch_size=3).values
    want = torch.tensor([wen_reference(demo, c, range(n)) for c in CAPTIONS])
    assert torch.allclose(got, want, rtol=1e-4)


@pytest.mark.parametrize("n", [1, 4])
def test_sharpness_finite_difference_matches_the_exact_hessian_vector_product(demo, n):
    got = sharpness(demo, CAPTIONS, SharpnessParams(seeds=tuple(range(n))), batch_size=2).values
    want = torch.tensor([sharpness_reference(demo, c, range(n)) for c in CAPTIONS])
    assert torch.allclose(got, want, rtol=2e-2), (got, want)
    assert len(set(got.tolist())) == len(CAPTIONS)          # caption-dependent


def test_sharpness_and_anisotropy_on_sd_eps_and_v(sd):
    caps = ["a cat", "the dog", "on the mat"]
    got = sharpness(sd, caps, batch_size=2).values
    want = torch.tensor([sharpness_reference(sd, c, (0,)) for c in caps])
    assert torch.allclose(got, want, rtol=2e-2), (got, want)
    p = AnisotropyParams(seeds=(0, 1))
    got = anisotropy(sd, caps, p, batch_size=2).values
    want = torch.tensor([anisotropy_reference(sd, c, p) for c in caps])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)


def test_anisotropy_matches_the_reference_and_both_terms_matter(demo):
    p = AnisotropyParams(seeds=(0, 1, 2))
    got = anisotropy(demo, CAPTIONS, p, batch_size=2).values
    want = torch.tensor([anisotropy_reference(demo, c, p) for c in CAPTIONS])
    assert torch.allclose(got, want, rtol=1e-4, atol=1e-5)
    only_norm = anisotropy(demo, CAPTIONS, AnisotropyParams(seeds=(0, 1, 2), gamma_cos=0.0)).values
    assert not torch.allclose(got, only_norm)


def test_network_evaluations_per_caption_are_counted_by_the_adapter(demo):
    b = len(CAPTIONS)
    assert anisotropy(demo, CAPTIONS, batch_size=b).evals_per_caption == pytest.approx((b + 1) / b)   # 2 shared pairs
    assert sharpness(demo, CAPTIONS, batch_size=b).evals_per_caption == pytest.approx((b + 1) / (2 * b) + 1)
    assert wen(demo, CAPTIONS, WenParams(seeds=(0, 1, 2, 3)), batch_size=b).evals_per_caption == \
        pytest.approx((4 * b + 4) / (2 * b))


def test_score_kinds_with_n_generations_and_bad_ones():
    fn, p, whitebox = score_spec("sharpness4")
    assert fn is sharpness and p.seeds == (0, 1, 2, 3) and whitebox
    assert score_spec("wen").__getitem__(1).seeds == (0,)
    for bad in ("wen0", "dcs4", "sharp", "anisotropy-2"):
        with pytest.raises(ScoreInputError, match="expected a score kind"):
            score_spec(bad)


def test_the_closed_model_refuses_whitebox_detectors(tmp_path):
    from attack.models.base import ModelError
    from attack.models.images import ImagesModel
    model = ImagesModel({})
    for fn in (sharpness, anisotropy):
        with pytest.raises(ModelError, match="expected a whitebox model"):
            fn(model, ["a cat"])


# -- rank fusion: from stored scores, in the queue and the Stats curve -----------------------------
@pytest.fixture()
def scored(tmp_path):
    """8 candidates with stored dcs and anisotropy scores of model 'm' and human labels."""
    from store import CaptionRow, Store
    from tests.conftest import tiny_image

    s = Store.open(tmp_path / "store")
    ids = s.add_captions([CaptionRow(f"caption {i}") for i in range(8)])
    dcs = dict(zip(ids, [0.9, 0.1, 0.5, 0.7, 0.3, 0.2, 0.8, 0.4]))
    ani = dict(zip(ids, [0.2, 0.3, 0.9, 0.8, 0.1, 0.4, 0.7, 0.6]))
    for kind, vals in (("dcs", dcs), ("anisotropy", ani)):
        s.add_scores(s.start_run("score", "m", {"score": kind}), kind, vals.items())
    gen, sha = s.start_run("generate", "m", {}), s.put_image(tiny_image(0))
    for cid in ids:
        s.add_generation(cid, gen, 0, 1, "heun", sha)
    for cid, label in zip(ids, ["MV", "N", "TV", "MV", "N", "N", "RV", "N"]):
        s.add_label(cid, label, "ann")
    yield s, ids, dcs, ani
    s.close()


def _reference_fusion(*scores: dict) -> dict:
    """Mean over scores of rank / n (1 = lowest), written out per caption."""
    out = {}
    for c in scores[0]:
        out[c] = sum(sum(v[o] <= v[c] for o in v) / len(v) for v in scores) / len(scores)
    return out


def test_fusion_is_the_mean_rank_percentile_of_stored_scores(scored):
    from attack.scores.fusion import fuse

    s, ids, dcs, ani = scored
    rep = fuse(s, "dcs+anisotropy", "m")          # no model at all: no network call can happen
    got = s.latest_scores("dcs+anisotropy", "m", "fuse")
    want = _reference_fusion(dcs, ani)
    assert rep.captions == len(ids) and got == pytest.approx(want)
    assert fuse(s, "dcs+anisotropy", "m").run_id == rep.run_id          # same inputs: the same run
    s.add_scores(s.start_run("score", "m", {"score": "dcs"}), "dcs", [(ids[1], 5.0)])
    again = fuse(s, "dcs+anisotropy", "m")
    assert again.run_id != rep.run_id and s.latest_scores("dcs+anisotropy", "m", "fuse")[ids[1]] > want[ids[1]]


def test_bad_fusions_name_what_is_missing(scored):
    from attack.scores.fusion import FusionError, fuse

    s, *_ = scored
    for bad in ("dcs", "dcs+dcs", "dcs+", "+ecs"):
        with pytest.raises(FusionError, match="expected a fusion of two or more different scores"):
            fuse(s, bad, "m")
    with pytest.raises(FusionError, match="expected stored ecs scores of 'm'"):
        fuse(s, "dcs+ecs", "m")


def test_the_queue_and_the_stats_curve_rank_by_new_scores_and_fusions(scored):
    from attack.scores.fusion import fuse
    from review import queries
    from review.views import QueueFilter, queue_view

    s, ids, dcs, ani = scored
    fuse(s, "dcs+anisotropy", "m")
    kinds = queries.score_kinds(s)
    assert {"anisotropy", "dcs+anisotropy"} <= set(kinds)
    want = _reference_fusion(dcs, ani)
    for kind, values in (("anisotropy", ani), ("dcs+anisotropy", want)):
        view = queue_view(s, QueueFilter(order_by=kind, human="any"))
        shown = [values[c] for c in view.ids]             # a fusion ties: compare the values
        assert sorted(view.ids) == sorted(ids) and shown == sorted(shown, reverse=True)
        curve = [p for p in queries.precision_curves(s, kinds) if p["score"] == kind]
        order = sorted(ids, key=lambda c: -values[c])
        labels = [dict(zip(ids, ["MV", "N", "TV", "MV", "N", "N", "RV", "N"]))[c] for c in order]
        assert curve[-1]["found"] == 4 and curve[-1]["labelled"] == max(i + 1 for i, lab in enumerate(labels)
                                                                          if lab != "N")


def test_cli_fuse_and_generate_by_a_fusion(scored, capsys):
    from attack.cli import main

    s, *_ = scored
    assert main(["fuse", "dcs+anisotropy", "--store", str(s.path), "--model", "m"]) == 0
    assert "fuse dcs+anisotropy: run" in capsys.readouterr().out
    assert main(["fuse", "dcs+ecs", "--store", str(s.path), "--model", "m"]) == 2
    assert "expected stored ecs scores" in capsys.readouterr().err
    assert main(["fuse", "dcs", "--store", str(s.path)]) == 2
