"""Export the human-confirmed verbatims with their evidence.

One row per caption whose *current* human label is in ``labels``, sorted by
caption id. The evidence for a row is the (generation, neighbour) pair with
the lowest distance that defines the label, ties broken by generation id then
rank:
- MV: RMSE to the caption's own training image(s) (any neighbour if none is own);
- TV: masked RMSE (RMSE where no masked distance was stored);
- RV and anything else: RMSE to any retrieved image.
``mse_real_gen`` is that distance squared (RMSE² = mean squared error on
[0,1] pixels), the paper's public code's column of the same name. A gold candidate's row carries
its known label in ``gold``; gold answers (store/gold.py) are not labels and never make a row.

Output is deterministic: no wall-clock anywhere except ``labelled_at`` from
the store, fixed zip timestamps/permissions, fixed parquet settings. The file
is written to a temp file beside ``out`` and renamed, so a reader never sees
half an export and nothing is written anywhere else.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import numpy as np

from . import reviews
from .canon import canonical_json, load_json
from .db import utc_now
from .errors import DamagedImageError, ExportError, MissingImageError, check_hint
from .evidence import AUDITED_GENERATION, CURRENT_NEIGHBOURS
from .images import encode_png
from .outputs import check_output, write_output
from .queries import matching_caption_ids
from .records import LabelEntry, PageQuery
from .schema import HUMAN_LABELS
from .version import __version__

FORMATS = ("zip", "parquet", "csv", "jsonl")
DEFAULT_LABELS = ("MV", "TV", "RV")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
BASE_COLUMNS = (
    "caption", "overfit_type", "gen_seeds", "retrieved_urls", "mse_real_gen",
    "url", "caption_id", "dup_count", "model", "run_id", "seed", "match_kind", "match_distance",
    "similarity", "reviewer", "labelled_at", "note",
    "generated_sha", "train_image_sha", "train_image_id", "train_path_or_url",
    "mask_sha", "mask_version", "mask_rle", "alignment", "reviews", "adjudication", "review_state",
    "gold",     # the known label of a gold candidate (store/gold.py), else empty; gold answers are never labels
)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    format: str
    rows: int
    sha256: str
    export_id: Optional[int]            # None: not recorded (a read-only store)
    skipped_without_image: tuple = ()   # caption ids left out of a zip (no generated image)
    warning: Optional[str] = None       # set when the export holds 0 rows: which filter emptied it
    unreadable: tuple = ()              # dicts (caption_id, file, why): stored images left out, unreadable

    def unreadable_warning(self) -> Optional[str]:
        if not self.unreadable:
            return None
        first = self.unreadable[0]
        return (f"{len(self.unreadable)} stored image(s) could not be read and were left out (listed in the "
                f"manifest's unreadable_images; the first: caption {first['caption_id']}, {first['file']}: "
                f"{first['why']}); {check_hint()}")


def safe_member_name(name: str) -> str:
    """Zip member names: relative, '/'-separated, [A-Za-z0-9._-] only, no '..'."""
    parts = []
    for part in str(name).replace("\\", "/").split("/"):
        part = re.sub(r"[^A-Za-z0-9._-]", "_", part).lstrip(".")
        if part:
            parts.append(part[:120])
    if not parts:
        raise ExportError(f"zip member name: expected a non-empty safe name, got {name!r}")
    return "/".join(parts)


def check_labels(labels: Sequence[str]) -> tuple[str, ...]:
    labels = (labels,) if isinstance(labels, str) else tuple(labels)
    if not labels:
        raise ExportError(f"labels: expected at least one of {', '.join(HUMAN_LABELS)}, got none")
    for label in labels:
        if label not in HUMAN_LABELS:
            raise ExportError(f"labels: expected each of {', '.join(HUMAN_LABELS)}, got {label!r}")
    return tuple(sorted(set(labels)))


def _format_for(out: Path, fmt: Optional[str]) -> str:
    suffix = out.suffix.lower().lstrip(".")
    if fmt is None:
        if suffix not in FORMATS:
            raise ExportError(f"{out}: expected --format or an extension among .{', .'.join(FORMATS)}, "
                              f"got {out.suffix or 'no extension'}")
        return suffix
    if fmt not in FORMATS:
        raise ExportError(f"format: expected one of {', '.join(FORMATS)}, got {fmt!r}")
    if suffix in FORMATS and suffix != fmt:
        raise ExportError(f"{out}: expected extension .{fmt} for format {fmt}, got .{suffix}")
    return fmt


def _pick(label: str, caption_id: int, evidence: list[dict]) -> tuple[Optional[dict], Optional[str]]:
    """The (generation, neighbour) row whose label-defining distance is lowest."""
    def best(rows: list[dict], key: str) -> Optional[dict]:
        rows = [r for r in rows if r[key] is not None]
        return min(rows, key=lambda r: (r[key], r["generation_id"], r["rank"])) if rows else None

    if label == "MV":
        own = [r for r in evidence if r["train_caption_id"] == caption_id]
        hit = best(own, "rmse")
        if hit is not None:
            return hit, "rmse_own"
        hit = best(evidence, "rmse")
        return (hit, "rmse") if hit else (None, None)
    if label == "TV":
        hit = best(evidence, "masked_rmse")
        if hit is not None:
            return hit, "masked_rmse"
    hit = best(evidence, "rmse")
    return (hit, "rmse") if hit else (None, None)


def _aligned_hit(conn, aligned: dict) -> Optional[dict]:
    """An evidence row (as _evidence gives) for the generation and training image an aligned
    label rests on; aligned_rmse is its distance (the plain rmse stays beside it)."""
    g = conn.execute("SELECT id, seed, run_id, image_sha FROM generations WHERE id = ?",
                     (aligned.get("generation_id"),)).fetchone()
    t = conn.execute("SELECT id, sha256, caption_id, path_or_url, meta FROM training_images WHERE id = ?",
                     (aligned.get("train_image_id"),)).fetchone()
    if g is None or t is None:
        return None
    return {"generation_id": g[0], "seed": g[1], "run_id": g[2], "generated_sha": g[3], "rank": None,
            "train_image_id": t[0], "similarity": None, "rmse": None, "masked_rmse": None, "mask_id": None,
            "train_image_sha": t[1], "train_caption_id": t[2], "train_path_or_url": t[3],
            "train_meta": t[4], "aligned_rmse": aligned.get("aligned_rmse")}


def _evidence(conn, caption_id: int) -> list[dict]:
    cols = ("generation_id", "seed", "run_id", "generated_sha", "rank", "train_image_id", "similarity",
            "rmse", "masked_rmse", "mask_id", "train_image_sha", "train_caption_id", "train_path_or_url",
            "train_meta")
    rows = conn.execute(
        "SELECT g.id, g.seed, g.run_id, g.image_sha, n.rank, n.train_image_id, n.similarity, n.rmse, "
        "n.masked_rmse, n.mask_id, t.sha256, t.caption_id, t.path_or_url, t.meta FROM generations g "
        f"LEFT JOIN neighbours n ON n.generation_id = g.id AND {CURRENT_NEIGHBOURS} "
        "LEFT JOIN training_images t ON t.id = n.train_image_id "
        f"WHERE g.caption_id = ? AND {AUDITED_GENERATION} ORDER BY g.id, n.rank", (caption_id,)).fetchall()
    return [dict(zip(cols, r)) for r in rows]


def _retrieved_url(path_or_url: Optional[str], meta_json: Optional[str]) -> Optional[str]:
    meta = load_json(meta_json, {})
    return meta.get("url") or path_or_url


AUTO_COLUMNS = ("auto_label", "auto_flags", "auto_tv", "auto_mv", "auto_rv")


def _review_columns(conn, caption_id: int, k: int) -> dict:
    """Each reviewer's own label in force, the adjudication, and (blind reviews) where they stand."""
    r = reviews.caption_reviews(caption_id, reviews.history(conn, caption_id), k)

    def one(e: LabelEntry) -> dict:
        return {"reviewer": e.reviewer, "label": e.label, "labelled_at": e.created_at, "note": e.note}
    return {"reviews": [one(e) for _, e in sorted(r.votes.items())],
            "adjudication": one(r.adjudication) if r.adjudication else None, "review_state": r.state}


