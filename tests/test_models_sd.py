"""The `sd:` adapter on tiny random pipelines saved as diffusers folders (nothing downloaded)."""
from __future__ import annotations

import math
import shutil

import pytest
import torch

from attack.models import ModelError, load_model, model_specs
from attack.models.sd import StableDiffusionModel, resolve_dtype, training_sigmas
from tests.assets.tiny_sd import tiny_sd_folder



SD_V1_SCHEDULER = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012,
                   "beta_schedule": "scaled_linear", "prediction_type": "epsilon"}


@pytest.fixture(scope="module")
def eps_folder(tmp_path_factory):
    return tiny_sd_folder(tmp_path_factory, "epsilon")


@pytest.fixture(scope="module")
def v_folder(tmp_path_factory):
    return tiny_sd_folder(tmp_path_factory, "v_prediction")


@pytest.fixture(scope="module")
def eps_model(eps_folder):
    return load_model(f"sd:{eps_folder}")


@pytest.fixture(scope="module")
def v_model(v_folder):
    return load_model(f"sd:{v_folder}")


def reference_sigma_to_t(sigma: float, sigmas: list[float]) -> float:
    """k-diffusion's log-sigma interpolation, written as a plain loop."""
    ls = math.log(sigma)
    logs = [math.log(s) for s in sigmas]
    low = 0
    for i, l in enumerate(logs):
        if l <= ls:
            low = i
    low = min(low, len(logs) - 2)
    w = (logs[low] - ls) / (logs[low] - logs[low + 1])
    w = min(max(w, 0.0), 1.0)
    return (1 - w) * low + w * (low + 1)


def test_sd_v1_schedule_gives_sigma_max_14_6146():
    sig, pred = training_sigmas(SD_V1_SCHEDULER)
    assert pred == "epsilon"
    assert sig.shape == (1000,)
    assert float(sig[-1]) == pytest.approx(14.6146, abs=1e-3)
    assert float(sig[0]) == pytest.approx(0.0292, abs=1e-3)
    assert bool((sig[1:] > sig[:-1]).all())


def test_loaded_folder_reads_its_own_schedule(eps_model, v_model):
    assert isinstance(eps_model, StableDiffusionModel)
    assert eps_model.sigma_max == pytest.approx(14.6146, abs=1e-3)
    assert eps_model.prediction_type == "epsilon"
    assert v_model.prediction_type == "v_prediction"
    assert eps_model.latent_shape == (4, 8, 8)
    assert eps_model.dtype == torch.float32


def test_other_beta_schedule_changes_sigma_max():
    sig, _ = training_sigmas({**SD_V1_SCHEDULER, "beta_schedule": "linear", "beta_start": 0.0001, "beta_end": 0.02})
    abar = torch.cumprod(1 - torch.linspace(0.0001, 0.02, 1000, dtype=torch.float64), 0)
    assert float(sig[-1]) == pytest.approx(float(((1 - abar[-1]) / abar[-1]).sqrt()), rel=1e-4)


def test_sigma_to_t_matches_kdiffusion_interpolation(eps_model):
    table = eps_model.sigmas.tolist()
    probes = [eps_model.sigma_max, eps_model.sigma_min, 1.0, 0.5, 3.3, 14.0, 0.03, table[500], 20.0, 0.01]
    got = eps_model.sigma_to_t(torch.tensor(probes))
    want = torch.tensor([reference_sigma_to_t(s, table) for s in probes])
    assert torch.allclose(got, want, atol=1e-3)
    assert float(got[0]) == pytest.approx(999.0, abs=1e-4)


def _unet_out(model, x, sigma, cond):
    """The raw UNet output at sigma, with k-diffusion's input scaling (a plain reference)."""
    t = torch.tensor([reference_sigma_to_t(sigma, model.sigmas.tolist())] * x.shape[0])
    with torch.no_grad():
        return model.unet(x / math.sqrt(sigma ** 2 + 1), t, encoder_hidden_states=cond).sample


@pytest.mark.parametrize("sigma", [14.614646911621094, 2.0, 0.1])
def test_eps_denoiser_is_x_minus_sigma_eps(eps_model, sigma):
    x = torch.randn(2, *eps_model.latent_shape, generator=torch.Generator().manual_seed(1)) * sigma
    cond = eps_model.encode(["a cat", "the dog"])
    want = x - sigma * _unet_out(eps_model, x, sigma, cond)
    with torch.no_grad():
        got = eps_model._denoise(x, torch.full((2,), sigma), cond)
    assert torch.allclose(got, want, atol=1e-4)


@pytest.mark.parametrize("sigma", [14.614646911621094, 1.0])
def test_v_denoiser_follows_compvis_v_scalings(v_model, sigma):
    x = torch.randn(2, *v_model.latent_shape, generator=torch.Generator().manual_seed(2)) * sigma
    cond = v_model.encode(["a cat", "on the"])
    v = _unet_out(v_model, x, sigma, cond)
    want = x / (sigma ** 2 + 1) - v * sigma / math.sqrt(sigma ** 2 + 1)
    with torch.no_grad():
        got = v_model._denoise(x, torch.full((2,), sigma), cond)
    assert torch.allclose(got, want, atol=1e-4)


