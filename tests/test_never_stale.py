"""Results that are never stale: a run is keyed by the model's content, dependent stages notice
new training images, generation grows without regenerating, real checkpoint folders load."""
from __future__ import annotations

import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from attack import cli
from attack.stages.generate import GenerateParams
from attack.stages.labels import label_stage
from attack.models import ModelError, load_model
from attack.stages.generate import generate_stage
from attack.stages.score import score_stage
from attack.stages.retrieve import RetrieveParams, retrieve_stage
from store import CaptionRow, Store
from tests.assets.tiny_sd import save_tiny_sd, tiny_pipeline
from tests.conftest import REPO, subprocess_env, tiny_image
from tests.test_pipeline import tiny_spec  # noqa: F401,F811 - a fixture

CAPTIONS = ["a cat", "the dog", "on the mat", "red sun", "a cat on the mat"]


@pytest.fixture
def sd_folder(tmp_path):
    return save_tiny_sd(tmp_path / "model", seed=0)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow(c) for c in CAPTIONS])
        yield s


# -- content identity -------------------------------------------------------------------------------
def test_new_weights_at_the_same_path_start_a_new_run_and_say_why(store, sd_folder):
    (first,) = score_stage(store, load_model(f"sd:{sd_folder}"), CAPTIONS, ("dcs",))
    shutil.rmtree(sd_folder)
    save_tiny_sd(sd_folder, seed=1)                      # a fine-tune saved over the old folder
    (second,) = score_stage(store, load_model(f"sd:{sd_folder}"), CAPTIONS, ("dcs",))
    assert second.run_id != first.run_id and not second.resumed and second.computed == len(CAPTIONS)
    assert f"is not the one run {first.run_id} used" in second.note
    (again,) = score_stage(store, load_model(f"sd:{sd_folder}"), CAPTIONS, ("dcs",))
    assert again.run_id == second.run_id and again.resumed and again.computed == 0
    a, b = (store.latest_scores("dcs", f"sd:{sd_folder}") for _ in range(2))
    assert a == b


def test_a_trailing_slash_or_relative_path_is_the_same_model(store, sd_folder, monkeypatch):
    (first,) = score_stage(store, load_model(f"sd:{sd_folder}"), CAPTIONS[:2], ("dcs",))
    monkeypatch.chdir(sd_folder.parent)
    for spec in (f"sd:{sd_folder}/", f"sd:./{sd_folder.name}", f"sd:{sd_folder.name}/"):
        model = load_model(spec)
        assert model.spec == f"sd:{sd_folder.resolve()}"
        (r,) = score_stage(store, model, CAPTIONS[:2], ("dcs",))
        assert r.run_id == first.run_id and r.computed == 0


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    from safetensors.torch import save_file

    from tests.assets.tiny_sd import to_ldm_checkpoint

    root = tmp_path_factory.mktemp("single17")
    pipe = tiny_pipeline(root / "tok", seed=3)
    pipe.save_pretrained(str(root / "eps"))
    save_file(to_ldm_checkpoint(pipe), str(root / "tiny.safetensors"))
    v = tiny_pipeline(root / "tok_v", prediction_type="v_prediction", seed=3)
    v.save_pretrained(str(root / "v"))
    return root


def test_another_config_for_the_same_single_file_is_another_model(store, single):
    spec = f"sd:{single / 'tiny.safetensors'}"
    eps = load_model(spec, config=str(single / "eps"))
    v = load_model(spec, config=str(single / "v"))
    assert eps.fingerprint() != v.fingerprint() and eps.spec == v.spec
    (a,) = score_stage(store, eps, CAPTIONS, ("dcs",))
    (b,) = score_stage(store, v, CAPTIONS, ("dcs",))
    assert b.run_id != a.run_id and b.computed == len(CAPTIONS) and "is not the one run" in b.note


def test_the_fingerprint_ignores_paths_and_is_cached(sd_folder, tmp_path, monkeypatch):
    from attack.models import fingerprint

    copy = tmp_path / "copy"
    shutil.copytree(sd_folder, copy)
    assert load_model(f"sd:{sd_folder}").fingerprint() == load_model(f"sd:{copy}").fingerprint()
    assert load_model("demo").fingerprint() == load_model("demo").fingerprint()
    opened = []
    monkeypatch.setattr(fingerprint, "open", lambda *a, **kw: opened.append(a[0]) or open(*a, **kw), raising=False)
    weights = next(copy.glob("unet/*.safetensors"))
    fingerprint._CACHE.clear()
    first = fingerprint.file_digest(weights)
    assert fingerprint.file_digest(weights) == first and len(opened) == 1   # cached per (path, size, mtime)


