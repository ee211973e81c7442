"""The review app's pure view functions on a small synthetic store (review.sample)."""
from __future__ import annotations

import re

import numpy as np
import pytest
from PIL import Image

from review import imaging, mask_views, queries, render, views
from review.imaging import MaskShapeError
from review.sample import SCRIPT_CAPTION, build_sample_store
from review.tab_export import run_export
from store import HUMAN_LABELS, NotYourLabelError, Store, StoreError


@pytest.fixture
def sample(tmp_path):
    with Store.open(tmp_path / "s") as s:
        ids = build_sample_store(s, n=30)
        yield s, ids


def test_queue_ranks_by_score_filters_and_counts(sample):
    s, ids = sample
    q = views.queue_view(s, views.QueueFilter(), page=0, page_size=10)
    assert q.total == 30 and q.pages == 3 and list(q.ids) == ids[:10]
    assert [r[0] for r in q.rows] == list(range(1, 11))
    assert "**30** candidates match" in q.summary
    asc = views.queue_view(s, views.QueueFilter(descending=False), page_size=5)
    assert list(asc.ids) == ids[::-1][:5]
    tv = views.queue_view(s, views.QueueFilter(auto=("TV",)))
    assert tv.total == len([i for i in range(30) if i % 5 and i % 7 == 0])
    assert {r[5] for r in tv.rows} == {"TV"}
    flagged = views.queue_view(s, views.QueueFilter(flags=("suspect:texture",)))
    assert flagged.total == 5 and all("suspect:texture" in r[6] for r in flagged.rows)
    found = views.queue_view(s, views.QueueFilter(search="poster"))
    assert found.total > 0 and all("poster" in r[2] for r in found.rows)
    s.add_label(ids[0], "MV", "ann")
    assert views.queue_view(s, views.QueueFilter()).total == 29
    assert views.queue_view(s, views.QueueFilter(human="MV")).ids == (ids[0],)
    assert views.queue_view(s, views.QueueFilter(human="any")).total == 30
    by_wen = views.queue_view(s, views.QueueFilter(order_by="wen", human="any"), page_size=30)
    wen = [r[3] for r in by_wen.rows]
    assert wen == sorted(wen, reverse=True)
    ranged = views.queue_view(s, views.QueueFilter(human="any", score_min=5.0))
    assert 0 < ranged.total < 30 and all(r[3] >= 5.0 for r in ranged.rows)


def test_make_filter_from_widgets_and_bad_values(sample):
    s, _ = sample
    f = views.make_filter("ecs", False, "labelled", ["MV"], ["suspect:texture"], "0.1", "", "run 1 (score, sample)", "x")
    assert (f.order_by, f.descending, f.human, f.auto, f.flags, f.score_min, f.score_max, f.run_id) == \
        ("ecs", False, "labelled", ("MV",), ("suspect:texture",), 0.1, None, 1)
    assert views.make_filter("dcs", True, "any", [], [], None, None, "model sample", "").model == "sample"
    with pytest.raises(views.ViewError, match="score min: expected a number"):
        views.make_filter("dcs", True, "any", [], [], "abc", None, "", "")
    with pytest.raises(views.ViewError, match="human label filter"):
        views.QueueFilter(human="maybe")


