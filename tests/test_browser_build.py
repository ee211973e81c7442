"""`python app.py` with no demo store: while it builds, the port serves a progress page that
turns into the review app by itself (a fake, quick build stands in for the real one)."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import REPO, free_port, launch_chromium, subprocess_env

pytestmark = pytest.mark.slow

FAKE = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import app
    import attack.demo.build as build
    from review.sample import build_sample_store
    from store import Store

    def fake_build(path, *, progress=None, captions=None):
        for i in range(4):
            progress("generate", i, 3)
            time.sleep(1.5)
        with Store.open(path) as s:
            build_sample_store(s, n=5)
        return {"seconds": 6}

    build.build_demo_store = fake_build
    app.DEMO_STORE = Path(sys.argv[1])
    raise SystemExit(app.main(["--port", sys.argv[2]]))
""")


def test_progress_page_then_review_app(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", FAKE, str(tmp_path / "demo"), str(port)], cwd=REPO,
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            for _ in range(100):          # the progress page comes up within seconds
                try:
                    page.goto(f"http://127.0.0.1:{port}/")
                    break
                except Exception:
                    page.wait_for_timeout(200)
            expect(page.get_by_text("Building the demo store")).to_be_visible(timeout=20_000)
            expect(page.get_by_text("generate")).to_be_visible(timeout=20_000)
            # no reload by hand: the page finds the review app on the port and opens it
            page.wait_for_selector("#vb-queue", timeout=40_000)
            expect(page.locator("#vb-queue")).to_contain_text("sample caption", timeout=20_000)
            browser.close()
        assert (tmp_path / "demo" / "store.db").exists()
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=30)
    assert "building the demo store" in err and "generate: 3/3" in err