def test_images_model_is_identified_by_its_mapping_content(tmp_path):
    folder = tmp_path / "closed"
    folder.mkdir()
    Image.fromarray(tiny_image(1, 32)).save(folder / "a.png")
    Image.fromarray(tiny_image(2, 32)).save(folder / "b.png")
    (folder / "mapping.csv").write_text("caption,seed,steps,path\na cat,0,1,a.png\n")
    first = load_model(f"images:{folder}").fingerprint()
    (folder / "mapping.csv").write_text("caption,seed,steps,path\na cat,0,1,b.png\n")
    assert load_model(f"images:{folder}").fingerprint() != first


# -- dependent stages notice change --------------------------------------------------------------------
def _candidates(store: Store, n: int = 3) -> dict[int, np.ndarray]:
    """n captions with one generation each (an image of their own) and no training images."""
    run = store.start_run("generate", "test", {})
    out = {}
    for i, text in enumerate(CAPTIONS[:n]):
        img = tiny_image(50 + i, 32)
        cid = store.caption_id(text)
        store.add_generation(cid, run, 0, 1, "heun", store.put_image(img))
        out[cid] = img
    store.finish_run(run, 0)
    return out


def _add_training_images(store: Store, images: list[np.ndarray]) -> None:
    run = store.start_run("ingest", "", {})
    for k, img in enumerate(images):
        store.add_training_image(store.put_image(img), None, f"t{store.training_set_version().max_id + 1}.png")
    store.finish_run(run, 0)


def test_label_before_any_training_image_leaves_candidates_unlabelled(store):
    _candidates(store)
    report = label_stage(store)
    assert report.run_id is None and report.labelled == 0 and report.no_evidence == 3
    assert "no training images yet" in report.summary()
    assert store.auto_label_states() == []


def test_new_training_images_refresh_retrieval_and_labels(store):
    gens = _candidates(store)
    _add_training_images(store, [tiny_image(900 + i, 32) for i in range(4)])   # unrelated images
    r1 = retrieve_stage(store, RetrieveParams(k=3))
    l1 = label_stage(store)
    assert r1.computed == 3 and l1.counts == {"N": 3}
    # nothing changed: both stages skip everything
    assert retrieve_stage(store, RetrieveParams(k=3)).computed == 0
    assert label_stage(store).labelled == 0
    # an exact copy of one generation enters the training set
    cid, img = next(iter(gens.items()))
    _add_training_images(store, [img])
    stale = label_stage(store)       # retrieval not refreshed yet: says so, relabels nothing
    assert stale.labelled == 0 and "run `python -m attack retrieve`" in stale.summary()
    r2 = retrieve_stage(store, RetrieveParams(k=3))
    assert r2.run_id != r1.run_id and r2.computed == 3 and "the training images changed" in r2.note
    l2 = label_stage(store)
    assert l2.labelled == 3 and l2.run_id != l1.run_id and "labelled again" in l2.note
    state = {a.caption_id: a.label for a in store.auto_label_states()}
    assert state[cid] == "RV" and sorted(state.values()).count("N") == 2
    assert [a.label for a in store.auto_labels(cid)] == ["N", "RV"]    # the old label stays in the history
    gid = store.generations(cid)[0].id
    assert store.neighbour_run(gid) == r2.run_id and store.neighbours(gid)[0].rmse == 0.0


def test_recompute_forces_a_new_retrieval_and_labels(store):
    _candidates(store)
    _add_training_images(store, [tiny_image(900 + i, 32) for i in range(3)])
    r1 = retrieve_stage(store, RetrieveParams(k=2))
    label_stage(store)
    r2 = retrieve_stage(store, RetrieveParams(k=2), recompute=True)
    assert r2.run_id != r1.run_id and r2.computed == 3 and "--recompute" in r2.note
    l2 = label_stage(store, recompute=True)
    assert l2.labelled == 3


def test_a_new_k_or_embedder_is_a_new_retrieval(store):
    _candidates(store)
    _add_training_images(store, [tiny_image(900 + i, 32) for i in range(3)])
    r1 = retrieve_stage(store, RetrieveParams(k=2))
    r2 = retrieve_stage(store, RetrieveParams(k=3))
    assert r2.run_id != r1.run_id and r2.computed == 3
    gid = store.generations(store.caption_id(CAPTIONS[0]))[0].id
    assert len(store.neighbours(gid)) == 3


# -- sharding and growth ------------------------------------------------------------------------------
def test_growing_top_k_and_seeds_generates_only_what_is_missing(store):
    from tests.test_pipeline import tiny_model

    model = tiny_model()
    score_stage(store, model, CAPTIONS, ("dcs",))
    g1 = generate_stage(store, model, CAPTIONS, GenerateParams(top_k=2, seeds=(0, 1), steps=2))
    g2 = generate_stage(store, model, CAPTIONS, GenerateParams(top_k=3, seeds=(0, 1), steps=2))
    g3 = generate_stage(store, model, CAPTIONS, GenerateParams(top_k=3, seeds=(0, 1, 2), steps=2))
    assert g1.run_id == g2.run_id == g3.run_id
    assert (g1.computed, g2.computed, g2.skipped, g3.computed, g3.skipped) == (4, 2, 4, 3, 6)
    assert len(store.generated_pairs(g1.run_id)) == 9
    other_steps = generate_stage(store, model, CAPTIONS, GenerateParams(top_k=1, seeds=(0,), steps=3))
    assert other_steps.run_id != g1.run_id


