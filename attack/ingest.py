"""Ingest caption lists and training images into a store.

Caption lists: parquet, CSV, JSONL or plain text (one caption a line). The
column layouts of the community's published memorized-prompt lists are
recognised from their headers:
- ``paper``: Webster's public parquet: caption, url, optional overfit_type (MV/RV/TV/N)
- ``wen``: Wen et al.'s JSONL: caption, index, url
- ``nemo``: NeMo's ';'-separated CSV: Caption;URL;type;mean_sscd;max_sscd;Index (type VM->MV, TM->TV)
- ``membench``: MemBench's CSV: prompt, urls (a list written as a string)
- ``generic``: any table with a caption / prompt / text column.
Reference labels from a list are stored as ``captions.reference_label``
(benchmarks only, never shown as a human label); other columns go to ``extra``.

Training images: every image file under a folder, optionally described by an
imagefolder-style metadata file (file_name, caption/text, url).

Everything that can be bad input is checked before anything is written, then
images go to images/ (content-addressed, harmless if left over) and all rows
are written in ONE transaction: an error leaves the store as it was. A corrupt
or truncated image is not an error: it is reported and skipped.
"""
from __future__ import annotations

import ast
import csv
import io
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Optional

from PIL import Image

from store import CaptionRow, IngestError, Store

MAX_CAPTION_CHARS = 10_000
FILE_FORMATS = ("parquet", "jsonl", "csv", "text")
LAYOUT_FORMATS = {"paper": "parquet", "wen": "jsonl", "nemo": "csv", "membench": "csv"}
FORMATS = FILE_FORMATS + tuple(LAYOUT_FORMATS)
EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl", ".csv": "csv", ".tsv": "csv", ".txt": "text"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}
METADATA_NAMES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")

CAPTION_COLUMNS = ("caption", "prompt", "text")
LABEL_COLUMNS = ("overfit_type", "type")
DUP_COLUMNS = ("dup_count", "duplicates", "n_duplicates", "num_duplicates")
# NeMo writes VM/TM; the paper's lists write MV/TV/RV/N
LABEL_MAP = {"MV": "MV", "TV": "TV", "RV": "RV", "N": "N", "VM": "MV", "TM": "TV"}


@dataclass(frozen=True)
class Table:
    """A parsed tabular file: records keyed by original column name."""
    path: Path
    columns: tuple
    records: tuple          # of dict
    locations: tuple        # human description of each record's place: "row 3 (line 4)"


@dataclass(frozen=True)
class ParsedList:
    path: Path
    format: str
    layout: str
    rows: tuple             # of CaptionRow


@dataclass(frozen=True)
class ImageEntry:
    rel_path: str
    abs_path: Path
    caption: Optional[str] = None
    url: Optional[str] = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ImageScan:
    folder: Path
    metadata: Optional[Path]
    entries: tuple          # of ImageEntry


@dataclass(frozen=True)
class IngestReport:
    run_id: int
    caption_rows: int
    captions_added: int
    captions_merged: int
    images_added: int
    images_skipped: int
    corrupt_files: tuple    # of (relative path, reason)
    format: Optional[str] = None
    layout: Optional[str] = None

    def summary(self) -> str:
        return (f"ingest: {self.captions_added} captions added, {self.captions_merged} merged"
                f"{f' ({self.layout} layout, {self.format})' if self.layout else ''}; "
                f"{self.images_added} training images added, "
                f"{self.images_skipped} corrupt image files skipped")