def test_candidate_view_shows_evidence_and_escapes_the_caption(sample):
    s, ids = sample
    v = views.candidate_view(s, ids[0], "queue position 1")
    for html in (v.html, v.head):
        assert SCRIPT_CAPTION not in html and "<script" not in html
        assert "onerror=" not in html.replace("onerror=&quot;", "")
    assert "&lt;script&gt;window.__vb_pwned = 1&lt;/script&gt;" in v.head and "queue position 1" in v.head
    strip = v.html.split('<aside class="vb-side">')[0]
    assert len(re.findall(r'alt="generation seed \d"', strip)) == 4                 # J = 4
    assert 'class="vb-px vb-own"' in strip and 'class="vb-px vb-match"' in strip and 'class="vb-px vb-diff"' in strip
    assert 'class="vb-compare"' in strip and 'class="vb-range"' in strip and 'class="vb-scale"' in strip
    assert "data:image/png;base64," in strip                                 # the difference, inline
    side = v.html.split('<aside class="vb-side">')[1]
    assert "Automatic label" in side and ">MV<" in side and "1 of 30" in side  # top DCS
    assert "Retrieved neighbours" in side and "similarity 0.9500" in side
    # every file URL points into the store's images folder
    for url in re.findall(r'src="(gradio_api/file=[^"]+)"', v.html):
        assert url.startswith("gradio_api/file=" + str(s.images.root.resolve()))
    # small images are enlarged by a whole factor to the 256-px tile, drawn with crisp pixels
    assert 'class="vb-px' in strip and 'width="256" height="256"' in strip
    # the editor shows the image enlarged x16 with crisp pixels (a mask pixel is a 16x16 block)
    assert v.mask is not None and v.mask.size == (32, 32) and v.mask.scale == 16 and v.label is None
    assert Image.open(v.editor["background"]).size == (512, 512)
    assert np.asarray(Image.open(v.editor["layers"][0])).shape == (512, 512, 4)


def test_template_candidate_shows_its_mask(sample):
    s, ids = sample
    v = views.candidate_view(s, ids[7])        # i = 7: a template with an auto mask keeping the top half
    assert "mask v1 (auto) keeps 50%" in v.html and "masked RMSE" in v.html and "TV match" in v.html
    assert v.mask.current_id is not None and len(v.mask.versions) == 1
    kept = np.asarray(Image.open(v.editor["layers"][0]))[:, :, 3] >= imaging.KEEP_ALPHA
    assert kept[:256].all() and not kept[256:].any()


def test_render_escapes_template_syntax_and_unsafe_urls():
    assert render.esc("${alert(1)} {{x}}") == "&#36;&#123;alert(1)&#125; &#123;&#123;x&#125;&#125;"
    assert "<a" not in render.url_html("javascript:alert(1)")
    assert render.url_html('https://x.org/"><script>').count("<script>") == 0
    assert 'rel="noopener noreferrer nofollow"' in render.url_html("https://x.org/a.jpg")
    assert render.display_size(32, 32) == (160, 160) and render.display_size(256, 128) == (256, 128)
    assert render.tile_size(32, 32) == (256, 256) and render.tile_size(100, 50) == (300, 150)
    assert render.tile_size(512, 256) == (256, 128) and render.tile_size(256, 256) == (256, 256)


def test_label_and_advance_writes_one_entry_and_skips_labelled(sample):
    s, ids = sample
    s.add_label(ids[1], "N", "other")            # already labelled: the advance skips it
    nav = views.nav_open(s, views.QueueFilter(human="any"), 0)
    assert nav.current == ids[0]
    entry, nav, moved = views.label_and_advance(s, nav, "MV", "ann", "looks copied")
    assert moved and nav.current == ids[2]
    assert (entry.caption_id, entry.label, entry.reviewer, entry.note) == (ids[0], "MV", "ann", "looks copied")
    assert [e.label for e in s.label_history(ids[0])] == ["MV"]
    with pytest.raises(views.ViewError, match="reviewer"):
        views.label_and_advance(s, nav, "MV", "  ")
    with pytest.raises(views.ViewError, match="label: expected one of"):
        views.record_label(s, ids[0], "maybe", "ann")
    undone = views.undo(s, ids[0], "ann")
    assert undone.label is None and undone.undoes == entry.id
    assert [e.label for e in s.label_history(ids[0])] == ["MV", None]
    assert "undo" in views.candidate_view(s, ids[0]).html


