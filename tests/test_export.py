"""Export: ingest -> evidence + labels through the API -> every format -> read back."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import zipfile

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from attack.ingest import ingest
from store import CaptionRow, ExportError, Neighbour, OutputError, PageQuery, Store
from store.export import BASE_COLUMNS, safe_member_name
from tests.conftest import FIXTURES, tiny_image

FORMATS = ("csv", "jsonl", "parquet", "zip")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A store built from the four community lists, with evidence and human labels."""
    root = tmp_path_factory.mktemp("export")
    s = Store.open(root / "store")
    for f in ("paper.parquet", "wen.jsonl", "nemo.csv", "membench.csv"):
        ingest(s, FIXTURES / f)
    score = s.start_run("score", "demo", {"guidance": 7.5})
    gen = s.start_run("generate", "demo", {"steps": 1})
    ids = [r[0] for r in s.conn.execute("SELECT id FROM captions ORDER BY id")]
    s.add_scores(score, "dcs", [(c, 1.0 + i / 10) for i, c in enumerate(ids)])
    s.add_scores(score, "ecs", [(c, i / 100) for i, c in enumerate(ids[:5])])
    expected = {}
    plan = {ids[0]: "MV", ids[1]: "TV", ids[2]: "RV", ids[3]: "N", ids[4]: "FP:texture", ids[5]: "MV"}
    for k, (cid, label) in enumerate(plan.items()):
        own = s.add_training_image(s.put_image(tiny_image(100 + k)), cid, f"own/{k}.png",
                                   {"url": f"https://laion.example/own{k}.jpg"})
        other = s.add_training_image(s.put_image(tiny_image(200 + k)), None, f"https://laion.example/other{k}.jpg")
        mask = s.add_mask(other, s.put_mask(np.arange(256).reshape(16, 16) % 3 == 0))
        gens = []
        for seed in (0, 1):
            gid = s.add_generation(cid, gen, seed, 1, "heun", s.put_image(tiny_image(1000 * k + seed)))
            # seed 1 is the closer copy of the own image; seed 0 the closer masked match
            s.add_neighbours(gid, [
                Neighbour(0, own, 0.95, 0.04 if seed == 1 else 0.09, None),
                Neighbour(1, other, 0.90, 0.03 if seed == 0 else 0.2, 0.01 if seed == 0 else 0.05, mask),
            ])
            gens.append(gid)
        if label == "TV":  # a human edits the mask after the auto one: the export carries the edit
            edited = np.zeros((16, 16), bool)
            edited[2:9, 3:12] = True
            s.add_mask(other, s.put_mask(edited), source="edited", author="ann")
        if label:
            s.add_label(cid, "N", "bob")  # an earlier opinion: only the current label counts
            s.add_label(cid, label, "ann", note=f"note {k}")
        expected[cid] = dict(label=label, own=own, other=other, gens=gens, k=k)
    s.add_label(ids[6], "MV", "ann")  # confirmed but without any generation
    s.add_label(ids[5], "N", "bob")   # relabelled: no longer exported
    s.undo_label(ids[5], "bob")       # ... and undone: exported again
    yield s, expected, ids, root
    s.close()


def _read(path, fmt):
    data = path.read_bytes()
    if fmt == "jsonl":
        return [json.loads(line) for line in data.decode().splitlines()]
    if fmt == "parquet":
        return pq.read_table(path).to_pylist()
    if fmt == "csv":
        rows = list(csv.DictReader(io.StringIO(data.decode())))
        out = []
        for r in rows:
            d = {}
            for k, v in r.items():
                if v == "":
                    d[k] = "" if k == "note" else None  # CSV cannot tell "" from missing
                elif k in ("gen_seeds", "retrieved_urls", "mask_rle", "reviews", "adjudication"):
                    d[k] = json.loads(v)
                elif k in ("caption_id", "dup_count", "run_id", "seed", "train_image_id", "mask_version"):
                    d[k] = int(v)
                elif k in ("mse_real_gen", "match_distance", "similarity") or k.startswith("score_"):
                    d[k] = float(v)
                else:
                    d[k] = v
            out.append(d)
        return out
    with zipfile.ZipFile(path) as z:
        rows = [json.loads(line) for line in z.read("metadata.jsonl").decode().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith("file_name")} for r in rows]


