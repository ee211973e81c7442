"""Class 1: no output lands inside a store or over a file; class 7: exports do not attack their
reader (CSV formula cells are neutralised)."""
from __future__ import annotations

import csv
import json
import os
import stat

import pyarrow.parquet as pq
import pytest

from store import CaptionRow, Store
from tests.hostile.conftest import one_line_error, picture, run


def _labelled_caption(store_dir, text: str) -> None:
    with Store.open(store_dir) as s:
        (cid,) = s.add_captions([CaptionRow(text, url="=cmd|' /C calc'!A0")])
        s.add_label(cid, "MV", "@reviewer", note="+1 looks copied")


@pytest.mark.parametrize("target", ["store.db", "images/xx.png", "images", "exports/../store.db", "sub/deep.csv"])
def test_export_into_the_store_is_refused_and_changes_nothing(populated, target):
    (populated / "images" / "sub").mkdir(exist_ok=True)
    before = picture(populated)
    out = run("store", "export", "--store", populated, "--out", populated / target, "--format", "csv", "--parents")
    assert out.returncode == 2
    line = one_line_error(out)
    assert "expected a path outside the store folder" in line or "got an existing directory" in line
    assert picture(populated) == before


def test_export_over_a_stored_image_is_refused(populated):
    victim = next(p for p in (populated / "images").rglob("*.png"))
    data = victim.read_bytes()
    out = run("store", "export", "--store", populated, "--out", victim, "--format", "csv", "--force")
    assert out.returncode == 2 and "outside the store folder" in one_line_error(out)
    assert victim.read_bytes() == data


def test_export_through_a_symlink_into_the_store_is_refused(populated, tmp_path):
    link = tmp_path / "innocent"
    link.symlink_to(populated)
    before = picture(populated)
    out = run("store", "export", "--store", populated, "--out", link / "store.db", "--format", "csv", "--force")
    assert out.returncode == 2 and "outside the store folder" in one_line_error(out)
    file_link = tmp_path / "labels.csv"
    file_link.symlink_to(populated / "store.db")
    out = run("store", "export", "--store", populated, "--out", file_link, "--force")
    assert out.returncode == 2 and "outside the store folder" in one_line_error(out)
    assert picture(populated) == before


def test_existing_file_needs_force_and_keeps_its_permissions(populated, tmp_path):
    target = tmp_path / "mine.csv"
    target.write_text("precious")
    os.chmod(target, 0o600)
    out = run("store", "export", "--store", populated, "--out", target)
    assert out.returncode == 2
    assert "expected a new file, got an existing one (pass --force to replace it)" in one_line_error(out)
    assert target.read_text() == "precious"
    out = run("store", "export", "--store", populated, "--out", target, "--force")
    assert out.returncode == 0, out.stderr
    assert target.read_text().startswith("caption,")
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary left behind


def test_directory_and_missing_parent_have_their_own_messages(populated, tmp_path):
    out = run("store", "export", "--store", populated, "--out", tmp_path, "--format", "csv")
    assert "expected a file path, got an existing directory" in one_line_error(out)
    out = run("store", "export", "--store", populated, "--out", tmp_path / "no" / "such" / "x.csv")
    assert "expected an existing folder" in one_line_error(out) and "--parents" in out.stderr
    out = run("store", "export", "--store", populated, "--out", tmp_path / "no" / "such" / "x.csv", "--parents")
    assert out.returncode == 0 and (tmp_path / "no" / "such" / "x.csv").is_file()


def test_the_stores_own_exports_folder_is_allowed(populated):
    out = run("store", "export", "--store", populated, "--out", populated / "exports" / "labels.csv", "--parents")
    assert out.returncode == 0, out.stderr
    assert (populated / "exports" / "labels.csv").is_file()


def test_training_refuses_to_overwrite_weights_or_write_into_a_store(populated, tmp_path):
    out = run("attack.demo.train", "--out", populated / "weights", "--max-steps", "0")
    assert out.returncode == 2 and "outside the store folder" in one_line_error(out)
    (tmp_path / "w").mkdir()
    (tmp_path / "w" / "model.safetensors").write_bytes(b"mine")
    out = run("attack.demo.train", "--out", tmp_path / "w", "--max-steps", "0")
    assert out.returncode == 2 and "pass --force" in one_line_error(out)
    assert (tmp_path / "w" / "model.safetensors").read_bytes() == b"mine"


FORMULAS = ["=HYPERLINK(\"http://evil\",\"click\")", "+SUM(1,2)", "-2+3", "@SUM(A1)", "\tTAB", "\rCR"]


@pytest.mark.parametrize("caption", FORMULAS)
def test_csv_neutralises_formula_cells_and_other_formats_keep_the_text(tmp_path, caption):
    store_dir = tmp_path / "s"
    _labelled_caption(store_dir, caption)
    assert run("store", "export", "--store", store_dir, "--out", tmp_path / "a.csv").returncode == 0
    rows = list(csv.DictReader(open(tmp_path / "a.csv", newline="")))
    assert rows[0]["caption"] == "'" + caption
    for column in ("url", "reviewer", "note"):
        assert rows[0][column].startswith("'"), column
    assert run("store", "export", "--store", store_dir, "--out", tmp_path / "b.jsonl").returncode == 0
    assert json.loads((tmp_path / "b.jsonl").read_text())["caption"] == caption
    assert run("store", "export", "--store", store_dir, "--out", tmp_path / "c.parquet").returncode == 0
    assert pq.read_table(tmp_path / "c.parquet").to_pylist()[0]["caption"] == caption
    assert run("store", "export", "--store", store_dir, "--out", tmp_path / "d.csv", "--raw-csv").returncode == 0
    raw = list(csv.DictReader(open(tmp_path / "d.csv", newline="")))
    assert raw[0]["caption"] == caption


def test_numbers_are_not_mangled_by_the_formula_rule(tmp_path):
    from store.export import write_csv
    data = write_csv([{"caption": "-a", "score_dcs": -0.5, "caption_id": 3}], ["caption", "score_dcs", "caption_id"])
    assert data.decode().splitlines()[1] == "'-a,-0.5,3"


def test_an_out_path_with_a_newline_is_echoed_on_one_line(populated, tmp_path):
    out = tmp_path / "two\nlines.csv"
    done = run("store", "export", "--store", populated, "--out", out)
    assert done.returncode == 0 and out.exists(), done.stderr
    (line,) = done.stdout.splitlines()                        # was two lines: the name's newline printed raw
    assert "two\\x0alines.csv" in line
    failed = run("store", "export", "--store", populated, "--out", tmp_path / "no\nsuch" / "x.csv")
    assert failed.returncode == 2 and "no\\x0asuch" in one_line_error(failed)
    assert len([x for x in failed.stderr.splitlines() if x.strip()]) == 1
