"""The demo network and its adapter, on tiny seeded models built from configs."""
from __future__ import annotations

import torch
import pytest

from attack.demo.net import DemoConfig, DemoNet, discrete_sigmas
from attack.demo.text import WordTokenizer
from attack.models import ModelError, load_model
from attack.models.demo import DemoModel
from attack.sampling import caption_noise, karras_sigmas

CAPTIONS = ["a red brick wall", "orange cat close up", "blue carpet in a living room", "moon photo"]


def tiny_net(seed: int = 0) -> DemoNet:
    g = torch.random.fork_rng()
    with g:
        torch.manual_seed(seed)
        vocab = WordTokenizer.from_captions(CAPTIONS).vocab
        return DemoNet(DemoConfig(block_out_channels=(16, 32), text_dim=32, text_layers=1, vocab=tuple(vocab))).eval()


def test_tokenizer_maps_unknown_words_and_pads_the_empty_caption():
    tok = WordTokenizer.from_captions(["Red brick wall"], max_length=6)
    ids = tok(["red BRICK, wall!", "", "purple wall one two three four five"])
    v = tok.index
    assert ids[0].tolist() == [v["<bos>"], v["red"], v["brick"], v["wall"], v["<eos>"], 0]
    assert ids[1].tolist() == [v["<bos>"], v["<eos>"], 0, 0, 0, 0]
    assert ids[2, 1].item() == v["<unk>"] and ids[2, -1].item() == v["<eos>"]  # truncated, still closed


def test_tokenizer_rejects_a_vocab_without_special_tokens():
    with pytest.raises(ValueError, match="expected vocab to start with"):
        WordTokenizer(["red", "wall"])


def test_sigma_range_is_stable_diffusions_training_schedule():
    s = discrete_sigmas(DemoConfig())
    assert s[-1].item() == pytest.approx(14.6146, abs=1e-3)
    assert s[0].item() == pytest.approx(0.0292, abs=1e-3)


def test_karras_one_step_is_sigma_max_then_zero():
    assert karras_sigmas(1, 0.03, 14.6).tolist() == pytest.approx([14.6, 0.0])
    s = karras_sigmas(16, 0.03, 14.6)
    assert len(s) == 17 and s[0].item() == pytest.approx(14.6) and s[-2].item() == pytest.approx(0.03)
    assert bool((s[:-1] > s[1:]).all())


def test_noise_depends_on_the_seed_alone():
    a = caption_noise(["x", "y", "x"], [0, 0, 1], (3, 4, 4))
    assert torch.equal(a[0], a[1]) and not torch.equal(a[0], a[2])
    assert torch.equal(caption_noise(["x"], [1], (3, 4, 4))[0], a[2])
    with pytest.raises(ValueError, match="one seed per caption"):
        caption_noise(["x"], [0, 1], (3, 4, 4))


def test_fold_unfold_is_lossless():
    net = tiny_net()
    img = torch.rand(2, 3, 32, 32)
    z = net.fold(img)
    assert z.shape == (2, *net.cfg.latent_shape)
    assert torch.allclose(net.unfold(z), img, atol=1e-6)


def test_a_captions_samples_are_the_same_alone_or_in_any_batch():
    model = DemoModel(tiny_net())
    caps, seeds = CAPTIONS, [0, 1, 2, 3]
    batch = model.sample(caps, seeds, steps=3).images
    alone = torch.cat([model.sample([c], [s], steps=3).images for c, s in zip(caps, seeds)])
    rev = model.sample(caps[::-1], seeds[::-1], steps=3).images.flip(0)
    assert batch.shape == (4, 3, 32, 32) and 0 <= batch.min() and batch.max() <= 1
    # Convolution kernels differ by batch size in the last float32 bits; guidance 7.5 over several
    # steps of a random network amplifies that, so compare well below one 8-bit grey level.
    assert torch.allclose(batch, alone, atol=5e-4)
    assert torch.allclose(batch, rev, atol=5e-4)