def test_round_trip_all_formats(labelled, tmp_path):
    s, expected, ids, _ = labelled
    results = {fmt: s.export(tmp_path / f"out.{fmt}") for fmt in FORMATS}
    tables = {fmt: _read(r.path, fmt) for fmt, r in results.items()}
    exported = [r["caption_id"] for r in tables["jsonl"]]
    assert exported == sorted([ids[0], ids[1], ids[2], ids[5], ids[6]])
    for fmt in FORMATS:
        if fmt == "zip":
            assert tables[fmt] == [r for r in tables["jsonl"] if r["generated_sha"] is not None]
        else:
            assert tables[fmt] == tables["jsonl"], fmt
    assert results["zip"].skipped_without_image == (ids[6],)

    by_id = {r["caption_id"]: r for r in tables["jsonl"]}
    assert list(tables["jsonl"][0]) == list(BASE_COLUMNS) + ["score_dcs", "score_ecs"]
    mv, tv, rv = by_id[ids[0]], by_id[ids[1]], by_id[ids[2]]
    # each reviewer's own label in force (bob's undone relabel of ids[5] leaves his first opinion)
    assert [(r["reviewer"], r["label"], r["note"]) for r in mv["reviews"]] == [("ann", "MV", "note 0"),
                                                                              ("bob", "N", "")]
    assert [(r["reviewer"], r["label"]) for r in by_id[ids[5]]["reviews"]] == [("ann", "MV"), ("bob", "N")]
    assert mv["adjudication"] is None and mv["review_state"] is None
    e = expected
    # MV: lowest RMSE to its own image -> seed 1 (0.04)
    assert (mv["overfit_type"], mv["seed"], mv["train_image_id"], mv["match_kind"]) == ("MV", 1, e[ids[0]]["own"], "rmse_own")
    assert mv["mse_real_gen"] == pytest.approx(0.04 ** 2) and mv["gen_seeds"] == [0, 1]
    assert mv["retrieved_urls"] == ["https://laion.example/own0.jpg", "https://laion.example/other0.jpg"]
    assert mv["mask_sha"] is None and mv["reviewer"] == "ann" and mv["note"] == "note 0"
    assert mv["model"] == "demo" and mv["score_dcs"] == pytest.approx(1.0)
    assert mv["caption"] == s.get_caption(ids[0]).text
    assert mv["generated_sha"] == s.generations(ids[0])[1].image_sha
    # TV: lowest masked RMSE -> seed 0 against the other image, with the edited mask
    assert (tv["seed"], tv["train_image_id"], tv["match_kind"]) == (0, e[ids[1]]["other"], "masked_rmse")
    assert tv["mse_real_gen"] == pytest.approx(0.01 ** 2)
    mask = s.current_mask(e[ids[1]]["other"])
    assert (tv["mask_sha"], tv["mask_version"], mask.source) == (mask.image_sha, 2, "edited")
    from pycocotools import mask as coco
    decoded = coco.decode({"size": tv["mask_rle"]["size"], "counts": tv["mask_rle"]["counts"].encode()})
    assert np.array_equal(decoded.astype(bool), s.load_mask(mask.image_sha))
    # RV: lowest RMSE to any retrieved image -> seed 0, other image (0.03)
    assert (rv["seed"], rv["train_image_id"], rv["match_kind"]) == (0, e[ids[2]]["other"], "rmse")
    assert rv["mse_real_gen"] == pytest.approx(0.03 ** 2)
    assert by_id[ids[5]]["overfit_type"] == "MV"  # relabel undone
    bare = by_id[ids[6]]
    assert bare["generated_sha"] is None and bare["gen_seeds"] == [] and bare["mse_real_gen"] is None


