"""Processes that run one stage on one store at once share its run (open_run) and split its work:
each claims the units it computes in the store (store.claim_units: a caption, or a caption and
seed) before computing them, so no unit is computed twice. A process that has no unclaimed unit
left waits for the units others hold to be written, and takes over those of a process that ended
(on this host: at once; on another: when its claims expire), so every process returns with the
whole run done, as a lone process would.
"""
from __future__ import annotations

import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from store import Store, StoreError

T = TypeVar("T")
CLAIM_S = 600.0          # a claim lasts this long, renewed with every batch this process writes
POLL_S = 0.5             # how often a process with only others' units left looks again
WINDOW = 4               # units looked at per claim call, in batches


def owner_id() -> str:
    """One stage call of this process, as a claim's owner: host, pid, a token."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def owner_gone(owner: str) -> bool:
    """True when a claim's owner can no longer be computing: a process of this host that has ended,
    or an earlier stage call of this very process (one that failed before it released its claims:
    a process runs one call of a stage at a time). Owners on other hosts live until their claims
    expire."""
    host, _, rest = owner.partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return False
    if int(pid) == os.getpid():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except OSError:              # alive, someone else's
        return False
    return False


def shared_batches(store: Store, run_id: int, todo: Sequence[T], key: Callable[[T], str], batch_size: int,
                   done: Callable[[Sequence[str]], set], claim_s: float = CLAIM_S, poll_s: float = POLL_S,
                   sleep: Callable[[float], None] = time.sleep,
                   gone: Callable[[str], bool] = owner_gone) -> Iterator[list[T]]:
    """Batches of ``todo`` (in order) this process claimed. The caller writes each batch's results
    before asking for the next; its claims are then released (all of them when the generator ends
    or is closed; a call that failed leaves them to owner_gone: free to this process and, once it
    has ended, to others on this host). ``done(keys)``: those of the unit keys the run holds
    results for (asked inside the claim's transaction). ``gone``: see owner_gone."""
    owner = owner_id()
    queue: deque = deque(todo)
    deferred: list[T] = []            # held by another process when looked at
    previous: list[str] = []
    try:
        while queue or deferred:
            if not queue:             # only others' units left: wait for them to be written or to expire
                sleep(poll_s)
                queue, deferred = deque(deferred), []
            window = [queue.popleft() for _ in range(min(len(queue), WINDOW * batch_size))]
            # one transaction: release what the last batch wrote, renew the rest, claim the next
            claimed, finished, looked = store.claim_units(run_id, [key(t) for t in window], owner, claim_s,
                                                          batch_size, release=previous, done=done, gone=gone)
            queue.extendleft(reversed(window[looked:]))
            mine, written = set(claimed), set(finished)
            deferred += [t for t in window[:looked] if key(t) not in mine and key(t) not in written]
            previous = claimed
            if claimed:
                yield [t for t in window[:looked] if key(t) in mine]
    finally:
        try:
            store.release_units(run_id, owner)
        except StoreError:       # the store was closed first: its claims are left to owner_gone
            pass
