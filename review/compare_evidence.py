"""The evidence zip of a comparison (attack/compare.py): one self-contained HTML page per caption
with both models' generations side by side, each side's labels and the training images they rest
on, plus index.html (counts, both precision-vs-found curves, every row), rows.csv (the CSV
export's columns and each page's path) and manifest.json (every file's sha256). Human labels
are as they are at export time (a confirmed carry-over included); a carry-over still only
proposed is shown as a proposal. Opens offline; no script; every store text goes through esc.
"""
from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Union

from attack.carry import proposals
from attack.compare import CompareResult, CompareRow, Side, curves_svg, export_rows, with_human_labels
from store import Store
from store.export import write_csv, zip_add
from store.outputs import check_output, write_output
from store.version import __version__

from .compare_view import runs_of
from .evidence import EvidenceFile, _document, _Files, _table, slug
from .render import esc, fmt


def _side_table(row: CompareRow, models: tuple[str, str]) -> str:
    def cells(s: Side) -> list[str]:
        human = "–" if s.human_label is None else f"{esc(s.human_label)}" + (f" by {esc(s.human_by)}" if s.human_by
                                                                              else "")
        return [esc(s.label or "–"), esc(s.auto_label or "–"), human,
                "–" if s.distance is None else f"{fmt(s.distance)} ({esc(s.evidence_kind or 'nearest')})",
                "–" if s.score is None else fmt(s.score), "–" if s.rank is None else str(s.rank),
                esc(", ".join(s.flags)) or "–"]
    rows = [[f"<b>{n}</b> <code>{esc(m)}</code>"] + cells(s) for n, m, s in zip("AB", models, (row.a, row.b))]
    return _table(["model", "label", "automatic", "human", "distance", "score", "rank", "flags"], rows)


def _figure(path: str, caption: str) -> str:
    return f'<figure><img src="{esc(path)}" alt="{esc(caption)}"><figcaption>{esc(caption)}</figcaption></figure>'


def _page(store: Store, result: CompareResult, row: CompareRow, runs, files: _Files, carried: dict) -> str:
    parts = [f"<p><a href='index.html'>all captions</a></p><h1>Caption {row.caption_id}: {esc(row.outcome)}</h1>"
             f"<p class='caption'>{esc(row.caption)}</p>", _side_table(row, result.models)]
    if row.caption_id in carried:
        p = carried[row.caption_id]
        parts.append(f"<p class='warn'>Proposed for B, not confirmed: {esc(p.label)}, {esc(p.evidence)}.</p>")
    for name, side_runs, side in zip("AB", runs, (row.a, row.b)):
        with store.only_runs(side_runs):
            gens = store.generations(row.caption_id)
        figs = [_figure(files.store_image(store, g.image_sha, f"{name.lower()}-seed-{g.seed}-{g.id}.png"),
                        f"{name} seed {g.seed}" + (" (the pair the label rests on)" if g.id == side.generation_id
                                                   else "")) for g in gens]
        parts.append(f"<h2>{name}: {esc(result.models['AB'.index(name)])}</h2>{''.join(figs)}")
    tids = sorted({t for t in (row.a.train_image_id, row.b.train_image_id) if t is not None})
    figs = []
    for t in tids:
        img = store.get_training_image(t)
        who = " and ".join(n for n, s in zip("AB", (row.a, row.b)) if s.train_image_id == t)
        figs.append(_figure(files.store_image(store, img.sha256, f"training-{t}.png"),
                            f"training image {t} ({img.path_or_url or 'no path'}): {who}'s match"))
    parts.append(f"<h2>Training images</h2>{''.join(figs) or '<p>none</p>'}")
    return _document(f"Caption {row.caption_id}: {row.outcome}", "".join(parts))


def _index(result: CompareResult, pages: dict[int, str]) -> str:
    c = result.counts()
    rows = [[f"<a href='{esc(pages[r.caption_id])}'>{r.caption_id}</a>", esc(r.caption), esc(r.outcome),
             esc(r.a.label or "–"), esc(r.b.label or "–")] for r in result.rows]
    a, b = result.models
    body = (f"<h1>Before and after: compare run {result.run_id}</h1><p><b>A</b> <code>{esc(a)}</code> · <b>B</b> "
            f"<code>{esc(b)}</code> · ranked by {esc(result.params.by)}</p><p>"
            + " · ".join(f"{o}: <b>{n}</b>" for o, n in c.items())
            + "</p><p>Each page shows every generation of the caption under both models and the training "
              "images their labels rest on. Human labels as at export; manifest.json lists the sha256 of "
              "every file; rows.csv holds the same rows as a table.</p>" + curves_svg(result)
            + _table(["caption", "text", "outcome", "A", "B"], rows))
    return _document(f"Compare run {result.run_id}", body)


def build_compare_evidence(store: Store, result: CompareResult) -> bytes:
    """The comparison's evidence zip (bytes), human labels as they are now."""
    result = with_human_labels(store, result)
    carried = {p.caption_id: p for p in proposals(store, result)}
    runs, out, pages = runs_of(store, result), {}, {}
    for row in result.rows:
        files = _Files(f"{row.caption_id:04d}-{slug(row.caption)}")
        page = f"{files.folder}.html"
        html = _page(store, result, row, runs, files, carried)
        out.update(files.files)
        out[page] = EvidenceFile(page, html.encode("utf-8"), (0, 0))
        pages[row.caption_id] = page
    table = [dict(r, page=pages[r["caption_id"]]) for r in export_rows(result)]
    columns = list(table[0]) if table else ["caption_id", "page"]
    out["index.html"] = EvidenceFile("index.html", _index(result, pages).encode("utf-8"), (0, 0))
    out["rows.csv"] = EvidenceFile("rows.csv", write_csv(table, columns), (0, 0))
    buf, hashes = io.BytesIO(), {}
    with zipfile.ZipFile(buf, "w") as zf:
        for name in sorted(out):
            zip_add(zf, name, out[name].data, hashes)
        manifest = {"tool": "verbatim", "version": __version__, "layout": "compare-evidence-html",
                    "compare_run": result.run_id, "models": list(result.models),
                    "fingerprints": list(result.fingerprints), "outcomes": result.counts(), "rows": len(result.rows),
                    "files": dict(sorted(hashes.items()))}
        zip_add(zf, "manifest.json", (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode("utf-8"), {})
    return buf.getvalue()


def write_compare_evidence(store: Store, result: CompareResult, out: Union[str, Path], force: bool = False) -> int:
    """Write the evidence zip to `out` (.zip) under the store's output rules; returns its pages."""
    from attack.compare import CompareInputError

    out = Path(out)
    if out.suffix.lower() != ".zip":
        raise CompareInputError(f"{out}: expected a .zip file for the comparison's evidence, got "
                                f"{out.suffix or 'no suffix'}")
    write_output(check_output(out, force=force), build_compare_evidence(store, result))
    return len(result.rows)
