"""The README's evidence picture: a copy of the demo store (the SQLite backup and its images; the
original is never written), one automatic TV candidate reviewed blind by two reviewers who
disagree and adjudicated by a third, exported with `review.evidence`, its page opened from the
zip in Debian's chromium. `python scripts/evidence_screenshot.py [--store data/demo] [--out docs]`."""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from review.evidence import export_evidence  # noqa: E402
from store import PageQuery, Store  # noqa: E402
from store.store import copy_store  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=Path("data/demo"))
    ap.add_argument("--out", type=Path, default=Path("docs"))
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        copy = copy_store(a.store, Path(tmp) / "store")     # the original is never written
        with Store.open(copy, create=False) as s:
            s.set_reviews_per_candidate(2)
            cid = s.page(PageQuery(auto_label="TV", limit=1)).rows[0].caption_id
            s.add_label(cid, "TV", "ann", note="same frame, text block differs")
            s.add_label(cid, "MV", "bob")
            s.add_label(cid, "TV", "cat", note="the mask keeps the frame only: template")
            export_evidence(s, Path(tmp) / "evidence.zip")
        with zipfile.ZipFile(Path(tmp) / "evidence.zip") as z:
            z.extractall(Path(tmp) / "evidence")
        page = next(p for p in (Path(tmp) / "evidence").glob(f"{cid:04d}-*.html"))
        with sync_playwright() as p:
            b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
            pg = b.new_page(viewport={"width": 1280, "height": 1500})
            pg.goto(page.as_uri())
            pg.wait_for_load_state("load")
            a.out.mkdir(parents=True, exist_ok=True)
            pg.screenshot(path=str(a.out / "evidence.png"))
            b.close()
    print(a.out / "evidence.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
