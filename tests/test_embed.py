"""Embedders: the pixel descriptor and the open_clip path with random weights, offline."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from attack.images.embed import ClipEmbedder, EmbedderError, PixelEmbedder, load_embedder

TINY_CLIP = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """Any attempt to reach the Hugging Face hub fails loudly instead of downloading."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_pixel_is_unit_norm_batch_invariant_and_finds_near_copies():
    e = load_embedder("pixel")
    assert isinstance(e, PixelEmbedder) and e.spec == "pixel" and e.dim == 768
    g = torch.Generator().manual_seed(0)
    imgs = torch.rand(5, 3, 32, 32, generator=g)
    near = (imgs[0] + 0.02 * torch.randn(3, 32, 32, generator=g)).clamp(0, 1)
    v = e.embed(torch.cat([imgs, near[None]]), batch_size=2).vectors
    assert v.shape == (6, 768) and v.dtype == torch.float32
    assert torch.allclose(v.norm(dim=1), torch.ones(6), atol=1e-5)
    alone = e.embed(imgs[3:4]).vectors
    assert torch.allclose(alone[0], v[3], atol=1e-6)
    sims = v[5] @ v[:5].T
    assert int(sims.argmax()) == 0 and float(sims[0]) > 0.95
    uniform = e.embed(torch.full((1, 3, 8, 8), 0.5)).vectors
    assert torch.isfinite(uniform).all() and float(uniform.norm()) == pytest.approx(1.0, abs=1e-5)
    assert load_embedder("pixel:8").dim == 192


def test_unknown_and_malformed_specs_list_the_valid_ones():
    with pytest.raises(EmbedderError, match=r"expected an embedder spec among clip \(.*\); pixel \(.*\), got 'dino'"):
        load_embedder("dino")
    with pytest.raises(EmbedderError, match="expected pixel or pixel:<size 2..256>, got 'pixel:x'"):
        load_embedder("pixel:x")
    with pytest.raises(EmbedderError, match="expected clip:<arch>:<pretrained tag or checkpoint file>, got clip:ViT-B-32"):
        load_embedder("clip:ViT-B-32")
    with pytest.raises(EmbedderError, match="expected an open_clip architecture .* got 'NoSuchNet'"):
        load_embedder("clip:NoSuchNet:openai")
    with pytest.raises(EmbedderError, match=r"expected images \[N,3,H,W\] with N >= 1, got \(0, 3, 8, 8\)"):
        load_embedder("pixel").embed(torch.zeros(0, 3, 8, 8))
    with pytest.raises(EmbedderError, match="expected float images in \\[0,1\\], got dtype torch.uint8"):
        load_embedder("pixel").embed(torch.zeros(1, 3, 8, 8, dtype=torch.uint8))


def test_a_pretrained_tag_not_in_the_local_cache_is_an_error_never_a_download(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))  # an empty cache
    monkeypatch.setenv("HOME", str(tmp_path))  # and an empty ~/.cache/clip
    with pytest.raises(EmbedderError, match="expected the weights in the local cache .*got none; Verbatim never downloads"):
        load_embedder("clip:ViT-B-32:laion2b_s34b_b79k")
    with pytest.raises(EmbedderError, match="expected a pretrained tag of ViT-B-32 .*or an existing checkpoint file"):
        load_embedder("clip:ViT-B-32:no_such_tag")


@pytest.fixture
def tiny_clip(tmp_path):
    """A tiny open_clip architecture registered from a config, random weights saved to a file."""
    import open_clip
    from safetensors.torch import save_file

    cfg = tmp_path / "Verbatim-Tiny.json"
    cfg.write_text(json.dumps(TINY_CLIP))
    open_clip.add_model_config(cfg)
    torch.manual_seed(0)
    model = open_clip.create_model("Verbatim-Tiny", pretrained=None)
    path = tmp_path / "tiny.safetensors"
    save_file(model.state_dict(), str(path))
    return model.eval(), path


