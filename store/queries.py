"""Read side: ranked, filtered pages of candidates, full-text search, counts.

Pages read only the derived tables (caption_state, candidate_scores,
caption_flags), never the label history or the million-row scores table.
Two plans, chosen from the filtered count that a page needs anyway:
- few matches (<= SMALL_SET): start from caption_state's filtered rows and
  sort them (cheap: at most a few thousand rows);
- many matches: walk the candidate_scores index in score order and keep the
  first rows that pass the filters (matches are dense, so this stops early).
The forced join order (CROSS JOIN, INDEXED BY) keeps SQLite from guessing.
"""
from __future__ import annotations

import re
import sqlite3
from typing import Optional

from .canon import load_json
from .errors import StoreError
from .records import COLUMN_ORDERS, Page, PageQuery, PageRow, SearchHit
from .schema import HUMAN_LABELS

SMALL_SET = 5_000
MAX_SEARCH_LIMIT = 1_000
SEARCH_RANK_WINDOW = 1_000
_TOKEN = re.compile(r"\w+", re.UNICODE)


def fts_query(text: str) -> Optional[str]:
    """User text -> FTS5 query: every word must appear. Quoting each word means
    no FTS5 syntax (quotes, NEAR, *, column filters) from untrusted input."""
    if not isinstance(text, str):
        raise StoreError(f"search text: expected a string, got {type(text).__name__}")
    words = _TOKEN.findall(text)
    return " ".join(f'"{w}"' for w in words) if words else None


def _label_terms(q: PageQuery, conds: list[str], params: list, label_col: str, unlabelled: str,
                 labelled: str, auto_col: str, conflict: str = "st.review = 'conflict'") -> None:
    """Append the human/auto label filters of q, for either caption_state or candidate_counts."""
    if q.human_label is not None:
        terms = []
        named = [v for v in q.human_label if v in HUMAN_LABELS]
        if named:
            terms.append(f"{label_col} IN ({', '.join('?' * len(named))})")
            params.extend(named)
        if "unlabelled" in q.human_label:
            terms.append(unlabelled)
        if "labelled" in q.human_label:
            terms.append(labelled)
        if "conflict" in q.human_label:
            terms.append(conflict)
        conds.append("(" + " OR ".join(terms) + ")")
    if q.auto_label is not None:
        conds.append(f"{auto_col} IN ({', '.join('?' * len(q.auto_label))})")
        params.extend(q.auto_label)


def state_filter(q: PageQuery) -> tuple[list[str], list]:
    """WHERE terms over caption_state ``st`` for the query's non-score filters."""
    conds, params = ["st.n_generations > 0"], []
    _label_terms(q, conds, params, "st.label", "st.label IS NULL", "st.label IS NOT NULL", "st.auto_label")
    for flag in q.flags or ():
        conds.append("st.caption_id IN (SELECT caption_id FROM caption_flags WHERE flag = ?)")
        params.append(flag)
    if q.search is not None:
        match = fts_query(q.search)
        if match is None:
            conds.append("0")
        else:
            conds.append("st.caption_id IN (SELECT rowid FROM captions_fts WHERE captions_fts MATCH ?)")
            params.append(match)
    return conds, params


def _count(conn: "sqlite3.Connection", q: PageQuery, where: str, params: list) -> int:
    """Candidates matching the state filters; from candidate_counts when only label filters apply."""
    if q.flags or q.search is not None or "conflict" in (q.human_label or ()):   # counts know no review state
        return conn.execute(f"SELECT count(*) FROM caption_state st WHERE {where}", params).fetchone()[0]
    conds, args = [], []
    _label_terms(q, conds, args, "label_key", "label_key = ''", "label_key <> ''", "auto_key")
    sql = "SELECT coalesce(sum(n), 0) FROM candidate_counts" + (" WHERE " + " AND ".join(conds) if conds else "")
    return conn.execute(sql, args).fetchone()[0]


def _score_source(conn: "sqlite3.Connection", q: PageQuery) -> tuple[Optional[str], list, bool]:
    """(condition on candidate_scores ``cs``, params, restricted) for the order_by kind.

    restricted: candidates without a matching score are dropped (run/model/range
    filters); otherwise they are kept and sorted last.
    """
    conds, params = ["cs.kind = ?"], [q.order_by]
    if q.run_id is not None:
        conds.append("cs.run_id = ?")
        params.append(q.run_id)
    elif q.model is not None:
        runs = [r[0] for r in conn.execute("SELECT id FROM runs WHERE model = ?", (q.model,))]
        if not runs:
            return None, [], True
        marks = ", ".join("?" * len(runs))
        conds.append(f"cs.run_id IN ({marks}) AND cs.run_id = (SELECT max(c2.run_id) FROM candidate_scores c2 "
                     f"WHERE c2.caption_id = cs.caption_id AND c2.kind = cs.kind AND c2.run_id IN ({marks}))")
        params.extend(runs + runs)
    else:
        conds.append("cs.is_latest = 1")
    if q.score_min is not None:
        conds.append("cs.value >= ?")
        params.append(float(q.score_min))
    if q.score_max is not None:
        conds.append("cs.value <= ?")
        params.append(float(q.score_max))
    restricted = q.run_id is not None or q.model is not None or q.score_min is not None or q.score_max is not None
    return " AND ".join(conds), params, restricted


