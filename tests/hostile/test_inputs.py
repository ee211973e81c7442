"""Class 2: nothing outside a named folder is read; class 3: no traceback for any input;
class 4: nothing echoed from data can act on the terminal; class 6: no silent layout guess,
and the same content is ingested once."""
from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path

import pytest
from PIL import Image

from attack.ingest import parse_caption_file
from attack.models import load_model
from attack.models.base import ModelError
from store import Store
from tests.conftest import FIXTURES, tiny_image
from tests.hostile.conftest import PROGRESS, one_line_error, picture, run


def _images(folder: Path, n: int = 2, size: int = 16) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(tiny_image(100 + i, size)).save(folder / f"img{i}.png")
    return folder


# -- class 2: reading outside the folder ------------------------------------------------------
def test_image_symlink_out_of_the_folder_is_skipped_and_named(populated, tmp_path):
    secret = tmp_path / "secret.png"
    Image.fromarray(tiny_image(77)).save(secret)
    folder = _images(tmp_path / "imgs")
    (folder / "leak.png").symlink_to(secret)
    (folder / "inner.png").symlink_to(folder / "img0.png")        # a link inside the folder is fine
    out = run("attack", "ingest", "--store", populated, "--images", folder)
    assert out.returncode == 0, out.stderr
    assert "not read: leak.png (a symlink to" in out.stderr and "outside" in out.stderr
    assert "1 files not read" in out.stdout
    dump = "\n".join(picture(populated)[0])
    assert "leak.png" not in dump and "img0.png" in dump


def test_metadata_symlink_out_of_the_folder_is_refused(populated, tmp_path):
    outside = tmp_path / "elsewhere.jsonl"
    outside.write_text('{"file_name": "img0.png", "caption": "x"}\n')
    folder = _images(tmp_path / "imgs")
    (folder / "metadata.jsonl").symlink_to(outside)
    before = picture(populated)
    out = run("attack", "ingest", "--store", populated, "--images", folder)
    assert out.returncode == 2 and "expected a metadata file inside" in one_line_error(out)
    assert picture(populated) == before


@pytest.mark.parametrize("name", ["../outside.png", "/etc/hostname", "sub/../../outside.png"])
def test_metadata_paths_out_of_the_folder_are_refused(populated, tmp_path, name):
    Image.fromarray(tiny_image(5)).save(tmp_path / "outside.png")
    folder = _images(tmp_path / "imgs")
    (folder / "metadata.jsonl").write_text(json.dumps({"file_name": name, "caption": "x"}) + "\n")
    before = picture(populated)
    out = run("attack", "ingest", "--store", populated, "--images", folder)
    assert out.returncode == 2 and "expected a relative path inside" in one_line_error(out)
    assert picture(populated) == before


