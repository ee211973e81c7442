"""Label carry-over (attack/carry.py, store/model_labels.py): what a human confirmed for A is
proposed for B when B rests on the same training image, never written as B's label until a
reviewer confirms a group, confirmed in bulk and undone in bulk."""
from __future__ import annotations

import numpy as np
import pytest

from attack.carry import CarryError, confirm_group, groups, proposals, undo_confirm
from attack.compare import compare_models, with_human_labels
from store import LabelError, NotFoundError, NotYourLabelError, Store

from .test_compare import two_model_store

# A copies 0-3, 6 and 7; B (captions 0-7) copies 1-4. So 0 is removed, 1-3 persist, 4 is new, 5
# neither. B's 6 is a copy of caption 7's image, not 6's; B's 7 is 7's image blurred past a copy
# (its nearest training image, not a copy): A's copy is carried to neither.
COPIES = {"a": {0, 1, 2, 3, 6, 7}, "b": {1, 2, 3, 4}}


def _blurred(own):
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(own[7]).filter(ImageFilter.GaussianBlur(6)))


@pytest.fixture()
def world(tmp_path):
    return two_model_store(tmp_path, COPIES, n=8, b_captions=8, b_override={6: lambda own: own[7], 7: _blurred})


def _counts(s: Store) -> tuple[int, int]:
    return tuple(s.conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in ("labels", "model_labels"))


