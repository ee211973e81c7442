"""The evidence export (review/evidence.py): `python -m review export` round-trips on a labelled
sample store (every J generation, the own image, the match, the TV mask, the history with its
undo, manifest hashes, escaped captions, CSV paths); `python -m store export --format evidence`
runs it; a 0-row export warns and names the filter that emptied it."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest

from review import views
from review.__main__ import main as review_main
from review.candidate import candidate_data
from review.sample import SCRIPT_CAPTION, build_sample_store
from review.tab_export import run_export_warned
from store import CaptionRow, Neighbour, PageQuery, Store
from store.__main__ import main as store_main

J = 4
SIBLING_CAPTION = 'sibling <b>template</b> poster & "quotes"'


def add_sibling_tv(s: Store, sibling_caption: int) -> tuple[int, int, int]:
    """A TV candidate whose automatic label rests on another caption's (masked) training image.
    Returns (caption id, its own training image id, the sibling training image id)."""
    rng = np.random.default_rng(7)
    (cid,) = s.add_captions([CaptionRow(SIBLING_CAPTION, url="javascript:alert(1)", source="test")])
    own = s.add_training_image(s.put_image(rng.random((32, 32, 3))), cid, "train/sibling-own.png")
    sib = s.training_images_for(sibling_caption)[0].id
    keep = np.zeros((32, 32), bool)
    keep[:, :16] = True
    mask = s.add_mask(sib, s.put_mask(keep), source="auto")
    gen_run, label_run = s.start_run("generate", "test", {}), s.start_run("label", "test", {})
    gids = []
    for seed in range(J):
        gid = s.add_generation(cid, gen_run, seed, 1, "heun", s.put_image(rng.random((32, 32, 3))))
        s.add_neighbours(gid, [Neighbour(0, sib, 0.9, 0.3, 0.01 * (seed + 1), mask),
                               Neighbour(1, own, 0.8, 0.35, None)])
        gids.append(gid)
    s.add_auto_label(cid, label_run, "TV", {
        "tv": 0.01, "tv_generation_id": gids[0], "tv_train_image_id": sib, "tv_rank": 0, "tv_mask_id": mask,
        "mv": 0.35, "mv_generation_id": gids[0], "mv_train_image_id": own, "rv": 0.3, "rv_generation_id": gids[0],
        "rv_train_image_id": sib, "rv_rank": 0, "thresholds": {"tv": 0.12, "mv": 0.12, "rv": 0.12}})
    for r in (gen_run, label_run):
        s.finish_run(r, evals=J)
    return cid, own, sib


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """The sample store with human labels: MV on the auto MVs (one relabelled by someone who
    undid it, then confirmed by a third), TV on the auto TVs and on a sibling-matched TV (a bulk label), N on one."""
    root = tmp_path_factory.mktemp("evidence")
    s = Store.open(root / "store")
    ids = build_sample_store(s, n=15, size=32, seeds=J)
    auto = {c: s.auto_labels(c)[-1].label for c in ids}
    mv = [c for c in ids if auto[c] == "MV"]
    tv = [c for c in ids if auto[c] == "TV"]
    assert ids[0] in mv and tv, "expected the sample to hold the script caption as an MV and a TV"
    sib_cid, own, sib = add_sibling_tv(s, mv[-1])
    for c in mv:
        s.add_label(c, "MV", "ann", note='<img src=x onerror="window.__vb_pwned = 3"> looks copied')
    s.add_label(ids[0], "N", "bob")
    s.undo_label(ids[0], "bob")                 # an undo takes back one's own entry only
    s.add_label(ids[0], "MV", "carl", note="confirmed after the undo")
    s.add_labels(tv + [sib_cid], "TV", "dana")
    n_label = next(c for c in ids if auto[c] == "N")
    s.add_label(n_label, "N", "ann")
    expected = {c: "MV" for c in mv} | {c: "TV" for c in tv + [sib_cid]}
    yield s, ids, expected, (sib_cid, own, sib), root
    s.close()


def unzip(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def roles(page: str, role: str) -> list[str]:
    """The image sources of the page's figures with that data-role."""
    return re.findall(rf'<figure data-role="{role}"><img src="([^"]+)"', page)


@pytest.fixture(scope="module")
def exported(labelled, tmp_path_factory):
    s, *_ = labelled
    out = tmp_path_factory.mktemp("out") / "evidence.zip"
    assert review_main(["export", "--store", str(s.path), "--out", str(out)]) == 0
    return out, unzip(out)


