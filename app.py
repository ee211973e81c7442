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
    a = ap.parse_args(argv)
    if a.auth is not None and (":" not in a.auth or not a.auth.split(":", 1)[0] or not a.auth.split(":", 1)[1]):
        ap.error(f"--auth: expected USER:PASS, got {a.auth!r}")
    if not is_loopback(a.host) and a.auth is None:
        ap.error(f"--host {a.host}: expected a loopback address (127.0.0.1, ::1, localhost) or --auth USER:PASS; "
                 "refusing to serve the store to the network without a login")
    return a


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    from store import Store, StoreError  # after argument checks: a bad flag answers at once

    try:
        if a.store is None:
            from attack.demo.ingest import ingest_world
            print(f"opening the demo store at {DEMO_STORE} (building it if absent)...", flush=True)
            store = Store.open(DEMO_STORE)
            result = ingest_world(store)
            if not result.already_present:
                print(f"demo store: {result.captions} captions, {result.training_images} training images", flush=True)
        else:
            store = Store.open(a.store, create=False)
    except StoreError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from review.app import build_app

    auth = tuple(a.auth.split(":", 1)) if a.auth else None
    build_app(store).launch(server_name=a.host, server_port=a.port, auth=auth,
                            allowed_paths=[str(store.path / "images")])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