# -- reading files ------------------------------------------------------------------------
def _read_text(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise IngestError(f"{path}: expected a readable file, got {e.strerror or e}") from e
    if not data.strip():
        raise IngestError(f"{path}: expected at least one caption, got an empty file")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise IngestError(f"{path}, line {line}, byte {column} of the line: expected UTF-8 text, "
                          f"got invalid byte 0x{data[e.start]:02x}") from None


def detect_format(path: Path, forced: Optional[str] = None) -> str:
    if forced is not None:
        if forced not in FORMATS:
            raise IngestError(f"--format: expected one of {', '.join(FORMATS)}, got {forced!r}")
        return forced
    fmt = EXTENSIONS.get(path.suffix.lower())
    if fmt is not None:
        return fmt
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError as e:
        raise IngestError(f"{path}: expected a readable file, got {e.strerror or e}") from e
    if head.startswith(b"PAR1"):
        return "parquet"
    if head.lstrip().startswith(b"{"):
        return "jsonl"
    return "text"


def _pick_delimiter(header: str, forced_layout: Optional[str]) -> str:
    if forced_layout == "nemo":
        return ";"
    best, best_n = ",", 0
    for delim in (",", ";", "\t"):
        names = [c.strip().lower() for c in next(csv.reader([header], delimiter=delim))]
        if any(c in names for c in CAPTION_COLUMNS):
            return delim
        if len(names) > best_n:
            best, best_n = delim, len(names)
    return best


def read_csv(path: Path, forced_layout: Optional[str] = None) -> Table:
    text = _read_text(path)
    header_line = text.lstrip("\r\n").splitlines()[0]
    delim = _pick_delimiter(header_line, forced_layout)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    header: Optional[list[str]] = None
    records, locations = [], []
    try:
        for fields in reader:
            if not fields or all(not f.strip() for f in fields):
                continue
            if header is None:
                header = [f.strip() for f in fields]
                continue
            row = len(records) + 1
            if len(fields) != len(header):
                raise IngestError(f"{path}, row {row} (line {reader.line_num}): expected {len(header)} "
                                  f"fields separated by {delim!r}, got {len(fields)}")
            records.append(dict(zip(header, fields)))
            locations.append(f"row {row} (line {reader.line_num})")
    except csv.Error as e:
        raise IngestError(f"{path}, line {reader.line_num}: expected valid CSV, got {e}") from e
    if header is None or not records:
        raise IngestError(f"{path}: expected a header and at least one caption row, got "
                          f"{'only a header' if header else 'an empty file'}")
    return Table(path, tuple(header), tuple(records), tuple(locations))


def read_jsonl(path: Path) -> Table:
    text = _read_text(path)
    stripped = text.lstrip()
    records, locations, columns = [], [], {}
    if stripped.startswith("["):  # a JSON array of objects is accepted too
        try:
            items = json.loads(text)
        except json.JSONDecodeError as e:
            raise IngestError(f"{path}, line {e.lineno}: expected valid JSON, got {e.msg}") from None
        numbered = [(i + 1, None, item) for i, item in enumerate(items)]
    else:
        numbered = []
        for lineno, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as e:
                raise IngestError(f"{path}, row {len(numbered) + 1} (line {lineno}): expected a JSON object, "
                                  f"got invalid JSON ({e.msg})") from None
            numbered.append((len(numbered) + 1, lineno, item))
    for row, lineno, item in numbered:
        where = f"row {row}" + (f" (line {lineno})" if lineno else "")
        if not isinstance(item, dict):
            raise IngestError(f"{path}, {where}: expected a JSON object, got {type(item).__name__}")
        for k in item:
            columns.setdefault(k, None)
        records.append(item)
        locations.append(where)
    if not records:
        raise IngestError(f"{path}: expected at least one caption, got an empty file")
    return Table(path, tuple(columns), tuple(records), tuple(locations))


def read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as e:
        raise IngestError(f"{path}: expected a readable parquet file, got {e}") from None
    if table.num_rows == 0:
        raise IngestError(f"{path}: expected at least one caption, got an empty file (0 rows)")
    records = table.to_pylist()
    return Table(path, tuple(table.column_names), tuple(records),
                 tuple(f"row {i + 1}" for i in range(len(records))))


def read_text_lines(path: Path) -> Table:
    text = _read_text(path)
    records, locations = [], []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.strip():
            records.append({"caption": line})
            locations.append(f"line {lineno}")
    return Table(path, ("caption",), tuple(records), tuple(locations))


def read_table(path: Path, fmt: str) -> Table:
    if not path.is_file():
        raise IngestError(f"{path}: expected a caption file, got {'a directory' if path.is_dir() else 'no such file'}")
    file_fmt = LAYOUT_FORMATS.get(fmt, fmt)
    if file_fmt == "parquet":
        return read_parquet(path)
    if file_fmt == "jsonl":
        return read_jsonl(path)
    if file_fmt == "csv":
        return read_csv(path, forced_layout=fmt if fmt in LAYOUT_FORMATS else None)
    return read_text_lines(path)


# -- interpreting columns ------------------------------------------------------------------------
def _find(columns: Iterable[str], names: Iterable[str]) -> Optional[str]:
    lower = {c.lower().strip(): c for c in columns}
    return next((lower[n] for n in names if n in lower), None)


def detect_layout(table: Table) -> str:
    cols = {c.lower().strip() for c in table.columns}
    if {"caption", "url", "type"} <= cols and cols & {"mean_sscd", "max_sscd"}:
        return "nemo"
    if {"prompt", "urls"} <= cols:
        return "membench"
    if {"caption", "overfit_type"} <= cols:
        return "paper"
    if {"caption", "index", "url"} <= cols:
        return "wen" if table.path.suffix.lower() in (".jsonl", ".ndjson", ".json") else "generic"
    return "generic"


def _json_value(v: Any) -> Any:
    """Parquet cells can be numpy/decimal/bytes/dates: keep JSON-able, stringify the rest."""
    if v is None or isinstance(v, (bool, int, str)):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_json_value(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _json_value(x) for k, x in v.items()}
    return str(v)


def _parse_urls(value: Any, where: str) -> list[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    items = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                try:
                    items = json.loads(text)
                except json.JSONDecodeError:
                    raise IngestError(f"{where}: expected a list of URLs like ['http://...'], "
                                      f"got {text[:80]!r}") from None
        else:
            items = [text]
    if not isinstance(items, (list, tuple)) or not all(isinstance(u, str) for u in items):
        raise IngestError(f"{where}: expected a list of URL strings, got {str(value)[:80]!r}")
    return [u.strip() for u in items if u.strip()]


def _caption_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise IngestError(f"{where}: expected caption text, got {'nothing' if value is None else type(value).__name__}")
    text = value.strip()
    if not text:
        raise IngestError(f"{where}: expected a non-empty caption, got an empty value")
    if len(text) > MAX_CAPTION_CHARS:
        raise IngestError(f"{where}: expected a caption of at most {MAX_CAPTION_CHARS} characters, "
                          f"got {len(text)}")
    return text


def _optional_str(value: Any, where: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestError(f"{where}: expected text, got {type(value).__name__} {value!r}")
    return value.strip() or None


def to_caption_rows(table: Table, layout: str, source: str) -> tuple:
    """Map a table to CaptionRows, validating every cell (errors name file, row, column)."""
    caption_col = _find(table.columns, ("prompt",) if layout == "membench" else CAPTION_COLUMNS)
    if caption_col is None:
        raise IngestError(f"{table.path}, row 1 (header), column caption: expected a caption column "
                          f"(one of {', '.join(CAPTION_COLUMNS)}), got columns {list(table.columns)}")
    url_col = _find(table.columns, ("url",))
    urls_col = _find(table.columns, ("urls",)) if url_col is None else None
    label_col = _find(table.columns, ("type",) if layout == "nemo" else ("overfit_type",))
    dup_col = _find(table.columns, DUP_COLUMNS)
    used = {caption_col, url_col, urls_col, label_col, dup_col}
    rows = []
    for record, loc in zip(table.records, table.locations):
        def where(col: str) -> str:
            return f"{table.path}, {loc}, column {col!r}"
        text = _caption_text(record.get(caption_col), where(caption_col))
        url = _optional_str(record.get(url_col), where(url_col)) if url_col else None
        extra = {k: _json_value(v) for k, v in record.items() if k not in used}
        if urls_col:
            urls = _parse_urls(record.get(urls_col), where(urls_col))
            url = urls[0] if urls else None
            extra[urls_col] = urls
        label = None
        if label_col:
            raw = record.get(label_col)
            raw = raw.strip().upper() if isinstance(raw, str) else raw
            if raw not in (None, ""):
                if raw not in LABEL_MAP:
                    raise IngestError(f"{where(label_col)}: expected one of {', '.join(LABEL_MAP)} "
                                      f"(or empty), got {raw!r}")
                label = LABEL_MAP[raw]
        dup = None
        if dup_col:
            raw = record.get(dup_col)
            if raw not in (None, ""):
                try:
                    dup = int(float(raw)) if not isinstance(raw, bool) else None
                except (TypeError, ValueError):
                    dup = None
                if dup is None or dup < 0:
                    raise IngestError(f"{where(dup_col)}: expected a non-negative integer count, got {raw!r}")
        rows.append(CaptionRow(text=text, url=url, dup_count=dup, reference_label=label,
                               source=source, extra=extra or None))
    return tuple(rows)


def parse_caption_file(path: Path, fmt: Optional[str] = None) -> ParsedList:
    fmt = detect_format(path, fmt)
    table = read_table(path, fmt)
    layout = fmt if fmt in LAYOUT_FORMATS else ("text" if fmt == "text" else detect_layout(table))
    return ParsedList(path, LAYOUT_FORMATS.get(fmt, fmt), layout, to_caption_rows(table, layout, path.name))


# -- training images -------------------------------------------------------------------------------
def _find_metadata(folder: Path, metadata: Optional[Path]) -> Optional[Path]:
    if metadata is not None:
        if not metadata.is_file():
            raise IngestError(f"--metadata {metadata}: expected a metadata file, got no such file")
        return metadata
    found = [folder / n for n in METADATA_NAMES if (folder / n).is_file()]
    if len(found) > 1:
        raise IngestError(f"{folder}: expected at most one metadata file, got {[p.name for p in found]}; "
                          f"choose one with --metadata")
    return found[0] if found else None


def _inside(folder: Path, rel: str) -> Optional[Path]:
    """The file a metadata row names, if it stays inside the folder."""
    if not rel or os.path.isabs(rel):
        return None
    target = (folder / rel).resolve()
    root = folder.resolve()
    return target if target == root or root in target.parents else None


def scan_images(folder: Path, metadata: Optional[Path] = None) -> ImageScan:
    """List image files and join them with metadata rows; no image is decoded here."""
    if not folder.is_dir():
        raise IngestError(f"--images {folder}: expected a folder of images, got "
                          f"{'a file' if folder.exists() else 'no such folder'}")
    meta_path = _find_metadata(folder, metadata)
    described: dict[Path, dict] = {}
    if meta_path is not None:
        fmt = detect_format(meta_path)
        if fmt == "text":
            raise IngestError(f"{meta_path}: expected metadata as JSONL, CSV or parquet, got plain text")
        table = read_table(meta_path, fmt)
        name_col = _find(table.columns, ("file_name",))
        if name_col is None:
            raise IngestError(f"{meta_path}, row 1 (header), column file_name: expected a file_name column, "
                              f"got columns {list(table.columns)}")
        caption_col = _find(table.columns, CAPTION_COLUMNS)
        url_col = _find(table.columns, ("url",))
        for record, loc in zip(table.records, table.locations):
            def where(col: str) -> str:
                return f"{meta_path}, {loc}, column {col!r}"
            rel = record.get(name_col)
            target = _inside(folder, rel) if isinstance(rel, str) else None
            if target is None:
                raise IngestError(f"{where(name_col)}: expected a relative path inside {folder}, got {rel!r}")
            if not target.is_file():
                raise IngestError(f"{where(name_col)}: expected an existing image file, got no file {rel!r}")
            if target in described:
                raise IngestError(f"{where(name_col)}: expected each file once, got {rel!r} again")
            caption = record.get(caption_col) if caption_col else None
            described[target] = {
                "caption": None if caption in (None, "") else _caption_text(caption, where(caption_col)),
                "url": _optional_str(record.get(url_col), where(url_col)) if url_col else None,
                "meta": {k: _json_value(v) for k, v in record.items() if k not in (name_col, caption_col, url_col)},
            }
    root = folder.resolve()
    files = set(described)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            p = Path(dirpath) / name
            if not name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS:
                files.add(p)
    if meta_path is not None:
        files.discard(meta_path.resolve())
    if not files:
        raise IngestError(f"--images {folder}: expected at least one image file "
                          f"({', '.join(sorted(IMAGE_EXTENSIONS))}), got none")
    entries = []
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        d = described.get(p, {})
        entries.append(ImageEntry(p.relative_to(root).as_posix(), p, d.get("caption"), d.get("url"),
                                  d.get("meta", {})))
    return ImageScan(folder, meta_path, tuple(entries))


def decode_image(path: Path) -> Image.Image:
    """Fully decode (a truncated file fails here, not later); raises on any problem."""
    with Image.open(path) as im:
        im.load()
        return im.convert("RGB")


# -- the whole ingest -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedIngest:
    """Validated input, nothing written yet (the store need not exist)."""
    file: Optional[Path]
    parsed: Optional[ParsedList]
    scan: Optional[ImageScan]


def prepare_ingest(file: Optional[Path] = None, images: Optional[Path] = None,
                   metadata: Optional[Path] = None, fmt: Optional[str] = None) -> PreparedIngest:
    """Parse and check every input; raises IngestError naming file, row and column."""
    if file is None and images is None:
        raise IngestError("ingest: expected a caption FILE and/or --images DIR, got neither")
    if metadata is not None and images is None:
        raise IngestError("ingest: expected --images DIR with --metadata, got --metadata alone")
    parsed = parse_caption_file(Path(file), fmt) if file is not None else None
    scan = scan_images(Path(images), Path(metadata) if metadata else None) if images is not None else None
    return PreparedIngest(None if file is None else Path(file), parsed, scan)


def apply_ingest(store: Store, prepared: PreparedIngest, warn=lambda msg: None) -> IngestReport:
    """Write image files (skipping corrupt ones), then every row in one transaction."""
    parsed, scan = prepared.parsed, prepared.scan
    decoded: list[tuple[ImageEntry, str, tuple]] = []
    corrupt: list[tuple[str, str]] = []
    for entry in scan.entries if scan else ():
        try:
            img = decode_image(entry.abs_path)
        except Exception as e:  # PIL raises many types for bad files: all mean "skip it"
            reason = f"{type(e).__name__}: {e}"
            corrupt.append((entry.rel_path, reason))
            warn(f"skipped corrupt image {entry.rel_path} ({reason})")
            continue
        decoded.append((entry, store.put_image(img), img.size))

    params = {"file": None if prepared.file is None else str(prepared.file),
              "format": parsed.format if parsed else None, "layout": parsed.layout if parsed else None,
              "images": None if scan is None else str(scan.folder),
              "metadata": None if scan is None or scan.metadata is None else str(scan.metadata)}
    caption_rows = list(parsed.rows) if parsed else []
    image_captions = [CaptionRow(e.caption, url=e.url, source=scan.metadata.name)
                      for e, _, _ in decoded if e.caption is not None]
    with store.transaction() as conn:
        run_id = store.start_run("ingest", "", params)
        n_captions_before = conn.execute("SELECT count(*) FROM captions").fetchone()[0]
        n_images_before = conn.execute("SELECT count(*) FROM training_images").fetchone()[0]
        store.add_captions(caption_rows)
        ids = iter(store.add_captions(image_captions))
        for entry, sha, size in decoded:
            meta = dict(entry.meta, url=entry.url, width=size[0], height=size[1])
            store.add_training_image(sha, next(ids) if entry.caption is not None else None,
                                     entry.rel_path, {k: v for k, v in meta.items() if v is not None})
        added = conn.execute("SELECT count(*) FROM captions").fetchone()[0] - n_captions_before
        images_added = conn.execute("SELECT count(*) FROM training_images").fetchone()[0] - n_images_before
        store.finish_run(run_id, evals=0)
    n_rows = len(caption_rows) + len(image_captions)
    return IngestReport(run_id=run_id, caption_rows=n_rows, captions_added=added, captions_merged=n_rows - added,
                        images_added=images_added, images_skipped=len(corrupt), corrupt_files=tuple(corrupt),
                        format=parsed.format if parsed else None, layout=parsed.layout if parsed else None)


def ingest(store: Store, file: Optional[Path] = None, images: Optional[Path] = None,
           metadata: Optional[Path] = None, fmt: Optional[str] = None,
           warn=lambda msg: None) -> IngestReport:
    """Validate everything, write image files, then all rows in one transaction."""
    return apply_ingest(store, prepare_ingest(file, images, metadata, fmt), warn)
