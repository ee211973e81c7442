"""How every command line of the project ends: one line on stderr and an exit status, never a
traceback, whatever the input or signal.

- bad input (the libraries' named errors): ``error: ...``, exit 2;
- Ctrl-C: exit 130, SIGTERM: exit 143 (SIGHUP 129), with one line saying what state the store
  is in (the command's own ``interrupted`` note: unchanged, or resumable);
- anything else: ``error: unexpected ...``, exit 1 (VERBATIM_DEBUG=1 shows the traceback).
Everything printed goes through terminal_safe.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from typing import Callable, Iterator

from .errors import Interrupted, StoreError
from .terminal import echo

EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 1
_SIGNALS = tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None)) if s is not None)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise Interrupted(signum, signal.Signals(signum).name)


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """SIGTERM / SIGHUP raise Interrupted in the main thread, so transactions roll back and
    runs are marked 'interrupted' on the way out, as for Ctrl-C."""
    previous = {}
    try:
        for s in _SIGNALS:
            previous[s] = signal.signal(s, _raise_interrupted)
    except ValueError:  # not the main thread: leave signals alone
        pass
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run_command(body: Callable[[], int], *, bad_input: tuple = (StoreError,),
                interrupted: str = "the store is as it was") -> int:
    """Run a command's body and turn every way it can end into an exit status and one line."""
    try:
        with signals_raise():
            return body()
    except bad_input as e:
        echo(f"error: {e}", sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        echo(f"interrupted (Ctrl-C): {interrupted}", sys.stderr)
        return 128 + signal.SIGINT
    except Interrupted as e:
        echo(f"interrupted ({e.name}): {interrupted}", sys.stderr)
        return 128 + e.signum
    except BrokenPipeError:  # the reader went away (| head): nothing left to say
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's final flush
        return EXIT_UNEXPECTED
    except RecursionError:
        echo("error: expected input nested at most a few hundred levels deep, got deeper nesting", sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        echo("error: out of memory (try a smaller batch or shard the input with --offset/--limit)", sys.stderr)
        return EXIT_UNEXPECTED
    except Exception as e:  # noqa: BLE001 - the last line of defence: one line, not a traceback
        if os.environ.get("VERBATIM_DEBUG"):
            traceback.print_exc()
        echo(f"error: unexpected {type(e).__name__}: {e} (set VERBATIM_DEBUG=1 to see where)", sys.stderr)
        return EXIT_UNEXPECTED
