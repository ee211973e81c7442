"""The `images:` adapter: lookups of externally generated images, and no whitebox access."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from attack.scores.dcs import dcs
from attack.scores.ecs import ECSParams, ecs
from attack.models import ModelError, load_model
from attack.models.images import ImagesModel
from attack.scores.wen import wen




def _square(size: int = 256, lo: int = 64, hi: int = 192) -> np.ndarray:
    a = np.zeros((size, size, 3), np.uint8)
    a[lo:hi, lo:hi] = 255
    return a


@pytest.fixture()
def folder(tmp_path):
    rows = []
    for seed in range(4):
        # "copied": the same square for every seed; "blurry": a different flat gray per seed
        Image.fromarray(_square()).save(tmp_path / f"copied_{seed}.png")
        Image.fromarray(np.full((256, 256, 3), 40 * seed, np.uint8)).save(tmp_path / f"blurry_{seed}.png")
        rows += [f"copied caption,{seed},1,copied_{seed}.png", f"blurry caption,{seed},1,blurry_{seed}.png"]
    Image.fromarray(_square(96, 10, 60)).save(tmp_path / "full.png")
    rows.append('"quoted, caption",7,50,full.png')
    (tmp_path / "mapping.csv").write_text("caption,seed,steps,path\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return tmp_path


def test_lookup_returns_the_stored_image_at_compare_size(folder):
    m = load_model(f"images:{folder}")
    s = m.sample(["quoted, caption"], [7], steps=50)
    assert s.images.shape == (1, 3, 256, 256)
    assert s.evals == 0 and s.sampler == "external"
    assert float(s.images.max()) == pytest.approx(1.0) and float(s.images.min()) == 0.0
    assert m.seeds_for("copied caption", 1) == [0, 1, 2, 3]


def test_missing_generation_says_which_and_what_exists(folder):
    m = ImagesModel.load(str(folder))
    with pytest.raises(ModelError, match=r"seed=9, steps=1.*\[0, 1, 2, 3\]"):
        m.sample(["copied caption"], [9], steps=1)


def test_whitebox_scores_say_why_not(folder):
    m = load_model(f"images:{folder}")
    with pytest.raises(ModelError, match="DCS.*known only by its images"):
        dcs(m, ["copied caption"])
    with pytest.raises(ModelError, match="Wen.*known only by its images"):
        wen(m, ["copied caption"])
    with pytest.raises(ModelError, match="no denoiser"):
        m.encode(["x"])
    with pytest.raises(ModelError, match="no denoiser"):
        _ = m.sigma_max


def test_blackbox_ecs_runs_on_stored_one_step_images(folder):
    m = load_model(f"images:{folder}")
    r = ecs(m, ["copied caption", "blurry caption"], ECSParams())
    assert r.evals_per_caption == 0
    # a 128px white square on black: its edge band is the 3x3 dilation minus the 3x3 erosion,
    # (128 + 2)^2 - (128 - 2)^2 = 8 * 128 pixels of 256^2
    assert float(r.values[0]) == 8 * 128 / 256 ** 2
    assert float(r.values[1]) == 0.0


def test_jsonl_mapping_with_absolute_paths_inside_its_folder(folder, tmp_path_factory):
    other = tmp_path_factory.mktemp("jsonl")
    (other / "gen").mkdir()
    (other / "gen" / "c0.png").write_bytes((folder / "copied_0.png").read_bytes())
    line = {"caption": "c", "seed": 0, "steps": 1, "path": str(other / "gen" / "c0.png")}
    (other / "mapping.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    m = load_model(f"images:{other}")
    assert m.sample(["c"], [0], steps=1).images.shape == (1, 3, 256, 256)
    line["path"] = str(folder / "copied_0.png")      # absolute, but outside the mapping's folder
    (other / "mapping.jsonl").write_text(json.dumps(line) + "\n", encoding="utf-8")
    with pytest.raises(ModelError, match="nothing outside the mapping's folder is read"):
        load_model(f"images:{other}")


@pytest.mark.parametrize("content,match", [
    ("caption,seed,path\nx,0,a.png\n", "missing steps"),
    ("caption,seed,steps,path\nx,zero,1,a.png\n", "integer seed"),
    ("caption,seed,steps,path\nx,0,1,nothere.png\n", "no file at"),
    ("", "empty file"),
])
def test_bad_mapping_files_name_the_problem(tmp_path, content, match):
    Image.fromarray(_square()).save(tmp_path / "a.png")
    (tmp_path / "mapping.csv").write_text(content, encoding="utf-8")
    with pytest.raises(ModelError, match=match):
        load_model(f"images:{tmp_path}")


def test_non_utf8_mapping_and_corrupt_image(tmp_path):
    (tmp_path / "mapping.csv").write_bytes(b"caption,seed,steps,path\n\xff\xfe,0,1,a.png\n")
    with pytest.raises(ModelError, match="UTF-8"):
        load_model(f"images:{tmp_path}")
    (tmp_path / "a.png").write_bytes(b"not a png")
    (tmp_path / "mapping.csv").write_text("caption,seed,steps,path\nx,0,1,a.png\n", encoding="utf-8")
    m = load_model(f"images:{tmp_path}")
    with pytest.raises(ModelError, match="readable image"):
        m.sample(["x"], [0], steps=1)


def test_duplicate_rows_and_missing_folder(tmp_path):
    Image.fromarray(_square()).save(tmp_path / "a.png")
    (tmp_path / "mapping.csv").write_text("caption,seed,steps,path\nx,0,1,a.png\nx,0,1,a.png\n", encoding="utf-8")
    with pytest.raises(ModelError, match="twice"):
        load_model(f"images:{tmp_path}")
    with pytest.raises(ModelError, match="no such path"):
        load_model(f"images:{tmp_path / 'nope'}")


def test_the_pictures_are_part_of_the_model(folder, tmp_path_factory):
    """Two folders with one mapping file but other pictures (a closed model's v1 and v2) are two
    models; the same pictures in another folder are one; a missing picture is named."""
    import shutil

    same = tmp_path_factory.mktemp("copy") / "same"
    shutil.copytree(folder, same)
    assert load_model(f"images:{same}").fingerprint() == load_model(f"images:{folder}").fingerprint()
    v2 = tmp_path_factory.mktemp("v2") / "v2"
    shutil.copytree(folder, v2)
    Image.fromarray(_square(256, 32, 96)).save(v2 / "copied_2.png")
    assert (v2 / "mapping.csv").read_bytes() == (folder / "mapping.csv").read_bytes()
    assert load_model(f"images:{v2}").fingerprint() != load_model(f"images:{folder}").fingerprint()
    model = load_model(f"images:{v2}")
    (v2 / "full.png").unlink()                   # gone after the mapping was read
    with pytest.raises(ModelError, match=r"expected a readable image for caption 'quoted, caption' seed 7, got .*full\.png"):
        model.fingerprint()