def mask_rle(mask: np.ndarray) -> dict:
    """COCO RLE of a boolean mask, counts as text (pycocotools' compressed form)."""
    from pycocotools import mask as coco
    rle = coco.encode(np.asfortranarray(mask.astype(np.uint8)))
    return {"size": [int(rle["size"][0]), int(rle["size"][1])], "counts": rle["counts"].decode("utf-8")}


# -- writers ------------------------------------------------------------------------------
# OWASP "CSV injection": a cell starting with one of these is run as a formula by spreadsheets
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formula(text: str) -> str:
    """A text cell a spreadsheet would evaluate, prefixed with ' so it stays text (OWASP)."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _csv_cell(value: Any, neutralise: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (bool, int)):
        return str(value)
    text = canonical_json(value) if isinstance(value, (list, dict)) else str(value)
    return neutralise_formula(text) if neutralise else text


def write_csv(rows: list[dict], columns: list[str], neutralise: bool = True) -> bytes:
    """CSV text (RFC 4180: CRLF rows, so a cell holding a lone CR is quoted too); text cells
    are neutralised against formula injection unless neutralise=False (numbers are written as
    numbers: a negative score is no formula)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(columns)
    for row in rows:
        w.writerow([_csv_cell(row[c], neutralise) for c in columns])
    return buf.getvalue().encode("utf-8")