def test_zip_is_an_imagefolder_with_manifest(labelled, tmp_path):
    s, expected, ids, _ = labelled
    path = s.export(tmp_path / "set.zip").path
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["tool"] == "verbatim" and manifest["version"]
        assert set(manifest["files"]) == set(names) - {"manifest.json"}
        for name, sha in manifest["files"].items():
            assert hashlib.sha256(z.read(name)).hexdigest() == sha
            assert not name.startswith("/") and ".." not in name.split("/")
        for info in z.infolist():
            assert info.date_time == (1980, 1, 1, 0, 0, 0)
        rows = [json.loads(x) for x in z.read("metadata.jsonl").decode().splitlines()]
        for r in rows:
            gen = z.read(r["file_name"])
            assert hashlib.sha256(gen).hexdigest() == r["generated_sha"]
            assert hashlib.sha256(z.read(r["train_file_name"])).hexdigest() == r["train_image_sha"]
        tv = next(r for r in rows if r["overfit_type"] == "TV")
        with Image.open(io.BytesIO(z.read(tv["mask_file_name"]))) as im:
            assert im.mode == "L" and set(np.unique(np.asarray(im)).tolist()) <= {0, 255}
        assert manifest["skipped_without_image"] == [ids[6]]


def test_exports_are_byte_identical_and_recorded(labelled, tmp_path):
    s, _, _, _ = labelled
    before = s.conn.execute("SELECT count(*) FROM exports").fetchone()[0]
    for fmt in FORMATS:
        a = s.export(tmp_path / f"a.{fmt}")
        b = s.export(tmp_path / f"b.{fmt}")
        assert a.path.read_bytes() == b.path.read_bytes(), fmt
        assert a.sha256 == b.sha256 == hashlib.sha256(a.path.read_bytes()).hexdigest()
    rows = s.conn.execute("SELECT format, rows, sha256, labels FROM exports ORDER BY id").fetchall()
    assert len(rows) == before + 8 and rows[-1][1] == 5 and json.loads(rows[-1][3]) == ["MV", "RV", "TV"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left


def test_labels_and_query_filters(labelled, tmp_path):
    s, _, ids, _ = labelled
    r = s.export(tmp_path / "n.jsonl", labels=["N", "FP:texture"])
    assert [x["overfit_type"] for x in _read(r.path, "jsonl")] == ["N", "FP:texture"]
    r = s.export(tmp_path / "q.jsonl", query=PageQuery(search="Shaw Floors"))
    assert [x["caption_id"] for x in _read(r.path, "jsonl")] == [s.caption_id(
        "Shaw Floors Value Collection Sandy Hollow Cl II Net 12' Sea Mist")]
    with pytest.raises(ExportError, match="labels: expected each of MV, .* got 'XX'"):
        s.export(tmp_path / "x.csv", labels=["XX"])


def test_output_path_rules(labelled, tmp_path):
    s, _, _, _ = labelled
    (tmp_path / "adir").mkdir()
    with pytest.raises(OutputError, match="expected a file path, got an existing directory"):
        s.export(tmp_path / "adir", "csv")
    with pytest.raises(OutputError, match=r"expected an existing folder .*missing, got none \(create it, or pass --parents\)"):
        s.export(tmp_path / "missing" / "out.csv")
    assert s.export(tmp_path / "made" / "deep" / "out.csv", make_parents=True).path.is_file()
    with pytest.raises(ExportError, match=r"expected extension .zip for format zip, got .csv"):
        s.export(tmp_path / "out2.csv", "zip")
    with pytest.raises(ExportError, match=r"expected --format or an extension among .zip, .parquet, .csv, .jsonl, got .txt"):
        s.export(tmp_path / "out.txt")
    assert s.export(tmp_path / "out.data", "jsonl").path.name == "out.data"
    (tmp_path / "old.csv").write_text("stale")
    with pytest.raises(OutputError, match=r"expected a new file, got an existing one \(pass --force to replace it\)"):
        s.export(tmp_path / "old.csv")
    assert (tmp_path / "old.csv").read_text() == "stale"
    s.export(tmp_path / "old.csv", force=True)  # replaced atomically
    assert (tmp_path / "old.csv").read_text().startswith("caption,")


def test_safe_member_name():
    assert safe_member_name("../../etc/passwd") == "etc/passwd"
    assert safe_member_name("/abs/x y?.png") == "abs/x_y_.png"
    assert safe_member_name("a\\..\\b.png") == "a/b.png"
    assert safe_member_name("généré/ü.png") == "g_n_r_/_.png"
    with pytest.raises(ExportError, match="expected a non-empty safe name"):
        safe_member_name("../..")


def test_empty_export_is_valid(tmp_path):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow("x")])
        for fmt in FORMATS:
            r = s.export(tmp_path / f"e.{fmt}")
            assert r.rows == 0
        assert pq.read_table(tmp_path / "e.parquet").num_rows == 0
