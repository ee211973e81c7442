"""Inference-time mitigations as models (attack/models/mitigate.py): each against a small
reference computation on the demo model, plus fingerprints and bad specs."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from attack.models import ModelError, canonical_spec, load_model
from attack.models import mitigate as mit
from attack.models.mitigate import MitigatedModel, MitigationError, WenAdjustment, parse_mitigation
from attack.scores.dcs import DCSParams, dcs

CAPS = ["a red car parked by the sea", "portrait of an old man with a hat"]


@pytest.fixture(scope="module")
def demo():
    return load_model("demo", "cpu")


# --- cfg -----------------------------------------------------------------------------------

def test_cfg_denoise_is_the_hand_guided_sum_whatever_guidance_is_asked(demo):
    m = load_model("demo+mitigate:cfg=3", "cpu")
    x = demo.noise(CAPS, [0, 1]) * demo.sigma_max
    sigma = torch.full((2,), 3.0)
    cond = demo.encode(CAPS)
    du, dc = demo.denoise_pair(x, sigma, cond)
    want = du + 3 * (dc - du)
    for asked in (1.0, 7.5, 12.0):
        assert torch.allclose(m.denoise(x, sigma, cond, guidance=asked), want, atol=1e-6, rtol=0)
        assert m.guidance_for(asked) == 3.0
    assert not torch.allclose(demo.denoise(x, sigma, cond, guidance=7.5), want, atol=1e-3)
    shared = m.shared_denoiser([0, 1], cond, 7.5)(x, sigma)           # the path DCS takes
    assert torch.allclose(shared, want, atol=1e-5, rtol=0)


def test_cfg_sample_and_scores_run_at_the_mitigation_scale(demo):
    m = load_model("demo+mitigate:cfg=3", "cpu")
    got = m.sample(CAPS, [0, 1], steps=2, guidance=7.5)
    want = demo.sample(CAPS, [0, 1], steps=2, guidance=3.0)
    assert torch.equal(got.images, want.images)
    assert got.guidance == 3.0
    assert not torch.equal(got.images, demo.sample(CAPS, [0, 1], steps=2, guidance=7.5).images)
    assert torch.equal(dcs(m, CAPS).values, dcs(demo, CAPS, DCSParams(guidance=3.0)).values)


# --- rta -----------------------------------------------------------------------------------

def _is_subsequence(small: list[str], big: list[str]) -> bool:
    it = iter(big)
    return all(w in it for w in small)


def test_rta_adds_count_words_deterministically_and_encodes_the_augmented_caption(demo):
    a, b = load_model("demo+mitigate:rta=4", "cpu"), load_model("demo+mitigate:rta=4", "cpu")
    added = []
    for c in CAPS:
        aug = a.augmented(c)
        words, new = c.split(), aug.split()
        assert len(new) == len(words) + 4
        assert _is_subsequence(words, new)
        assert aug == b.augmented(c)
        extra = list(new)
        for w in words:
            extra.remove(w)
        assert all(w in a._words for w in extra)
        added.append((aug, sorted(extra)))
    assert added[0][1] != added[1][1]                          # another caption, other words
    assert a.augmented("") == ""                                # the unconditional input is never changed
    assert torch.equal(a.encode(CAPS), demo.encode([a.augmented(c) for c in CAPS]))
    assert torch.equal(a.uncond(2), demo.uncond(2))
    assert not torch.equal(a.encode(CAPS), demo.encode(CAPS))


def test_rta_draws_are_pinned():
    """A resumed run must add the same words: the draws come from SHA-256 of the caption alone."""
    words = ("x", "y", "z")
    assert mit.add_random_words("a b c", 2, words) == mit.add_random_words("a b c", 2, list(words))
    assert mit.add_random_words("a b c", 2, words) == PINNED
    assert mit.add_random_words("", 3, words) == ""


PINNED = "y z a b c"


# --- wen -----------------------------------------------------------------------------------

def reference_wen(net, caption: str, lr: float, steps: int, target: float, noises: int):
    """Wen et al.'s loop for one caption, written plainly: torch.optim.AdamW on the embedding,
    loss = ||(D_u - D_c) / sigma||_2 over `noises` starting noises (seeds 0..noises-1) at sigma_max,
    stop when the loss is <= target, the start token's gradient zeroed."""
    sigma = float(net.sigmas[-1])
    x = torch.stack([torch.randn(*net.cfg.latent_shape, generator=torch.Generator().manual_seed(s))
                     for s in range(noises)]) * sigma
    s = torch.full((noises,), sigma)
    with torch.no_grad():
        du = net.denoise(x, s, net.encode([""]).expand(noises, -1, -1))
        e = net.encode([caption]).clone()
    e.requires_grad_(True)
    opt = torch.optim.AdamW([e], lr=lr)
    losses = []
    for _ in range(steps):
        loss = ((du - net.denoise(x, s, e.expand(noises, -1, -1))) / sigma).norm()
        losses.append(loss.item())
        if loss.item() <= target:
            break
        (e.grad,) = torch.autograd.grad(loss, [e])
        e.grad[:, 0] = 0
        opt.step()
        opt.zero_grad()

    def loss_of(emb):
        with torch.no_grad():
            return ((du - net.denoise(x, s, emb.expand(noises, -1, -1))) / sigma).norm().item()

    return e.detach()[0], losses, loss_of


