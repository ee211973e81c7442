"""python -m attack retrieve | label | bench ranking: thin front ends; bad input exits 2, store unchanged."""
from __future__ import annotations

import numpy as np
import pytest

from attack.cli import build_parser, main
from attack.cli.commands import BENCHES
from store import CaptionRow, Store

from .conftest import snapshot


def _img(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (np.kron(rng.uniform(0, 1, (4, 4, 3)), np.ones((4, 4, 1))) * 255).astype(np.uint8)


@pytest.fixture
def small_store(tmp_path):
    path = tmp_path / "s"
    with Store.open(path) as s:
        caps = s.add_captions([CaptionRow(f"product photo {i}") for i in range(6)])
        for i, c in enumerate(caps):
            s.add_training_image(s.put_image(_img(i)), c, f"t{i}.png")
        run = s.start_run("generate", "demo", {})
        s.add_generation(caps[2], run, 0, 16, "heun-karras", s.put_image(_img(2)))
    return path


def test_retrieve_then_label_from_the_command_line(small_store, capsys):
    assert main(["retrieve", "--store", str(small_store), "--k", "3"]) == 0
    assert "1 generations searched" in capsys.readouterr().out
    assert main(["label", "--store", str(small_store), "--preset", "onestep-code"]) == 0
    assert "captions labelled (MV 1)" in capsys.readouterr().out
    with Store.open(small_store) as s:
        (al,) = s.auto_labels(s.caption_id("product photo 2"))
        assert al.label == "MV" and al.distances["mv"] == pytest.approx(0.0, abs=1e-6)
        assert al.distances["thresholds"] == {"tv": 0.113, "mv": 0.113, "rv": 0.124}
        assert len(s.neighbours(s.generations(al.caption_id)[0].id)) == 3


def test_bad_embedder_missing_store_or_bad_index_exit_2_and_change_nothing(small_store, tmp_path, capsys):
    before = snapshot(small_store)
    assert main(["retrieve", "--store", str(small_store), "--embedder", "dino"]) == 2
    assert "error: expected an embedder spec among clip" in capsys.readouterr().err
    assert main(["retrieve", "--store", str(small_store), "--index", str(tmp_path / "none")]) == 2
    assert "expected a faiss index file, got no such file" in capsys.readouterr().err
    assert main(["retrieve", "--store", str(small_store), "--embedder", "clip:ViT-B-32:/no/such/file.pt"]) == 2
    assert "expected a pretrained tag of ViT-B-32" in capsys.readouterr().err
    assert snapshot(small_store) == before
    assert main(["label", "--store", str(tmp_path / "absent")]) == 2
    assert "expected a store folder containing store.db" in capsys.readouterr().err
    assert not (tmp_path / "absent" / "store.db").exists()
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["label", "--store", str(small_store), "--preset", "strict"])
    assert e.value.code == 2


def test_demo_and_bench_ranking_are_registered():
    assert "ranking" in BENCHES
    a = build_parser().parse_args(["demo"])
    assert str(a.store) == "data/demo"
    a = build_parser().parse_args(["run", "--store", "x", "--captions", "c.txt", "--embedder", "pixel", "--k", "5"])
    assert (a.embedder, a.k, a.preset) == ("pixel", 5, "verbatim")


def test_retrieve_or_label_without_generations_is_an_error_that_writes_nothing(tmp_path, capsys):
    path = tmp_path / "empty"
    with Store.open(path) as s:
        (cid,) = s.add_captions([CaptionRow("a caption")])
        s.add_training_image(s.put_image(_img(0)), cid, "t.png")
    before = snapshot(path)
    assert main(["retrieve", "--store", str(path)]) == 2
    assert "expected generations to retrieve neighbours for" in capsys.readouterr().err
    assert main(["label", "--store", str(path)]) == 2
    assert "expected captions with generations to label" in capsys.readouterr().err
    assert snapshot(path) == before and not (path / "index").exists()
