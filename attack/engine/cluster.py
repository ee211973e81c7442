"""The local Ray cluster a command starts: its processes recorded in the store folder so the next
start reaps what a killed driver left behind, and Ray's own output kept in a log file there.

Ray ties the head node's services to the driver that started them, but two agents (the runtime
env and dashboard agents) outlive a driver killed with SIGKILL, as orphans. Every local start
writes `STORE/logs/cluster.json`: the driver's pid and start time and every Ray process below it;
the next start (of any command on that store) kills the recorded processes whose driver is gone,
checking each one's start time so a reused pid is never hit. Linux only (/proc); elsewhere the
record is skipped. While Ray runs, file descriptors 1 and 2 point at `STORE/logs/ray.log`, so the
command prints only its own lines (Ray's C++ core worker writes to them directly)."""
from __future__ import annotations

import atexit
import json
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

RECORD = "cluster.json"
LOG = "ray.log"


def start_time(pid: int) -> Optional[int]:
    """A process's start time (clock ticks since boot, /proc/PID/stat field 22); None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry.name))
    return kids


def descendants(pid: int) -> list[int]:
    kids, out, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def record(folder: Path) -> None:
    """Write the driver and every process below it (the cluster it started) to folder/cluster.json."""
    if not Path("/proc/self/stat").exists():
        return
    me = os.getpid()
    procs = {str(p): t for p in descendants(me) if (t := start_time(p)) is not None}
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{RECORD}.{me}"
    tmp.write_text(json.dumps({"driver": me, "driver_start": start_time(me), "processes": procs}))
    os.replace(tmp, folder / RECORD)


def reap(folder: Path) -> list[int]:
    """Kill the processes a recorded driver left behind, if that driver is gone; returns their pids."""
    path = folder / RECORD
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    if start_time(rec["driver"]) == rec.get("driver_start") and rec["driver"] != os.getpid():
        return []                                   # its driver still runs: its cluster is in use
    killed = []
    for pid, started in rec.get("processes", {}).items():
        pid = int(pid)
        if start_time(pid) == started:              # the same process, not a reused pid
            try:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            except OSError:
                pass
    path.unlink(missing_ok=True)
    return killed


class _Redirect:
    """fds 1 and 2 into a log file, restorable; nested uses share one redirection."""

    def __init__(self) -> None:
        self.depth = 0
        self.saved: tuple[int, int] | None = None

    def enter(self, log: Path) -> None:
        if self.depth == 0:
            sys.stdout.flush()
            sys.stderr.flush()
            log.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            self.saved = (os.dup(1), os.dup(2))
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
        self.depth += 1

    def leave(self) -> None:
        self.depth -= 1
        if self.depth == 0 and self.saved is not None:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(self.saved[0], 1)
            os.dup2(self.saved[1], 2)
            os.close(self.saved[0])
            os.close(self.saved[1])
            self.saved = None


_REDIRECT = _Redirect()


@contextmanager
def ray_output_to(folder: Path) -> Iterator[None]:
    """Ray's prints (Python and C++) go to folder/ray.log while the block runs."""
    _REDIRECT.enter(folder / LOG)
    try:
        yield
    finally:
        _REDIRECT.leave()


def quiet_shutdown(folder: Path) -> None:
    """Ray shuts its cluster down at exit and prints while doing so: register (after ray.init,
    so it runs before Ray's own exit hook) a hook that points fds 1 and 2 at the log first."""
    def hook() -> None:
        import ray

        if ray.is_initialized():            # shut down already (tests, a second stage): nothing to hide
            try:
                _REDIRECT.enter(folder / LOG)
            except OSError:
                pass
    atexit.register(hook)