def test_wen_published_defaults():
    assert parse_mitigation("wen") == WenAdjustment(target=3.0, lr=0.05, steps=10, noises=4)


def test_wen_adjusted_embeddings_match_a_plain_adamw_loop(demo):
    m = load_model("demo+mitigate:wen=target:0,steps:4,noises:2", "cpu")
    start = m.evals
    got = m.encode(CAPS)                                        # both captions in one batched adjustment
    assert m.evals - start == 2 / 2 + 4 * 2 * 2                 # uncond rows once + steps * (fwd + bwd) * captions
    for i, c in enumerate(CAPS):
        ref, losses, loss_of = reference_wen(demo.net, c, lr=0.05, steps=4, target=0.0, noises=2)
        assert torch.allclose(got[i], ref, atol=1e-5, rtol=1e-4)
        assert np.allclose(m.trace(c).losses, losses, rtol=1e-4)
        assert m.trace(c).steps == 4
        assert loss_of(got[i]) < losses[0]                      # the adjustment lowered ||eps_c - eps_u||
        assert not torch.allclose(got[i], demo.encode([c])[0], atol=1e-4)
    before = m.evals
    assert torch.equal(m.encode(CAPS[::-1]), got.flip(0))       # cached: the same embedding, no new calls
    assert m.evals == before
    assert torch.equal(m.encode([""]), demo.encode([""]))      # the unconditional input is never adjusted


def test_wen_stops_under_the_target_and_counts_what_it_ran(demo):
    _, losses, _ = reference_wen(demo.net, CAPS[0], lr=0.05, steps=2, target=0.0, noises=2)
    assert losses[1] < losses[0]
    target = (losses[0] + losses[1]) / 2                        # met after exactly one step
    m = MitigatedModel(load_model("demo", "cpu"), WenAdjustment(target=target, steps=10, noises=2))
    start = m.evals
    got = m.encode(CAPS[:1])
    assert m.trace(CAPS[0]).steps == 1
    assert m.evals - start == 2 / 2 + 1 * 2 + 2 / 2             # uncond + one step (fwd + bwd) + the final forward
    ref, _, _ = reference_wen(demo.net, CAPS[0], lr=0.05, steps=10, target=target, noises=2)
    assert torch.allclose(got[0], ref, atol=1e-5, rtol=1e-4)


# --- identity and specs --------------------------------------------------------------------

def test_fingerprints_separate_mitigations_and_repeat_for_one_spec(demo):
    specs = ["demo", "demo+mitigate:cfg=3", "demo+mitigate:cfg=2", "demo+mitigate:rta=4", "demo+mitigate:wen"]
    prints = [load_model(s, "cpu").fingerprint() for s in specs]
    assert len(set(prints)) == len(specs)
    assert load_model("demo+mitigate:cfg=3", "cpu").fingerprint() == prints[1]
    same = load_model("demo+mitigate:cfg=3.0", "cpu")
    assert same.fingerprint() == prints[1] and same.spec == "demo+mitigate:cfg=3"
    assert canonical_spec("demo+mitigate:wen=lr:0.05,steps:5") == "demo+mitigate:wen=steps:5"
    stacked = load_model("demo+mitigate:rta=4+mitigate:cfg=3", "cpu")   # rta inside, cfg outside
    assert stacked.spec == "demo+mitigate:rta=4+mitigate:cfg=3" and stacked.guidance_for(7.5) == 3.0
    assert torch.equal(stacked.encode(CAPS), demo.encode([stacked.inner.augmented(c) for c in CAPS]))
    assert stacked.fingerprint() not in prints