def test_one_guided_denoiser_call_is_batch_invariant_to_1e5():
    model = DemoModel(tiny_net())
    x = model.noise(CAPTIONS, [0] * 4) * model.sigma_max
    s = torch.full((4,), model.sigma_max)
    c = model.encode(CAPTIONS)
    batch = model.denoise(x, s, c)
    alone = torch.cat([model.denoise(x[i:i + 1], s[i:i + 1], model.encode([CAPTIONS[i]])) for i in range(4)])
    assert torch.allclose(batch, alone, atol=1e-5)


def test_guidance_mixes_conditional_and_unconditional_denoisers():
    model = DemoModel(tiny_net())
    x = torch.randn(2, *model.latent_shape) * 3
    sigma = torch.full((2,), 3.0)
    cond = model.encode(CAPTIONS[:2])
    du, dc = model.denoise_pair(x, sigma, cond)
    assert torch.allclose(model.denoise(x, sigma, cond, guidance=7.5), du + 7.5 * (dc - du), atol=1e-5)
    assert torch.allclose(model.denoise(x, sigma, cond, guidance=1.0), dc, atol=1e-5)
    assert model.evals == 2 + 2 + 2  # one cond+uncond pair per caption per call


def test_heun_spends_2n_minus_1_calls():
    model = DemoModel(tiny_net())
    out = model.sample(CAPTIONS[:2], [0, 0], steps=4)
    assert out.evals == 7 and model.evals == 2 * 7


def test_weights_round_trip_through_safetensors(tmp_path):
    net = tiny_net()
    net.save(tmp_path)
    back = DemoNet.load(tmp_path)
    assert back.cfg == net.cfg
    x = torch.randn(2, *net.cfg.latent_shape)
    s = torch.tensor([1.0, 5.0])
    c = net.encode(CAPTIONS[:2])
    with torch.no_grad():
        # stored as float16: outputs agree to half precision
        assert torch.allclose(back.denoise(x, s, back.encode(CAPTIONS[:2])), net.denoise(x, s, c), atol=2e-2)
    assert (tmp_path / "model.safetensors").read_bytes()[:8]  # safetensors header, not pickle


def test_missing_weights_give_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="expected demo model file"):
        DemoModel.load(tmp_path)


def test_unknown_model_spec_lists_the_valid_ones():
    with pytest.raises(ModelError) as e:
        load_model("nope:thing")
    assert "demo" in str(e.value) and "nope:thing" in str(e.value)


def test_cuda_on_a_machine_without_it_is_refused():
    if torch.cuda.is_available():  # this branch only runs on a GPU machine
        assert load_model("demo", device="cuda").device.type == "cuda"
    else:
        with pytest.raises(ModelError, match="expected a CUDA device"):
            load_model("demo", device="cuda")


def test_committed_demo_model_loads_offline_copies_two_planted_captions_and_not_two_uniques():
    """The shipped weights: the two most duplicated exact duplicates (200 and 150 copies) come back
    verbatim (best of J=4 within RMSE 0.12, the memorization bench's rule), two uniques do not."""
    import numpy as np

    from attack.demo.world import build_world
    from attack.images.metrics import rmse, to_compare

    model = load_model("demo")
    assert model.latent_shape == (12, 16, 16) and model.sigma_max == pytest.approx(14.6146, abs=1e-3)
    world = build_world(0)
    planted = [a for a in world.attack if a.kind == "exact"][:2]
    uniques = [a for a in world.attack if a.kind == "unique"][:2]
    chosen = planted + uniques
    refs = to_compare(np.stack([world.images[a.own_image] for a in chosen]))
    out = model.sample([a.caption for a in chosen for _ in range(4)], [0, 1, 2, 3] * len(chosen), steps=16,
                       guidance=7.5)
    best = rmse(to_compare(out.images), refs.repeat_interleave(4, 0)).view(len(chosen), 4).min(1).values
    assert (best[:2] <= 0.12).all() and (best[2:] > 0.12).all(), best
