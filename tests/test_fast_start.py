"""Commands that touch no model import no torch (issue 15: fast start). Each runs in a fresh
interpreter that reports whether torch was imported by the time the command returned."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import json, runpy, sys
module, argv = sys.argv[1], sys.argv[2:]
sys.argv = [module] + argv
code = 0
try:
    runpy.run_module(module, run_name="__main__")
except SystemExit as e:
    code = e.code or 0
print(json.dumps({"torch": "torch" in sys.modules, "ray": "ray" in sys.modules, "code": code}))
"""


def _probe(module: str, *argv: str) -> dict:
    out = subprocess.run([sys.executable, "-c", PROBE, module, *argv], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("argv", [["--help"], ["ingest", "--help"], ["score", "--help"], ["run", "--help"],
                                  ["label", "--help"], ["bench", "--help"]])
def test_help_imports_no_torch(argv):
    got = _probe("attack", *argv)
    assert got == {"torch": False, "ray": False, "code": 0}


def test_caption_ingest_and_store_commands_import_no_torch(tmp_path):
    captions = tmp_path / "c.csv"
    captions.write_text("caption,url\na red cat,http://x/1\na blue dog,\n", encoding="utf-8")
    store = tmp_path / "s"
    assert _probe("attack", "ingest", "--store", str(store), str(captions)) == {"torch": False, "ray": False,
                                                                               "code": 0}
    assert _probe("store", "info", "--store", str(store), "--json") == {"torch": False, "ray": False, "code": 0}
    out = tmp_path / "e.csv"
    assert _probe("store", "export", "--store", str(store), "--out", str(out))["torch"] is False
    assert out.is_file()


def _label_store(path: Path) -> dict:
    """Six captions with a training image each; generations: a copy of its own image (MV), a near copy of another
    caption's image whose mask a reviewer edited after retrieval (label recomputes the masked distance: TV), and an
    unrelated picture (N); neighbours from the pixel retrieval."""
    import numpy as np

    from attack.stages.retrieve import RetrieveParams, retrieve_stage
    from store import CaptionRow, Store
    from tests.conftest import tiny_image

    with Store.open(path) as s:
        caps = s.add_captions([CaptionRow(f"product photo {i}") for i in range(6)])
        images = [np.kron(tiny_image(i, 8), np.ones((4, 4, 1), np.uint8)) for i in range(6)]
        tids = [s.add_training_image(s.put_image(im), c, f"t{i}.png") for i, (im, c) in enumerate(zip(images, caps))]
        run = s.start_run("generate", "demo", {})
        near = np.clip(images[2].astype(int) + np.random.default_rng(0).integers(-6, 7, images[2].shape), 0, 255)
        for cap, picture in ((caps[0], images[0]), (caps[1], near.astype(np.uint8)), (caps[3], tiny_image(99, 32))):
            s.add_generation(cap, run, 0, 16, "heun-karras", s.put_image(picture))
        retrieve_stage(s, RetrieveParams(k=3))
        keep = np.ones((32, 32), bool)
        keep[:8, :8] = False
        s.save_mask(tids[2], keep, source="edited", author="ann")
    return {"copy": caps[0], "near": caps[1], "unrelated": caps[3]}


def test_label_imports_no_torch_and_writes_the_torch_distances(tmp_path):
    """`label` computes its distances without torch; they are the torch ones (attack.images.metrics on tensors) as the
    label stores them (6 decimals), its labels and flags those of the same store labelled in process."""
    import shutil

    import torch

    from attack.stages.labels import label_stage
    from attack.images.metrics import mask_to_compare, masked_rmse, rmse
    from store import Store

    path = tmp_path / "s"
    caps = _label_store(path)
    shutil.copytree(path, tmp_path / "in-process")
    assert _probe("attack", "label", "--store", str(path)) == {"torch": False, "ray": False, "code": 0}
    with Store.open(tmp_path / "in-process") as s:
        label_stage(s, "verbatim")      # the CLI's default preset
        again = {c: s.auto_labels(c)[-1] for c in caps.values()}
    with Store.open(path) as s:
        def tensor(sha: str) -> torch.Tensor:
            return torch.from_numpy(s.compare_pixels(sha).copy()).permute(2, 0, 1).contiguous().float()[None] / 255.0

        got = {name: s.auto_labels(c)[-1] for name, c in caps.items()}
        assert {name: a.label for name, a in got.items()} == {"copy": "MV", "near": "TV", "unrelated": "N"}
        for name, c in caps.items():
            d, (gen,) = got[name].distances, s.generations(c)
            mv = [round(float(rmse(tensor(gen.image_sha), tensor(t.sha256))[0]), 6) for t in s.training_images_for(c)]
            assert d["mv"] == min(mv)
            ns = s.neighbours(gen.id)
            assert d["rv"] == round(min(n.rmse for n in ns), 6)
            masked = []
            for n in ns:
                mask = s.current_mask(n.train_image_id)
                if mask is not None:
                    train = tensor(s.get_training_image(n.train_image_id).sha256)
                    keep = mask_to_compare(s.load_mask(mask.image_sha))
                    masked.append(round(float(masked_rmse(tensor(gen.image_sha), train, keep)[0]), 6))
            assert d["tv"] == (min(masked) if masked else None)
            assert (got[name].label, got[name].flags, d) == (again[c].label, again[c].flags, again[c].distances)
    some = tmp_path / "some.txt"
    some.write_text("product photo 0\nproduct photo 1\n")
    assert _probe("attack", "label", "--store", str(path), "--captions", str(some), "--recompute") == \
        {"torch": False, "ray": False, "code": 0}
    with Store.open(path) as s:
        assert [len(s.auto_labels(c)) for c in caps.values()] == [2, 2, 1]
