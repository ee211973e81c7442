"""The closed-model path (images:) end to end: scores over the mapping's own seeds, generation
of what the mapping holds at its own size, the automatic export."""
from __future__ import annotations

import csv
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from attack import cli
from store import CaptionRow, Store
from tests.conftest import tiny_image

CAPTIONS = ["a red chair", "a blue sofa", "a green lamp"]


@pytest.fixture
def closed(tmp_path):
    """A mapping with one-step images at seeds 3 and 7 for every caption, full 40-px images at
    seeds 0 and 1 (steps 30) for two of them."""
    folder = tmp_path / "closed"
    folder.mkdir()
    rows = []
    for i, c in enumerate(CAPTIONS):
        for s in (3, 7):
            name = f"t1_{i}_{s}.png"
            Image.fromarray(tiny_image(10 * i + s, 32)).save(folder / name)
            rows.append([c, s, 1, name])
        if i < 2:
            for s in (0, 1):
                name = f"full_{i}_{s}.png"
                Image.fromarray(tiny_image(100 + 10 * i + s, 40)).save(folder / name)
                rows.append([c, s, 30, name])
    with open(folder / "mapping.csv", "w", newline="") as f:
        csv.writer(f).writerows([["caption", "seed", "steps", "path"], *rows])
    store_dir = tmp_path / "s"
    with Store.open(store_dir) as s:
        s.add_captions([CaptionRow(c) for c in CAPTIONS])
    return folder, store_dir


def test_ecs_runs_over_each_captions_own_seeds(closed, capsys):
    folder, store_dir = closed
    assert cli.main(["score", "--store", str(store_dir), "--model", f"images:{folder}", "--scores", "ecs"]) == 0
    assert "score ecs: run" in capsys.readouterr().out
    with Store.open(store_dir) as s:
        (run,) = s.runs(stage="score")
        assert run.params["params"]["seeds"] == [] and len(s.latest_scores("ecs", f"images:{folder}")) == 3


def test_generate_takes_the_mappings_seeds_and_steps_and_keeps_the_image_size(closed, capsys):
    folder, store_dir = closed
    cli.main(["score", "--store", str(store_dir), "--model", f"images:{folder}", "--scores", "ecs"])
    # no --by: the first score computed (ecs); no --steps/--seeds: the largest steps (30) and its seeds
    assert cli.main(["generate", "--store", str(store_dir), "--model", f"images:{folder}", "--top-k", "2"]) == 0
    out = capsys.readouterr().out
    assert "generate external: run" in out
    with Store.open(store_dir) as s:
        gens = [g for c in s.candidate_ids() for g in s.generations(c)]
        assert {(g.steps, g.seed) for g in gens} == {(30, 0), (30, 1)} and len(gens) == 4
        assert all(s.image_size(g.image_sha) == (40, 40) for g in gens)     # stored at its own size
        assert all(g.meta["score_kind"] == "ecs" and g.meta["guidance"] is None for g in gens)


def test_generate_by_none_takes_every_caption_the_mapping_has(closed):
    folder, store_dir = closed
    assert cli.main(["generate", "--store", str(store_dir), "--model", f"images:{folder}", "--by", "none",
                     "--top-k", "0", "--steps", "1"]) == 0
    with Store.open(store_dir) as s:
        assert s.candidate_count() == 3
        assert sorted(g.seed for c in s.candidate_ids() for g in s.generations(c)) == [3, 3, 3, 7, 7, 7]


def test_export_auto_holds_the_whole_ranking_and_the_default_says_what_it_left_out(closed, tmp_path, capsys):
    from store.__main__ import main as store_main

    folder, store_dir = closed
    cli.main(["generate", "--store", str(store_dir), "--model", f"images:{folder}", "--by", "none", "--top-k", "0",
              "--steps", "1"])
    with Store.open(store_dir) as s:
        train = s.add_training_image(s.put_image(np.zeros((32, 32, 3), np.uint8)), None, "x.png")
        run = s.start_run("label", "", {})
        for c in s.candidate_ids():
            s.add_auto_label(c, run, "MV", {"mv": 0.05, "rv": 0.05, "mv_train_image_id": train}, ["suspect:texture"])
        s.add_label(s.candidate_ids()[0], "N", "alice")
    capsys.readouterr()
    assert store_main(["export", "--store", str(store_dir), "--out", str(tmp_path / "h.csv")]) == 0
    assert "exported 0 rows (captions whose current human label is MV,RV,TV; automatic labels are not exported " \
           "without --auto)" in capsys.readouterr().out
    assert store_main(["export", "--store", str(store_dir), "--out", str(tmp_path / "a.parquet"), "--auto"]) == 0
    rows = pq.read_table(tmp_path / "a.parquet").to_pylist()
    assert len(rows) == 3 and {r["auto_label"] for r in rows} == {"MV"}
    assert all(r["auto_flags"] == ["suspect:texture"] and r["auto_mv"] == 0.05 for r in rows)
    assert sorted(str(r["overfit_type"]) for r in rows) == ["N", "None", "None"]
    assert json.loads(json.dumps(rows[0]["auto_flags"])) == ["suspect:texture"]


# -- defaults that follow the model (issue 25, item 6) ----------------------------------------------
@pytest.fixture
def full_only(closed):
    """The same folder with its one-step rows dropped: a closed model sampled at its usual steps only."""
    folder, store_dir = closed
    rows = list(csv.reader(open(folder / "mapping.csv", newline="")))
    with open(folder / "mapping.csv", "w", newline="") as f:
        csv.writer(f).writerows([rows[0], *(r for r in rows[1:] if r[2] != "1")])
    return folder, store_dir


def _run_with_defaults(folder, store_dir, tmp_path, capsys) -> str:
    """`attack run` on the closed model with no stage option; returns what it printed."""
    captions = tmp_path / "captions.txt"
    captions.write_text("\n".join(CAPTIONS) + "\n")
    assert cli.main(["run", "--store", str(store_dir), "--model", f"images:{folder}", "--captions", str(captions)]) == 0
    return capsys.readouterr().out


def test_run_on_a_closed_model_scores_what_its_images_allow_and_generates_all_it_holds(closed, tmp_path, capsys):
    folder, store_dir = closed
    out = _run_with_defaults(folder, store_dir, tmp_path, capsys)
    assert "score ecs: run" in out and "kept as extra" not in out
    with Store.open(store_dir) as s:
        assert [r.status for r in s.runs(stage="score")] == ["done"]
        assert s.candidate_count() == 2          # every caption with full images, no --top-k needed


def test_run_on_full_step_images_only_skips_scores_and_leaves_no_failed_run(full_only, tmp_path, capsys):
    folder, store_dir = full_only
    out = _run_with_defaults(folder, store_dir, tmp_path, capsys)
    assert "score: skipped" in out and "steps=1" in out and "generate external: run" in out
    with Store.open(store_dir) as s:
        assert s.runs(stage="score") == [] and s.candidate_count() == 2


def test_a_failed_ecs_run_is_no_default_ranking_and_the_error_says_what_to_do(full_only, capsys):
    folder, store_dir = full_only
    assert cli.main(["score", "--store", str(store_dir), "--model", f"images:{folder}", "--scores", "ecs"]) == 2
    assert "generate --by none" in capsys.readouterr().err
    assert cli.main(["generate", "--store", str(store_dir), "--model", f"images:{folder}"]) == 0
    with Store.open(store_dir) as s:
        assert [r.status for r in s.runs(stage="score")] == ["failed"] and s.candidate_count() == 2