def _order(q: PageQuery) -> str:
    # ties broken by caption id in the same direction, matching the index order
    d = "DESC" if q.descending else "ASC"
    return f"cs.value {d}, cs.caption_id {d}"


def _page_ids(conn: "sqlite3.Connection", q: PageQuery) -> tuple[list[tuple[int, Optional[float]]], int]:
    conds, params = state_filter(q)
    where = " AND ".join(conds)
    d = "DESC" if q.descending else "ASC"
    window = [q.limit, q.offset]

    if q.order_by in COLUMN_ORDERS:
        total = _count(conn, q, where, params)
        col = "st.caption_id" if q.order_by == "caption_id" else "st.labelled_at"
        rows = conn.execute(f"SELECT st.caption_id, NULL FROM caption_state st WHERE {where} "
                            f"ORDER BY {col} {d}, st.caption_id {d} LIMIT ? OFFSET ?", params + window).fetchall()
        return rows, total

    score_cond, score_params, restricted = _score_source(conn, q)
    if score_cond is None:
        return [], 0
    if restricted:
        base = f"FROM candidate_scores cs CROSS JOIN caption_state st " \
               f"WHERE {score_cond} AND st.caption_id = cs.caption_id AND {where}"
        total = conn.execute(f"SELECT count(*) {base}", score_params + params).fetchone()[0]
        rows = conn.execute(f"SELECT cs.caption_id, cs.value {base} ORDER BY {_order(q)} LIMIT ? OFFSET ?",
                            score_params + params + window).fetchall()
        return rows, total

    total = _count(conn, q, where, params)
    if total == 0 or q.offset >= total:
        return [], total
    if total <= SMALL_SET:
        # unary + keeps SQLite on the (caption_id, ...) primary key for the join
        pk_cond = score_cond.replace("cs.kind", "+cs.kind").replace("cs.is_latest", "+cs.is_latest")
        rows = conn.execute(
            f"SELECT st.caption_id, cs.value FROM caption_state st "
            f"LEFT JOIN candidate_scores cs ON cs.caption_id = st.caption_id AND {pk_cond} "
            f"WHERE {where} ORDER BY cs.value IS NULL, {_order(q)}, st.caption_id {d} LIMIT ? OFFSET ?",
            score_params + params + window).fetchall()
        return rows, total
    rows = conn.execute(
        f"SELECT cs.caption_id, cs.value FROM candidate_scores cs INDEXED BY candidate_scores_latest "
        f"CROSS JOIN caption_state st WHERE {score_cond} AND st.caption_id = cs.caption_id AND {where} "
        f"ORDER BY {_order(q)} LIMIT ? OFFSET ?", score_params + params + window).fetchall()
    if len(rows) < q.limit:
        # past the scored candidates: continue with the unscored ones, by id
        unscored_where = f"{where} AND NOT EXISTS (SELECT 1 FROM candidate_scores cs " \
                         f"WHERE cs.caption_id = st.caption_id AND {score_cond})"
        n_unscored = conn.execute(f"SELECT count(*) FROM caption_state st WHERE {unscored_where}",
                                  params + score_params).fetchone()[0]
        n_scored = total - n_unscored
        start = max(0, q.offset - n_scored)
        rows += conn.execute(f"SELECT st.caption_id, NULL FROM caption_state st WHERE {unscored_where} "
                             f"ORDER BY st.caption_id {d} LIMIT ? OFFSET ?",
                             params + score_params + [q.limit - len(rows), start]).fetchall()
    return rows, total


def matching_caption_ids(conn: "sqlite3.Connection", q: PageQuery) -> list[int]:
    """Every caption id the query's filters select (order, offset and limit ignored), ascending."""
    conds, params = state_filter(q)
    where = " AND ".join(conds)
    if q.order_by not in COLUMN_ORDERS:
        score_cond, score_params, restricted = _score_source(conn, q)
        if score_cond is None:
            return []
        if restricted:
            return [r[0] for r in conn.execute(
                f"SELECT st.caption_id FROM candidate_scores cs CROSS JOIN caption_state st "
                f"WHERE {score_cond} AND st.caption_id = cs.caption_id AND {where} ORDER BY st.caption_id",
                score_params + params)]
    return [r[0] for r in conn.execute(
        f"SELECT st.caption_id FROM caption_state st WHERE {where} ORDER BY st.caption_id", params)]


BUILTIN_SCORE_KINDS = ("dcs", "ecs", "wen", "carlini")


