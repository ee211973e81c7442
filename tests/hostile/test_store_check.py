"""`python -m store check` (issue 26): SQLite's check, every image present with the bytes its name
says, the derived tables equal to their sources; --repair fixes what is safe. Commands that meet a
missing or damaged image name it and point at `store check`; exports leave such an image out with a
warning and a line in the manifest; the app shows a banner when the store fails its quick check."""
from __future__ import annotations

import io
import json
import sqlite3
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from review.sample import build_sample_store
from store import CheckReport, DamagedImageError, NotFoundError, Store, check_store
from store.__main__ import main as store_main
from tests.conftest import assert_derived_state
from tests.hostile.conftest import picture


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        rc = store_main(list(argv))
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture()
def sample(tmp_path) -> tuple[Path, list[int]]:
    with Store.open(tmp_path / "s") as s:
        ids = build_sample_store(s, n=6)
        for cid in ids[:3]:
            s.add_label(cid, "MV", "ann")
    return tmp_path / "s", ids


def _damage_images(store_dir: Path, ids: list[int]) -> tuple[Path, Path]:
    """Delete the generation the first labelled row exports and truncate the training image the
    second one exports: (the missing file, the damaged one)."""
    with Store.open(store_dir, readonly=True) as s:
        rows = {r["caption_id"]: r for r in s.collect_rows()[0]}
        missing = s.image_path(rows[ids[0]]["generated_sha"])
        damaged = s.image_path(rows[ids[1]]["train_image_sha"])
        assert missing != damaged
    missing.unlink()
    damaged.write_bytes(damaged.read_bytes()[:60])
    return missing, damaged


def test_a_whole_store_checks_clean(sample):
    store_dir, _ = sample
    rc, out, _ = _cli("check", "--store", str(store_dir))
    assert rc == 0 and out.strip().endswith("no problem found"), out
    rc, out, _ = _cli("check", "--store", str(store_dir), "--json")
    report = json.loads(out)
    assert rc == 0 and report["ok"] and report["problems"] == [] and report["checked"]["image files hashed"] > 0


def test_check_names_every_problem_and_repair_fixes_what_is_safe(sample):
    store_dir, ids = sample
    missing, damaged = _damage_images(store_dir, ids)
    with sqlite3.connect(store_dir / "store.db") as c:        # derived tables out of step with their sources
        c.execute("DELETE FROM candidate_scores")
        c.execute("UPDATE candidate_counts SET n = n + 5")
        c.execute("UPDATE caption_state SET label = 'N' WHERE caption_id = ?", (ids[0],))
    leftover = store_dir / "images" / "ab" / ".tmp-interrupted"
    leftover.parent.mkdir(exist_ok=True)
    leftover.write_bytes(b"half a png")
    rc, out, _ = _cli("check", "--store", str(store_dir))
    assert rc == 2, out
    assert f"image-missing: {missing}: expected the image file of generations row" in out
    assert f"image-damaged: {damaged}: expected bytes with sha256 {damaged.stem[:12]}" in out
    for table in ("candidate_scores", "candidate_counts", "caption_state.label"):
        assert f"derived: {table}: expected the" in out, (table, out)
    assert f"temp-file: {leftover}" in out and leftover.exists()          # a check alone changes nothing
    rc, out, _ = _cli("check", "--store", str(store_dir), "--repair")
    assert rc == 2 and out.count("(repaired)") == 4, out                    # the images are left to the user
    assert not leftover.exists()
    with sqlite3.connect(store_dir / "store.db") as c:
        assert_derived_state(c)
        assert c.execute("SELECT label FROM caption_state WHERE caption_id = ?", (ids[0],)).fetchone() == ("MV",)
    rc, out, _ = _cli("check", "--store", str(store_dir))
    assert rc == 2 and "derived" not in out and "temp-file" not in out and out.count("image-") == 2, out


def test_a_damaged_search_index_is_found_and_rebuilt(sample):
    store_dir, _ = sample
    with sqlite3.connect(store_dir / "store.db") as c:
        c.execute("INSERT INTO captions_fts(captions_fts, rowid, text) VALUES ('delete', 1, "
                  "(SELECT text FROM captions WHERE id = 1))")             # the index forgets caption 1
    with Store.open(store_dir) as s:
        report = check_store(s)
        assert [p.kind for p in report.problems] == ["fts"] and not report.ok
        assert check_store(s, repair=True).ok and check_store(s).problems == ()