def test_the_same_generation_cannot_be_stored_twice(store):
    run = store.start_run("generate", "m", {})
    cid = store.caption_id(CAPTIONS[0])
    a = store.add_generation(cid, run, 0, 2, "heun", store.put_image(tiny_image(1)))
    b = store.add_generation(cid, run, 0, 2, "heun", store.put_image(tiny_image(2)))
    assert a == b and len(store.generations(cid)) == 1
    import sqlite3
    with pytest.raises(sqlite3.IntegrityError):
        store.conn.execute("INSERT INTO generations (caption_id, run_id, seed, steps, sampler, image_sha, created_at) "
                           "VALUES (?, ?, 0, 2, 'heun', 'x', 'now')", (cid, run))


def test_cli_run_shards_only_score_and_generate_follows(tmp_path, tiny_spec, capsys):  # noqa: F811
    caps = tmp_path / "caps.txt"
    caps.write_text("\n".join(CAPTIONS) + "\n")
    base = ["run", "--store", str(tmp_path / "s"), "--model", "tiny", "--captions", str(caps), "--top-k", "2",
            "--seeds", "1", "--steps", "2"]
    assert cli.main(base + ["--offset", "0", "--limit", "3"]) == 0
    assert cli.main(base + ["--offset", "3"]) == 0
    out = capsys.readouterr().out
    assert out.count("generate, retrieve, label: skipped, this call scored a shard") == 2
    with Store.open(tmp_path / "s") as s:
        assert s.candidate_count() == 0 and len(s.latest_scores("dcs", "tiny")) == 5
    assert cli.main(["generate", "--store", str(tmp_path / "s"), "--model", "tiny", "--top-k", "2", "--seeds", "1",
                     "--steps", "2"]) == 0
    with Store.open(tmp_path / "s") as s:
        assert s.candidate_count() == 2     # the top 2 of all five captions, not of a shard


# -- loading real checkpoints ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fp16_only(tmp_path_factory):
    """A folder laid out like the Hugging Face cache of variant="fp16": only *.fp16.* weights."""
    folder = tmp_path_factory.mktemp("fp16") / "model"
    tiny_pipeline(folder.parent / "tok", seed=2).save_pretrained(str(folder), variant="fp16")
    assert not list(folder.glob("unet/diffusion_pytorch_model.safetensors"))
    return folder


def test_a_variant_only_folder_loads_by_itself_and_with_variant(fp16_only):
    auto = load_model(f"sd:{fp16_only}")
    named = load_model(f"sd:{fp16_only}", variant="fp16")
    caps = ["a cat"]
    assert torch.equal(auto.encode(caps), named.encode(caps)) and auto.fingerprint() == named.fingerprint()
    with pytest.raises(ModelError, match=r"expected 'bf16' variant weights .* got none in unet, vae, text_encoder"):
        load_model(f"sd:{fp16_only}", variant="bf16")


def test_a_bare_path_suggests_the_prefix(sd_folder, tmp_path):
    with pytest.raises(ModelError, match=f"did you mean sd:{sd_folder}"):
        load_model(str(sd_folder))
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "mapping.csv").write_text("caption,seed,steps,path\n")
    with pytest.raises(ModelError, match="did you mean images:"):
        load_model(str(tmp_path / "closed"))


def test_loading_says_what_it_loaded_on_one_line(tmp_path, sd_folder):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow("a cat")])
    out = subprocess.run([sys.executable, "-m", "attack", "score", "--store", str(tmp_path / "s"), "--model",
                          f"sd:{sd_folder}", "--device", "cpu"], capture_output=True, text=True, cwd=REPO,
                         env=subprocess_env(), timeout=300)
    assert out.returncode == 0, out.stderr
    line = next(line for line in out.stderr.splitlines() if line.startswith("loading "))
    assert line.startswith(f"loading sd:{sd_folder} ... (") and "M parameters, float32, cpu) in " in line
    assert "accelerate" not in out.stderr          # no warning about a missing accelerate


def test_requirements_admit_gpu_torch_and_ci_pins_the_pair():
    req = (REPO / "requirements.txt").read_text()
    assert "torch>=" in req and "torch==" not in req and "accelerate" in req
    pins = (REPO / "constraints.txt").read_text()
    assert "torch==2.14.1" in pins and "torchvision==0.29.1" in pins
    assert "-c constraints.txt" in (REPO / ".ci" / "run").read_text()