def test_the_manifest_hashes_every_file(exported):
    _, files = exported
    manifest = json.loads(files.pop("manifest.json"))
    assert manifest["layout"] == "evidence-html"
    assert set(manifest["files"]) == set(files)
    for name, data in files.items():
        assert manifest["files"][name] == hashlib.sha256(data).hexdigest(), name


def test_every_page_shows_every_generation_the_own_image_the_match_and_the_history(labelled, exported):
    s, ids, expected, (sib_cid, own, sib), _ = labelled
    _, files = exported
    index = files["index.html"].decode()
    rows = list(csv.DictReader(io.StringIO(files["verbatims.csv"].decode())))
    assert {int(r["caption_id"]): r["overfit_type"] for r in rows} == expected
    for r in rows:
        cid = int(r["caption_id"])
        page = files[r["page"]].decode()
        assert f"href='{r['page']}'" in index
        data = candidate_data(s, cid)
        gens = roles(page, "generation")
        assert len(gens) == len(data.generations) == J
        assert sorted(Path(g).name for g in gens) == [f"generation-seed-{k}.png" for k in range(J)]
        for g, item in zip(gens, data.generations):       # each picture is that generation's file
            assert hashlib.sha256(files[g]).hexdigest() == item.generation.image_sha
        assert [Path(p).name for p in roles(page, "own")] == [f"own-training-image-{o.train.id}.png"
                                                               for o in data.own]
        assert data.own, "expected every sample caption to have its own training image"
        # the match is the review view's (one rule): its training image and its generation
        assert [Path(p).name for p in roles(page, "match")] == [f"match-training-image-{data.match.train.id}.png"]
        assert roles(page, "match-generation") == [g for g, item in zip(gens, data.generations) if item.in_match]
        assert len(roles(page, "difference")) == 1
        assert len(roles(page, "mask")) == (1 if data.match.kind == "TV" else 0)
        history = s.label_history(cid)
        assert page.count("<tr class=\"history\">") == len(history)
        for e in history:
            assert f"<td>{e.id}</td><td>{e.created_at}</td>" in page
        for col in ("generated_file", "train_file", "page"):
            assert r[col] in files, (cid, col)
        assert hashlib.sha256(files[r["generated_file"]]).hexdigest() == r["generated_sha"]
        assert hashlib.sha256(files[r["train_file"]]).hexdigest() == r["train_image_sha"]
        assert json.loads(r["generation_files"]) == gens
    assert any(data.match.kind == "TV" for data in (candidate_data(s, c) for c, lab in expected.items()
                                                      if lab == "TV")), "expected a TV match with a mask"


def test_a_sibling_tv_shows_the_own_image_and_the_matched_sibling_with_its_mask(labelled, exported):
    s, _, _, (sib_cid, own, sib), _ = labelled
    _, files = exported
    (name,) = [n for n in files if n.startswith(f"{sib_cid:04d}-") and n.endswith(".html")]
    page = files[name].decode()
    assert [Path(p).name for p in roles(page, "own")] == [f"own-training-image-{own}.png"]
    assert [Path(p).name for p in roles(page, "match")] == [f"match-training-image-{sib}.png"]
    assert [Path(p).name for p in roles(page, "mask")] == ["mask-v1.png"]
    assert "another caption’s" in page and "masked RMSE" in page
    assert "dana" in page and "bulk batch" in page


def test_the_history_shows_the_undo_and_who_did_each_entry(labelled, exported):
    s, ids, *_ = labelled
    _, files = exported
    (name,) = [n for n in files if n.startswith(f"{ids[0]:04d}-") and n.endswith(".html")]
    page = files[name].decode()
    undo = [e for e in s.label_history(ids[0]) if e.undoes is not None]
    assert len(undo) == 1
    assert f"undo of entry {undo[0].undoes}" in page
    assert all(f"<td>{who}</td>" in page for who in ("ann", "bob", "carl"))
    assert "confirmed after the undo" in page
    # each reviewer's label in force: ann's and carl's MV; bob's undone N is only in the history
    reviews = [r for r in page.split("<tr") if 'class="reviews"' in r]
    assert [r.split("<td>")[1].split("</td>")[0] for r in reviews] == ["ann", "carl"]