def _json_line(row: dict, columns: Sequence[str]) -> str:
    return json.dumps({c: row[c] for c in columns}, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def write_jsonl(rows: list[dict], columns: list[str]) -> bytes:
    return "".join(_json_line(r, columns) + "\n" for r in rows).encode("utf-8")


def parquet_schema(kinds: Sequence[str], columns: Sequence[str] = BASE_COLUMNS):
    import pyarrow as pa
    _REVIEW = pa.struct([("reviewer", pa.string()), ("label", pa.string()), ("labelled_at", pa.string()),
                         ("note", pa.string())])
    types = {
        "gen_seeds": pa.list_(pa.int64()), "retrieved_urls": pa.list_(pa.string()),
        "mask_rle": pa.struct([("size", pa.list_(pa.int64())), ("counts", pa.string())]),
        "mse_real_gen": pa.float64(), "match_distance": pa.float64(), "similarity": pa.float64(),
        "caption_id": pa.int64(), "dup_count": pa.int64(), "run_id": pa.int64(), "seed": pa.int64(),
        "train_image_id": pa.int64(), "mask_version": pa.int64(), "auto_flags": pa.list_(pa.string()),
        "auto_tv": pa.float64(), "auto_mv": pa.float64(), "auto_rv": pa.float64(),
        "alignment": pa.struct([("transform", pa.list_(pa.float64())), ("overlap", pa.float64()),
                                ("mirrored", pa.bool_()), ("scale", pa.float64()), ("inliers", pa.int64())]),
        "reviews": pa.list_(_REVIEW), "adjudication": _REVIEW,
    }
    fields = [pa.field(c, types.get(c, pa.string())) for c in columns if not c.startswith("score_")]
    fields += [pa.field(f"score_{k}", pa.float64()) for k in kinds]
    return pa.schema(fields)


def write_parquet(rows: list[dict], columns: list[str], kinds: Sequence[str]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq
    schema = parquet_schema(kinds, columns)
    table = pa.Table.from_pylist([{c: r[c] for c in columns} for r in rows], schema=schema)
    buf = io.BytesIO()
    # fixed settings: same table -> same bytes (for one pyarrow version)
    pq.write_table(table, buf, compression="zstd", compression_level=3, use_dictionary=True,
                   write_statistics=True, version="2.6", data_page_size=1 << 20)
    return buf.getvalue()


def zip_add(zf: zipfile.ZipFile, name: str, data: bytes, files: dict[str, str]) -> None:
    name = safe_member_name(name)
    if name in files:
        return  # content-addressed members can repeat (one training image, several rows)
    info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
    info.external_attr = 0o644 << 16
    info.create_system = 3
    # PNG is already compressed; deflating it again only costs time
    info.compress_type = zipfile.ZIP_STORED if name.endswith(".png") else zipfile.ZIP_DEFLATED
    zf.writestr(info, data)
    files[name] = hashlib.sha256(data).hexdigest()


# PageQuery filters an export can carry, with how a warning names them
_FILTERS = (("search", "the queue search {!r}"), ("auto_label", "the automatic label filter {}"),
            ("human_label", "the human label state {}"), ("flags", "the flag filter {}"),
            ("score_min", "the minimum {order} score {}"), ("score_max", "the maximum {order} score {}"),
            ("run_id", "the run filter {}"), ("model", "the model filter {!r}"))


def _shown(value: Any) -> Any:
    return ",".join(value) if isinstance(value, (tuple, list)) else value


class Exports:
    """Exports of confirmed labels with their evidence. Methods of Store (store/store.py), which holds the connection."""

    def collect_rows(self, labels: Sequence[str] = DEFAULT_LABELS, query: Optional[PageQuery] = None,
                     auto: bool = False, unreadable: Optional[list] = None) -> tuple[list[dict], list[str]]:
        """(rows, score kinds) for an export; reusable by the review app for previews. unreadable: a
        mask file that cannot be read leaves mask_rle empty and is listed here (None: it raises).

        auto: every candidate (the whole ranking), human-labelled or not, with its automatic label,
        flags and distances (AUTO_COLUMNS) beside the human label; ``labels`` is then ignored."""
        labels = check_labels(labels)
        marks = ", ".join("?" * len(labels))
        with self.snapshot() as conn:
            cols = "caption_id, label, label_entry_id, reviewer, labelled_at, auto_label, flags, auto_run_id"
            state = conn.execute(
                f"SELECT {cols} FROM caption_state WHERE n_generations > 0 ORDER BY caption_id" if auto else
                f"SELECT {cols} FROM caption_state WHERE label IN ({marks}) ORDER BY caption_id",
                () if auto else labels).fetchall()
            if query is not None:
                allowed = set(matching_caption_ids(conn, query))
                state = [s for s in state if s[0] in allowed]
            rows = []
            kinds: set[str] = set()
            k = reviews.reviews_per_candidate(conn)
            gold = dict(conn.execute("SELECT caption_id, label FROM gold").fetchall())
            for caption_id, human, entry_id, reviewer, labelled_at, auto_label, flags, auto_run in state:
                label = human if human is not None else (auto_label or "N")   # what the evidence is picked for
                text, url, dup_count = conn.execute(
                    "SELECT text, url, dup_count FROM captions WHERE id = ?", (caption_id,)).fetchone()
                note = conn.execute("SELECT note FROM labels WHERE id = ?", (entry_id,)).fetchone()[0]\
                    if entry_id is not None else ""
                scores = dict(conn.execute("SELECT kind, value FROM scores WHERE caption_id = ? ORDER BY kind, run_id",
                                           (caption_id,)).fetchall())  # later runs win
                kinds.update(scores)
                evidence = _evidence(conn, caption_id)
                hit, match_kind = _pick(label, caption_id, evidence)
                gen = hit or (evidence[0] if evidence else None)
                row: dict[str, Any] = dict.fromkeys(BASE_COLUMNS)
                row.update(caption=text, overfit_type=human, url=url, caption_id=caption_id, dup_count=dup_count,
                           reviewer=reviewer, labelled_at=labelled_at, note=note, gen_seeds=[], retrieved_urls=[],
                           gold=gold.get(caption_id), **_review_columns(conn, caption_id, k))
                d = {}
                if auto_run is not None:
                    d = load_json(conn.execute("SELECT distances FROM auto_labels WHERE caption_id = ? AND run_id = ?",
                                               (caption_id, auto_run)).fetchone()[0], {})
                if auto:
                    row.update(auto_label=auto_label, auto_flags=load_json(flags, []), auto_tv=d.get("tv"),
                               auto_mv=d.get("mv"), auto_rv=d.get("rv"))
                aligned = d.get("aligned") if d.get("evidence_kind") == "aligned" and auto_label == label else None
                if isinstance(aligned, dict):   # the label rests on a crop / rescale / mirror alignment
                    hit, match_kind = _aligned_hit(conn, aligned), "aligned"
                    gen = hit or gen
                    row["alignment"] = {k: aligned.get(k) for k in ("transform", "overlap", "mirrored", "scale", "inliers")}
                if gen is not None:
                    run = conn.execute("SELECT model FROM runs WHERE id = ?", (gen["run_id"],)).fetchone()
                    seeds = sorted({e["seed"] for e in evidence if e["run_id"] == gen["run_id"]})
                    retrieved = [_retrieved_url(e["train_path_or_url"], e["train_meta"]) for e in evidence
                                 if e["generation_id"] == gen["generation_id"] and e["rank"] is not None]
                    row.update(gen_seeds=seeds, retrieved_urls=retrieved, model=run[0] if run else None,
                               run_id=gen["run_id"], seed=gen["seed"], generated_sha=gen["generated_sha"])
                if hit is not None:
                    distance = {"masked_rmse": hit["masked_rmse"],
                                "aligned": hit.get("aligned_rmse")}.get(match_kind, hit["rmse"])
                    row.update(match_kind=match_kind, match_distance=distance, mse_real_gen=distance * distance,
                               similarity=hit["similarity"], train_image_sha=hit["train_image_sha"],
                               train_image_id=hit["train_image_id"], train_path_or_url=hit["train_path_or_url"])
                    if label == "TV":
                        mask = conn.execute("SELECT id, image_sha, version FROM masks WHERE train_image_id = ? "
                                            "ORDER BY version DESC LIMIT 1", (hit["train_image_id"],)).fetchone()
                        if mask is None and hit["mask_id"] is not None:
                            mask = conn.execute("SELECT id, image_sha, version FROM masks WHERE id = ?",
                                                (hit["mask_id"],)).fetchone()
                        if mask is not None:
                            row.update(mask_sha=mask[1], mask_version=mask[2])
                row["_scores"] = scores
                rows.append(row)
        kind_list = sorted(kinds)
        for row in rows:
            scores = row.pop("_scores")
            for k in kind_list:
                row[f"score_{k}"] = scores.get(k)
            if row["mask_sha"] is not None and (unreadable is None or self.stored_bytes(
                    row["mask_sha"], row["caption_id"], unreadable) is not None):
                row["mask_rle"] = mask_rle(self.load_mask(row["mask_sha"]))
        return rows, kind_list

    def stored_bytes(self, sha: str, caption_id: int, unreadable: list) -> Optional[bytes]:
        """The image file's bytes when present and whole (they hash to its name); else None, with
        a line in ``unreadable`` saying which file and why."""
        try:
            return self.image_bytes(sha)
        except MissingImageError:
            why = "missing"
        except DamagedImageError:
            why = "damaged: its bytes do not hash to its name (truncated or overwritten)"
        except OSError as e:
            why = f"unreadable ({e.strerror or e})"
        entry = {"caption_id": caption_id, "file": str(self.image_path(sha)), "why": why}
        unreadable.extend([entry] if entry not in unreadable else [])
        return None

    def write_zip(self, rows: list[dict], columns: list[str], labels: Sequence[str],
                  unreadable: Optional[list] = None) -> tuple[bytes, tuple]:
        """Hugging Face imagefolder: metadata.jsonl keyed by file_name (the generated image). A row
        whose generated image cannot be read is left out, another unreadable image is left empty;
        both are listed in ``unreadable`` and the manifest."""
        buf = io.BytesIO()
        files: dict[str, str] = {}
        skipped, lines = [], []
        unreadable = [] if unreadable is None else unreadable
        with zipfile.ZipFile(buf, "w") as zf:
            for row in rows:
                if row["generated_sha"] is None:
                    skipped.append(row["caption_id"])
                    continue
                generated = self.stored_bytes(row["generated_sha"], row["caption_id"], unreadable)
                if generated is None:
                    continue
                meta = {"file_name": safe_member_name(f"generated/{row['generated_sha']}.png")}
                zip_add(zf, meta["file_name"], generated, files)
                meta["train_file_name"] = meta["mask_file_name"] = None
                train = row["train_image_sha"] and self.stored_bytes(row["train_image_sha"], row["caption_id"],
                                                                     unreadable)
                if train is not None:
                    meta["train_file_name"] = safe_member_name(f"train/{row['train_image_sha']}.png")
                    zip_add(zf, meta["train_file_name"], train, files)
                if row["mask_sha"] and self.stored_bytes(row["mask_sha"], row["caption_id"], unreadable):
                    png = encode_png(self.load_mask(row["mask_sha"]).astype(np.uint8) * 255)
                    meta["mask_file_name"] = safe_member_name(f"mask/{hashlib.sha256(png).hexdigest()}.png")
                    zip_add(zf, meta["mask_file_name"], png, files)
                meta.update({c: row[c] for c in columns})
                lines.append(json.dumps(meta, ensure_ascii=False, separators=(",", ":"), allow_nan=False))
            zip_add(zf, "metadata.jsonl", "".join(line + "\n" for line in lines).encode("utf-8"), files)
            manifest = {
                "tool": "verbatim", "version": __version__, "layout": "huggingface-imagefolder",
                "rows": len(lines), "labels": list(labels), "columns": ["file_name", "train_file_name",
                                                                      "mask_file_name"] + list(columns),
                "skipped_without_image": skipped, "files": dict(sorted(files.items())),
                "unreadable_images": unreadable,
            }
            zip_add(zf, "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"), {})
        return buf.getvalue(), tuple(skipped)

    def export(self, out: Union[str, Path], fmt: Optional[str] = None,
               labels: Sequence[str] = DEFAULT_LABELS, query: Optional[PageQuery] = None,
               make_parents: bool = False, force: bool = False, raw_csv: bool = False,
               auto: bool = False) -> ExportResult:
        """Write the confirmed set to ``out`` (format from ``fmt`` or the extension), under the
        output rules of store/outputs.py (never inside a store, never over a file unless force).
        CSV cells that a spreadsheet would run as a formula are neutralised unless raw_csv.
        On a read-only store the file is written but not recorded (export_id None)."""
        out = Path(out)
        fmt = _format_for(out, fmt)
        labels = check_labels(labels)
        out = check_output(out, force=force, make_parents=make_parents)
        unreadable: list = []
        rows, kinds = self.collect_rows(labels, query, auto, unreadable=unreadable)
        columns = list(BASE_COLUMNS) + (list(AUTO_COLUMNS) if auto else []) + [f"score_{k}" for k in kinds]
        skipped: tuple = ()
        if fmt == "csv":
            data = write_csv(rows, columns, neutralise=not raw_csv)
        elif fmt == "jsonl":
            data = write_jsonl(rows, columns)
        elif fmt == "parquet":
            data = write_parquet(rows, columns, kinds)
        else:
            data, skipped = self.write_zip(rows, columns, labels, unreadable)
        write_output(out, data)
        sha = hashlib.sha256(data).hexdigest()
        warning = self.empty_export_warning(labels, query, auto) if not rows else None
        return ExportResult(out, fmt, len(rows), sha, self.record_export(fmt, out, labels, query, len(rows), sha),
                            skipped, warning, tuple(unreadable))

    def record_export(self, fmt: str, out: Path, labels: Sequence[str], query: Optional[PageQuery],
                      rows: int, sha: str) -> Optional[int]:
        """The export's row in the store's exports table; None on a read-only store (not recorded)."""
        if self.readonly:
            return None
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO exports (created_at, format, path, labels, query, rows, sha256, tool_version) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (utc_now(), fmt, str(Path(out).resolve()), canonical_json(list(labels)),
                 None if query is None else canonical_json(query.to_json()), rows, sha, __version__))
            return int(cur.lastrowid)

    def empty_export_warning(self, labels: Sequence[str], query: Optional[PageQuery] = None,
                             auto: bool = False) -> str:
        """Why an export holds 0 rows: each active filter and how many captions it leaves on its own."""
        labels = check_labels(labels)
        with self.snapshot() as conn:
            if auto:
                base = {r[0] for r in conn.execute("SELECT caption_id FROM caption_state WHERE n_generations > 0")}
                parts = [f"the store holds {len(base)} candidates"]
            else:
                marks = ", ".join("?" * len(labels))
                base = {r[0] for r in conn.execute(f"SELECT caption_id FROM caption_state WHERE label IN ({marks})",
                                                   labels)}
                parts = [f"the label filter {','.join(labels)} matches {len(base)} captions"]
                if not base:
                    counts = conn.execute("SELECT coalesce(label, 'unlabelled'), count(*) FROM caption_state "
                                          "WHERE n_generations > 0 GROUP BY 1 ORDER BY 1").fetchall()
                    parts[0] += " (candidates by current human label: " +\
                        (", ".join(f"{k} {n}" for k, n in counts) or "none") + ")"
            if query is not None and base:
                for field, name in _FILTERS:
                    value = getattr(query, field)
                    if value is None:
                        continue
                    alone = PageQuery(order_by=query.order_by, **{field: value})
                    left = len(base & set(matching_caption_ids(conn, alone)))
                    parts.append(f"{name.format(_shown(value), order=query.order_by)} leaves {left} of them")
                if len(parts) == 1:
                    left = len(base & set(matching_caption_ids(conn, query)))
                    parts.append(f"the queue's ranking by {query.order_by} (candidates only) leaves {left} of them")
        return "0 rows: " + "; ".join(parts)
