"""Before and after (attack.compare): two closed models on one store, each side labelled from its own
generations, the outcomes, human labels on the audited side only, ranks and top-K, the written run,
the command line and its exports."""
from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from PIL import Image

from attack import cli
from attack.bench import pictures
from attack.compare import CompareInputError, CompareParams, compare_models, export_rows, load_compare, outcome
from attack.models import load_model
from attack.stages.generate import GenerateParams, generate_stage
from attack.stages.retrieve import RetrieveParams, retrieve_stage
from store import CaptionRow, NotFoundError, Store

SIZE = 128
CATS = ("landscape", "portrait", "product", "sky", "landscape")
CAPTIONS = [f"a picture numbered {i}" for i in range(5)]
# which captions each model copies: 0 removed, 1 persisting, 2 new, 3 neither; 4 only under A
COPIES = {"a": {0, 1, 4}, "b": {1, 2}}


def _closed(folder, own, other, copies, captions, texts=CAPTIONS, override=None):
    folder.mkdir()
    rows = []
    for i in captions:
        name = f"{i}.png"
        picture = (override or {}).get(i)
        Image.fromarray(picture(own) if picture else own[i] if i in copies else other[i]).save(folder / name)
        rows.append([texts[i], 0, 30, name])
    with open(folder / "mapping.csv", "w", newline="") as f:
        csv.writer(f).writerows([["caption", "seed", "steps", "path"], *rows])
    return f"images:{folder}"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return two_model_store(tmp_path_factory.mktemp("compare"))


def two_model_store(root, copies=COPIES, n=5, b_captions=4, b_override=None):
    """A store of n captions with their own training images, generated under two closed models A
    (first: the audited one) and B (its first b_captions only) as `copies` says, each with a dcs
    score, retrieved; returns (store folder, {side: spec}, {side: fingerprint}, caption ids). A
    caption neither model copies gets the same picture from both; b_override: caption index ->
    function of the training pictures giving B's picture."""
    texts = [f"a picture numbered {i}" for i in range(n)]
    cats = [CATS[i % len(CATS)] for i in range(n)]
    own = [pictures.CATEGORIES[c](np.random.default_rng(i), SIZE) for i, c in enumerate(cats)]
    other = [pictures.CATEGORIES[CATS[(i + 1) % 4]](np.random.default_rng(50 + i), SIZE) for i in range(n)]
    specs = {"a": _closed(root / "A", own, other, copies["a"], range(n), texts),
             "b": _closed(root / "B", own, other, copies["b"], range(b_captions), texts, b_override)}
    store_dir = root / "s"
    with Store.open(store_dir) as s:
        ids = s.add_captions([CaptionRow(c) for c in texts])
        for cid, img in zip(ids, own):
            s.add_training_image(s.put_image(img), cid, f"train/{cid}.png")
        fps = {}
        for side in ("a", "b"):                # A generates first: the store's human labels are A's
            model = load_model(specs[side])
            fps[side] = model.fingerprint(s.digest_cache())
            generate_stage(s, model, ids, GenerateParams(top_k=0, seeds=(), steps=30), by=None)
            # a score per model so ranks mean something: A ranks the last caption first, B ranks by id
            run = s.start_run("score", specs[side], {"score": "dcs", "model_fingerprint": fps[side]})
            s.add_scores(run, "dcs", [(c, (10.0 - c) if side == "b" else float(c)) for c in ids])
            s.finish_run(run, 0, "done")
        retrieve_stage(s, RetrieveParams(), caption_ids=ids)
    return store_dir, specs, fps, ids


def test_outcome_rule():
    assert [outcome(a, b) for a, b in ((True, False), (True, True), (False, True), (False, False))] == \
        ["removed", "persisting", "new", "neither"]