@pytest.mark.parametrize("spec, why", [
    ("demo+mitigate:cfg=abc", "cfg needs a number, got 'abc'"),
    ("demo+mitigate:nope=1", "unknown mitigation 'nope'"),
    ("demo+mitigate:", "nothing follows"),
    ("demo+mitigate:cfg", "cfg needs a guidance scale"),
    ("demo+mitigate:cfg=-1", "finite guidance >= 0"),
    ("demo+mitigate:rta=0", "integer >= 1"),
    ("demo+mitigate:rta=2.5", "rta needs an integer"),
    ("demo+mitigate:wen=lr:fast", "lr needs a number"),
    ("demo+mitigate:wen=depth:3", "keys target, lr, steps, noises"),
])
def test_bad_mitigations_name_the_input_and_the_valid_forms(spec, why):
    with pytest.raises(MitigationError) as err:
        load_model(spec, "cpu")
    msg = str(err.value)
    assert repr(spec) in msg and why in msg
    for form in ("cfg=<guidance>", "rta=<words>", "wen=<key:value,...>"):
        assert form in msg


def test_unknown_inner_spec_lists_models_and_the_suffix():
    with pytest.raises(ModelError) as err:
        load_model("nope+mitigate:cfg=3", "cpu")
    msg = str(err.value)
    assert "'nope'" in msg and "demo (" in msg and "+mitigate:<mitigation>" in msg and "rta=<words>" in msg


def test_a_closed_model_cannot_be_mitigated(tmp_path):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "a.png")
    (tmp_path / "mapping.csv").write_text("caption,seed,steps,path\nx,0,1,a.png\n", encoding="utf-8")
    with pytest.raises(MitigationError, match="expected a whitebox model for \\+mitigate:cfg=3.*no network to change"):
        load_model(f"images:{tmp_path}+mitigate:cfg=3", "cpu")


def test_parameter_sets_validate_themselves():
    assert mit.GuidanceMitigation(3).text() == "cfg=3" and mit.RandomTokens(4).text() == "rta=4"
    assert WenAdjustment(lr=0.1).text() == "wen=lr:0.1" and WenAdjustment().text() == "wen"
    for bad in (lambda: mit.GuidanceMitigation(float("nan")), lambda: mit.RandomTokens(True),
                lambda: WenAdjustment(steps=0)):
        with pytest.raises(MitigationError):
            bad()
    assert len(mit.WORDS) == len(set(mit.WORDS)) > 100


def test_rta_draws_from_the_models_own_words(demo, tmp_path_factory):
    """The demo model and a tiny Stable Diffusion give their tokenizer's whole words; the word list
    is part of the mitigated model's identity."""
    from tests.assets.tiny_sd import tiny_sd_folder

    words = demo.vocabulary()
    assert words and not any(w.startswith("<") and w.endswith(">") for w in words)
    m = load_model("demo+mitigate:rta=4")
    added = set(m.augmented("a red chair").split()) - {"a", "red", "chair"}
    assert added and added <= set(words)
    sd = load_model(f"sd:{tiny_sd_folder(tmp_path_factory, 'epsilon')}")
    vocab = sd.vocabulary()
    assert vocab and all(w.isalpha() for w in vocab)
    tok = sd.tokenize.tokenizer.get_vocab()
    assert all(f"{w}</w>" in tok for w in vocab)


def test_generate_records_the_scale_a_cfg_model_generates_at(tmp_path):
    from attack.stages.generate import GenerateParams, generate_stage
    from store import CaptionRow, Store

    model = load_model("demo+mitigate:cfg=3")
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow("a red chair")])
        generate_stage(s, model, ["a red chair"], GenerateParams(top_k=1, seeds=(0,), steps=2), by=None)
        (g,) = s.generations(s.caption_id("a red chair"))
        assert g.meta["guidance"] == 3.0
        assert s.get_run(g.run_id).params["model_fingerprint"] == model.fingerprint(s.digest_cache())