def test_undo_last_walks_back_this_sessions_labels_and_returns_to_each(sample):
    s, ids = sample
    nav = views.nav_open(s, views.QueueFilter(human="unlabelled"), 0)
    first = nav.current
    _, nav, _ = views.label_and_advance(s, nav, "MV", "ann")
    second = nav.current
    _, nav, _ = views.label_and_advance(s, nav, "TV", "ann")
    third = nav.current
    assert len({first, second, third}) == 3
    u = views.undo_last(s, nav, "ann")          # the last label, not the open candidate
    assert (u.entry.caption_id, u.nav.current, s.current_label(second)) == (second, second, None)
    assert s.current_label(third) is None and s.current_label(first) == "MV"
    u = views.undo_last(s, u.nav, "ann")
    nav = u.nav
    assert (u.entry.caption_id, nav.current, s.current_label(first)) == (first, first, None)
    # nothing left from this session: u undoes the open candidate's last label, if it is one's own
    s.add_label(first, "RV", "bob")
    with pytest.raises(NotYourLabelError, match="got only others' labels, the latest bob's RV"):
        views.undo_last(s, nav, "ann")
    undo = views.undo_last(s, nav, "bob")
    assert (undo.entry.caption_id, undo.entry.reviewer, s.current_label(first)) == (first, "bob", None)
    with pytest.raises(StoreError, match="expected a label entry to undo"):
        views.undo_last(s, nav, "ann")
    with pytest.raises(views.ViewError, match="undo: expected"):
        views.undo_last(s, views.Nav(), "ann")


def test_every_human_label_is_a_key_and_a_button():
    assert sorted(set(render.LABEL_KEYS.values())) == sorted(HUMAN_LABELS)
    assert all(k.isdigit() for k in render.LABEL_KEYS)


def test_navigation_crosses_windows_and_wraps_to_unlabelled(sample, monkeypatch):
    s, ids = sample
    monkeypatch.setattr(views, "NAV_WINDOW", 4)
    nav = views.nav_open(s, views.QueueFilter(human="any"), 0)
    seen = [nav.current]
    for _ in range(9):
        nav = views.nav_step(s, nav, 1)
        seen.append(nav.current)
    assert seen == ids[:10]
    for _ in range(9):
        nav = views.nav_step(s, nav, -1)
    assert nav.current == ids[0] and views.nav_step(s, nav, -1).current == ids[0]
    for cid in ids[5:12]:
        s.add_label(cid, "N", "ann")
    nav = views.nav_open(s, views.QueueFilter(human="any"), 4)
    nxt, found = views.nav_next_unlabelled(s, nav)
    assert found and nxt.current == ids[12]
    # past the last unlabelled one it wraps to the top unlabelled candidate
    for cid in ids[12:]:
        s.add_label(cid, "N", "ann")
    nxt, found = views.nav_next_unlabelled(s, views.nav_at(s, nav, ids[29]))
    assert found and nxt.current == ids[0]


def test_mask_save_and_restore_recompute_the_label(sample):
    s, ids = sample
    cid = ids[7]
    v = views.candidate_view(s, cid)
    target = v.mask
    layer = np.asarray(Image.open(v.editor["layers"][0])).copy()
    # keep only the bottom half, where the generations differ from the training image
    layer[:, :, 3] = 0
    layer[16 * target.scale:, :, 3] = imaging.MASK_ALPHA        # the editor shows the image x16
    saved = mask_views.save_mask(s, cid, target, layer, "ann")
    m = s.current_mask(target.train_image_id)
    assert (m.id, m.version, m.source, m.author) == (saved.mask_id, 2, "edited", "ann")
    assert s.load_mask(m.image_sha)[16:].all() and not s.load_mask(m.image_sha)[:16].any()
    assert saved.kept == pytest.approx(0.5)
    assert saved.relabel.label == "N" and saved.relabel.distances["tv"] > 0.12
    assert "masked RMSE (TV)" in mask_views.relabel_html(saved)
    first = views.candidate_view(s, cid).mask.versions[0][1]
    back = mask_views.restore_mask(s, cid, views.candidate_view(s, cid).mask, first, "bob")
    m3 = s.current_mask(target.train_image_id)
    assert (m3.version, m3.source, m3.author, m3.parent_id) == (3, "edited", "bob", first)
    assert m3.image_sha == s.get_mask(first).image_sha
    assert back.relabel.label == "TV" and back.relabel.distances["tv"] <= 0.12
    with pytest.raises(MaskShapeError, match="expected 512x512"):
        mask_views.save_mask(s, cid, target, np.zeros((16, 16, 4), np.uint8), "ann")
    assert s.current_mask(target.train_image_id).version == 3