def test_each_side_is_labelled_from_its_own_generations(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        autos_before = s.info()["tables"]["auto_labels"]
        r = compare_models(s, specs["a"], specs["b"])
        assert s.info()["tables"]["auto_labels"] == autos_before          # nothing written as an automatic label
    by_cap = {row.caption_id: row for row in r.rows}
    assert sorted(by_cap) == ids[:4]                                      # caption 4 has no B generation
    assert [by_cap[c].outcome for c in ids[:4]] == ["removed", "persisting", "new", "neither"]
    assert r.counts() == {"removed": 1, "persisting": 1, "new": 1, "neither": 1}
    assert r.by_type() == {"removed": {"MV": 1}, "persisting": {"MV": 1}, "new": {"MV": 1}}
    removed = by_cap[ids[0]]
    assert removed.a.auto_label == "MV" and removed.a.distance == 0.0 and removed.a.evidence_kind == "pixel"
    assert removed.a.train_image_id is not None and removed.b.auto_label == "N"
    assert removed.b.distance is not None and removed.b.distance > 0.12      # N: the nearest pair's distance
    assert all(row.a.generations == 1 and row.b.generations == 1 for row in r.rows)
    assert r.audited == "a" and r.fingerprints == (fps["a"], fps["b"])


def test_human_labels_count_on_the_audited_side_only(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        s.add_label(ids[1], "N", "ann")                 # ann rejects the persisting copy under A
        s.add_label(ids[3], "skip", "ann")              # a skip leaves the automatic label in force
        try:
            r = compare_models(s, specs["a"], specs["b"])
            swapped = compare_models(s, specs["b"], specs["a"])
        finally:
            s.undo_label(ids[1], "ann")
            s.undo_label(ids[3], "ann")
    row = {x.caption_id: x for x in r.rows}
    assert row[ids[1]].a.human_label == "N" and row[ids[1]].a.label == "N" and row[ids[1]].outcome == "new"
    assert row[ids[1]].b.human_label is None and row[ids[1]].b.label == "MV"
    assert row[ids[3]].a.label == "N" and row[ids[3]].a.human_label == "skip"
    other = {x.caption_id: x for x in swapped.rows}
    assert swapped.audited == "b" and other[ids[1]].b.human_label == "N" and other[ids[1]].outcome == "removed"


def test_ranks_top_k_and_curves(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        full = compare_models(s, specs["a"], specs["b"])
        top = compare_models(s, specs["a"], specs["b"], CompareParams(top_k=1))
    row = {x.caption_id: x for x in full.rows}
    assert [row[c].a.rank for c in ids[:4]] == [5, 4, 3, 2]                # A's scores grow with the id
    assert [row[c].b.rank for c in ids[:4]] == [1, 2, 3, 4]
    # top 1 of either: A's first is caption 4 (not under B), B's first is caption 0
    assert [x.caption_id for x in top.rows] == [ids[0]]
    curve = full.curves()
    assert [p["found"] for p in curve["b"]] == [0, 1, 2, 2]                 # B by rank: 0 (N), 1, 2 copies, 3 N
    assert curve["a"][-1] == {"n": 4, "found": 2, "precision": 0.5}


def test_the_comparison_is_written_and_read_back(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        r = compare_models(s, specs["a"], specs["b"])
        back = load_compare(s, r.run_id)
        run = s.get_run(r.run_id)
        with pytest.raises(NotFoundError, match=r"expected a compare run id, got \d+ \(a generate run\)"):
            s.compare_rows(s.runs(stage="generate")[0].id)
    assert run.stage == "compare" and run.params["models"] == [fps["a"], fps["b"]] and run.status == "done"
    assert back.rows == r.rows and back.counts() == r.counts() and back.models == r.models
    rows = export_rows(r)
    assert rows[0]["outcome"] == "removed" and rows[0]["a_label"] == "MV" and rows[0]["b_label"] == "N"


def test_bad_pairs_are_named(world, tmp_path):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        with pytest.raises(CompareInputError, match="expected two different models"):
            compare_models(s, specs["a"], fps["a"])
        with pytest.raises(CompareInputError, match=r"--model demo: expected a model with generations.*images:"):
            compare_models(s, specs["a"], "demo")
        with pytest.raises(CompareInputError, match="expected --top-k >= 1"):
            CompareParams(top_k=0)


def test_cli_prints_counts_and_writes_each_format(world, tmp_path, capsys):
    store_dir, specs, fps, ids = world
    args = ["compare", "--store", str(store_dir), "--model", specs["a"], "--model", specs["b"]]
    assert cli.main(args + ["--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["outcomes"] == {"removed": 1, "persisting": 1, "new": 1, "neither": 1}
    assert out["copies"] == {"a": 2, "b": 2} and out["audited"] == "a"
    for name in ("c.csv", "c.jsonl", "c.parquet"):
        assert cli.main(args + ["--out", str(tmp_path / name)]) == 0
    assert "1 removed, 1 persisting, 1 new, 1 neither" in capsys.readouterr().out
    with open(tmp_path / "c.csv", newline="") as f:
        got = list(csv.DictReader(f))
    assert [r["outcome"] for r in got] == ["removed", "persisting", "new", "neither"]
    assert json.loads((tmp_path / "c.jsonl").read_text().splitlines()[2])["b_label"] == "MV"
    import pyarrow.parquet as pq
    assert pq.read_table(tmp_path / "c.parquet").column("a_label").to_pylist() == ["MV", "MV", "N", "N"]
    assert cli.main(args + ["--plot", str(tmp_path / "c.svg")]) == 0
    svg = (tmp_path / "c.svg").read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 2 and "B: images:" in svg
    assert cli.main(args + ["--out", str(tmp_path / "c.csv")]) == 2          # no overwrite without --force
    assert "pass --force" in capsys.readouterr().err
    assert cli.main(["compare", "--store", str(store_dir), "--model", specs["a"]]) == 2
    assert "expected two --model" in capsys.readouterr().err


def test_the_review_stays_on_the_audited_model(world):
    """B's generations, scores and captions stay out of the store's review: candidates, their
    generations and scores, the automatic labels, and the derived tables' check."""
    from attack.stages.labels import label_stage
    from store.check import check_store

    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        assert s.candidate_ids() == ids                                   # caption 4: A only, still a candidate
        for cid in ids:
            gens = s.generations(cid)
            assert len(gens) == 1 and s.get_run(gens[0].run_id).params["model_fingerprint"] == fps["a"]
        assert s.scores_for(ids[0]) == {"dcs": float(ids[0])}            # A's score, not B's newer one
        label_stage(s, caption_ids=ids)
        assert [s.auto_labels(c)[-1].label for c in ids] == ["MV", "MV", "N", "N", "MV"]   # A's copies
        report = check_store(s)
        assert report.ok, report.lines()
        with s.only_runs([r.id for r in s.runs(stage="generate", fingerprint=fps["b"])]):
            assert [len(s.generations(c)) for c in ids] == [1, 1, 1, 1, 0]
