"""Runs (one per stage call, keyed by stage, model and params) and the store's meta rows."""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

from .canon import load_json
from .checks import check_int, check_text, json_or_none, require_row
from .db import utc_now
from .errors import Interrupted, NotFoundError, StoreError
from .records import (
    RUN_STATUSES,
    Run,
    RunHandle,
)

_RUN_COLS = "id, stage, model, params, status, evals, started_at, finished_at, reason"


def _run(row: tuple) -> Run:
    return Run(row[0], row[1], row[2], load_json(row[3], {}), *row[4:9])


# a run's model identity: the content fingerprint its params carry (attack.stages.runs.open_run adds it), so
# one model under two paths is one model and new weights at one path are another
_FINGERPRINT = "json_extract(params, '$.model_fingerprint')"


class Runs:
    """Runs: one per stage call, and the store's meta rows. Methods of Store (store/store.py), which holds the connection."""

    # -- runs -----------------------------------------------------------------------
    def start_run(self, stage: str, model: str, params: Mapping[str, Any]) -> int:
        check_text(stage, "start_run stage")
        check_text(model, "start_run model", allow_empty=True)
        params_json = json_or_none(params, "start_run params") or "{}"
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO runs (stage, model, params, status, evals, started_at) VALUES (?, ?, ?, 'running', 0, ?)",
                (stage, model, params_json, utc_now()))
            return int(cur.lastrowid)

    def finish_run(self, run_id: int, evals: int, status: str = "done", reason: Optional[str] = None) -> None:
        """Set a run's eval count and status; 'running' (a batch written) clears the end time,
        'failed' and 'interrupted' keep the reason."""
        evals = check_int(evals, "finish_run evals")
        if evals < 0:
            raise StoreError(f"finish_run evals: expected >= 0, got {evals}")
        if status not in RUN_STATUSES:
            raise StoreError(f"finish_run status: expected one of {', '.join(RUN_STATUSES)}, got {status!r}")
        if reason is not None:
            reason = check_text(reason, "finish_run reason")[:2000]
        with self.transaction() as conn:
            require_row(conn, "runs", run_id, "finish_run")
            conn.execute("UPDATE runs SET evals = ?, status = ?, finished_at = ?, reason = ? WHERE id = ?",
                         (evals, status, None if status == "running" else utc_now(),
                          reason if status in ("failed", "interrupted") else None, run_id))

    @contextmanager
    def running(self, run_id: int) -> Iterator[None]:
        """Marks the run 'failed' (with the error) or 'interrupted' (with the signal) when the body
        raises, then re-raises; the body marks it done itself."""
        try:
            yield
        except BaseException as e:
            interrupted = isinstance(e, (KeyboardInterrupt, Interrupted))
            reason = ("SIGINT (Ctrl-C)" if isinstance(e, KeyboardInterrupt) else
                      e.name if isinstance(e, Interrupted) else f"{type(e).__name__}: {e}")
            try:
                self.finish_run(run_id, self.get_run(run_id).evals, "interrupted" if interrupted else "failed",
                           reason or type(e).__name__)
            except Exception:  # noqa: BLE001 - the original error matters more than the bookkeeping
                pass
            raise

    def get_run(self, run_id: int) -> Run:
        with self.snapshot() as conn:
            row = conn.execute(f"SELECT {_RUN_COLS} FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"get_run: expected an existing run id, got {run_id!r}")
        return _run(row)

    def open_run(self, stage: str, model: str, params: Mapping[str, Any]) -> RunHandle:
        """The newest run of this stage, model and params (resumed), or a new one. Looked up and
        created in one write transaction, so two shard processes starting together share one run.
        When params carry a model_fingerprint, that is the model: a run made under another path (the
        same weights elsewhere, another machine's mount) is resumed, keeping its first path as label."""
        check_text(stage, "open_run stage")
        canon = json_or_none(params, f"{stage} params") or "{}"
        keyed = isinstance(params, Mapping) and params.get("model_fingerprint") is not None
        with self.transaction() as conn:
            if keyed:
                row = conn.execute("SELECT id FROM runs WHERE stage = ? AND params = ? ORDER BY id DESC LIMIT 1",
                                   (stage, canon)).fetchone()
            else:
                row = conn.execute("SELECT id FROM runs WHERE stage = ? AND model = ? AND params = ? "
                                   "ORDER BY id DESC LIMIT 1", (stage, model, canon)).fetchone()
            if row is not None:
                return RunHandle(int(row[0]), True)
            return RunHandle(self.start_run(stage, model, params), False)

    def runs(self, stage: Optional[str] = None, model: Optional[str] = None,
             fingerprint: Optional[str] = None) -> list[Run]:
        """Runs, oldest first, optionally of one stage, model label and/or model fingerprint."""
        conds, args = [], []
        for col, value in (("stage", stage), ("model", model), (_FINGERPRINT, fingerprint)):
            if value is not None:
                conds.append(f"{col} = ?")
                args.append(value)
        where = f" WHERE {' AND '.join(conds)}" if conds else ""
        with self.snapshot() as conn:
            rows = conn.execute(f"SELECT {_RUN_COLS} FROM runs{where} ORDER BY id", args).fetchall()
        return [_run(r) for r in rows]

    def model_fingerprint(self, model: str, stage: str = "score") -> Optional[str]:
        """The fingerprint `model` names: itself when a run carries it, else the fingerprint of the
        newest run of this stage labelled `model` (the weights that last ran under that path); None
        when no run of that label carries one (a store written before fingerprints)."""
        with self.snapshot() as conn:
            if conn.execute(f"SELECT 1 FROM runs WHERE {_FINGERPRINT} = ? LIMIT 1", (model,)).fetchone():
                return model
            row = conn.execute(f"SELECT {_FINGERPRINT} FROM runs WHERE stage = ? AND model = ? "
                               f"AND {_FINGERPRINT} IS NOT NULL ORDER BY id DESC LIMIT 1", (stage, model)).fetchone()
        return None if row is None else row[0]

    # -- meta --------------------------------------------------------------------------------------
    # -- work claims: processes sharing a run split its units -----------------------------------
    def claim_units(self, run_id: int, units: Sequence[str], owner: str, ttl_s: float, limit: int,
                    release: Sequence[str] = (),
                    done: Callable[[Sequence[str]], set] = lambda units: set(),
                    gone: Callable[[str], bool] = lambda owner: False) -> tuple[list[str], list[str], int]:
        """Claim, in order, up to ``limit`` of ``units`` that are not done and that no other owner
        holds (a claim past its expiry is free) for ``ttl_s`` seconds, in one write transaction that
        also drops this owner's claims on ``release`` (units it has written) and renews its other
        claims. ``done(units)`` (the stage's: which units the run holds results for) runs inside that
        transaction, so a unit another process wrote and released is never claimed again.
        ``gone(owner)``: True when that owner can hold nothing any more (its process ended), so its
        claims are free before they expire. Returns (claimed, done, how many of ``units`` were looked
        at); the others looked at are held."""
        check_text(owner, "claim_units owner")
        claimed, finished, looked = [], [], 0
        now = time.time()
        with self.transaction() as conn:
            conn.executemany("DELETE FROM work_claims WHERE run_id = ? AND unit = ? AND owner = ?",
                             [(run_id, u, owner) for u in release])
            conn.execute("UPDATE work_claims SET expires = ? WHERE run_id = ? AND owner = ?",
                         (now + ttl_s, run_id, owner))
            have = done(units)
            for unit in units:
                if len(claimed) >= limit:
                    break
                looked += 1
                if unit in have:
                    finished.append(unit)
                    continue
                row = conn.execute("SELECT owner, expires FROM work_claims WHERE run_id = ? AND unit = ?",
                                   (run_id, unit)).fetchone()
                if row is not None and row[0] != owner and row[1] > now and not gone(row[0]):
                    continue
                conn.execute("INSERT INTO work_claims (run_id, unit, owner, expires) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (run_id, unit) DO UPDATE SET owner = excluded.owner, "
                             "expires = excluded.expires", (run_id, unit, owner, now + ttl_s))
                claimed.append(unit)
        return claimed, finished, looked

    def release_units(self, run_id: int, owner: str) -> None:
        """Drop every claim this owner holds on the run (it stopped, done or not)."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM work_claims WHERE run_id = ? AND owner = ?", (run_id, owner))

    def get_meta(self, key: str) -> Optional[str]:
        with self.snapshot() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str) -> None:
        check_text(key, "set_meta key")
        check_text(value, "set_meta value", allow_empty=True)
        with self.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                         (key, value))
