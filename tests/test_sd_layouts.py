"""Which on-disk layouts `sd:` loads and which it refuses (docs/own-model.md), each built from a
tiny random pipeline: .bin weights, plain + fp16 + non_ema side by side, shards, a single-file
checkpoint with and without --config, an SDXL folder, a hub id in a local Hugging Face cache."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch

from attack.models import ModelError, load_model
from tests.assets.tiny_sd import save_tiny_sd, tiny_pipeline, to_ldm_checkpoint
from tests.conftest import subprocess_env


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return tiny_pipeline(tmp_path_factory.mktemp("tok"), seed=0)


@pytest.fixture(scope="module")
def plain(pipe, tmp_path_factory):
    folder = tmp_path_factory.mktemp("plain")
    pipe.save_pretrained(str(folder))
    return folder


def unet_out(model) -> torch.Tensor:
    """One unguided denoiser output on fixed inputs: equal outputs, equal networks."""
    x = torch.randn(2, *model.latent_shape, generator=torch.Generator().manual_seed(0))
    return model._denoise(x, torch.tensor([3.0, 0.5]), model.encode(["a cat", "the dog"]))


def weight_names(model) -> list[str]:
    return [n for n in model._files if n.endswith((".safetensors", ".bin"))]


def test_bin_only_folder_loads_the_same_network_under_another_fingerprint(pipe, plain, tmp_path):
    pipe.save_pretrained(str(tmp_path), safe_serialization=False)
    assert (tmp_path / "unet" / "diffusion_pytorch_model.bin").is_file()
    assert not list((tmp_path / "unet").glob("*.safetensors"))
    m, ref = load_model(f"sd:{tmp_path}"), load_model(f"sd:{plain}")
    assert m.latent_shape == (4, 8, 8)
    assert torch.equal(unet_out(m), unet_out(ref))
    assert m.fingerprint() != ref.fingerprint()       # the bytes are the identity, not the tensors


@pytest.fixture(scope="module")
def runwayml(pipe, tmp_path_factory):
    """The runwayml/stable-diffusion-v1-5 layout: plain .safetensors and .bin, fp16 variant files
    (half precision) and a non_ema UNet (other weights) side by side."""
    folder = tmp_path_factory.mktemp("runwayml")
    pipe.save_pretrained(str(folder))
    pipe.save_pretrained(str(folder), safe_serialization=False)
    tiny_pipeline(folder / "_tok16", seed=0).to(torch.float16).save_pretrained(str(folder), variant="fp16")
    shutil.rmtree(folder / "_tok16")
    tiny_pipeline(folder / "_tok1", seed=1).unet.save_pretrained(str(folder / "unet"), variant="non_ema")
    shutil.rmtree(folder / "_tok1")
    assert {p.name for p in (folder / "unet").iterdir()} >= {
        "diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin",
        "diffusion_pytorch_model.fp16.safetensors", "diffusion_pytorch_model.non_ema.safetensors"}
    return folder


def test_side_by_side_variants_load_the_plain_files_by_default(runwayml, plain):
    m = load_model(f"sd:{runwayml}")
    assert torch.equal(unet_out(m), unet_out(load_model(f"sd:{plain}")))    # not the non_ema UNet
    assert not [n for n in weight_names(m) if ".fp16." in n or ".non_ema." in n]
    # diffusers reads the .safetensors: the .bin beside them is not part of the model's identity
    assert not [n for n in weight_names(m) if n.endswith(".bin")]


def test_an_unused_bin_beside_the_safetensors_is_not_part_of_the_model(runwayml, tmp_path):
    copy = shutil.copytree(runwayml, tmp_path / "copy")
    before = load_model(f"sd:{copy}").fingerprint()
    for f in copy.rglob("*.bin"):
        f.unlink()
    assert load_model(f"sd:{copy}").fingerprint() == before


def test_variant_fp16_loads_the_fp16_files_only(runwayml, plain):
    m = load_model(f"sd:{runwayml}", variant="fp16")
    names = weight_names(m)
    assert len(names) == 3 and all(".fp16." in n for n in names)
    ref = load_model(f"sd:{plain}")
    assert m.dtype == torch.float32                 # on CPU the half weights are cast up
    assert torch.equal(m.unet.conv_in.weight, ref.unet.conv_in.weight.half().float())


def test_non_ema_is_never_picked_and_cannot_be_asked_for(runwayml):
    with pytest.raises(ModelError, match=r"expected 'non_ema' variant weights for .*got none in vae, text_encoder"):
        load_model(f"sd:{runwayml}", variant="non_ema")


def test_variant_choice_without_plain_files(pipe, plain, tmp_path):
    with pytest.raises(ModelError, match=r"expected 'fp16' variant weights .*got none in unet, vae, text_encoder"):
        load_model(f"sd:{plain}", variant="fp16")
    only = tmp_path / "fp16"
    pipe.save_pretrained(str(only), variant="fp16")     # how the cache holds a variant="fp16" download
    assert all(".fp16." in n for n in weight_names(load_model(f"sd:{only}")))
    pipe.save_pretrained(str(only), variant="bf16")
    with pytest.raises(ModelError, match=r"plain weight files or one variant in every component.*--variant"):
        load_model(f"sd:{only}")
    assert all(".bf16." in n for n in weight_names(load_model(f"sd:{only}", variant="bf16")))


def test_sharded_weights_load_as_one_model(pipe, plain, tmp_path):
    pipe.save_pretrained(str(tmp_path), max_shard_size="200KB")
    assert (tmp_path / "unet" / "diffusion_pytorch_model.safetensors.index.json").is_file()
    shards = sorted((tmp_path / "unet").glob("diffusion_pytorch_model-*-of-*.safetensors"))
    assert len(shards) > 1
    m, ref = load_model(f"sd:{tmp_path}"), load_model(f"sd:{plain}")
    assert torch.equal(unet_out(m), unet_out(ref))
    assert set(weight_names(m)) >= {f"unet/{p.name}" for p in shards}
    assert m.fingerprint() != ref.fingerprint()       # other bytes: resharding is another model


@pytest.fixture(scope="module")
def single(pipe, tmp_path_factory):
    from safetensors.torch import save_file

    path = tmp_path_factory.mktemp("single") / "model.safetensors"
    save_file(to_ldm_checkpoint(pipe), str(path))
    return path


def test_single_file_takes_everything_but_the_weights_from_config(single, plain, tmp_path):
    m = load_model(f"sd:{single}", config=str(plain))
    assert torch.equal(unet_out(m), unet_out(load_model(f"sd:{plain}")))
    v = load_model(f"sd:{single}", config=str(save_tiny_sd(tmp_path / "v", "v_prediction", seed=1)))
    assert (m.prediction_type, v.prediction_type) == ("epsilon", "v_prediction")
    with pytest.raises(ModelError, match="expected --variant only with a diffusers folder, got a single file"):
        load_model(f"sd:{single}", config=str(plain), variant="fp16")
    # only the config folder's configs are read: its weights (or their absence) do not change the model
    bare = tmp_path / "configs-only"
    for f in plain.rglob("*"):
        if f.is_file() and f.suffix in (".json", ".txt"):
            (bare / f.relative_to(plain)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, bare / f.relative_to(plain))
    assert load_model(f"sd:{single}", config=str(bare)).fingerprint() == m.fingerprint()
    assert all("transformers_version" not in c for c in m.identity()["configs"].values())


def test_single_file_without_config_names_the_default_it_will_not_download(single, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path))    # an empty cache, whatever this machine holds
    with pytest.raises(ModelError, match=r"pass --config <diffusers folder or cached hub id>; the default config "
                                         r"diffusers infers for it, 'stable-diffusion-v1-5/stable-diffusion-v1-5', "
                                         r"is not in the local Hugging Face cache"):
        load_model(f"sd:{single}")


def test_sdxl_folder_is_refused_at_load(pipe, tmp_path):
    from diffusers import StableDiffusionXLPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModelWithProjection

    tok = pipe.tokenizer
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64, attention_head_dim=8, norm_num_groups=32, addition_embed_type="text_time",
        addition_time_embed_dim=8, projection_class_embeddings_input_dim=32 + 6 * 8)
    text_2 = CLIPTextModelWithProjection(CLIPTextConfig(
        vocab_size=len(tok), hidden_size=32, intermediate_size=37, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=tok.model_max_length, projection_dim=32, bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id))
    StableDiffusionXLPipeline(vae=pipe.vae, text_encoder=pipe.text_encoder, text_encoder_2=text_2, tokenizer=tok,
                              tokenizer_2=tok, unet=unet, scheduler=pipe.scheduler).save_pretrained(str(tmp_path))
    assert json.loads((tmp_path / "model_index.json").read_text())["_class_name"] == "StableDiffusionXLPipeline"
    with pytest.raises(ModelError, match=r"expected Stable Diffusion 1.x or 2.x .*got an SDXL folder "
                                         r"\(StableDiffusionXLPipeline\): SDXL is not supported"):
        load_model(f"sd:{tmp_path}")


def test_hub_id_resolves_to_the_snapshot_refs_main_names(plain, tmp_path, monkeypatch):
    """HF_HUB_CACHE (else HF_HOME/hub) is read when huggingface_hub is imported: set it before the
    process starts; here a child process shows the variable is honoured, and the load itself runs
    with the module constant patched the same way."""
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny-sd"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("b" * 40)
    shutil.copytree(plain, repo / "snapshots" / ("b" * 40))
    save_tiny_sd(repo / "snapshots" / ("a" * 40), seed=1)      # an older snapshot that refs/main does not name
    code = "from attack.models.sd import cached_snapshot; print(cached_snapshot('org/tiny-sd'))"
    env = dict(subprocess_env(), HF_HUB_CACHE=str(cache), HF_HUB_OFFLINE="1")
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == str((repo / "snapshots" / ("b" * 40)).resolve())
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    m = load_model("sd:org/tiny-sd")
    assert m.spec == "sd:org/tiny-sd"
    assert m.fingerprint() == load_model(f"sd:{plain}").fingerprint()    # the same bytes as the folder
    with pytest.raises(ModelError, match=r"expected hub id 'org/absent' in the local Hugging Face cache "
                                         r"\(nothing is downloaded\), got no cached snapshot"):
        load_model("sd:org/absent")