def test_encode_is_batch_invariant_and_caption_dependent(eps_model):
    both = eps_model.encode(["a cat", "the dog"])
    alone = eps_model.encode(["the dog"])
    assert torch.allclose(both[1], alone[0], atol=1e-6)
    assert not torch.allclose(both[0], both[1])


def test_guidance_mixes_the_pair_and_counts_evals(eps_model):
    x = torch.randn(3, *eps_model.latent_shape, generator=torch.Generator().manual_seed(3)) * 14.6
    s = torch.full((3,), 14.6)
    cond = eps_model.encode(["a", "b", "c"])
    before = eps_model.evals
    du, dc = eps_model.denoise_pair(x, s, cond)
    assert eps_model.evals - before == 3
    g = eps_model.denoise(x, s, cond, guidance=7.5)
    assert torch.allclose(g, du + 7.5 * (dc - du), atol=1e-4)


def test_decode_gives_rgb_in_unit_range(eps_model):
    z = torch.randn(3, *eps_model.latent_shape, generator=torch.Generator().manual_seed(4))
    img = eps_model.decode(z)
    assert img.shape == (3, 3, 16, 16) and img.dtype == torch.float32
    assert float(img.min()) >= 0 and float(img.max()) <= 1


def test_hub_id_resolves_in_local_cache_only(eps_folder, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    repo = tmp_path / "models--someone--tiny-sd"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(eps_folder, repo / "snapshots" / ("0" * 40))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))
    m = load_model("sd:someone/tiny-sd")
    assert m.sigma_max == pytest.approx(14.6146, abs=1e-3)
    with pytest.raises(ModelError, match="someone/not-cached.*local Hugging Face cache"):
        load_model("sd:someone/not-cached")


def test_missing_path_names_the_spec():
    with pytest.raises(ModelError, match=r"sd:/no/such/folder"):
        load_model("sd:/no/such/folder")


def test_folder_without_components_says_which(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(ModelError, match="without vae, text_encoder, tokenizer, scheduler"):
        load_model(f"sd:{tmp_path}")


def test_unknown_spec_lists_valid_specs():
    with pytest.raises(ModelError) as e:
        load_model("nonsense:thing")
    msg = str(e.value)
    for spec in ("demo", "sd:", "images:", "sd-random"):
        assert spec in msg
    assert "nonsense:thing" in msg
    assert len(model_specs()) >= 4


def test_cuda_on_a_machine_without_it_is_a_model_error(eps_folder, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelError, match="expected a CUDA device"):
        load_model(f"sd:{eps_folder}", device="cuda")


def test_half_precision_on_cpu_is_refused(eps_folder):
    with pytest.raises(ModelError, match="expected float32 on CPU"):
        load_model(f"sd:{eps_folder}", dtype="float16")
    with pytest.raises(ModelError, match="--dtype"):
        resolve_dtype("float8", "cpu")
    assert resolve_dtype(None, "cpu") == torch.float32
    assert resolve_dtype(None, "cuda") == torch.float16
    assert resolve_dtype("bf16", "cuda") == torch.bfloat16


def test_zero_terminal_snr_schedule_is_refused():
    with pytest.raises(ModelError, match="zero-terminal-SNR"):
        training_sigmas({**SD_V1_SCHEDULER, "rescale_betas_zero_snr": True})


@pytest.fixture(scope="module")
def single_file(tmp_path_factory):
    """A tiny pipeline saved both as a diffusers folder and as one original-layout checkpoint."""
    from safetensors.torch import save_file

    from tests.assets.tiny_sd import tiny_pipeline, to_ldm_checkpoint

    root = tmp_path_factory.mktemp("single")
    pipe = tiny_pipeline(root / "tok", seed=1)
    pipe.save_pretrained(str(root / "folder"))
    ldm = to_ldm_checkpoint(pipe)
    save_file(ldm, str(root / "tiny.safetensors"))
    torch.save(ldm, str(root / "tiny.ckpt"))
    return root


def test_single_safetensors_with_local_config_equals_the_folder(single_file):
    from attack.scores.dcs import dcs

    m = load_model(f"sd:{single_file / 'tiny.safetensors'}", config=str(single_file / "folder"))
    ref = load_model(f"sd:{single_file / 'folder'}")
    caps = ["a cat", "the dog"]
    assert torch.equal(m.encode(caps), ref.encode(caps))
    assert torch.equal(dcs(m, caps).values, dcs(ref, caps).values)
    z = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.equal(m.decode(z), ref.decode(z))
    assert m.sigma_max == ref.sigma_max


@pytest.mark.parametrize("name", ["tiny.safetensors", "tiny.ckpt"])
def test_single_file_without_config_asks_for_one_instead_of_downloading(single_file, name):
    with pytest.raises(ModelError, match=r"--config.*stable-diffusion-v1-5.*not in the local Hugging Face cache"):
        load_model(f"sd:{single_file / name}")


def test_single_file_with_bad_config_or_suffix(single_file, tmp_path):
    with pytest.raises(ModelError, match="--config"):
        load_model(f"sd:{single_file / 'tiny.safetensors'}", config="not a folder or id")
    (tmp_path / "weights.txt").write_text("x")
    with pytest.raises(ModelError, match=r"\.safetensors or \.ckpt"):
        load_model(f"sd:{tmp_path / 'weights.txt'}")