def test_an_unopenable_database_is_named_with_what_to_do(tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "store.db").write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    rc, out, _ = _cli("check", "--store", str(tmp_path / "s"))
    assert rc == 2 and out.startswith(f"integrity: {tmp_path / 's' / 'store.db'}: expected a database the store "
                                      f"can open, got "), out
    assert "sqlite3 store.db .recover" in out


def test_loading_a_missing_or_damaged_image_names_it_and_store_check(sample):
    store_dir, ids = sample
    missing, damaged = _damage_images(store_dir, ids)
    with Store.open(store_dir, readonly=True) as s:
        with pytest.raises(NotFoundError, match="store check --store"):
            s.load_image(missing.stem)
        with pytest.raises(DamagedImageError, match=rf"{damaged}: expected the stored PNG of sha "
                                                    rf"{damaged.stem[:12]}\.\.\., got a damaged file"):
            s.load_image(damaged.stem)


def test_exports_leave_an_unreadable_image_out_with_a_warning_and_a_manifest_line(sample, tmp_path):
    store_dir, ids = sample
    missing, damaged = _damage_images(store_dir, ids)
    before = picture(store_dir)
    rc, out, err = _cli("export", "--store", str(store_dir), "--out", str(tmp_path / "x.zip"), "--auto")
    assert rc == 0, err
    assert "could not be read and were left out" in err and "store check" in err, err
    with zipfile.ZipFile(tmp_path / "x.zip") as z:
        manifest = json.loads(z.read("manifest.json"))
        names = set(z.namelist())
    bad = {u["file"]: u for u in manifest["unreadable_images"]}
    assert bad[str(missing)]["why"] == "missing" and bad[str(missing)]["caption_id"] == ids[0]
    assert bad[str(damaged)]["why"].startswith("damaged: its bytes do not hash to its name")
    assert f"generated/{missing.name}" not in names and f"train/{damaged.name}" not in names
    assert manifest["rows"] >= 4                                     # the rest is exported
    assert picture(store_dir)[1] == before[1]                         # the rows are as they were


def test_the_evidence_export_skips_a_row_whose_picture_is_unreadable(sample, tmp_path):
    from review.evidence import export_evidence

    store_dir, ids = sample
    missing, _ = _damage_images(store_dir, ids)
    with Store.open(store_dir) as s:
        res = export_evidence(s, tmp_path / "e.zip")
    assert res.rows == 1 and [u["caption_id"] for u in res.unreadable] == [ids[0], ids[1]], res.unreadable
    with zipfile.ZipFile(tmp_path / "e.zip") as z:
        manifest = json.loads(z.read("manifest.json"))
        index = z.read("index.html").decode()
    assert manifest["rows"] == 1 and len(manifest["unreadable_images"]) == 2     # 3 confirmed, 2 unreadable
    assert f"Caption {ids[0]}: no page, a stored image could not be read ({missing}" in index


def test_the_app_shows_a_banner_when_the_store_fails_its_quick_check(sample):
    from review import render

    store_dir, ids = sample
    with Store.open(store_dir) as s:
        assert check_store(s, quick=True).ok
    missing, _ = _damage_images(store_dir, ids)
    with Store.open(store_dir) as s:
        report = check_store(s, quick=True)
    assert isinstance(report, CheckReport) and not report.ok
    html = render.store_problems_banner(report)
    assert "This store failed its quick check: 2 problem(s)." in html and str(missing) in html
    assert f"python -m store check --store {store_dir}" in html


def test_the_review_app_built_on_a_damaged_store_carries_the_banner(sample):
    import gradio as gr

    from review.app import build_app

    store_dir, ids = sample
    _damage_images(store_dir, ids)
    with Store.open(store_dir) as s:
        app = build_app(s)
    banners = [b for b in app.blocks.values() if isinstance(b, gr.HTML) and b.elem_id == "vb-store-problems"]
    assert len(banners) == 1 and "failed its quick check: 2 problem(s)" in banners[0].value
