"""python -m attack <command>: the argparse front end over the library (attack.pipeline and the
stages). parsers.py registers each command's arguments, commands.py holds what it runs, options.py
the shared options.

To add a command: write ``add_<name>(subparsers)`` in parsers.py that registers its arguments and
a ``func(args) -> int`` from commands.py, and list it in COMMANDS.
"""
from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

from attack.cli import parsers
from attack.cli.commands import RESUMABLE, RESUMABLE_FAILED, UNCHANGED
from attack.errors import AttackError
from attack.runtime import keep_freed_memory
from store import StoreError
from store.command import run_command

COMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    parsers.add_ingest, parsers.add_score, parsers.add_fuse, parsers.add_generate, parsers.add_carlini,
    parsers.add_retrieve, parsers.add_label, parsers.add_compare, parsers.add_run, parsers.add_demo, parsers.add_bench]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m attack", description="Verbatim extraction stages")
    sub = p.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    keep_freed_memory()    # a compute process: see attack.runtime
    # bad input (IngestError, ModelError, ScoreInputError, ...): exit 2, store untouched
    interrupted = getattr(args, "interrupted", RESUMABLE)
    return run_command(lambda: args.func(args), bad_input=(StoreError, AttackError), interrupted=interrupted,
                       failed=UNCHANGED if interrupted == UNCHANGED else RESUMABLE_FAILED)
