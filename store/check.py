"""`python -m store check`: is the store whole? SQLite's own check, every image a row names present
with the bytes its name (a sha256) says, and the trigger-kept tables equal to what they are derived
from. ``repair`` fixes what can be fixed without guessing; the rest is listed with what to do.

Repairs (all safe: nothing a person made is touched): leftover temporary files removed; the caption
search index rebuilt; the derived tables (candidate_counts, candidate_scores, caption_flags and the
label/generation columns of caption_state) recomputed from the rows they summarise; an unreadable
compare-cache file removed (it is rebuilt on use). Not repaired: a damaged database page (restore a
backup, or `sqlite3 store.db .recover`), a missing or damaged image file (copy it back from a backup
of images/; its name is its sha256), the review state of blind double review.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .audited import AUDITED_COUNT, AUDITED_SCORES, of_audited_model

if TYPE_CHECKING:
    from .store import Store

QUICK_IMAGE_SAMPLE = 200    # a quick check (the app's, at start) hashes this many image files, stats all


@dataclass(frozen=True)
class Problem:
    kind: str               # integrity, image-missing, image-damaged, derived, temp-file, cache, fts
    where: str              # the table, file or row it concerns
    what: str               # expected X, got Y
    repaired: bool = False


@dataclass(frozen=True)
class CheckReport:
    store: Path
    quick: bool
    checked: dict = field(default_factory=dict)     # what was looked at: counts by kind
    problems: tuple = ()                            # of Problem

    @property
    def ok(self) -> bool:
        """True when nothing is wrong now (every problem found was repaired)."""
        return all(p.repaired for p in self.problems)

    def lines(self) -> list[str]:
        out = [f"{p.kind}: {p.where}: {p.what}{' (repaired)' if p.repaired else ''}" for p in self.problems]
        left = [p for p in self.problems if not p.repaired]
        looked = ", ".join(f"{v} {k}" for k, v in self.checked.items())
        out.append(f"{'quick ' if self.quick else ''}check of {self.store}: {looked}; "
                   + ("no problem found" if not self.problems else
                      f"{len(self.problems)} problem(s), {len(self.problems) - len(left)} repaired, {len(left)} left"))
        return out

    def as_json(self) -> str:
        return json.dumps({"store": str(self.store), "quick": self.quick, "ok": self.ok, "checked": self.checked,
                           "problems": [p.__dict__ for p in self.problems]})


def _sqlite(conn: sqlite3.Connection, quick: bool) -> list[Problem]:
    try:
        rows = [r[0] for r in conn.execute("PRAGMA quick_check" if quick else "PRAGMA integrity_check")]
        fks = conn.execute("PRAGMA foreign_key_check").fetchall()
    except sqlite3.DatabaseError as e:
        return [Problem("integrity", "store.db", f"expected a readable database, got {e}")]
    out = [Problem("integrity", "store.db", f"expected ok, got {r}") for r in rows if r != "ok"]
    out += [Problem("integrity", f"{t} row {rowid}", f"expected a {parent} row it refers to, got none")
            for t, rowid, parent, _ in fks]
    return out


def _referenced(conn: sqlite3.Connection) -> dict[str, str]:
    """sha -> the first row naming it (for the message)."""
    refs: dict[str, str] = {}
    for table, col in (("training_images", "sha256"), ("generations", "image_sha"), ("masks", "image_sha")):
        for rid, sha in conn.execute(f"SELECT id, {col} FROM {table} ORDER BY id"):
            refs.setdefault(sha, f"{table} row {rid}")
    return refs


def _images(store: "Store", refs: dict[str, str], quick: bool) -> tuple[list[Problem], int]:
    """Every referenced file present; its bytes hash to its name (all of them, or a sample when quick)."""
    out, hashed = [], 0
    for i, (sha, row) in enumerate(sorted(refs.items())):
        path = store.image_path(sha)
        if not path.is_file():
            out.append(Problem("image-missing", str(path), f"expected the image file of {row}, got no such file"))
            continue
        if quick and i >= QUICK_IMAGE_SAMPLE:
            continue
        hashed += 1
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        if h.hexdigest() != sha:
            out.append(Problem("image-damaged", str(path), f"expected bytes with sha256 {sha[:12]}... ({row}), got "
                                                           f"{h.hexdigest()[:12]}... (truncated or overwritten)"))
    return out, hashed


def _leftovers(store: "Store", repair: bool) -> list[Problem]:
    out = []
    for tmp in sorted(store.path.glob("images/**/.tmp-*")) + sorted(store.path.glob("cache/**/.tmp-*")):
        if repair:
            tmp.unlink(missing_ok=True)
        out.append(Problem("temp-file", str(tmp), "expected no temporary file, got one left by an interrupted write",
                           repair))
    return out


DERIVED = {
    # table: (the rows it holds, the rows it should hold), both as sets of tuples
    "caption_state.n_generations": (
        "SELECT caption_id, n_generations FROM caption_state WHERE n_generations > 0",
        f"SELECT caption_id, count(*) FROM generations g WHERE {of_audited_model('g.run_id')} GROUP BY caption_id"),
    "caption_flags": (
        "SELECT caption_id, flag FROM caption_flags",
        "SELECT a.caption_id, f.value FROM auto_labels a, json_each(a.flags) f WHERE a.run_id = "
        "(SELECT max(run_id) FROM auto_labels b WHERE b.caption_id = a.caption_id)"),
    "candidate_scores": (
        "SELECT caption_id, kind, run_id, value, is_latest FROM candidate_scores",
        AUDITED_SCORES),
    "candidate_counts": (
        "SELECT label_key, auto_key, n FROM candidate_counts WHERE n <> 0",
        "SELECT coalesce(label, ''), coalesce(auto_label, ''), count(*) FROM caption_state "
        "WHERE n_generations > 0 GROUP BY 1, 2"),
}
LATEST_LABEL = ("SELECT caption_id, label FROM caption_state WHERE label_entry_id IS NOT NULL",
                "SELECT caption_id, label FROM labels WHERE id IN (SELECT max(id) FROM labels GROUP BY caption_id)")


def _derived(conn: sqlite3.Connection, blind: bool) -> list[Problem]:
    checks = ({} if blind else {"caption_state.label": LATEST_LABEL}) | DERIVED
    out = []
    for name, (held_sql, want_sql) in checks.items():
        held, want = set(conn.execute(held_sql)), set(conn.execute(want_sql))
        if held != want:
            out.append(Problem("derived", name, f"expected the {len(want)} rows derived from their source, got "
                                                f"{len(held - want)} wrong and {len(want - held)} missing"))
    return out


def _fts(conn: sqlite3.Connection, writable: bool) -> list[Problem]:
    """The caption search index holds exactly the captions (its per-document table against the
    captions' ids), and FTS5's own integrity check passes (an INSERT: only on a writable store)."""
    indexed = {r[0] for r in conn.execute("SELECT id FROM captions_fts_docsize")}
    ids = {r[0] for r in conn.execute("SELECT id FROM captions")}
    if indexed != ids:
        return [Problem("fts", "captions_fts", f"expected the caption search index to hold the {len(ids)} captions, "
                                               f"got {len(ids - indexed)} missing and {len(indexed - ids)} extra")]
    if writable:
        try:
            conn.execute("INSERT INTO captions_fts(captions_fts) VALUES ('integrity-check')")
        except sqlite3.DatabaseError as e:
            return [Problem("fts", "captions_fts", f"expected a consistent caption search index, got {e}")]
    return []


def _rebuild_derived(conn: sqlite3.Connection, blind: bool) -> None:
    """Recompute the trigger-kept tables from their sources, inside the caller's transaction."""
    if not blind:
        conn.execute("UPDATE caption_state SET label = l.label, label_entry_id = l.id, reviewer = l.reviewer, "
                     "labelled_at = l.created_at FROM (SELECT caption_id, id, label, reviewer, created_at FROM labels "
                     "WHERE id IN (SELECT max(id) FROM labels GROUP BY caption_id)) l "
                     "WHERE caption_state.caption_id = l.caption_id")
    conn.execute(f"UPDATE caption_state SET n_generations = {AUDITED_COUNT}")
    conn.execute("DELETE FROM caption_flags")
    conn.execute("INSERT OR IGNORE INTO caption_flags (caption_id, flag) " + DERIVED["caption_flags"][1])
    conn.execute("DELETE FROM candidate_scores")
    conn.execute("INSERT INTO candidate_scores (caption_id, kind, run_id, value, is_latest) "
                 + DERIVED["candidate_scores"][1])
    conn.execute("DELETE FROM candidate_counts")
    conn.execute("INSERT INTO candidate_counts (label_key, auto_key, n) " + DERIVED["candidate_counts"][1])


def check_store(store: "Store", repair: bool = False, quick: bool = False) -> CheckReport:
    """Everything wrong with the store (see the module's docstring); repair: fix what is safe."""
    from .reviews import reviews_per_candidate

    problems: list[Problem] = list(_leftovers(store, repair))
    with store.snapshot() as conn:
        problems += _sqlite(conn, quick)
        damaged = any(p.kind == "integrity" for p in problems)
        try:
            refs = _referenced(conn)
            blind = reviews_per_candidate(conn) > 1
            derived = [] if quick else _derived(conn, blind)
        except sqlite3.DatabaseError as e:
            refs, blind, derived = {}, False, [Problem("integrity", "store.db", f"expected readable rows, got {e}")]
        fts = [] if quick or damaged else _fts(conn, writable=not store.readonly)
    image_problems, hashed = _images(store, refs, quick)
    problems += image_problems
    if (derived or fts) and repair and not damaged:
        with store.transaction() as conn:
            if derived:
                _rebuild_derived(conn, blind)
            if fts:
                conn.execute("INSERT INTO captions_fts(captions_fts) VALUES ('rebuild')")
        derived = [Problem(p.kind, p.where, p.what, True) for p in derived + fts]
        fts = []
    problems += derived + fts
    checked = {"database pages": "all" if not quick else "quick", "image files": len(refs),
               "image files hashed": hashed,
               "search index": "not" if quick or damaged else "ids" if store.readonly else "whole"}
    return CheckReport(store.path, quick, checked, tuple(problems))