def test_every_text_from_the_store_is_escaped(exported):
    _, files = exported
    pages = {n: d.decode() for n, d in files.items() if n.endswith(".html")}
    assert any("&lt;script&gt;window.__vb_pwned" in p for p in pages.values())
    assert any("sibling &lt;b&gt;template" in p for p in pages.values())
    for name, p in pages.items():
        assert "<script" not in p.lower() and "<b>template</b>" not in p and 'onerror="' not in p, name
        assert 'href="javascript:' not in p, name
    assert not any(SCRIPT_CAPTION in p for p in pages.values())


def test_store_export_evidence_round_trips_through_the_review_command(labelled, exported, tmp_path, capfd):
    s, _, expected, *_ = labelled
    _, files = exported
    out = tmp_path / "e.zip"
    assert store_main(["export", "--store", str(s.path), "--out", str(out), "--format", "evidence"]) == 0
    got = unzip(out)
    pages = sorted(n for n in got if n.endswith(".html") and n != "index.html")
    assert pages == sorted(n for n in files if n.endswith(".html") and n != "index.html")
    assert len(pages) == len(expected)
    manifest = json.loads(got["manifest.json"])
    assert {name: hashlib.sha256(data).hexdigest() for name, data in got.items() if name != "manifest.json"} \
        == manifest["files"]
    # its own refusals still name the input and leave nothing behind
    assert store_main(["export", "--store", str(s.path), "--out", str(out), "--format", "evidence"]) == 2
    assert "--force" in capfd.readouterr().err          # the child process writes to the same stderr
    bad = tmp_path / "f.zip"
    assert store_main(["export", "--store", str(s.path), "--out", str(bad), "--format", "evidence", "--auto"]) == 2
    assert "expected no --auto" in capfd.readouterr().err and not bad.exists()


def test_the_evidence_export_refuses_to_overwrite_and_needs_a_zip(labelled, exported, capsys):
    s, *_ = labelled
    out, _ = exported
    assert review_main(["export", "--store", str(s.path), "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err
    assert review_main(["export", "--store", str(s.path), "--out", str(out.with_suffix(".html"))]) == 2
    assert "expected a .zip" in capsys.readouterr().err


def test_an_empty_export_warns_and_names_the_filter(labelled, tmp_path, capsys):
    s, _, expected, *_ = labelled
    n_mv = sum(1 for v in expected.values() if v == "MV")
    res = s.export(tmp_path / "a.csv", labels=["MV"], query=PageQuery(search="nosuchword"))
    assert res.rows == 0
    assert res.warning == (f"0 rows: the label filter MV matches {n_mv} captions; "
                           f"the queue search 'nosuchword' leaves 0 of them")
    assert s.export(tmp_path / "b.csv", labels=["MV"]).warning is None
    # the CLI: exit 0, the export written, the warning on stderr
    assert store_main(["export", "--store", str(s.path), "--out", str(tmp_path / "c.csv"), "--labels", "FP:other"]) == 0
    err = capsys.readouterr().err
    assert err.startswith("warning: 0 rows: the label filter FP:other matches 0 captions (candidates by current "
                          "human label: ")
    assert (tmp_path / "c.csv").exists()
    assert review_main(["export", "--store", str(s.path), "--out", str(tmp_path / "d.zip"), "--labels",
                        "RV"]) == 0
    assert "warning: 0 rows: the label filter RV matches 0 captions" in capsys.readouterr().err
    assert b"0 rows" in unzip(tmp_path / "d.zip")["index.html"]
    # the app: several filters, each with what it leaves on its own
    path, msg, warning = run_export_warned(s, "evidence", ["MV", "TV"], views.QueueFilter(
        human="any", search="sofa", auto=("TV",)))
    assert warning.startswith(f"0 rows: the label filter MV,TV matches {len(expected)} captions; the queue "
                              f"search 'sofa' leaves 1 of them; the automatic label filter TV leaves ")
    assert "**Warning:**" in msg and path.exists()


def test_file_names_are_readable_and_never_point_at_another_picture():
    from review.evidence import _Files, slug

    assert slug(SCRIPT_CAPTION) == "script-window-vb-pwned-1-script-img-src"
    assert slug("…") == "caption"
    f = _Files("0042-red-sofa")
    assert f.add("difference.png", b"a", (1, 1)) == "0042-red-sofa/difference.png"
    assert f.add("difference.png", b"a", (1, 1)) == "0042-red-sofa/difference.png"    # same picture: one file
    assert f.add("difference.png", b"b", (1, 1)) == "0042-red-sofa/difference-2.png"  # another: its own name