def test_a_confirmed_copy_is_proposed_where_b_rests_on_the_same_image(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        for c in ids[:3]:
            s.add_label(c, "MV", "ann")             # 0 (B does not copy it), 1 and 2 (B copies them)
        s.add_label(ids[3], "N", "bob")             # bob rejects A's copy of 3; B copies the same image
        s.add_label(ids[5], "N", "ann")             # neither model copies 5: both rest on the same nearest image
        s.add_label(ids[6], "MV", "ann")            # B copies another image
        s.add_label(ids[7], "MV", "ann")            # B is near the same image, but not a copy
        result = compare_models(s, specs["a"], specs["b"])
        before = _counts(s)
        found = proposals(s, result)
        assert _counts(s) == before                 # proposing writes nothing
        rows = {r.caption_id: r for r in with_human_labels(s, result).rows}
    by = {p.caption_id: p for p in found}
    assert sorted(by) == [ids[1], ids[2], ids[3], ids[5]]
    six, seven = (next(r for r in result.rows if r.caption_id == ids[i]) for i in (6, 7))
    assert six.b.auto_label == "RV" and six.b.train_image_id == seven.a.train_image_id != six.a.train_image_id
    assert seven.b.auto_label == "N" and seven.b.train_image_id == seven.a.train_image_id
    assert by[ids[1]].label == "MV" and by[ids[1]].evidence == "as confirmed for A by ann"
    assert by[ids[1]].train_image_id == result.rows[1].a.train_image_id == result.rows[1].b.train_image_id
    assert by[ids[3]].label == "N" and by[ids[3]].evidence == "as confirmed for A by bob"
    assert by[ids[3]].outcome == "new" and by[ids[1]].outcome == "persisting" and by[ids[5]].outcome == "neither"
    assert [(g.key, len(g.proposals)) for g in groups(found)] == [("persisting:MV", 2), ("neither:N", 1),
                                                                   ("new:N", 1)]
    assert all(rows[c].b.human_label is None for c in ids)      # B has no human label yet


def test_a_group_is_confirmed_with_one_call_and_undone_as_one(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        for c in ids[1:3]:
            s.add_label(c, "MV", "ann")
        result = compare_models(s, specs["a"], specs["b"])
        labels_before = s.info()["tables"]["labels"]
        done = confirm_group(s, result, "persisting:MV", "carl")
        assert done.caption_ids == (ids[1], ids[2]) and done.into == "model_labels" and done.label == "MV"
        assert s.info()["tables"]["labels"] == labels_before           # A's review is untouched
        b = s.model_labels(fps["b"])
        assert sorted(b) == [ids[1], ids[2]] and {e.reviewer for e in b.values()} == {"carl"}
        assert b[ids[1]].carried == {"compare_run": result.run_id, "from_model": fps["a"], "label": "MV",
                                     "reviewer": "ann", "train_image_id": result.rows[1].a.train_image_id}
        assert proposals(s, result) == []                              # confirmed: nothing left to carry
        now = {r.caption_id: r for r in with_human_labels(s, result).rows}
        assert now[ids[1]].b.human_label == "MV" and now[ids[1]].b.human_by == "carl"
        with pytest.raises(NotYourLabelError, match="only its author"):
            undo_confirm(s, result, done, "ann")
        assert undo_confirm(s, result, done, "carl") == 2
        assert s.model_labels(fps["b"]) == {}
        assert [p.caption_id for p in proposals(s, result)] == [ids[1], ids[2]]
        assert [e.label for e in s.model_label_history(fps["b"], ids[1])] == ["MV", None]
        with pytest.raises(CarryError, match=r"expected a group among persisting:MV, got 'new:MV'"):
            confirm_group(s, result, "new:MV", "carl")


def test_a_confirmed_b_label_folds_into_the_outcome(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        s.add_label(ids[3], "N", "bob")
        result = compare_models(s, specs["a"], specs["b"])
        confirm_group(s, result, "new:N", "carl")
        again = compare_models(s, specs["a"], specs["b"])
    row = {r.caption_id: r for r in again.rows}[ids[3]]
    assert row.b.human_label == "N" and row.b.human_by == "carl" and row.outcome == "neither"


def test_carrying_onto_the_audited_model_writes_its_review(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        s.add_model_labels(fps["b"], [(ids[1], "MV", None), (ids[4], "MV", None)], "dan")
        result = compare_models(s, specs["b"], specs["a"])          # B's labels carried onto the audited A
        found = proposals(s, result)
        assert [(p.caption_id, p.label, p.evidence) for p in found] == [(ids[1], "MV", "as confirmed for A by dan")]
        done = confirm_group(s, result, "persisting:MV", "erin")
        assert done.into == "review" and s.current_label(ids[1]) == "MV"
        assert "carried from A" in s.current_label_entry(ids[1]).note
        assert undo_confirm(s, result, done, "erin") == 1 and s.current_label(ids[1]) is None


def test_model_labels_refuse_bad_input_and_write_nothing(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        with pytest.raises(LabelError, match="expected a model other than the one audited"):
            s.add_model_labels(fps["a"], [(ids[0], "MV", None)], "ann")
        with pytest.raises(LabelError, match=r"item 1: expected a label among .*, got 'copy'"):
            s.add_model_labels(fps["b"], [(ids[0], "MV", None), (ids[1], "copy", None)], "ann")
        with pytest.raises(NotFoundError, match=r"expected existing caption ids, got \[999\]"):
            s.add_model_labels(fps["b"], [(ids[0], "MV", None), (999, "MV", None)], "ann")
        with pytest.raises(LabelError, match="expected a non-empty name"):
            s.add_model_labels(fps["b"], [(ids[0], "MV", None)], " ")
        with pytest.raises(LabelError, match="to undo, got none"):
            s.undo_model_batch(fps["b"], "ann")
        assert s.conn.execute("SELECT count(*) FROM model_labels").fetchone()[0] == 0


def test_undo_keeps_a_newer_label(world):
    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        s.add_model_labels(fps["b"], [(ids[1], "MV", None)], "ann")
        first = s.add_model_labels(fps["b"], [(ids[1], "TV", None), (ids[2], "RV", None)], "ann")
        s.add_model_labels(fps["b"], [(ids[2], "N", None)], "bob")
        back = s.undo_model_batch(fps["b"], "ann", first)
        assert [(e.caption_id, e.label) for e in back] == [(ids[1], "MV")]    # 2 was relabelled by bob since
        assert {c: e.label for c, e in s.model_labels(fps["b"]).items()} == {ids[1]: "MV", ids[2]: "N"}


def test_the_carry_view_groups_and_draws_the_proposals(world):
    from review import carry_view as kv

    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        for c in ids[1:3]:
            s.add_label(c, "MV", "ann")
        s.add_label(ids[3], "N", "<b>bob</b>")
        run = compare_models(s, specs["a"], specs["b"]).run_id
        view = kv.carry_view(s, run)
        other = kv.carry_view(s, run, "new:N")
        html, other_html = kv.carry_html(s, view), kv.carry_html(s, other)
        done = confirm_group(s, view.result, "persisting:MV", "carl")
        note = kv.confirmed_note(done)
        after = kv.carry_view(s, run, "persisting:MV")
    assert kv.group_choices(view) == [("persisting · carry MV · 2", "persisting:MV"),
                                      ("new · carry N · 1", "new:N")]
    assert view.group.key == "persisting:MV" and other.group.key == "new:N"
    assert html.count('class="vb-carry-tile"') == 2 and html.count("<img") == 4
    assert html.count("as confirmed for A by ann") == 2 and 'data-count="2"' in html
    assert "as confirmed for A by &lt;b&gt;bob&lt;/b&gt;" in other_html and "<b>bob" not in other_html
    assert "3** proposals" in kv.carry_summary(view) and "none written as B's label until confirmed" in \
        kv.carry_summary(view)
    assert note == "Confirmed 2 captions of persisting:MV as MV for B (written to B's own labels)."
    assert after.group.key == "new:N" and kv.group_choices(after) == [("new · carry N · 1", "new:N")]


def test_the_evidence_zip_shows_both_models_on_each_page(world, tmp_path):
    import csv
    import hashlib
    import io
    import json
    import zipfile

    from attack import cli

    store_dir, specs, fps, ids = world
    with Store.open(store_dir) as s:
        s.add_label(ids[1], "MV", "ann")
        s.add_label(ids[2], "MV", "ann")
        s.add_model_labels(fps["b"], [(ids[2], "MV", None)], "carl")          # 2 confirmed, 1 still proposed
    out = tmp_path / "cmp.zip"
    args = ["compare", "--store", str(store_dir), "--model", specs["a"], "--model", specs["b"], "--out", str(out)]
    assert cli.main(args) == 0
    zf = zipfile.ZipFile(out)
    names = set(zf.namelist())
    manifest = json.loads(zf.read("manifest.json"))
    assert manifest["rows"] == 8 and manifest["outcomes"]["persisting"] == 4
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert all(hashlib.sha256(zf.read(n)).hexdigest() == h for n, h in manifest["files"].items())
    rows = list(csv.DictReader(io.StringIO(zf.read("rows.csv").decode("utf-8"))))
    page = {int(r["caption_id"]): r["page"] for r in rows}
    one, two = zf.read(page[ids[1]]).decode(), zf.read(page[ids[2]]).decode()
    assert "<h2>A: images:" in one and "<h2>B: images:" in one
    folder = page[ids[1]].removesuffix(".html")
    pictures = [n for n in names if n.startswith(folder + "/")]
    assert sorted(p.split("/")[1].split("-seed")[0] for p in pictures if "seed" in p) == ["a", "b"]
    assert all(f'src="{p}"' in one for p in pictures)                    # every picture on the page, by path
    assert "Proposed for B, not confirmed: MV, as confirmed for A by ann." in one
    assert "Proposed for B" not in two and "MV by carl" in two              # confirmed: B's own label
    assert "<svg" in zf.read("index.html").decode() and "script" not in one.lower().replace("script-src", "")
    assert cli.main(args) == 2                                               # no overwrite without --force


def test_compare_export_names_a_run_that_is_not_a_comparison(world, tmp_path, capsys):
    from review.__main__ import main as review_main

    store_dir, specs, fps, ids = world
    out = tmp_path / "x.zip"
    assert review_main(["compare-export", "--store", str(store_dir), "--run", "1", "--out", str(out)]) == 2
    assert "expected a compare run id, got 1 (a generate run)" in capsys.readouterr().err
    assert not out.exists()