def test_a_fifo_named_like_an_image_is_skipped_not_read(populated, tmp_path):
    folder = _images(tmp_path / "imgs")
    os.mkfifo(folder / "pipe.png")          # reading it would block forever
    out = run("attack", "ingest", "--store", populated, "--images", folder, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "not read: pipe.png (not a regular file)" in out.stderr


def test_undecodable_file_names_are_stored_escaped(populated, tmp_path):
    folder = _images(tmp_path / "imgs", n=1)
    raw = os.fsencode(str(folder)) + b"/bad-\xff\xfe.png"
    Image.fromarray(tiny_image(42)).save(raw.decode("utf-8", "surrogateescape"))
    out = run("attack", "ingest", "--store", populated, "--images", folder)
    assert out.returncode == 0, out.stderr
    assert "bad-\\xff\\xfe.png" in "\n".join(picture(populated)[0])


@pytest.mark.parametrize("where", ["../x.png", "/etc/hostname", "link.png"])
def test_images_mapping_cannot_point_outside_its_folder(tmp_path, where):
    Image.fromarray(tiny_image(1)).save(tmp_path / "x.png")
    folder = tmp_path / "closed"
    folder.mkdir()
    (folder / "link.png").symlink_to(tmp_path / "x.png")
    (folder / "mapping.csv").write_text(f"caption,seed,steps,path\na cat,0,1,{where}\n")
    with pytest.raises(ModelError, match=r"expected a path inside .* \(nothing outside the mapping's folder is read\)"):
        load_model(f"images:{folder}")


def test_external_index_files_must_be_inside_the_index_folder(populated, tmp_path):
    from attack.images.index import RetrievalError, load_autofaiss
    real = tmp_path / "real"
    real.mkdir()
    (real / "image.index").write_bytes(b"x")
    folder = tmp_path / "index"
    folder.mkdir()
    (folder / "image.index").symlink_to(real / "image.index")
    with pytest.raises(RetrievalError, match="expected a file inside the index folder"):
        load_autofaiss(folder, "pixel")


# -- class 3: no tracebacks ---------------------------------------------------------------------
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("name, data, message", [
    ("deep.json", DEEP, "nested too deeply"),
    ("deep.jsonl", '{"caption": ' + DEEP + '}\n', "nested too deeply"),
    ("extra.jsonl", '{"caption": "a", "x": ' + "[" * 40 + "]" * 40 + '}\n', "nested at most 32 levels"),
    ("surrogate.jsonl", '{"caption": "bad \\ud800 caption"}\n', "lone surrogate"),
    ("nul.jsonl", '{"caption": "bad \\u0000 caption"}\n', "without NUL"),
    ("surrogate_url.jsonl", '{"caption": "ok", "url": "\\udfff"}\n', "lone surrogate"),
    ("surrogate_key.jsonl", '{"caption": "ok", "\\ud800": 1}\n', "lone surrogate"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 40 else "data")
def test_hostile_caption_lists_exit_2_with_one_line(populated, tmp_path, name, data, message):
    bad = tmp_path / name
    bad.write_text(data, encoding="utf-8")
    folder = _images(tmp_path / "imgs", size=24)   # images that must not stay behind either
    before = picture(populated)
    out = run("attack", "ingest", "--store", populated, bad, "--images", folder)
    assert out.returncode == 2
    assert message in one_line_error(out)
    assert picture(populated) == before


def test_a_failed_write_removes_the_image_files_it_made(populated, tmp_path, monkeypatch):
    """If the rows cannot be written (here: a constraint the parser cannot see), the files the
    ingest created are removed again."""
    from attack import ingest as ingest_mod
    with Store.open(populated) as s:
        before = picture(populated)
        folder = _images(tmp_path / "imgs", size=20)
        prepared = ingest_mod.prepare_ingest(images=folder)

        def boom(*a, **kw):
            raise KeyboardInterrupt
        monkeypatch.setattr(s, "add_training_image", boom)
        with pytest.raises(KeyboardInterrupt):
            ingest_mod.apply_ingest(s, prepared)
    assert picture(populated) == before


# -- class 4: terminal injection ------------------------------------------------------------------
ESCAPES = "\x1b]0;owned\x07\x1b[2J\r\u202e"


def test_file_names_and_captions_are_printed_terminal_safe(populated, tmp_path):
    folder = _images(tmp_path / "imgs", n=1)
    (folder / f"evil{ESCAPES}.png").write_bytes(b"\x89PNG not really")
    out = run("attack", "ingest", "--store", populated, "--images", folder)
    assert out.returncode == 0
    # what the data made us print: every line but our own progress bars (which redraw with CR)
    said = "\n".join(line for line in re.split(r"[\r\n]", out.stderr) if line.strip() and not PROGRESS.search(line))
    assert "\x1b" not in said and "\x07" not in said and "\u202e" not in said
    assert "evil\\x1b]0;owned\\x07\\x1b[2J\\x0d\\u202e.png" in said
    bad = tmp_path / "bad.csv"
    bad.write_text(f"caption,dup_count\nfine,{ESCAPES.replace(chr(13), '')}\n")
    out = run("attack", "ingest", "--store", populated, bad)
    line = one_line_error(out)
    assert "\x1b" not in line and "\\x1b" in line


def test_terminal_safe_keeps_text_and_escapes_controls():
    from store.terminal import terminal_safe
    assert terminal_safe("café — 猫 ok\n") == "café — 猫 ok\n"
    assert terminal_safe("a\x1b[2Jb\x9bc\x7f") == "a\\x1b[2Jb\\x9bc\\x7f"
    assert terminal_safe("\ud800") == "\\ud800"


# -- class 6: layouts said out loud, the same content once ------------------------------------------
def _nemo_with(delimiter: str) -> str:
    rows = list(csv.reader((FIXTURES / "nemo.csv").read_text().splitlines(), delimiter=";"))
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\n").writerows(rows)
    return buf.getvalue()


@pytest.mark.parametrize("name, delimiter", [("nemo.csv", ","), ("nemo.txt", ","), ("nemo_list", ";"),
                                              ("nemo.tsv", "\t")])
def test_community_layout_recognised_by_its_header_whatever_the_separator(tmp_path, name, delimiter):
    path = tmp_path / name
    path.write_text(_nemo_with(delimiter))
    parsed = parse_caption_file(path)
    assert parsed.layout == "nemo" and parsed.delimiter == delimiter
    assert {r.reference_label for r in parsed.rows} == {"MV", "TV"}
    text = "\n".join(parsed.recognised())
    assert "nemo layout" in text and "reference label <- 'type'" in text and "MV" in text


def test_cli_prints_what_it_recognised(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text(_nemo_with(","))
    out = run("attack", "ingest", "--store", tmp_path / "s", path)
    assert out.returncode == 0, out.stderr
    assert "recognised list.txt: nemo layout (csv, ','-separated)" in out.stdout
    assert "read as CSV: its first line is a header" in out.stdout
    assert "columns: caption <- 'Caption', url <- 'URL', reference label <- 'type'" in out.stdout


def test_ingesting_the_same_content_twice_is_a_no_op(tmp_path):
    store_dir = tmp_path / "s"
    folder = _images(tmp_path / "imgs")
    first = run("attack", "ingest", "--store", store_dir, FIXTURES / "nemo.csv", "--images", folder)
    assert first.returncode == 0, first.stderr
    before = picture(store_dir)
    copy = tmp_path / "renamed.csv"
    copy.write_bytes((FIXTURES / "nemo.csv").read_bytes())
    again = run("attack", "ingest", "--store", store_dir, copy, "--images", folder)
    assert again.returncode == 0, again.stderr
    assert "caption list already ingested by run 1 (same content): skipped" in again.stdout
    assert "image folder already ingested by run 1 (same content): skipped" in again.stdout
    assert picture(store_dir) == before
    with Store.open(store_dir) as s:
        assert max(s.get_caption(c.id).count for c in s.caption_refs()) == 1


def test_parsed_lists_are_unicode_clean(tmp_path):
    path = tmp_path / "ok.jsonl"
    path.write_text(json.dumps({"caption": "猫 on a mat", "url": "https://x/é"}) + "\n")
    assert parse_caption_file(path).rows[0].text == "猫 on a mat"