def test_clip_spec_loads_a_local_checkpoint_and_embeds_like_the_model(tiny_clip):
    model, path = tiny_clip
    e = load_embedder(f"clip:Verbatim-Tiny:{path}")
    assert isinstance(e, ClipEmbedder) and e.dim == 32 and e.spec == f"clip:Verbatim-Tiny:{path}"
    imgs = torch.rand(3, 3, 40, 48, generator=torch.Generator().manual_seed(1))
    v = e.embed(imgs, batch_size=2).vectors
    assert v.shape == (3, 32) and torch.allclose(v.norm(dim=1), torch.ones(3), atol=1e-5)
    # reference: shortest side to 32 (bicubic, antialiased), centre crop, CLIP normalisation
    x = torch.nn.functional.interpolate(imgs, size=(32, 38), mode="bicubic", antialias=True)[..., 3:35].clamp(0, 1)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model.encode_image((x - mean) / std), dim=1)
    assert torch.allclose(v, ref, atol=1e-5)
    assert torch.allclose(e.embed(imgs[2:]).vectors[0], v[2], atol=1e-5)  # batch invariant


def test_clip_spec_with_a_corrupt_checkpoint_is_a_named_error(tiny_clip, tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(EmbedderError, match="expected a loadable Verbatim-Tiny checkpoint"):
        load_embedder(f"clip:Verbatim-Tiny:{bad}")


def test_vit_b_32_with_random_weights_through_the_embedder():
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model("ViT-B-32", pretrained=None)
    e = ClipEmbedder(model, "clip:ViT-B-32:random")
    v = e.embed(torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))).vectors
    assert v.shape == (2, 512) and np.allclose(v.norm(dim=1).numpy(), 1.0, atol=1e-5)


def _tiny_sscd(path) -> str:
    """A tiny random copy-detection network saved as TorchScript, as SSCD is released."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 5, stride=4), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
                              torch.nn.Flatten())
    torch.jit.script(net).save(str(path))
    return str(path)


def test_sscd_spec_loads_a_local_torchscript_file_and_gives_unit_descriptors(tmp_path):
    spec = f"sscd:{_tiny_sscd(tmp_path / 'sscd.pt')}"
    emb = load_embedder(spec)
    assert emb.spec == spec and emb.dim == 32
    images = torch.rand(3, 3, 64, 48)
    out = emb.embed(images, batch_size=2)
    assert out.vectors.shape == (3, 32) and torch.allclose(out.vectors.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(emb.embed(images[1:2]).vectors, out.vectors[1:2], atol=1e-5)   # one row, one image
    with pytest.raises(EmbedderError, match=r"sscd:.*nope\.pt: expected a TorchScript file .* got no such file"):
        load_embedder(f"sscd:{tmp_path / 'nope.pt'}")
    (tmp_path / "bad.pt").write_bytes(b"not a module")
    with pytest.raises(EmbedderError, match="expected a TorchScript module, got a file torch.jit cannot load"):
        load_embedder(f"sscd:{tmp_path / 'bad.pt'}")
    assert any(s.startswith("sscd (") for s in __import__("attack.images.embed", fromlist=["x"]).embedder_specs())


def test_sscd_retrieves_and_gives_labels_a_second_opinion(tmp_path):
    from attack.stages.labels import label_stage
    from attack.stages.retrieve import RetrieveParams, retrieve_stage
    from store import CaptionRow, Store

    spec = f"sscd:{_tiny_sscd(tmp_path / 'sscd.pt')}"
    rng = np.random.default_rng(0)
    own = (rng.uniform(0, 1, (64, 64, 3)) * 255).astype(np.uint8)
    with Store.open(tmp_path / "s") as s:
        (cid,) = s.add_captions([CaptionRow("a copied picture")])
        tid = s.add_training_image(s.put_image(own), cid, "own.png")
        for i in range(3):
            s.add_training_image(s.put_image((rng.uniform(0, 1, (64, 64, 3)) * 255).astype(np.uint8)), None, f"{i}.png")
        run = s.start_run("generate", "closed", {})
        s.add_generation(cid, run, 0, 50, "images", s.put_image(own))
        retrieve_stage(s, RetrieveParams(embedder=spec, k=2))
        (gen,) = s.generations(cid)
        assert s.neighbours(gen.id)[0].train_image_id == tid
        label_stage(s, second_opinion=load_embedder(spec))
        a = s.auto_labels(cid)[-1]
    assert a.label == "MV"
    so = a.distances["second_opinion"]
    assert so["embedder"] == spec and so["similarity"] == pytest.approx(1.0, abs=1e-4) and so["train_image_id"] == tid