def test_a_save_from_an_editor_showing_another_image_or_an_unchanged_mask_writes_nothing(sample):
    s, ids = sample
    v = views.candidate_view(s, ids[7])
    target, tid = v.mask, v.mask.train_image_id
    k = target.scale
    own = imaging.enlarge(np.asarray(s.load_image(s.get_training_image(tid).sha256).convert("RGBA")), k)
    other_tid = views.candidate_view(s, ids[14]).mask.train_image_id
    other = imaging.enlarge(np.asarray(s.load_image(s.get_training_image(other_tid).sha256).convert("RGBA")), k)
    layer = np.asarray(Image.open(v.editor["layers"][0])).copy()
    before = s.mask_versions(tid)
    with pytest.raises(views.ViewError, match=f"expected the editor to show training image {tid}, got another"):
        mask_views.save_mask(s, ids[7], target, layer, "ann", background=other)
    with pytest.raises(views.ViewError, match="expected a change, got the same mask as v1"):
        mask_views.save_mask(s, ids[7], target, layer, "ann", background=own)
    assert s.mask_versions(tid) == before
    layer[:4 * k, :, 3] = 0
    saved = mask_views.save_mask(s, ids[7], target, layer, "ann", background=own)
    assert saved.version == 2 and not s.load_mask(s.current_mask(tid).image_sha)[:4].any()


def test_shows_image_tolerates_canvas_rounding_not_another_picture():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    rgba = np.dstack([img, np.full((32, 32), 255, np.uint8)])
    assert imaging.shows_image(rgba, img) and imaging.shows_image(img, img)
    rounded = np.clip(img.astype(int) + rng.integers(-2, 3, img.shape), 0, 255).astype(np.uint8)
    assert imaging.shows_image(rounded, img)
    sibling = img.copy()
    sibling[20:28, 4:12] = (img[20:28, 4:12].astype(int) + 128) % 256    # one region varies: 6% of pixels
    assert not imaging.shows_image(sibling, img)
    assert not imaging.shows_image(None, img) and not imaging.shows_image(img[:16], img)


def test_stats_from_human_labels(sample):
    s, ids = sample
    for i, cid in enumerate(ids[:10]):
        s.add_label(cid, "MV" if i % 2 == 0 else "FP:texture", "ann" if i < 6 else "bob")
    s.add_label(ids[10], "skip", "bob")
    curves = queries.precision_curves(s, ["dcs"])
    assert [c["found"] for c in curves] == [1, 2, 3, 4, 5]
    assert curves[0]["precision"] == 1.0 and curves[-1]["precision"] == pytest.approx(5 / 9)
    headers, rows = queries.counts_by_run(s)
    row = dict(zip(headers, rows[0]))
    assert row["candidates"] == 30 and row["MV"] == 5 and row["verbatims"] == 5 and row["unlabelled"] == 19
    hist = queries.dup_histogram(s)
    assert sum(h["candidates"] for h in hist) == 30 and {h["group"] for h in hist} <= {"verbatim", "not verbatim", "unlabelled"}
    headers, rows = queries.reviewer_progress(s)
    assert {r[0]: r[1] for r in rows} == {"ann": 6, "bob": 5}
    assert queries.label_totals(s)["unlabelled"] == 19