def _check_order(conn: "sqlite3.Connection", q: PageQuery) -> None:
    """A typo in order_by would silently give an unranked page: refuse it instead."""
    if q.order_by in COLUMN_ORDERS or q.order_by in BUILTIN_SCORE_KINDS:
        return
    if conn.execute("SELECT 1 FROM score_kinds WHERE kind = ?", (q.order_by,)).fetchone() is None:
        known = sorted(set(BUILTIN_SCORE_KINDS) | {r[0] for r in conn.execute("SELECT kind FROM score_kinds")})
        raise StoreError(f"PageQuery.order_by: expected a score kind ({', '.join(known)}) or one of "
                         f"{', '.join(COLUMN_ORDERS)}, got {q.order_by!r}")


COUNTED_TABLES = ("runs", "captions", "training_images", "scores", "generations", "neighbours",
                  "masks", "auto_labels", "labels", "exports")


class Queries:
    """Pages of candidates, full-text search and the store's counts. Methods of Store (store/store.py), which holds the connection."""

    def page(self, query: Optional[PageQuery] = None) -> Page:
        q = query or PageQuery()
        with self.snapshot() as conn:
            _check_order(conn, q)
            ids, total = _page_ids(conn, q)
            if not ids:
                return Page((), total, q)
            id_list = [i for i, _ in ids]
            marks = ", ".join("?" * len(id_list))
            details = {r[0]: r for r in conn.execute(
                f"SELECT c.id, c.text, c.url, st.label, st.reviewer, st.labelled_at, st.auto_label, st.flags, "
                f"st.n_generations FROM captions c JOIN caption_state st ON st.caption_id = c.id "
                f"WHERE c.id IN ({marks})", id_list)}
            scores: dict[int, dict] = {i: {} for i in id_list}
            for cid, kind, value in conn.execute(
                    f"SELECT caption_id, kind, value FROM candidate_scores WHERE caption_id IN ({marks}) "
                    f"AND is_latest = 1 ORDER BY caption_id, kind", id_list):
                scores[cid][kind] = value
        rows = []
        for cid, value in ids:
            d = details[cid]
            rows.append(PageRow(caption_id=cid, text=d[1], url=d[2], score=value, scores=scores[cid],
                                human_label=d[3], reviewer=d[4], labelled_at=d[5], auto_label=d[6],
                                flags=tuple(load_json(d[7], [])), n_generations=d[8]))
        return Page(tuple(rows), total, q)

    def search(self, text: str, limit: int = 20) -> list[SearchHit]:
        """Captions containing every word of ``text``, best bm25 match first.

        When more than SEARCH_RANK_WINDOW captions match, only that many (lowest
        ids) are ranked: refine the words to reach the others.
        """
        if not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
            raise StoreError(f"search limit: expected an int in 1..{MAX_SEARCH_LIMIT}, got {limit!r}")
        match = fts_query(text)
        if match is None:
            return []
        with self.snapshot() as conn:
            # bm25 is computed per match, so rank at most SEARCH_RANK_WINDOW matches (the
            # lowest caption ids); a query of very common words stays fast, rare words rank fully
            rows = conn.execute(
                "SELECT c.id, c.text, c.url, m.rank FROM (SELECT rowid, rank FROM captions_fts "
                "WHERE captions_fts MATCH ? LIMIT ?) m JOIN captions c ON c.id = m.rowid "
                "ORDER BY m.rank, c.id LIMIT ?", (match, SEARCH_RANK_WINDOW, limit)).fetchall()
        return [SearchHit(*r) for r in rows]

    def info(self) -> dict:
        """Counts per table and per current human label (candidates and all captions)."""
        from .reviews import reviews_per_candidate
        from .schema import SCHEMA_VERSION
        with self.snapshot() as conn:
            tables = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in COUNTED_TABLES}
            candidates = conn.execute("SELECT count(*) FROM caption_state WHERE n_generations > 0").fetchone()[0]
            by_label = dict(conn.execute(
                "SELECT coalesce(label, 'unlabelled'), count(*) FROM caption_state "
                "WHERE label IS NOT NULL OR n_generations > 0 GROUP BY 1 ORDER BY 1").fetchall())
            by_auto = dict(conn.execute(
                "SELECT auto_label, count(*) FROM caption_state WHERE auto_label IS NOT NULL "
                "GROUP BY 1 ORDER BY 1").fetchall())
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            k = reviews_per_candidate(conn)
            review_states = dict(conn.execute("SELECT review, count(*) FROM caption_state WHERE review IS NOT NULL "
                                              "GROUP BY 1 ORDER BY 1").fetchall())
        n_files = sum(1 for sub in self.images.root.iterdir() if sub.is_dir()
                      for f in sub.iterdir() if f.suffix == ".png")
        return {
            "path": str(self.path), "schema_version": version, "code_schema_version": SCHEMA_VERSION,
            "tables": tables, "candidates": candidates,
            "labels": {label: by_label.get(label, 0) for label in HUMAN_LABELS + ("unlabelled",)},
            "auto_labels": by_auto, "image_files": n_files,
            "reviews_per_candidate": k, "review_states": review_states,
        }
