"""Ingest: community caption-list layouts, training-image folders, and bad input."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from attack.ingest import ingest
from store import IngestError, Store
from tests.conftest import FIXTURES, REPO, snapshot, subprocess_env, tiny_image


def captions(store):
    return {r[0]: r[1:] for r in store.conn.execute(
        "SELECT text, url, count, reference_label, source, extra FROM captions")}


def test_paper_parquet(store):
    report = ingest(store, FIXTURES / "paper.parquet")
    assert (report.format, report.layout, report.captions_added, report.captions_merged) == ("parquet", "paper", 4, 0)
    c = captions(store)
    assert c["Living in the Light with Ann Graham Lotz"][:4] == ("https://example.com/p/1.jpg", 1, "MV", "paper.parquet")
    assert c["Design Art Beautiful Sea Waves Wallpaper"][2] == "RV"
    assert c["a plain caption with no label"][1:3] == (1, None)
    assert json.loads(c["a plain caption with no label"][4]) == {"index": 4}


def test_wen_jsonl_merges_identical(store):
    report = ingest(store, FIXTURES / "wen.jsonl")
    assert (report.layout, report.captions_added, report.captions_merged) == ("wen", 3, 1)
    c = captions(store)
    url, count, label, source, extra = c["Living in the Light with Ann Graham Lotz"]
    assert (url, count, label) == ("https://example.com/wen/101.jpg", 2, None)  # first url kept
    assert json.loads(extra) == {"index": 101}


def test_nemo_csv_maps_vm_tm(store):
    report = ingest(store, FIXTURES / "nemo.csv")
    assert report.layout == "nemo" and report.captions_added == 3
    c = captions(store)
    assert c["Shaw Floors Value Collection Sandy Hollow Cl II Net 12' Sea Mist"][2] == "TV"
    assert c['Anne Hathaway, "Les Misérables" premiere'][2] == "MV"
    assert json.loads(c["The No Limits Business Woman Podcast"][4]) == {"Index": "13", "max_sscd": "0.91", "mean_sscd": "0.80"}


def test_membench_csv_urls_list(store):
    report = ingest(store, FIXTURES / "membench.csv")
    assert report.layout == "membench" and report.captions_added == 3
    c = captions(store)
    url, _, _, _, extra = c["Ann Graham Lotz, Living in the Light"]
    assert url == "https://example.com/mb/1.jpg"
    assert json.loads(extra)["urls"] == ["https://example.com/mb/1.jpg", "https://example.com/mb/1b.jpg"]
    assert c["Mothers influence on her young hippo"][0] is None


def test_text_and_merge_across_files(store):
    ingest(store, FIXTURES / "nemo.csv")
    report = ingest(store, FIXTURES / "captions.txt")
    assert (report.layout, report.captions_added, report.captions_merged) == ("text", 1, 2)
    c = captions(store)
    assert c["a photo of an astronaut riding a horse"][1] == 2
    shaw = c["Shaw Floors Value Collection Sandy Hollow Cl II Net 12' Sea Mist"]
    assert (shaw[1], shaw[2], shaw[3]) == (2, "TV", "nemo.csv")  # reference label kept from the list


def test_reference_labels_never_human_labels(store):
    ingest(store, FIXTURES / "paper.parquet")
    assert store.conn.execute("SELECT count(*) FROM labels").fetchone()[0] == 0
    assert store.info()["labels"]["MV"] == 0


def test_generic_csv_tsv_and_forced_format(store, tmp_path):
    (tmp_path / "g.tsv").write_text("id\ttext\tdup_count\n1\thello world\t12\n2\tsecond one\t\n")
    r = ingest(store, tmp_path / "g.tsv")
    assert r.layout == "generic" and r.captions_added == 2
    assert store.get_caption(store.caption_id("hello world")).dup_count == 12
    (tmp_path / "list.dat").write_bytes((FIXTURES / "nemo.csv").read_bytes())
    r = ingest(store, tmp_path / "list.dat", fmt="nemo")
    assert r.layout == "nemo" and store.get_caption(store.caption_id("The No Limits Business Woman Podcast")).reference_label == "MV"


def _image_folder(tmp_path: Path, metadata: str | None = "jsonl") -> Path:
    folder = tmp_path / "imgs"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(tiny_image(1)).save(folder / "a.png")
    Image.fromarray(tiny_image(2)).save(folder / "sub" / "b.jpg", quality=95)
    Image.fromarray(tiny_image(3)).save(folder / "c.png")
    good = (folder / "c.png").read_bytes()
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "garbage.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    rows = [{"file_name": "a.png", "caption": "a red car", "url": "https://laion.example/a.jpg", "aesthetic": 5.5},
            {"file_name": "sub/b.jpg", "text": None, "caption": "a blue sea", "url": None, "aesthetic": 4.0},
            {"file_name": "truncated.png", "caption": "broken one", "url": None, "aesthetic": 1.0}]
    if metadata == "jsonl":
        (folder / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    elif metadata == "csv":
        (folder / "metadata.csv").write_text("file_name,caption,url\na.png,a red car,https://laion.example/a.jpg\n"
                                             "sub/b.jpg,a blue sea,\n")
    return folder


def test_images_with_metadata_and_corrupt_files(store, tmp_path):
    folder = _image_folder(tmp_path)
    warnings = []
    report = ingest(store, images=folder, warn=warnings.append)
    assert report.images_added == 3 and report.images_skipped == 2
    assert sorted(f for f, _ in report.corrupt_files) == ["garbage.jpg", "truncated.png"]
    assert any("truncated.png" in w for w in warnings) and any("garbage.jpg" in w for w in warnings)
    rows = {r[0]: r[1:] for r in store.conn.execute(
        "SELECT t.path_or_url, c.text, t.meta, t.sha256 FROM training_images t LEFT JOIN captions c ON c.id = t.caption_id")}
    assert set(rows) == {"a.png", "sub/b.jpg", "c.png"}
    assert rows["a.png"][0] == "a red car" and rows["c.png"][0] is None
    meta = json.loads(rows["a.png"][1])
    assert meta == {"aesthetic": 5.5, "url": "https://laion.example/a.jpg", "width": 16, "height": 16}
    assert np.array_equal(np.asarray(store.load_image(rows["a.png"][2])), tiny_image(1))  # lossless
    again = ingest(store, images=folder)  # the same content: nothing to do
    assert again.run_id is None and again.already == (("image folder", report.run_id),)
    assert again.images_added == 0 and again.captions_merged == 0


def test_images_metadata_csv_and_explicit(store, tmp_path):
    folder = _image_folder(tmp_path, metadata="csv")
    report = ingest(store, images=folder)
    assert report.images_added == 3 and report.captions_added == 2
    other = tmp_path / "meta.jsonl"
    other.write_text(json.dumps({"file_name": "c.png", "caption": "third"}) + "\n")
    report = ingest(store, images=folder, metadata=other)
    assert store.caption_id("third") is not None


def test_cli_summary_and_exit_codes(tmp_path):
    folder = _image_folder(tmp_path)
    out = subprocess.run([sys.executable, "-m", "attack", "ingest", "--store", str(tmp_path / "s"),
                          str(FIXTURES / "nemo.csv"), "--images", str(folder)],
                         capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == (
        "ingest: 5 captions added, 0 merged (nemo layout, csv); 3 training images added, 2 corrupt image files skipped")
    assert "truncated.png" in out.stderr
    bad = subprocess.run([sys.executable, "-m", "attack", "ingest", "--store", str(tmp_path / "new"),
                          str(tmp_path / "missing.csv")], capture_output=True, text=True, env=subprocess_env(),
                         cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "missing.csv: expected a caption file, got no such file" in bad.stderr
    assert not (tmp_path / "new").exists()  # bad input: the store was not even created


# -- bad input: message names file/row/column, store unchanged --------------------------------
def _write(tmp_path, name, data):
    p = tmp_path / name
    p.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return p


def _parquet(tmp_path, name, table):
    p = tmp_path / name
    pq.write_table(pa.table(table), p)
    return p


LONG = "x" * 10_001
BAD_CAPTION_FILES = {
    "missing_column": ("bad.csv", "url,other\nhttp://a,1\n",
                       r"bad.csv, row 1 \(header\), column caption: expected a caption column \(one of caption, prompt, text\), got columns \['url', 'other'\]"),
    "empty": ("empty.csv", "", r"empty.csv: expected at least one caption, got an empty file"),
    "blank": ("blank.txt", "\n  \n", r"blank.txt: expected at least one caption, got an empty file"),
    "header_only": ("h.csv", "caption,url\n", r"h.csv: expected a header and at least one caption row, got only a header"),
    "not_utf8": ("latin1.csv", "caption\nok\ncaf\xe9 au lait\n".encode("latin-1"),
                 r"latin1.csv, line 3, byte 4 of the line: expected UTF-8 text, got invalid byte 0xe9"),
    "too_long_csv": ("long.csv", f"caption,url\nfine,\n{LONG},http://x\n",
                     r"long.csv, row 2 \(line 3\), column 'caption': expected a caption of at most 10000 characters, got 10001"),
    "too_long_text": ("long.txt", f"ok\n\n{LONG}\n",
                      r"long.txt, line 3, column 'caption': expected a caption of at most 10000 characters, got 10001"),
    "empty_caption": ("e.csv", "caption,url\n,http://x\n",
                      r"e.csv, row 1 \(line 2\), column 'caption': expected a non-empty caption, got an empty value"),
    "bad_label": ("l.csv", "caption,overfit_type\na,MV\nb,XX\n",
                  r"l.csv, row 2 \(line 3\), column 'overfit_type': expected one of MV, TV, RV, N, VM, TM \(or empty\), got 'XX'"),
    "bad_json": ("w.jsonl", '{"caption": "a"}\n{"caption": \n',
                 r"w.jsonl, row 2 \(line 2\): expected a JSON object, got invalid JSON"),
    "json_not_object": ("w2.jsonl", '{"caption": "a"}\n["b"]\n', r"w2.jsonl, row 2 \(line 2\): expected a JSON object, got list"),
    "json_missing_caption": ("w3.jsonl", '{"caption": "a"}\n{"url": "b"}\n',
                             r"w3.jsonl, row 2 \(line 2\), column 'caption': expected caption text, got nothing"),
    "csv_fields": ("f.csv", "caption,url\na,b\nc,d,e\n", r"f.csv, row 2 \(line 3\): expected 2 fields separated by ',', got 3"),
    "membench_urls": ("m.csv", "prompt,urls\na,\"['ok']\"\nb,\"[not a list\"\n",
                      r"m.csv, row 2 \(line 3\), column 'urls': expected a list of URLs like"),
    "bad_dup": ("d.csv", "caption,dup_count\na,3\nb,many\n",
                r"d.csv, row 2 \(line 3\), column 'dup_count': expected a non-negative integer count, got 'many'"),
    "corrupt_parquet": ("x.parquet", b"PAR1 this is not parquet", r"x.parquet: expected a readable parquet file"),
}


@pytest.fixture
def populated(tmp_path):
    """A store that already holds data, so 'unchanged' is a real check."""
    path = tmp_path / "store"
    with Store.open(path) as s:
        ingest(s, FIXTURES / "nemo.csv")
        s.put_image(tiny_image(9))
    return path


@pytest.mark.parametrize("case", sorted(BAD_CAPTION_FILES))
def test_bad_caption_file_leaves_store_unchanged(populated, tmp_path, case):
    name, data, message = BAD_CAPTION_FILES[case]
    bad = _write(tmp_path, name, data)
    folder = _image_folder(tmp_path)  # valid images alongside: they must not be written either
    before = snapshot(populated)
    with Store.open(populated) as s:
        with pytest.raises(IngestError, match=message):
            ingest(s, bad, images=folder)
    assert snapshot(populated) == before


def test_bad_parquet_cell(populated, tmp_path):
    bad = _parquet(tmp_path, "p.parquet", {"caption": ["a", None], "url": ["u", "v"]})
    before = snapshot(populated)
    with Store.open(populated) as s:
        with pytest.raises(IngestError, match=r"p.parquet, row 2, column 'caption': expected caption text, got nothing"):
            ingest(s, bad)
        bad = _parquet(tmp_path, "q.parquet", {"caption": ["a", "b"], "overfit_type": ["MV", "ZZ"]})
        with pytest.raises(IngestError, match=r"q.parquet, row 2, column 'overfit_type': expected one of .* got 'ZZ'"):
            ingest(s, bad)
        empty = _parquet(tmp_path, "e.parquet", {"caption": pa.array([], pa.string())})
        with pytest.raises(IngestError, match=r"e.parquet: expected at least one caption, got an empty file \(0 rows\)"):
            ingest(s, empty)
    assert snapshot(populated) == before


def _meta_case(folder: Path, case: str) -> tuple[Path | None, str]:
    (folder / "metadata.jsonl").unlink()
    if case == "missing_file":
        (folder / "metadata.jsonl").write_text('{"file_name": "a.png", "caption": "x"}\n{"file_name": "nope.png"}\n')
        return None, r"metadata.jsonl, row 2 \(line 2\), column 'file_name': expected an existing image file, got no file 'nope.png'"
    if case == "escape":
        (folder / "metadata.jsonl").write_text('{"file_name": "../outside.png"}\n')
        return None, r"metadata.jsonl, row 1 \(line 1\), column 'file_name': expected a relative path inside .*, got '../outside.png'"
    if case == "no_file_name":
        (folder / "metadata.csv").write_text("name,caption\na.png,x\n")
        return None, r"metadata.csv, row 1 \(header\), column file_name: expected a file_name column, got columns \['name', 'caption'\]"
    if case == "long_caption":
        (folder / "metadata.jsonl").write_text(json.dumps({"file_name": "a.png", "caption": LONG}) + "\n")
        return None, r"metadata.jsonl, row 1 \(line 1\), column 'caption': expected a caption of at most 10000 characters, got 10001"
    if case == "duplicate":
        (folder / "metadata.jsonl").write_text('{"file_name": "a.png"}\n{"file_name": "a.png"}\n')
        return None, r"metadata.jsonl, row 2 \(line 2\), column 'file_name': expected each file once, got 'a.png' again"
    if case == "two_metadata":
        (folder / "metadata.jsonl").write_text('{"file_name": "a.png"}\n')
        (folder / "metadata.csv").write_text("file_name\na.png\n")
        return None, r"expected at most one metadata file, got \['metadata.jsonl', 'metadata.csv'\]"
    if case == "explicit_missing":
        return folder / "gone.jsonl", r"--metadata .*gone.jsonl: expected a metadata file, got no such file"
    if case == "empty_folder":
        shutil.rmtree(folder)
        folder.mkdir()
        return None, r"--images .*imgs: expected at least one image file .*, got none"
    if case == "no_folder":
        shutil.rmtree(folder)
        return None, r"--images .*imgs: expected a folder of images, got no such folder"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_file", "escape", "no_file_name", "long_caption", "duplicate",
                                  "two_metadata", "explicit_missing", "empty_folder", "no_folder"])
def test_bad_image_input_leaves_store_unchanged(populated, tmp_path, case):
    folder = _image_folder(tmp_path)
    metadata, message = _meta_case(folder, case)
    before = snapshot(populated)
    with Store.open(populated) as s:
        with pytest.raises(IngestError, match=message):
            ingest(s, FIXTURES / "wen.jsonl", images=folder, metadata=metadata)
    assert snapshot(populated) == before


def test_cli_bad_input_exit_2_unchanged(populated, tmp_path):
    bad = _write(tmp_path, "bad.csv", "url\nhttp://a\n")
    before = snapshot(populated)
    out = subprocess.run([sys.executable, "-m", "attack", "ingest", "--store", str(populated), str(bad)],
                         capture_output=True, text=True, env=subprocess_env(), cwd=REPO, timeout=120)
    assert out.returncode == 2
    assert out.stderr.startswith("error: ") and "bad.csv, row 1 (header), column caption" in out.stderr
    assert snapshot(populated) == before
