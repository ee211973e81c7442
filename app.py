"""Verbatim review app: `python app.py [--store DIR] [--host H] [--port P] [--auth USER:PASS]`.

Thin: parses arguments, opens the store (building the demo store when none is given and
data/demo is absent), and launches the UI built in review/.
"""
from __future__ import annotations

import argparse
import ipaddress
import sys
from pathlib import Path

DEMO_STORE = Path(__file__).resolve().parent / "data" / "demo"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python app.py", description="Verbatim review app")
    ap.add_argument("--store", type=Path, default=None, help=f"store folder (default: {DEMO_STORE}, built if absent)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs --auth)")
    ap.add_argument("--port", type=int, default=7860)
    ap.add_argument("--auth", default=None, metavar="USER:PASS", help="require this login")
    ap.add_argument("--reviews-per-candidate", type=int, default=None, metavar="K",
                    help="blind reviews each candidate needs (1: the newest label counts; 2: blind double review "
                         "with agreement and adjudication of conflicts); kept in the store (default: as the store has)")
    ap.add_argument("--gold-rate", type=float, default=0.0, metavar="R",
                    help="mix gold candidates (known labels: python -m store gold) blind into each reviewer's "
                         "queue, this share of the candidates shown (e.g. 0.05; default 0: none); their answers "
                         "measure each reviewer's accuracy (Stats) and are never labels of the audit")
    a = ap.parse_args(argv)
    if not 0 <= a.gold_rate <= 0.5:
        ap.error(f"--gold-rate: expected a number from 0 to 0.5, got {a.gold_rate}")
    if a.reviews_per_candidate is not None and not 1 <= a.reviews_per_candidate <= 5:
        ap.error(f"--reviews-per-candidate: expected an integer from 1 to 5, got {a.reviews_per_candidate}")
    if a.auth is not None and (":" not in a.auth or not a.auth.split(":", 1)[0] or not a.auth.split(":", 1)[1]):
        ap.error(f"--auth: expected USER:PASS, got {a.auth!r}")
    if not is_loopback(a.host) and a.auth is None:
        ap.error(f"--host {a.host}: expected a loopback address (127.0.0.1, ::1, localhost) or --auth USER:PASS; "
                 "refusing to serve the store to the network without a login")
    return a


def print_progress(stage: str, done: int, total: int) -> None:
    """Console progress for the demo build: one line per stage, updated in place."""
    end = "\n" if total and done >= total else ""
    print(f"\r  {stage}: {done}/{total}", end=end, file=sys.stderr, flush=True)


def demo_store_ready(path: Path | None = None) -> bool:
    """True when the demo store exists and its build finished: it has candidates and every one
    has an automatic label (the last stage). An interrupted build is resumed by the next build."""
    from store import Store, StoreError

    path = path or DEMO_STORE
    if not (path / "store.db").exists():
        return False
    try:
        with Store.open(path, create=False) as store:
            info = store.info()
    except StoreError:
        return False
    return info["candidates"] > 0 and sum(info["auto_labels"].values()) >= info["candidates"]


def open_demo_store(path: Path | None = None, progress=print_progress):
    """The demo store, built first when absent (the full pipeline: scores, generations,
    neighbours, masks, automatic labels) through attack.demo.build when that exists; otherwise
    only the demo world's captions and training images are ingested."""
    from store import Store

    path = path or DEMO_STORE
    if demo_store_ready(path):
        return Store.open(path, create=False)
    try:
        from attack.demo.build import build_demo_store
    except ImportError:
        build_demo_store = None
    if build_demo_store is not None:
        print(f"building the demo store at {path} (once; a few minutes on a CPU)...", file=sys.stderr, flush=True)
        summary = build_demo_store(path, progress=progress)  # resumes a build that was interrupted
        print(f"demo store built in {summary.get('seconds', '?')} s", file=sys.stderr, flush=True)
        return Store.open(path, create=False)
    from attack.demo.ingest import ingest_world
    store = Store.open(path)
    result = ingest_world(store)
    if not result.already_present:
        print(f"demo store: {result.captions} captions, {result.training_images} training images "
              "(no candidates: run `python -m attack demo` for scores and generations)", file=sys.stderr, flush=True)
    return store


def set_reviews_per_candidate(store, k: int | None) -> str:
    """--reviews-per-candidate: kept in the store (every server on it agrees); None keeps the store's."""
    if k is None or k == store.reviews_per_candidate():
        return ""
    n = store.set_reviews_per_candidate(k)
    return f"the store now needs {k} review(s) per candidate ({n} labelled captions re-decided)"


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from attack.errors import AttackError
    from store import StoreError  # after argument checks: a bad flag answers at once
    from store.command import run_command

    return run_command(lambda: serve(a), bad_input=(StoreError, AttackError),
                       interrupted="stopped; every label given is saved")


def serve(a: argparse.Namespace) -> int:
    from review.folders import private_gradio_folders
    from store import Store

    private_gradio_folders()          # before gradio is imported: it reads its folders' names then

    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    page = None
    try:
        if a.store is not None:
            store = Store.open(a.store, create=False)
        elif demo_store_ready():
            store = open_demo_store()
        else:
            # the build takes minutes: meanwhile the port serves a page with its progress
            from review.building import RELOAD_JS, BuildProgress, build_page
            progress = BuildProgress(echo=print_progress)
            page = build_page(progress)
            page.launch(server_name=a.host, server_port=a.port, auth=auth, prevent_thread_lock=True, quiet=True,
                        js=RELOAD_JS)
            print(f"building the demo store; progress on http://{a.host}:{a.port}/", file=sys.stderr, flush=True)
            store = open_demo_store(progress=progress)
    finally:
        if page is not None:
            page.close()
    from review.app import build_app, launch_options

    note = set_reviews_per_candidate(store, a.reviews_per_candidate)
    if note:
        print(note, file=sys.stderr, flush=True)
    if a.gold_rate > 0:
        n = len(store.gold_ids())
        print(f"gold: {n} gold candidate(s), mixed in at a rate of {a.gold_rate:g}" if n else
              "gold: --gold-rate is set but the store holds no gold candidates (add them with python -m store "
              "gold --store DIR --from-labels, --from FILE or --from-reference)", file=sys.stderr, flush=True)
    print(f"serving {store.path} on http://{a.host}:{a.port}/ (press ? in the page for keys)", flush=True)
    build_app(store, auth=auth is not None, gold_rate=a.gold_rate).launch(
        server_name=a.host, server_port=a.port, auth=auth, **launch_options(store))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
