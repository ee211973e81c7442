"""The evidence export: a zip that opens offline in a browser, one self-contained HTML page per
confirmed copy plus index.html, for readers who are not researchers (counsel).

Each page is drawn from the review app's candidate view model (review/candidate.py), so the match
it shows is the one the reviewer saw: one rule. Images are copied next to the pages under readable
names and referenced by relative paths; verbatims.csv is the CSV export's columns plus the paths
of those files; manifest.json lists every file's sha256 (the zip export's convention). Every text
from the store goes through render.esc. The layout is deterministic: no wall clock in it.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np

from store import DamagedImageError, ExportError, MissingImageError, PageQuery, Store
from store.export import (
    BASE_COLUMNS,
    DEFAULT_LABELS,
    ExportResult,
    check_labels,
    write_csv,
    zip_add,
)
from store.images import encode_png
from store.outputs import check_output, write_output
from store.version import __version__

from .candidate import CandidateData, candidate_data
from .render import LABEL_TITLES, esc, fmt, tile_size, url_html

FORMAT = "evidence"
PATH_COLUMNS = ("page", "generated_file", "train_file", "mask_file", "generation_files", "own_files",
                "match_generation_file", "match_train_file", "difference_file")
STYLE = """body{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:1180px;color:#111}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}
figure{display:inline-block;margin:0 12px 12px 0;vertical-align:top}figcaption{font-size:13px;color:#333}
img{image-rendering:pixelated;border:1px solid #999;background:#eee}.caption{font-size:18px;white-space:pre-wrap}
.undo{color:#8a4b00}.warn{background:#fff3cd;padding:8px;border:1px solid #e0c060}"""


@dataclass(frozen=True)
class EvidenceFile:
    name: str              # relative to the export root
    data: bytes
    size: tuple[int, int]  # pixels (width, height)


class _Files:
    """One row's files: each written once under a readable name, found again by content."""

    def __init__(self, folder: str):
        self.folder = folder
        self.files: dict[str, EvidenceFile] = {}
        self.by_sha: dict[str, str] = {}

    def add(self, name: str, data: bytes, size: tuple[int, int]) -> str:
        path, stem, n = f"{self.folder}/{name}", name.rsplit(".", 1), 1
        while path in self.files and self.files[path].data != data:   # another picture under that name
            n += 1
            path = f"{self.folder}/{stem[0]}-{n}.{stem[1]}"
        self.files.setdefault(path, EvidenceFile(path, data, size))
        self.by_sha.setdefault(hashlib.sha256(data).hexdigest(), path)
        return path

    def store_image(self, store: Store, sha: str, name: str) -> str:
        return self.add(name, store.image_bytes(sha), store.image_size(sha))   # present and whole

    def array(self, arr: np.ndarray, name: str) -> str:
        return self.add(name, encode_png(arr), (arr.shape[1], arr.shape[0]))


def slug(text: str, limit: int = 40) -> str:
    """A readable, file-name-safe piece of a caption (lower-case words joined by '-')."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:limit].strip("-")
    return s or "caption"


def _mask_png(store: Store, sha: str) -> np.ndarray:
    return store.load_mask(sha).astype(np.uint8) * 255


def _generation_names(data: CandidateData) -> dict[int, str]:
    """generation id -> file name: by seed, with the run when two runs share a seed."""
    seeds = [g.generation.seed for g in data.generations]
    return {g.generation.id: (f"generation-seed-{g.generation.seed}.png" if seeds.count(g.generation.seed) == 1
                              else f"generation-run-{g.generation.run_id}-seed-{g.generation.seed}.png")
            for g in data.generations}


def _row_files(store: Store, row: dict, data: CandidateData, files: _Files) -> dict:
    """Copy the page's pictures (and any the CSV row names by hash) into the row's folder;
    returns the path columns."""
    names = _generation_names(data)
    gens = {g.generation.id: files.store_image(store, g.generation.image_sha, names[g.generation.id])
            for g in data.generations}
    own = [files.store_image(store, o.train.sha256, f"own-training-image-{o.train.id}.png") for o in data.own]
    out = dict.fromkeys(PATH_COLUMNS)
    out.update(generation_files=list(gens.values()), own_files=own)
    m = data.match
    if m is not None:
        out["match_generation_file"] = gens.get(m.generation.id)
        out["match_train_file"] = files.store_image(store, m.train.sha256, f"match-training-image-{m.train.id}.png")
        out["difference_file"] = files.array(m.heatmap, "difference.png")
        if m.mask is not None:
            out["mask_file"] = files.array(_mask_png(store, m.mask.image_sha), f"mask-v{m.mask.version}.png")
        if m.overlay is not None:
            files.array(m.overlay, "mask-over-match.png")
    # the CSV's hash columns (store/export.py's pick for the human label) each get a file too
    if row["generated_sha"] is not None:
        out["generated_file"] = files.by_sha.get(row["generated_sha"]) or files.store_image(
            store, row["generated_sha"], f"generation-seed-{row['seed']}.png")
    if row["train_image_sha"] is not None:
        out["train_file"] = files.by_sha.get(row["train_image_sha"]) or files.store_image(
            store, row["train_image_sha"], f"training-image-{row['train_image_id']}.png")
    if row["mask_sha"] is not None:
        png = _mask_png(store, row["mask_sha"])
        out["mask_file"] = files.by_sha.get(hashlib.sha256(encode_png(png)).hexdigest()) or files.array(
            png, f"mask-v{row['mask_version']}-training-image-{row['train_image_id']}.png")
    return out


# -- HTML ---------------------------------------------------------------------------------------------------------
def _img(files: _Files, path: Optional[str], role: str, alt: str, lines: Sequence[str], root: str = "") -> str:
    """A figure for a file of the row (``lines`` are already-safe HTML)."""
    if path is None or path not in files.files:
        return ""
    w, h = tile_size(*files.files[path].size, 192)
    cap = "".join(f"<div>{line}</div>" for line in lines)
    return (f'<figure data-role="{esc(role)}"><img src="{esc(root + path)}" width="{w}" height="{h}" '
            f'alt="{esc(alt)}"><figcaption>{cap}<div><a href="{esc(root + path)}">{esc(path)}</a></div>'
            f'</figcaption></figure>')


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers) if any(headers) else ""
    body = "".join("<tr" + (f' class="{cls}"' if cls else "") + ">" + "".join(f"<td>{c}</td>" for c in r) + "</tr>"
                   for r in rows)
    return f"<table>{f'<thead><tr>{head}</tr></thead>' if head else ''}<tbody>{body}</tbody></table>"


def _label(label: Optional[str]) -> str:
    return "unlabelled" if label is None else f"{esc(label)} ({esc(LABEL_TITLES.get(label, label))})"


def _decision(row: dict, data: CandidateData) -> str:
    auto = data.auto
    rows = [["human label", _label(row["overfit_type"])], ["reviewer", esc(row["reviewer"])],
            ["labelled at (UTC)", esc(row["labelled_at"])], ["note", esc(row["note"]) or "–"],
            ["automatic label", "none" if auto is None else _label(auto.label)]]
    if auto is not None:
        d, thr = auto.distances, auto.distances.get("thresholds") or {}
        rows += [[f"{k.upper()} distance", f"{fmt(d.get(k))} (δ {fmt(thr.get(k))})"] for k in ("tv", "mv", "rv")]
        rows.append(["flags", esc(", ".join(auto.flags)) or "none"])
    return _table(["", ""], rows) + "".join(f"<p>{esc(s)}</p>" for s in data.explanation)


def _match_html(data: CandidateData, files: _Files, paths: dict) -> str:
    m = data.match
    if m is None:
        return "<p>No stored pair to show.</p>"
    head = (f"<p>The automatic label rests on <b>{esc(m.kind)}</b>: generation seed {m.generation.seed} against "
            f"training image {m.train.id} ({'the caption’s own' if m.own else 'another caption’s'}), "
            f"{esc(m.distance_name)} {fmt(m.distance)}.</p>")
    figs = [_img(files, paths["match_generation_file"], "match-generation", "matched generation",
                 [f"generation seed {m.generation.seed}"]),
            _img(files, paths["match_train_file"], "match", "matched training image",
                 [f"training image {m.train.id}", esc(m.train.path_or_url)]),
            _img(files, paths["difference_file"], "difference", "absolute difference",
                 ["|generation − training image| (brighter = more different)"])]
    if m.mask is not None:
        mask_path = f"{files.folder}/mask-v{m.mask.version}.png"
        figs.append(_img(files, mask_path, "mask", "template mask",
                         [f"template mask v{m.mask.version} ({esc(m.mask.source)}), keeps {fmt(m.kept, 2)}"]))
        figs.append(_img(files, f"{files.folder}/mask-over-match.png", "mask-overlay", "mask over the match",
                         ["the mask over the matched image"]))
    return head + "".join(figs)


def _history(data: CandidateData) -> str:
    rows = [[str(e.id), esc(e.created_at), (_label(e.label) if e.undoes is None else
             f"undo of entry {e.undoes} (back to {_label(e.label)})") + (" · adjudication" if e.role else ""),
             esc(e.reviewer), esc(e.note) or "–", esc(e.batch) or "–"] for e in data.history]
    return _table(["entry", "time (UTC)", "label", "reviewer", "note", "bulk batch"], rows, "history")


def _reviews(row: dict) -> str:
    """Each reviewer's own label in force and the adjudication (the export's review columns)."""
    rows = [[esc(r["reviewer"]), _label(r["label"]), esc(r["labelled_at"]), esc(r["note"]) or "–"]
            for r in row["reviews"]]
    if row["adjudication"]:
        a = row["adjudication"]
        rows.append([f"{esc(a['reviewer'])} (adjudicator: final)", _label(a["label"]), esc(a["labelled_at"]),
                     esc(a["note"]) or "–"])
    state = f"<p>Blind review: {esc(row['review_state'])}.</p>" if row["review_state"] else ""
    return state + _table(["reviewer", "their label", "time (UTC)", "note"], rows, "reviews")


def page_html(row: dict, data: CandidateData, files: _Files, paths: dict) -> str:
    """One copy's evidence page; image paths are relative to the export root (the page lives there)."""
    cap = data.caption
    gens = [_img(files, p, "generation", f"generation seed {g.generation.seed}",
                 [f"seed {g.generation.seed}, run {g.generation.run_id}",
                  f"RMSE to own image {fmt(g.rmse_own)}" + (" · the match" if g.in_match else "")])
            for g, p in zip(data.generations, paths["generation_files"])]
    own = [_img(files, p, "own", f"own training image {o.train.id}", [f"training image {o.train.id}",
                                                                       esc(o.train.path_or_url)])
           for o, p in zip(data.own, paths["own_files"])]
    scores = _table(["score", "value", "rank"], [[esc(s.kind), fmt(s.value), f"{s.rank} of {s.total}"]
                                                 for s in data.scores])
    body = (f"<p><a href='index.html'>← all confirmed copies</a></p><h1>Caption {cap.id}: "
            f"{_label(row['overfit_type'])}</h1><p class='caption'>{esc(cap.text)}</p>"
            f"<p>Source URL: {url_html(cap.url) or '–'} · duplicates in the training set: {esc(cap.dup_count)}</p>"
            f"<h2>Decision</h2>{_decision(row, data)}<h2>Each reviewer’s label</h2>{_reviews(row)}"
            f"<h2>The match</h2>{_match_html(data, files, paths)}"
            f"<h2>All {len(gens)} generations of this caption</h2>{''.join(gens) or '<p>none stored</p>'}"
            f"<h2>The caption’s own training image(s)</h2>{''.join(own) or '<p>none stored</p>'}"
            f"<h2>Scores</h2>{scores}<h2>Label history (oldest first, undos included)</h2>{_history(data)}")
    return _document(f"Caption {cap.id} evidence", body)


def _document(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
            f'<meta http-equiv="Content-Security-Policy" content="script-src \'none\'; object-src \'none\'">'
            f'<style>{STYLE}</style></head><body>{body}</body></html>\n')


def index_html(entries: Sequence[tuple[str, dict, CandidateData]], labels: Sequence[str], warning: Optional[str],
               query: Optional[PageQuery], unreadable: Sequence[dict] = ()) -> str:
    rows = [[f"<a href='{esc(page)}'>{row['caption_id']}</a>", esc(row["caption"]), _label(row["overfit_type"]),
             "–" if d.auto is None else esc(d.auto.label),
             "–" if d.match is None else f"{esc(d.match.kind)} {fmt(d.match.distance)}", esc(row["reviewer"]),
             esc(row["labelled_at"])] for page, row, d in entries]
    where = "" if query is None else f"<p>Filter: <code>{esc(json.dumps(query.to_json(), sort_keys=True))}</code></p>"
    warn = f"<p class='warn'>{esc(warning)}</p>" if warning else ""
    warn += "".join(f"<p class='warn'>Caption {u['caption_id']}: no page, a stored image could not be read "
                    f"({esc(u['file'])}: {esc(u['why'])}).</p>" for u in unreadable)
    body = (f"<h1>Confirmed copies: {len(rows)}</h1><p>Captions whose current human label is "
            f"{esc(', '.join(labels))}. Each page shows every generation, the caption’s own training image, the "
            f"match, the mask and difference, the scores and the full label history. manifest.json lists the "
            f"sha256 of every file; verbatims.csv holds the same rows as a table.</p>{where}{warn}"
            + _table(["caption", "text", "human label", "automatic label", "match", "reviewer", "labelled at"], rows))
    return _document("Verbatim evidence", body)


# -- the export ---------------------------------------------------------------------------------------------------
def build_evidence(store: Store, labels: Sequence[str] = DEFAULT_LABELS,
                   query: Optional[PageQuery] = None) -> tuple[bytes, list, Optional[str], list]:
    """(zip bytes, rows written, warning, unreadable) of the evidence export. A row whose pictures
    cannot all be read (a missing or damaged stored image) gets no page: it is listed in
    ``unreadable`` (caption id, file, why), the manifest and the index, and the rest is exported."""
    labels = check_labels(labels)
    unreadable: list = []
    rows, kinds = store.collect_rows(labels, query, unreadable=unreadable)
    entries, all_files, kept = [], {}, []
    for row in rows:
        try:
            data = candidate_data(store, row["caption_id"])
            files = _Files(f"{row['caption_id']:04d}-{slug(row['caption'] or '')}")
            paths = _row_files(store, row, data, files)
        except (MissingImageError, DamagedImageError) as e:
            why = str(e).removeprefix(f"{e.path}: ")
            unreadable.append({"caption_id": row["caption_id"], "file": str(e.path), "why": f"{why} (no page made)"})
            continue
        paths["page"] = f"{files.folder}.html"
        row.update(paths)
        all_files.update(files.files)
        all_files[paths["page"]] = EvidenceFile(paths["page"], page_html(row, data, files, paths).encode(), (0, 0))
        entries.append((paths["page"], row, data))
        kept.append(row)
    warning = None if rows else store.empty_export_warning(labels, query)
    columns = list(BASE_COLUMNS) + [f"score_{k}" for k in kinds] + list(PATH_COLUMNS)
    all_files["index.html"] = EvidenceFile("index.html", index_html(entries, labels, warning, query, unreadable)
                                           .encode(), (0, 0))
    all_files["verbatims.csv"] = EvidenceFile("verbatims.csv", write_csv(kept, columns), (0, 0))
    return _zip(all_files, len(kept), labels, columns, unreadable), kept, warning, unreadable


def _zip(files: dict[str, EvidenceFile], rows: int, labels: Sequence[str], columns: Sequence[str],
         unreadable: list) -> bytes:
    buf, hashes = io.BytesIO(), {}
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(files):
            zip_add(zf, name, files[name].data, hashes)
        manifest = {"tool": "verbatim", "version": __version__, "layout": "evidence-html", "rows": rows,
                    "labels": list(labels), "columns": list(columns), "files": dict(sorted(hashes.items())),
                    "unreadable_images": unreadable}
        zip_add(zf, "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"), {})
    return buf.getvalue()


def export_evidence(store: Store, out: Union[str, Path], labels: Sequence[str] = DEFAULT_LABELS,
                    query: Optional[PageQuery] = None, make_parents: bool = False,
                    force: bool = False) -> ExportResult:
    """Write the evidence zip to ``out`` under store/outputs.py's rules and record it in the store."""
    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise ExportError(f"{out}: expected a .zip file for the evidence export, got {out.suffix or 'no extension'}")
    labels = check_labels(labels)
    out = check_output(out, force=force, make_parents=make_parents)
    data, kept, warning, unreadable = build_evidence(store, labels, query)
    write_output(out, data)
    sha = hashlib.sha256(data).hexdigest()
    n = len(kept)
    return ExportResult(out, FORMAT, n, sha, store.record_export(FORMAT, out, labels, query, n, sha), (), warning,
                        tuple(unreadable))
