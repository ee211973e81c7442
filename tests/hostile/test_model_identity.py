"""One model, one identity (issue 29): a model is its whole content, not its path. A tensor changed
in the middle of a weights file is a new model; the same weights under two paths are one model;
rankings read only the ranked model's scores; no label rests silently on an older retrieval."""
from __future__ import annotations

import json
import shutil
import struct

import numpy as np
import pytest

from attack.models import fingerprint as fp_module
from attack.models import load_model
from attack.stages.generate import GenerateParams, generate_stage
from attack.stages.labels import label_stage
from attack.stages.retrieve import RetrieveParams, retrieve_stage
from attack.stages.score import score_stage
from store import CaptionRow, Store
from tests.assets.tiny_sd import save_tiny_sd
from tests.test_never_stale import CAPTIONS, _add_training_images, _candidates

ONE_STEP = GenerateParams(top_k=2, seeds=(0,), steps=1)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow(c) for c in CAPTIONS])
        yield s


@pytest.fixture
def folder_a(tmp_path):
    return save_tiny_sd(tmp_path / "a", seed=0)


def _middle_tensor(path) -> tuple[str, int, int]:
    """A tensor of a safetensors file lying wholly between its first and its last MiB."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    mib = 1 << 20
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = (8 + n + o for o in info["data_offsets"])
        if start > mib + 8 + n and end < len(raw) - mib and info["dtype"] == "F32" and end - start >= 64:
            return name, start, end
    raise AssertionError(f"expected a tensor in the middle of {path}, got none")


def test_a_tensor_changed_in_the_middle_of_a_file_is_a_new_model_and_a_new_run(store, folder_a):
    unet = folder_a / "unet" / "diffusion_pytorch_model.safetensors"
    (first,) = score_stage(store, load_model(f"sd:{folder_a}"), CAPTIONS, ("dcs",))
    before = store.latest_scores("dcs", store.get_run(first.run_id).params["model_fingerprint"])
    # a partial fine-tune written in place: size, header, first and last MiB all unchanged
    name, start, end = _middle_tensor(unet)
    raw = bytearray(unet.read_bytes())
    values = np.frombuffer(bytes(raw[start:end]), dtype=np.float32) + np.float32(0.5)
    raw[start:end] = values.tobytes()
    unet.write_bytes(bytes(raw))
    (second,) = score_stage(store, load_model(f"sd:{folder_a}"), CAPTIONS, ("dcs",))
    assert second.run_id != first.run_id and not second.resumed and second.computed == len(CAPTIONS), name
    after = store.latest_scores("dcs", store.get_run(second.run_id).params["model_fingerprint"])
    assert before != after


def test_an_unchanged_file_is_hashed_once_per_store(store, folder_a, monkeypatch):
    load_model(f"sd:{folder_a}").fingerprint(store.digest_cache())
    monkeypatch.setattr(fp_module, "_CACHE", {})                  # a new process

    def no_hashing(*args, **kwargs):
        raise AssertionError("expected the digest from the store's cache, got a file read")
    monkeypatch.setattr(fp_module.hashlib, "blake2b", no_hashing)
    assert load_model(f"sd:{folder_a}").fingerprint(store.digest_cache())


def test_generation_ranks_by_the_generated_models_own_scores(store, folder_a, tmp_path):
    """Finding 1: A scored, B copied over the path and scored, A restored: A's ranking is A's."""
    backup = shutil.copytree(folder_a, tmp_path / "backup")
    model_a = load_model(f"sd:{folder_a}")
    (score_a,) = score_stage(store, model_a, CAPTIONS, ("dcs",))
    own = store.latest_scores("dcs", f"sd:{folder_a}")          # A's, the only scores so far
    assert len(own) == len(CAPTIONS)
    shutil.rmtree(folder_a)
    save_tiny_sd(folder_a, seed=1)
    score_stage(store, load_model(f"sd:{folder_a}"), CAPTIONS, ("dcs",))
    shutil.rmtree(folder_a)
    shutil.copytree(backup, folder_a)
    restored = load_model(f"sd:{folder_a}")
    (again,) = score_stage(store, restored, CAPTIONS, ("dcs",))
    assert again.run_id == score_a.run_id and again.resumed
    gen = generate_stage(store, restored, CAPTIONS, ONE_STEP)
    want = sorted(own, key=lambda c: -own[c])[:2]
    got = {c: g.meta["score"] for c in own for g in store.generations(c) if g.run_id == gen.run_id}
    assert sorted(got) == sorted(want) and all(got[c] == own[c] for c in got)


def test_the_same_weights_under_two_paths_are_one_model(store, folder_a, tmp_path):
    """Finding 2: two shard processes, two paths to the same weights: one run, one ranking."""
    other = shutil.copytree(folder_a, tmp_path / "mounted-elsewhere")
    (r1,) = score_stage(store, load_model(f"sd:{folder_a}"), CAPTIONS, ("dcs",), limit=3)
    (r2,) = score_stage(store, load_model(f"sd:{other}"), CAPTIONS, ("dcs",), offset=3)
    assert r2.run_id == r1.run_id and r2.resumed and r2.computed == 2
    gen = generate_stage(store, load_model(f"sd:{other}"), CAPTIONS, GenerateParams(top_k=0, seeds=(0,), steps=1))
    assert gen.computed == len(CAPTIONS)


def test_label_names_candidates_whose_retrieval_searched_fewer_images(store):
    """Finding 3: retrieve --captions SUBSET after new training images, then label."""
    gens = _candidates(store)
    _add_training_images(store, [np.full((32, 32, 3), 40 * i, np.uint8) for i in range(3)])
    retrieve_stage(store, RetrieveParams(k=2))
    assert label_stage(store).labelled == 3
    cid, img = next(iter(gens.items()))
    _add_training_images(store, [img])                         # an exact copy of one generation
    others = sorted(set(gens) - {cid})
    retrieve_stage(store, RetrieveParams(k=2), caption_ids=[cid])
    subset = label_stage(store, caption_ids=[cid])             # `attack run --captions LIST` takes this path
    assert subset.labelled == 1 and f"captions {others[0]}, {others[1]}" in subset.note
    rest = label_stage(store)
    assert rest.labelled == 0 and rest.stale == 2 and f"captions {others[0]}, {others[1]}" in rest.note
    assert "run `python -m attack retrieve`" in rest.summary()
    forced = label_stage(store, allow_stale=True)
    assert forced.stale == 0 and "--allow-stale" in forced.note
    retrieve_stage(store, RetrieveParams(k=2))
    assert label_stage(store).stale == 0