def test_export_for_the_queue_filter(sample):
    s, ids = sample
    s.add_label(ids[0], "MV", "ann")
    s.add_label(ids[5], "MV", "ann")
    path, msg = run_export(s, "csv", ["MV"], views.QueueFilter(human="any", search="sofa"))
    text = path.read_text()
    assert path.parent == s.path / "exports" and "**1** rows" in msg
    assert "red sofa" in text and "sample caption 5" not in text
    path, _ = run_export(s, "jsonl", ["MV"], None)
    assert len(path.read_text().splitlines()) == 2
    with pytest.raises(views.ViewError, match="export format"):
        run_export(s, "xlsx", ["MV"], None)


def test_imaging_helpers():
    a = np.zeros((4, 4, 3), np.float32)
    b = np.ones((4, 4, 3), np.float32)
    assert imaging.rmse(a, b) == 1.0 and imaging.rmse(a, a) == 0.0
    mask = np.zeros((4, 4), bool)
    assert imaging.rmse(a, b, mask) is None
    assert (imaging.abs_diff_heatmap(a, a) == 0).all() and (imaging.abs_diff_heatmap(a, b) == 255).all()
    layer = imaging.mask_layer(np.eye(4, dtype=bool))
    assert (imaging.mask_from_layer(layer, (4, 4)) == np.eye(4, dtype=bool)).all()
    with pytest.raises(MaskShapeError):
        imaging.mask_from_layer(layer[:, :, :3], (4, 4))


def test_any_shown_training_image_can_be_masked(sample):
    s, ids = sample
    v = views.candidate_view(s, ids[1])          # not a template: no mask anywhere yet
    tids = [tid for _, tid in v.mask_choices]
    own = s.training_images_for(ids[1])[0].id
    assert tids[0] == own and len(tids) == 3 and "(own, the match)" in v.mask_choices[0][0]
    other = tids[1]
    target, value = mask_views.mask_editor(s, other)
    assert target.train_image_id == other and target.versions == () and target.current_id is None
    layer = np.asarray(Image.open(value["layers"][0])).copy()
    assert (layer[:, :, 3] >= imaging.KEEP_ALPHA).all()       # starts from keep-everything
    layer[:10 * target.scale, :, 3] = 0
    saved = mask_views.save_mask(s, ids[1], target, layer, "ann")
    assert saved.version == 1 and s.current_mask(other).source == "edited"
    target, value = mask_views.mask_editor(s, other)
    assert target.current_id == saved.mask_id and len(target.versions) == 1
    assert not (np.asarray(Image.open(value["layers"][0]))[:10 * target.scale, :, 3]).any()


def test_relabelling_a_labelled_queue_moves_to_its_next_candidate(sample):
    s, ids = sample
    for cid in ids[:3]:
        s.add_label(cid, "MV", "ann")
    nav = views.nav_open(s, views.QueueFilter(human="MV"), 0)
    assert nav.ids == tuple(ids[:3])
    _, nav, moved = views.label_and_advance(s, nav, "N", "bob")
    assert moved and nav.current == ids[1] and s.current_label(ids[0]) == "N"


def test_precision_table_lists_scores_whose_lines_coincide():
    import pandas as pd

    from review.tab_stats import precision_table

    rows = [(k, i + 1, f, p) for k in ("dcs", "wen") for i, (f, p) in enumerate([(1, 1.0), (1, 0.5), (2, 0.67)])]
    t = precision_table(pd.DataFrame(rows, columns=["score", "labelled", "found", "precision"]))
    assert list(t["score"]) == ["dcs", "wen"] and list(t["verbatims found"]) == [2, 2]
    assert t["precision at 5"].isna().all()
    rows += [("ecs", i + 1, i + 1, 1.0) for i in range(10)]
    t = precision_table(pd.DataFrame(rows, columns=["score", "labelled", "found", "precision"]))
    assert t.set_index("score").loc["ecs", "precision at 10"] == 1.0
