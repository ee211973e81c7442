"""The thin app entry point and the review app skeleton, launched for real on loopback."""
from __future__ import annotations

import subprocess
import sys

import pytest
from gradio_client import Client

import app
from review import grid, views
from review.app import build_app
from store import CaptionRow, Store

from .conftest import free_port


def test_non_loopback_bind_without_auth_refuses_to_start():
    r = subprocess.run([sys.executable, "app.py", "--host", "0.0.0.0", "--store", "nowhere"],
                       capture_output=True, text=True, timeout=60, cwd=app.DEMO_STORE.parents[1])
    assert r.returncode == 2
    assert "expected a loopback address" in r.stderr and "--auth" in r.stderr


@pytest.mark.parametrize("host,ok", [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                     ("0.0.0.0", False), ("192.168.1.4", False), ("example.org", False)])
def test_loopback_detection(host, ok):
    assert app.is_loopback(host) is ok


def test_malformed_auth_is_refused():
    with pytest.raises(SystemExit) as e:
        app.parse_args(["--auth", "justauser"])
    assert e.value.code == 2


def test_reviews_per_candidate_is_checked_and_kept_in_the_store(tmp_path):
    with pytest.raises(SystemExit) as e:
        app.parse_args(["--reviews-per-candidate", "0"])
    assert e.value.code == 2
    assert app.parse_args(["--reviews-per-candidate", "2"]).reviews_per_candidate == 2
    with Store.open(tmp_path / "s") as s:
        cid = s.add_captions([CaptionRow("a caption")])[0]
        s.add_label(cid, "MV", "ann")
        assert app.set_reviews_per_candidate(s, None) == "" and s.reviews_per_candidate() == 1
        assert "needs 2 review(s) per candidate (1 labelled captions" in app.set_reviews_per_candidate(s, 2)
        assert s.current_label(cid) is None          # one review of two: not decided yet
        assert app.set_reviews_per_candidate(s, 2) == ""
    with Store.open(tmp_path / "s", create=False) as s:
        assert s.reviews_per_candidate() == 2


def test_missing_store_folder_is_an_error_not_a_new_store(tmp_path, capsys):
    assert app.main(["--store", str(tmp_path / "absent")]) == 2
    assert "expected a store folder" in capsys.readouterr().err
    assert not (tmp_path / "absent").exists()


def test_caption_search_view_keeps_untrusted_text_as_plain_text(tmp_path):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow("<script>alert(1)</script> red carpet"), CaptionRow("blue sofa")])
        rows = views.caption_rows(s, "carpet")
        assert [r[1] for r in rows] == ["<script>alert(1)</script> red carpet"]
        assert views.caption_rows(s, "   ") == []
        demo = build_app(s)
        tables = [b for b in demo.blocks.values() if type(b).__name__ == "Dataframe"]
        # text columns only: a caption is never rendered as markdown or HTML; the one HTML column
        # is the queue's thumbnails, our own markup (two data-URI images, no text from the store)
        for t in tables:
            for header, kind in zip(t.headers, t.datatype):
                assert kind in ("str", "number") or (header, kind) == ("generation | match", "html"), header
        queue = [t for t in tables if "generation | match" in t.headers]
        assert len(queue) == 1
        html_cells = grid.queue_thumbnails(s, [c.caption_id for c in s.search("carpet", 5)])
        assert all("<script" not in c and "carpet" not in c for c in html_cells)


def test_launched_app_answers_a_search_through_gradio_client(tmp_path):
    with Store.open(tmp_path / "s") as s:
        s.add_captions([CaptionRow("Shaw Floors carpet in Ocean Blue"), CaptionRow("white background")])
        demo = build_app(s)
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        try:
            client = Client(f"http://127.0.0.1:{port}/", verbose=False)
            out = client.predict("carpet", api_name="/search")
            data = out["data"] if isinstance(out, dict) else out
            assert [row[1] for row in data] == ["Shaw Floors carpet in Ocean Blue"]
        finally:
            demo.close()


def test_open_demo_store_builds_it_once_through_attack_with_progress(tmp_path, monkeypatch, capsys):
    import attack.demo.build as demo_build
    from review.sample import build_sample_store

    calls = []

    def fake_build(path, *, progress=None, captions=None):
        calls.append(path)
        progress("dcs", 1, 2)
        progress("dcs", 2, 2)
        with Store.open(path) as s:
            build_sample_store(s, n=3)
        return {"seconds": 0.1}

    monkeypatch.setattr(demo_build, "build_demo_store", fake_build)
    with app.open_demo_store(tmp_path / "demo") as s:
        assert s.info()["candidates"] == 3
    err = capsys.readouterr().err
    assert "building the demo store" in err and "dcs: 2/2" in err
    with app.open_demo_store(tmp_path / "demo") as s:   # built: opened as it is
        assert s.info()["candidates"] == 3
    assert calls == [tmp_path / "demo"]


def test_build_progress_lists_each_stage_with_its_counts_in_words():
    from review.building import BuildProgress

    now = [100.0]
    progress = BuildProgress(stages=(("dcs", 20), ("generate", 100), ("label", 10)), clock=lambda: now[0])
    assert progress.markdown() == "starting…" and progress.remaining_s() is None
    progress("dcs", 0, 710)
    now[0] += 40                                  # twice the planned pace: dcs done in 40 s
    progress("dcs", 710, 710)
    progress("generate", 56, 224)                 # a quarter of generate (25 planned s) ...
    now[0] += 50                                  # ... in 50 s: the machine runs at half speed
    lines = progress.markdown().splitlines()
    assert lines[:3] == ["- **dcs**: 710 / 710 (done)", "- **generate**: 56 / 224 (running)", "- label: to do"]
    # left: 75 s of generate and 10 s of label as planned, at (40 + 50) / (20 + 25) = 2x
    assert progress.remaining_s() == pytest.approx(85 * 2)
    assert lines[-1] == "About 3 min left (estimated from this machine's pace so far)."
