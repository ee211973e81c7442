"""How every command line of the project ends: one line on stderr and an exit status, never a
traceback, whatever the input or signal.

- bad input (the libraries' named errors): ``error: ...``, exit 2;
- Ctrl-C: exit 130, SIGTERM: exit 143 (SIGHUP 129), with one line saying what state the store
  is in (the command's own ``interrupted`` note: unchanged, or resumable);
- the machine, not the input (a full disk, a path the user may not read or write, a symlink loop,
  a damaged database file): ``error: `` and what happened in plain words, which path, what to do,
  and what state the store is in (the command's ``failed`` note), exit 1;
- anything else: ``error: unexpected ...``, exit 1 (VERBATIM_DEBUG=1 shows the traceback).
Everything printed goes through terminal_safe.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sqlite3
import sys
import traceback
from pathlib import Path
from typing import Callable, Iterator, Optional

from .errors import Interrupted, StoreError
from .terminal import echo

EXIT_BAD_INPUT = 2
EXIT_UNEXPECTED = 1
EXIT_ENVIRONMENT = 1
FAILED = "every transaction that completed is kept, the one under way was rolled back"
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


def _free_space(filename: Optional[str]) -> str:
    """How much room is left on the disk holding filename (or the working folder)."""
    where = Path(filename) if filename else Path.cwd()
    while not where.exists() and where != where.parent:
        where = where.parent
    try:
        free = shutil.disk_usage(where).free
    except OSError:
        return ""
    return f" ({free / 2**20:.0f} MiB free on the disk holding {where})"


def _size(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n >= 2**20 else f"{max(1, round(n / 1024))} KiB"


def environment_problem(e: BaseException) -> Optional[str]:
    """A plain sentence for a failure of the machine rather than of the input (None: not one)."""
    name = getattr(e, "filename", None)
    at = f" at {name}" if name else ""
    code = getattr(e, "errno", None)
    text = str(e)
    if code in (errno.ENOSPC, errno.EDQUOT) or (isinstance(e, sqlite3.OperationalError) and "disk is full" in text):
        needed = getattr(e, "needed_bytes", None)        # set by a command that knows its input's size
        need = f"; it needs about {_size(needed)} (its input files' size)" if needed else ""
        return (f"the disk is full (no space left{' writing ' + str(name) if name else ''}){_free_space(name)}"
                f"{need}; free some space and run the same command again")
    if isinstance(e, PermissionError) or code in (errno.EACCES, errno.EPERM):
        return (f"permission denied{at}: the user running this may not read or write it; change its "
                f"permissions or run as its owner")
    if code == errno.EROFS:
        return f"a read-only file system{at}: the store must be on a disk this user may write"
    if code == errno.ELOOP or (isinstance(e, RuntimeError) and text.startswith("Symlink loop")):
        return f"a symlink loop{at or ' (' + text + ')'}: a link that leads back to itself; remove or fix it"
    if isinstance(e, sqlite3.DatabaseError) and ("malformed" in text or "not a database" in text):
        return (f"the store's database file is damaged ({text}); `python -m store check --store DIR` lists what "
                f"is wrong and what it can repair")
    return None


def run_command(body: Callable[[], int], *, bad_input: tuple = (StoreError,),
                interrupted: str = "the store is as it was", failed: str = FAILED) -> int:
    """Run a command's body and turn every way it can end into an exit status and one line.
    interrupted / failed: what state a signal / a failure of the machine leaves the store in."""
    try:
        with signals_raise():
            return body()
    except bad_input as e:
        echo(f"error: {e}", sys.stderr, one_line=True)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        echo(f"interrupted (Ctrl-C): {interrupted}", sys.stderr, one_line=True)
        return 128 + signal.SIGINT
    except Interrupted as e:
        echo(f"interrupted ({e.name}): {interrupted}", sys.stderr, one_line=True)
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
        problem = environment_problem(e)
        if problem is not None:
            echo(f"error: {problem}; {failed}", sys.stderr, one_line=True)
            return EXIT_ENVIRONMENT
        echo(f"error: unexpected {type(e).__name__}: {e} (set VERBATIM_DEBUG=1 to see where)", sys.stderr,
             one_line=True)
        return EXIT_UNEXPECTED
