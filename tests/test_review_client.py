"""The review app launched on loopback and driven through gradio_client: label, undo, next,
mask save, export; the file route serves the store's images and nothing else; --auth names
the reviewer."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from review import imaging, queries, views
from review.app import build_app, launch_options
from review.sample import build_sample_store
from store import Store

from .conftest import free_port, http_status, served_sample_app

pytestmark = pytest.mark.slow


def _caption_id(html: str) -> int:
    return int(html.split('data-caption-id="', 1)[1].split('"', 1)[0])


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    with served_sample_app(tmp_path_factory.mktemp("client") / "store") as out:
        yield out


def test_label_undo_next_through_the_api(served):
    s, ids, url, _ = served
    c = Client(url, verbose=False)
    head, html = c.predict(ids[3], api_name="/open")[:2]
    assert _caption_id(head) == _caption_id(html) == ids[3]
    out = c.predict("carol", "same photo", api_name="/label_MV")
    assert s.current_label(ids[3]) == "MV"
    entry = s.label_history(ids[3])[-1]
    assert (entry.reviewer, entry.note) == ("carol", "same photo")
    after = _caption_id(out[0])
    assert after != ids[3] and s.current_label(after) is None       # advanced to an unlabelled one
    assert out[-1] == ""                                             # the note field is cleared
    c.predict(ids[3], api_name="/open")
    out = c.predict("carol", api_name="/undo")
    assert s.current_label(ids[3]) is None and len(s.label_history(ids[3])) == 2
    assert "Undone" in out[-1]
    nxt = _caption_id(c.predict(api_name="/next")[0])
    assert nxt == ids[4]
    assert _caption_id(c.predict(api_name="/previous")[0]) == ids[3]
    # a reload shows the write: a fresh session opening the caption sees its history
    fresh = Client(url, verbose=False).predict(ids[3], api_name="/open")[1]
    assert "carol" in fresh and "undo" in fresh


def test_mask_save_through_the_api(served, tmp_path):
    s, ids, url, _ = served
    cid = ids[7]                                    # a template: auto mask keeps the top half
    c = Client(url, verbose=False)
    out = c.predict(cid, api_name="/open")
    target = views.candidate_view(s, cid).mask
    tid, k = target.train_image_id, target.scale           # the editor shows the image x k
    c.predict(tid, None, api_name="/mask_image")           # the editor on that image
    before = s.current_mask(tid).version
    bg = tmp_path / "bg.png"
    Image.fromarray(imaging.enlarge(np.asarray(s.load_image(s.get_training_image(tid).sha256)), k)).save(bg)
    keep = np.zeros((32, 32), bool)
    keep[:, :8] = True
    layer = tmp_path / "layer.png"
    Image.fromarray(imaging.mask_layer(imaging.enlarge(keep, k)), "RGBA").save(layer)
    # an editor still showing another training image: refused, nothing written
    other = tmp_path / "other.png"
    Image.fromarray(np.full((32 * k, 32 * k, 3), 7, np.uint8)).save(other)
    stale = {"background": handle_file(str(other)), "layers": [handle_file(str(layer))], "composite": None, "id": None}
    with pytest.raises(Exception, match="expected the editor to show training image"):
        c.predict(stale, "dora", api_name="/save_mask")
    assert s.current_mask(tid).version == before
    value = {"background": handle_file(str(bg)), "layers": [handle_file(str(layer))], "composite": None, "id": None}
    out = c.predict(value, "dora", api_name="/save_mask")
    m = s.current_mask(tid)
    assert (m.version, m.source, m.author) == (before + 1, "edited", "dora")
    assert (s.load_mask(m.image_sha) == keep).all()
    assert "Saved mask v" in out[-2] and "Automatic label now" in out[-2]
    # restore the first version: a new version with the old pixels
    first = s.mask_versions(tid)[0]
    c.predict(first.id, "dora", api_name="/restore_mask")
    m = s.current_mask(tid)
    assert m.version == before + 2 and m.image_sha == first.image_sha and m.parent_id == first.id


def test_export_through_the_api(served):
    s, ids, url, _ = served
    s.add_label(ids[10], "TV", "erin")
    c = Client(url, verbose=False)
    c.predict("dcs", True, "any", [], [], "", "", "", "", api_name="/queue")   # the queue filter: all
    path, msg = c.predict("csv", ["TV"], True, api_name="/export")
    text = Path(path).read_text()
    assert "**1** rows" in msg and f",{ids[10]}," in text
    assert any(p.suffix == ".csv" for p in (s.path / "exports").iterdir())


def test_file_route_serves_store_images_only(served):
    s, ids, url, _ = served
    sha = s.generations(ids[0])[0].image_sha
    assert http_status(url + "gradio_api/file=" + str(s.image_path(sha).resolve())) == 200
    for path in ("/etc/passwd", str(s.path / "store.db"), str(Path(__file__).resolve()),
                 str(s.images.root) + "/../store.db"):
        assert http_status(url + "gradio_api/file=" + path) in (403, 404), path


def test_auth_user_is_the_reviewer(tmp_path):
    with Store.open(tmp_path / "s") as s:
        ids = build_sample_store(s, n=6)
        demo = build_app(s, auth=True)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                    auth=("frank", "secret"), **launch_options(s))
        try:
            assert http_status(f"http://127.0.0.1:{port}/gradio_api/file=" + str(s.image_path(
                s.generations(ids[0])[0].image_sha).resolve())) in (401, 403)
            c = Client(f"http://127.0.0.1:{port}/", auth=("frank", "secret"), verbose=False)
            c.predict(ids[0], api_name="/open")
            c.predict("someone else", "", api_name="/label_N")   # the typed name is ignored behind a login
            assert s.label_history(ids[0])[-1].reviewer == "frank"
        finally:
            demo.close()


def test_stats_through_the_api(served):
    s, ids, url, _ = served
    for cid, label in ((ids[20], "MV"), (ids[21], "N"), (ids[22], "RV")):
        s.add_label(cid, label, "gina")
    for cid, label in ((ids[20], "MV"), (ids[21], "RV"), (ids[22], "RV")):    # hank disagrees once
        s.add_label(cid, label, "hank")
    s.add_gold([(ids[23], "TV"), (ids[24], "N")], "test")
    for cid, label in ((ids[23], "TV"), (ids[24], "N")):
        s.add_gold_answer(cid, "gina", label)
    for cid in (ids[23], ids[24]):                  # hank answers both gold candidates wrongly
        s.add_gold_answer(cid, "hank", "MV")
    precision, at, table1, dups, reviewers, totals, pairs, confusion, gold = \
        Client(url, verbose=False).predict(api_name="/stats")
    # accuracy on gold, from gold answers only: hank 0 of 2, gina 2 of 2; gold answers are no labels
    assert '<tr data-reviewer="gina" data-flagged="0"><td>gina</td><td>2</td><td>2</td><td>100.0%</td>' in gold
    assert '<tr data-reviewer="hank" data-flagged=' in gold and "<td>hank</td><td>2</td><td>0</td><td>0.0%</td>" in gold
    assert 'data-gold-reviewer="hank"' in gold and s.current_label(ids[23]) is None
    # agreement: p_o = 2/3, p_e = (1*1 + 1*2) / 9 = 1/3, kappa = (2/3 - 1/3) / (1 - 1/3) = 0.5
    assert ["gina", "hank", 3, 0.6667, 0.5] in pairs["data"]
    assert 'data-pair="gina|hank"' in confusion and "kappa 0.5000" in confusion
    assert "labelled" in totals
    # every score's precision is listed, whether or not its line is hidden under another in the plot
    found = {r[0]: r[1] for r in at["data"]}
    assert set(found) == set(queries.score_kinds(s))
    assert found["dcs"] >= 2 and found["wen"] >= 2 and found["carlini"] == 0
    run_rows = table1["data"]
    assert run_rows and run_rows[0][1] == "sample" and run_rows[0][2] == 30
    assert any(r[0] == "gina" and r[1] == 3 for r in reviewers["data"])
    assert any(r[0] == "hank" and r[1] == 3 for r in reviewers["data"])
    points = precision["value"]["data"] if isinstance(precision, dict) and "value" in precision else precision["data"]
    assert points, precision
    assert dups is not None
