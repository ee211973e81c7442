"""The Compare tab's picture (docs/compare.png): a copy of a store holding a comparison (e.g. the
one `python -m attack bench mitigation --dir D` keeps in D/store; the original is never written),
where "ann" labels A's side of the newest comparison's first captions with their reference label
(the demo's planted truth) so the carry-over has proposals, served by the review app and shot in
Debian's chromium at 1400x900 with the "removed" filter and a row opened.
`python scripts/compare_screenshot.py --store D/store [--out docs] [--labels 40]`."""
from __future__ import annotations

import argparse
import socket
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from attack.compare import load_compare  # noqa: E402
from review.app import build_app, launch_options  # noqa: E402
from store import Store  # noqa: E402
from store.store import copy_store  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, required=True)
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--labels", type=int, default=40, help="captions ann labels on A's side")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        copy = copy_store(a.store, Path(tmp) / "store")     # the original is never written
        with Store.open(copy, create=False) as s:
            runs = [r for r in s.runs(stage="compare") if r.status == "done"]
            if not runs:
                raise SystemExit(f"{a.store}: expected a store with a comparison, got none")
            result = load_compare(s, runs[-1].id)
            labelled = 0
            for row in result.rows:
                ref = s.get_caption(row.caption_id).reference_label
                if ref and labelled < a.labels:
                    s.add_label(row.caption_id, ref, "ann")
                    labelled += 1
            demo, port = build_app(s), _port()
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True,
                        **launch_options(s))
            try:
                with sync_playwright() as p:
                    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox", "--disable-gpu"])
                    pg = b.new_page(viewport={"width": 1400, "height": 900})
                    pg.set_default_timeout(60_000)
                    pg.goto(f"http://127.0.0.1:{port}/")
                    pg.get_by_role("tab", name="Compare").click()
                    pg.locator("#vb-cmp-rows tr.vb-cmp-row").first.wait_for()
                    pg.locator("#vb-compare-outcome").get_by_text("removed", exact=True).click()
                    pg.wait_for_timeout(1500)
                    a.out.mkdir(parents=True, exist_ok=True)
                    pg.screenshot(path=str(a.out / "compare.png"), full_page=True)
                    b.close()
            finally:
                demo.close()
    print(a.out / "compare.png")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
