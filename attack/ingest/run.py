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
or truncated image is not an error: it is reported and skipped. The command
line streams a caption list (CaptionStream): its structure is checked by a first
pass that keeps no row, its cells batch by batch inside that one transaction.
"""
from __future__ import annotations

import ast
import codecs
import csv
import hashlib
import io
import itertools
import json
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator, Sequence
from typing import Any, Iterable, Optional

from PIL import Image

from store import CaptionRow, IngestError, Store, StoreError
from store.canon import unicode_text as store_text

from attack.paths import display_path, inside, resolve_inside, walk_files
from attack.progress import no_progress

MAX_CAPTION_CHARS = 10_000
MAX_NESTING = 32          # extra columns: deeper JSON is refused (no real list nests so deep)
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
    delimiter: Optional[str] = None


@dataclass(frozen=True)
class ParsedList:
    path: Path
    format: str
    layout: str
    rows: tuple             # of CaptionRow
    roles: tuple = ()       # (role, column) pairs: which column went where
    extra_columns: tuple = ()   # columns kept in each caption's extra
    delimiter: Optional[str] = None   # for CSV
    sniffed: bool = False   # read as CSV although its name said text (a header line was recognised)
    sha256: str = ""        # of the file's bytes: the same content is ingested once

    def recognised(self) -> list[str]:
        """What ingest understood of the file, in words (printed before it writes)."""
        return _recognised(self.path, self.layout, self.format, self.delimiter, len(self.rows), self.sniffed,
                           self.roles, Counter(r.reference_label for r in self.rows if r.reference_label),
                           self.extra_columns)


def _recognised(path: Path, layout: str, fmt: str, delimiter: Optional[str], n_rows: int, sniffed: bool,
                roles: tuple, labels: Counter, extra_columns: tuple, batch_rows: int = 0) -> list[str]:
    """The lines ingest prints about a caption list before it writes; batch_rows: read in batches."""
    how = fmt + (f", {delimiter!r}-separated" if delimiter else "")
    batched = f"read in batches of {batch_rows}" if batch_rows else ""
    if batched and not delimiter:
        how, batched = f"{how}, {batched}", ""
    lines = [f"recognised {path.name}: {layout} layout ({how}), {n_rows} caption rows"
             + (f", {batched}" if batched else "") + (" (read as CSV: its first line is a header)" if sniffed else "")]
    if roles:
        lines.append("  columns: " + ", ".join(f"{role} <- {col!r}" for role, col in roles))
    if labels:
        lines.append("  reference labels kept (benchmarks only, never shown as human labels): "
                     + ", ".join(f"{k} {v}" for k, v in sorted(labels.items())))
    if extra_columns:
        lines.append("  kept as extra: " + ", ".join(repr(c) for c in extra_columns))
    return lines


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
    skipped: tuple = ()     # (relative path, why): files under the folder that are not read


@dataclass(frozen=True)
class IngestReport:
    run_id: Optional[int]   # None: nothing new to ingest (the same content was ingested before)
    caption_rows: int
    captions_added: int
    captions_merged: int
    images_added: int
    images_skipped: int
    corrupt_files: tuple    # of (relative path, reason)
    format: Optional[str] = None
    layout: Optional[str] = None
    not_read: tuple = ()    # (relative path, why): files under --images that were not read
    already: tuple = ()     # (what, run id): parts skipped because that run ingested the same content

    def summary(self) -> str:
        not_read = f", {len(self.not_read)} files not read (outside the folder or not regular files)" \
            if self.not_read else ""
        again = "".join(f"; {what} already ingested by run {run} (same content): skipped" for what, run in self.already)
        return (f"ingest: {self.captions_added} captions added, {self.captions_merged} merged"
                f"{f' ({self.layout} layout, {self.format})' if self.layout else ''}; "
                f"{self.images_added} training images added, "
                f"{self.images_skipped} corrupt image files skipped{not_read}{again}")


# -- reading files ------------------------------------------------------------------------
# CSV, JSONL and text lists are read as streams of lines (never the whole text at once): a
# 2 M-row list ingests in bounded memory; Table (whole-file) is those records collected.
def _check_nonblank(path: Path) -> None:
    """An IngestError unless the file holds more than ASCII whitespace (stops at the first text)."""
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 16), b""):
                if block.strip():
                    return
    except OSError as e:
        raise IngestError(f"{path}: expected a readable file, got {e.strerror or e}") from e
    raise IngestError(f"{path}: expected at least one caption, got an empty file")


def _decode_error(path: Path) -> IngestError:
    """Where the file first stops being UTF-8 (line, byte of the line, the byte), found by a binary
    re-read once a streamed decode failed: UTF-8 never splits a character at a newline byte."""
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            start = len(codecs.BOM_UTF8) if lineno == 1 and line.startswith(codecs.BOM_UTF8) else 0
            try:
                line[start:].decode("utf-8")
            except UnicodeDecodeError as e:
                at = start + e.start
                return IngestError(f"{path}, line {lineno}, byte {at + 1} of the line: expected UTF-8 text, "
                                   f"got invalid byte 0x{line[at]:02x}")
    return IngestError(f"{path}: expected UTF-8 text, got bytes that do not decode")


def _read_text(path: Path) -> str:
    """The whole file as text (a JSON array is parsed whole); same checks as _text_lines."""
    _check_nonblank(path)
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _decode_error(path) from None
    except OSError as e:
        raise IngestError(f"{path}: expected a readable file, got {e.strerror or e}") from e


def _text_lines(path: Path) -> Iterator[str]:
    """The file's lines, streamed: UTF-8 with a leading BOM dropped, ends kept, split at \\r, \\n and
    \\r\\n (newline="", what csv expects and what io.StringIO(text, newline="") splits)."""
    with open(path, "rb") as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")
        try:
            yield from text
        except UnicodeDecodeError:
            raise _decode_error(path) from None


def _numbered_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) as str.splitlines() numbers the whole text (\\x0b, \\x1c, U+2028... end a
    line too), streamed: each physical line ends where splitlines also ends one."""
    lineno = 0
    for physical in _text_lines(path):
        for line in physical.splitlines():
            lineno += 1
            yield lineno, line


def _first(lines: Iterator[Any], keep) -> Any:
    """The first item of a line stream that keep() accepts (None if none); the stream is closed."""
    try:
        return next((x for x in lines if keep(x)), None)
    finally:
        lines.close()


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


DELIMITERS = (",", ";", "\t", "|")


def _header_names(header: str, delim: str) -> list[str]:
    try:
        return [c.strip().lower() for c in next(csv.reader([header], delimiter=delim), [])]
    except csv.Error:  # a stray CR or NUL: not a header with this delimiter
        return []


def _pick_delimiter(header: str) -> str:
    """The delimiter whose split of the header holds a caption column (the community lists use
    ',' or ';', whatever their layout); else the one giving the most columns."""
    best, best_n = ",", 0
    for delim in DELIMITERS:
        names = _header_names(header, delim)
        if any(c in names for c in CAPTION_COLUMNS + ("prompt",)):
            return delim
        if len(names) > best_n:
            best, best_n = delim, len(names)
    return best


# a first line naming a caption column and one of these reads as a CSV header, whatever the file's name
HEADER_HINTS = ("url", "urls", "type", "overfit_type", "index", "mean_sscd", "max_sscd") + DUP_COLUMNS


def looks_like_header(line: str) -> bool:
    names = set(_header_names(line, _pick_delimiter(line)))
    return len(names) > 1 and bool(names & set(CAPTION_COLUMNS)) and bool(names & set(HEADER_HINTS))


def _csv_rows(path: Path, delim: str) -> Iterator[tuple[list[str], int]]:
    """The file's non-blank CSV rows, header first, each with the line it ends on."""
    reader = csv.reader(_text_lines(path), delimiter=delim)
    try:
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield fields, reader.line_num
    except csv.Error as e:
        raise IngestError(f"{path}, line {reader.line_num}: expected valid CSV, got {e}") from e


def _csv_records(path: Path, delim: str, header: Sequence[str]) -> Iterator[tuple[dict, str]]:
    rows = _csv_rows(path, delim)
    next(rows, None)    # the header
    for n, (fields, line) in enumerate(rows, 1):
        if len(fields) != len(header):
            raise IngestError(f"{path}, row {n} (line {line}): expected {len(header)} "
                              f"fields separated by {delim!r}, got {len(fields)}")
        yield dict(zip(header, fields)), f"row {n} (line {line})"


def _jsonl_records(path: Path) -> Iterator[tuple[dict, str]]:
    row = 0
    for lineno, line in _numbered_lines(path):
        if not line.strip():
            continue
        row += 1
        where = f"row {row} (line {lineno})"
        try:
            item = json.loads(line)
        except json.JSONDecodeError as e:
            raise IngestError(f"{path}, {where}: expected a JSON object, got invalid JSON ({e.msg})") from None
        except RecursionError:
            raise IngestError(f"{path}, {where}: expected a JSON object, got values nested too deeply "
                              f"to read") from None
        if not isinstance(item, dict):
            raise IngestError(f"{path}, {where}: expected a JSON object, got {type(item).__name__}")
        yield item, where


def _json_array_records(path: Path) -> Iterator[tuple[dict, str]]:
    """A JSON array of objects (accepted beside JSONL): parsed whole, it is one value."""
    text = _read_text(path)
    try:
        items = json.loads(text)
    except json.JSONDecodeError as e:
        raise IngestError(f"{path}, line {e.lineno}: expected valid JSON, got {e.msg}") from None
    except RecursionError:
        raise IngestError(f"{path}: expected a JSON array of objects, got arrays nested too deeply "
                          f"to read") from None
    for i, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise IngestError(f"{path}, row {i}: expected a JSON object, got {type(item).__name__}")
        yield item, f"row {i}"


def _text_records(path: Path) -> Iterator[tuple[dict, str]]:
    for lineno, line in _numbered_lines(path):
        if line.strip():
            yield {"caption": line}, f"line {lineno}"


def _parquet_records(path: Path, batch_rows: int, columns: Optional[list[str]] = None) -> Iterator[tuple[dict, str]]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = 0
    try:
        for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
            for record in batch.to_pylist():
                done += 1
                yield record, f"row {done}"
    except (OSError, pa.ArrowException, ValueError, TypeError, RecursionError) as e:
        raise IngestError(f"{path}, after row {done}: expected a readable parquet file, got "
                          f"{type(e).__name__}: {e}") from None


def _check_file(path: Path) -> None:
    if not path.is_file():
        got = "a directory" if path.is_dir() else "a special file" if path.exists() else "no such file"
        raise IngestError(f"{path}: expected a caption file, got {got}")


@dataclass(frozen=True)
class Source:
    """A caption file that can be read record by record, as often as needed, in bounded memory
    (but a JSON array). columns: None for JSONL, whose columns are the union of its rows' keys."""
    path: Path
    format: str                       # parquet, jsonl, csv, text, or json (an array)
    columns: Optional[tuple]
    delimiter: Optional[str] = None
    n_rows: Optional[int] = None      # known without a pass (parquet)

    def records(self, batch_rows: int = 0) -> Iterator[tuple[dict, str]]:
        """(record keyed by column, its place: "row 3 (line 4)")."""
        if self.format == "csv":
            return _csv_records(self.path, self.delimiter, self.columns)
        if self.format == "jsonl":
            return _jsonl_records(self.path)
        if self.format == "json":
            return _json_array_records(self.path)
        if self.format == "text":
            return _text_records(self.path)
        return _parquet_records(self.path, batch_rows or STREAM_ROWS)

    def check_rows(self, n: int) -> None:
        """An IngestError when a read found no caption rows where the format needs some."""
        if n == 0 and self.format == "csv":
            raise IngestError(f"{self.path}: expected a header and at least one caption row, got only a header")
        if n == 0 and self.format in ("jsonl", "json"):
            raise IngestError(f"{self.path}: expected at least one caption, got an empty file")


def open_source(path: Path, file_fmt: str) -> Source:
    """Check what can be checked without reading every row: the file exists and is readable, not
    blank; a CSV's header and separator; a parquet file's schema and row count."""
    _check_file(path)
    if file_fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            meta = pq.ParquetFile(path).metadata
            columns = tuple(meta.schema.to_arrow_schema().names)
        except (OSError, pa.ArrowException, ValueError, TypeError) as e:
            raise IngestError(f"{path}: expected a readable parquet file, got {type(e).__name__}: {e}") from None
        if meta.num_rows == 0:
            raise IngestError(f"{path}: expected at least one caption, got an empty file (0 rows)")
        return Source(path, "parquet", columns, n_rows=meta.num_rows)
    _check_nonblank(path)
    if file_fmt == "csv":
        line = _first(_text_lines(path), lambda x: x.strip("\r\n"))
        delim = _pick_delimiter(line.splitlines()[0] if line else "")
        header = _first(_csv_rows(path, delim), lambda x: True)
        if header is None:
            raise IngestError(f"{path}: expected a header and at least one caption row, got an empty file")
        return Source(path, "csv", tuple(f.strip() for f in header[0]), delim)
    if file_fmt == "jsonl":
        first = _first(_text_lines(path), str.strip)
        return Source(path, "json" if first is not None and first.lstrip().startswith("[") else "jsonl", None)
    return Source(path, "text", ("caption",))


def read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        table = pq.read_table(path)
        if table.num_rows == 0:
            raise IngestError(f"{path}: expected at least one caption, got an empty file (0 rows)")
        records = table.to_pylist()
    except (OSError, pa.ArrowException, ValueError, TypeError, RecursionError) as e:
        raise IngestError(f"{path}: expected a readable parquet file, got {type(e).__name__}: {e}") from None
    return Table(path, tuple(table.column_names), tuple(records),
                 tuple(f"row {i + 1}" for i in range(len(records))))


def read_table(path: Path, fmt: str) -> Table:
    """A caption or metadata file read whole: every record in memory (see CaptionStream for the
    streamed ingest)."""
    file_fmt = LAYOUT_FORMATS.get(fmt, fmt)
    if file_fmt == "parquet":
        _check_file(path)
        return read_parquet(path)
    source = open_source(path, file_fmt)
    records, locations, columns = [], [], dict.fromkeys(source.columns or ())
    for record, where in source.records():
        if source.columns is None:
            columns.update(dict.fromkeys(record))     # first-seen order
        records.append(record)
        locations.append(where)
    source.check_rows(len(records))
    return Table(path, tuple(columns), tuple(records), tuple(locations), source.delimiter)


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


def unicode_text(value: str, where: str) -> str:
    """Text the store can hold: valid Unicode (a JSON "\\ud800" escape decodes to a lone
    surrogate, which no UTF-8 database accepts) without NUL characters."""
    try:
        store_text(value, where)
    except StoreError as e:
        raise IngestError(str(e)) from None
    if "\x00" in value:
        raise IngestError(f"{where}: expected text without NUL characters, got one at character "
                          f"{value.index(chr(0)) + 1}")
    return value


def _json_value(v: Any, where: str = "value", depth: int = 0) -> Any:
    """Parquet cells can be numpy/decimal/bytes/dates: keep JSON-able, stringify the rest;
    strings must be valid Unicode and nesting at most MAX_NESTING deep."""
    if depth > MAX_NESTING:
        raise IngestError(f"{where}: expected values nested at most {MAX_NESTING} levels deep, got deeper")
    if v is None or isinstance(v, (bool, int)):
        return v
    if isinstance(v, str):
        return unicode_text(v, where)
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, (list, tuple)):
        return [_json_value(x, where, depth + 1) for x in v]
    if isinstance(v, dict):
        return {unicode_text(str(k), where): _json_value(x, where, depth + 1) for k, x in v.items()}
    return unicode_text(str(v), where)


def _parse_urls(value: Any, where: str) -> list[str]:
    if value is None or (isinstance(value, str) and not value.strip()):
        return []
    items = value
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                items = ast.literal_eval(text)
            except (ValueError, SyntaxError, RecursionError, MemoryError):
                try:
                    items = json.loads(text)
                except (json.JSONDecodeError, RecursionError):
                    raise IngestError(f"{where}: expected a list of URLs like ['http://...'], "
                                      f"got {text[:80]!r}") from None
        else:
            items = [text]
    if not isinstance(items, (list, tuple)) or not all(isinstance(u, str) for u in items):
        raise IngestError(f"{where}: expected a list of URL strings, got {str(value)[:80]!r}")
    return [unicode_text(u, where).strip() for u in items if u.strip()]


def _caption_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise IngestError(f"{where}: expected caption text, got {'nothing' if value is None else type(value).__name__}")
    text = unicode_text(value, where).strip()
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
    return unicode_text(value, where).strip() or None


def column_roles(table: Table, layout: str) -> dict[str, Optional[str]]:
    """Which column of the table plays which role (caption, url, urls, reference label, dup_count)."""
    caption_col = _find(table.columns, ("prompt",) if layout == "membench" else CAPTION_COLUMNS)
    if caption_col is None:
        raise IngestError(f"{table.path}, row 1 (header), column caption: expected a caption column "
                          f"(one of {', '.join(CAPTION_COLUMNS)}), got columns {list(table.columns)}")
    url_col = _find(table.columns, ("url",))
    return {"caption": caption_col, "url": url_col,
            "urls": _find(table.columns, ("urls",)) if url_col is None else None,
            "reference label": _find(table.columns, ("type",) if layout == "nemo" else ("overfit_type",)),
            "dup_count": _find(table.columns, DUP_COLUMNS)}


def to_caption_rows(table: Table, layout: str, source: str) -> tuple:
    """Map a table to CaptionRows, validating every cell (errors name file, row, column)."""
    roles = column_roles(table, layout)
    caption_col, url_col, urls_col = roles["caption"], roles["url"], roles["urls"]
    label_col, dup_col = roles["reference label"], roles["dup_count"]
    used = set(roles.values())
    rows = []
    for record, loc in zip(table.records, table.locations):
        def where(col: str) -> str:
            return f"{table.path}, {loc}, column {col!r}"
        text = _caption_text(record.get(caption_col), where(caption_col))
        url = _optional_str(record.get(url_col), where(url_col)) if url_col else None
        extra = {unicode_text(str(k), where(k)): _json_value(v, where(k)) for k, v in record.items() if k not in used}
        if urls_col:
            urls = _parse_urls(record.get(urls_col), where(urls_col))
            url = urls[0] if urls else None
            extra[urls_col] = urls
        label = None
        if label_col:
            raw = record.get(label_col)
            raw = raw.strip().upper() if isinstance(raw, str) else raw
            if raw not in (None, ""):
                if not isinstance(raw, str) or raw not in LABEL_MAP:    # a JSON list or object is no label
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


def _first_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return ""
    return head.decode("utf-8-sig", "replace").lstrip("\r\n").split("\n", 1)[0].rstrip("\r")


def _caption_format(path: Path, fmt: Optional[str]) -> tuple[str, bool]:
    """(format or layout name, sniffed): a .txt (or extension-less) file whose first line is a
    caption-list header is read as CSV (``--format text`` keeps it as lines)."""
    forced = fmt
    fmt = detect_format(path, fmt)
    sniffed = forced is None and fmt == "text" and path.is_file() and looks_like_header(_first_line(path))
    return ("csv" if sniffed else fmt), sniffed


def _layout(fmt: str, path: Path, columns: Sequence[str]) -> str:
    if fmt in LAYOUT_FORMATS or fmt == "text":
        return fmt
    return detect_layout(Table(path, tuple(columns), (), ()))


def parse_caption_file(path: Path, fmt: Optional[str] = None) -> ParsedList:
    """Read and validate a whole caption list; its layout is recognised from the header whatever
    the separator (see _caption_format). open_caption_stream reads the same rows in batches."""
    fmt, sniffed = _caption_format(path, fmt)
    table = read_table(path, fmt)
    layout = _layout(fmt, path, table.columns)
    rows = to_caption_rows(table, layout, path.name)
    roles = column_roles(table, layout) if layout != "text" else {}
    used = {c for c in roles.values() if c} if layout != "text" else set(table.columns)   # text: its one column
    return ParsedList(path, LAYOUT_FORMATS.get(fmt, fmt), layout, rows,
                      roles=tuple((r, c) for r, c in roles.items() if c),
                      extra_columns=tuple(c for c in table.columns if c not in used),
                      delimiter=table.delimiter, sniffed=sniffed, sha256=_file_sha256(path))


STREAM_ROWS = 20_000     # rows per batch of a streamed ingest: memory stays flat whatever the file


@dataclass(frozen=True)
class CaptionStream:
    """A caption list read batch by batch (parquet, CSV, JSONL or text). Its layout, roles, row
    count and reference labels are known before any write (the parquet schema, a CSV header, and
    a first pass over the rows that keeps none); its cells are checked as they are written (see
    apply_ingest), so a bad late row fails inside the one transaction."""
    path: Path
    layout: str
    columns: tuple
    n_rows: int
    source: Source
    roles: tuple = ()
    extra_columns: tuple = ()
    sha256: str = ""
    format: str = "parquet"
    delimiter: Optional[str] = None
    sniffed: bool = False
    labels: tuple = ()        # (reference label, rows) as the first pass counted them

    def recognised(self) -> list[str]:
        return _recognised(self.path, self.layout, self.format, self.delimiter, self.n_rows, self.sniffed,
                           self.roles, Counter(dict(self.labels)), self.extra_columns, STREAM_ROWS)

    def batches(self, rows: Optional[int] = None) -> Iterator[tuple]:
        """Tuples of CaptionRow, every cell checked as parse_caption_file checks it."""
        rows = rows or STREAM_ROWS
        records = self.source.records(rows)
        while chunk := list(itertools.islice(records, rows)):
            table = Table(self.path, self.columns, tuple(r for r, _ in chunk), tuple(w for _, w in chunk))
            yield to_caption_rows(table, self.layout, self.path.name)


def _first_pass(source: Source) -> tuple[int, tuple, dict]:
    """(rows, columns, {column: Counter of reference labels}) by one pass that keeps no row. Every
    column that may hold labels is counted (a JSONL list's columns, the union of its rows' keys,
    are known only at the end); a parquet list reads those columns alone."""
    columns = dict.fromkeys(source.columns or ())
    if source.format == "parquet":
        wanted = [c for c in columns if c.lower().strip() in LABEL_COLUMNS]
        records = _parquet_records(source.path, STREAM_ROWS, wanted) if wanted else iter(())
    else:
        records = source.records()
    counts: dict[str, Counter] = {}
    is_label: dict[Any, bool] = {}
    n = 0
    for record, _ in records:
        n += 1
        if source.columns is None:
            columns.update(dict.fromkeys(record))
        for key, value in record.items():
            if not isinstance(value, str):
                continue
            if key not in is_label:
                is_label[key] = str(key).lower().strip() in LABEL_COLUMNS
            if is_label[key]:
                label = LABEL_MAP.get(value.strip().upper())
                if label is not None:
                    counts.setdefault(key, Counter())[label] += 1
    return (source.n_rows if source.n_rows is not None else n), tuple(columns), counts


def open_caption_stream(path: Path, fmt: Optional[str] = None) -> Optional[CaptionStream]:
    """A CaptionStream for a caption list after a first pass over it (its structure: CSV fields,
    JSON lines, UTF-8; row count, reference labels, JSONL columns). None for a JSON array: it is
    one JSON value, parsed whole (parse_caption_file)."""
    fmt, sniffed = _caption_format(path, fmt)
    source = open_source(path, LAYOUT_FORMATS.get(fmt, fmt))
    if source.format == "json":
        return None
    n_rows, columns, counts = _first_pass(source)
    source.check_rows(n_rows)
    layout = _layout(fmt, path, columns)
    roles = column_roles(Table(path, columns, (), ()), layout) if layout != "text" else {}
    labels = counts.get(roles.get("reference label"), Counter())
    used = {c for c in roles.values() if c} if layout != "text" else set(columns)   # text: its one column is the caption
    return CaptionStream(path, layout, columns, n_rows, source, tuple((r, c) for r, c in roles.items() if c),
                         tuple(c for c in columns if c not in used), _file_sha256(path), source.format,
                         source.delimiter, sniffed, tuple(sorted(labels.items())))


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- training images -------------------------------------------------------------------------------
def _find_metadata(folder: Path, metadata: Optional[Path]) -> Optional[Path]:
    if metadata is not None:
        if not metadata.is_file():
            raise IngestError(f"--metadata {metadata}: expected a metadata file, got "
                              f"{'something else' if metadata.exists() else 'no such file'}")
        return metadata
    found = [folder / n for n in METADATA_NAMES if (folder / n).is_file() or (folder / n).is_symlink()]
    if len(found) > 1:
        raise IngestError(f"{folder}: expected at most one metadata file, got {[p.name for p in found]}; "
                          f"choose one with --metadata")
    if found and not inside(folder, found[0]):
        raise IngestError(f"{found[0]}: expected a metadata file inside {folder}, got a symlink to "
                          f"{found[0].resolve()} (name it with --metadata if it is meant)")
    if found and not found[0].is_file():
        raise IngestError(f"{found[0]}: expected a metadata file, got a broken symlink or a special file")
    return found[0] if found else None


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
            target = resolve_inside(folder, rel) if isinstance(rel, str) else None
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
                "meta": {unicode_text(str(k), where(k)): _json_value(v, where(k))
                         for k, v in record.items() if k not in (name_col, caption_col, url_col)},
            }
    root = folder.resolve()
    walked, skipped = walk_files(root, IMAGE_EXTENSIONS)
    files = set(described) | {p.resolve() if p.is_symlink() else p for p in walked}
    if meta_path is not None:
        files.discard(meta_path.resolve())
    if not files:
        raise IngestError(f"--images {folder}: expected at least one image file "
                          f"({', '.join(sorted(IMAGE_EXTENSIONS))}), got none"
                          + (f" it may read ({len(skipped)} skipped: {skipped[0][0]}, {skipped[0][1]})" if skipped else ""))
    entries = []
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        d = described.get(p, {})
        entries.append(ImageEntry(display_path(p.relative_to(root).as_posix()), p, d.get("caption"), d.get("url"),
                                  d.get("meta", {})))
    return ImageScan(folder, meta_path, tuple(entries), tuple(skipped))


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
    images_sha256: str = ""   # of the metadata file and every image file (names and bytes)
    stream: Optional[CaptionStream] = None   # a caption list read in batches (parsed is then None)
    shards: Any = None        # an attack.ingest.shards.ShardScan: img2dataset webdataset shards, streamed

    @property
    def captions(self) -> "Optional[ParsedList | CaptionStream]":
        return self.parsed if self.parsed is not None else self.stream


def scan_sha256(scan: ImageScan) -> str:
    """Content identity of an image folder ingest: metadata bytes, then each file's name and bytes."""
    h = hashlib.sha256()
    if scan.metadata is not None:
        h.update(bytes.fromhex(_file_sha256(scan.metadata)))
    for e in scan.entries:
        h.update(e.rel_path.encode("utf-8") + b"\0" + bytes.fromhex(_file_sha256(e.abs_path)))
    return h.hexdigest()


def prepare_ingest(file: Optional[Path] = None, images: Optional[Path] = None,
                   metadata: Optional[Path] = None, fmt: Optional[str] = None,
                   stream: bool = False, shards: Optional[Path] = None) -> PreparedIngest:
    """Parse and check every input; raises IngestError naming file, row and column. stream: a
    caption list is checked here by its schema or header and a first pass that keeps no row, and
    read in batches while written (memory bounded by STREAM_ROWS; a bad cell still rolls the whole
    ingest back). A JSON array is parsed whole either way."""
    if file is None and images is None and shards is None:
        raise IngestError("ingest: expected a caption FILE, --images DIR and/or --shards PATH, got none")
    if metadata is not None and images is None:
        raise IngestError("ingest: expected --images DIR with --metadata, got --metadata alone")
    streamed = open_caption_stream(Path(file), fmt) if file is not None and stream else None
    parsed = parse_caption_file(Path(file), fmt) if file is not None and streamed is None else None
    scan = scan_images(Path(images), Path(metadata) if metadata else None) if images is not None else None
    from attack.ingest.shards import scan_shards

    tars = scan_shards(Path(shards)) if shards is not None else None
    return PreparedIngest(None if file is None else Path(file), parsed, scan,
                          scan_sha256(scan) if scan is not None else "", streamed, tars)


def _ingested_before(store: Store, key: str, sha: str) -> Optional[int]:
    """The id of a finished ingest run whose input had this content hash."""
    if not sha:
        return None
    done = [r.id for r in store.runs(stage="ingest") if r.status == "done" and r.params.get(key) == sha]
    return done[-1] if done else None


def _decode_each(store: Store, items, n: int, decode, warn, created: list[str],
                 progress=no_progress) -> tuple[list, list]:
    """Decode each (entry, source) with ``decode(source)`` (a corrupt image is skipped with a
    warning) and write its file; the files this call creates are listed in ``created``."""
    decoded, corrupt = [], []
    if n == 0:      # nothing to decode: no bar (an empty one is noise beside a caption error)
        return decoded, corrupt
    progress("images", 0, n)
    for i, (entry, source) in enumerate(items):
        progress("images", i, n)
        try:
            img = decode(source)
        except Exception as e:  # PIL raises many types for bad files: all mean "skip it"
            reason = f"{type(e).__name__}: {e}"
            corrupt.append((entry.rel_path, reason))
            warn(f"skipped corrupt image {entry.rel_path} ({reason})")
            continue
        decoded.append((entry, store.put_image_tracked(img, created), img.size))
    progress("images", n, n)
    return decoded, corrupt


def _decode_all(store: Store, scan: Optional[ImageScan], warn, created: list[str],
                progress=no_progress) -> tuple[list, list]:
    """_decode_each over an image folder's entries."""
    entries = scan.entries if scan else ()
    return _decode_each(store, ((e, e.abs_path) for e in entries), len(entries), decode_image, warn, created,
                        progress)


def apply_ingest(store: Store, prepared: PreparedIngest, warn=lambda msg: None,
                 progress=no_progress) -> IngestReport:
    """Write image files (skipping corrupt ones), then every row in one transaction. All or
    nothing: on any failure or signal the image files this call created are removed again.
    A caption list or image folder whose content an earlier ingest already took is skipped."""
    parsed, scan = prepared.captions, prepared.scan
    for rel, why in scan.skipped if scan else ():
        warn(f"not read: {rel} ({why})")
    already = []
    captions_run = _ingested_before(store, "file_sha256", parsed.sha256) if parsed else None
    images_run = _ingested_before(store, "images_sha256", prepared.images_sha256) if scan else None
    if captions_run is not None:
        already.append(("caption list", captions_run))
        parsed = None
    if images_run is not None:
        already.append(("image folder", images_run))
        scan = None
    tars = prepared.shards
    shards_run = _ingested_before(store, "shards_sha256", tars.sha256) if tars else None
    for rel, why in tars.skipped if tars else ():
        warn(f"not read: {rel} ({why})")
    if shards_run is not None:
        already.append(("shards", shards_run))
        tars = None
    if parsed is None and scan is None and tars is None:
        return IngestReport(None, 0, 0, 0, 0, 0, (), not_read=prepared.scan.skipped if prepared.scan else (),
                            already=tuple(already))
    created: list[str] = []
    try:
        decoded, corrupt = _decode_all(store, scan, warn, created, progress)
        decoded_tars, corrupt_tars = _decode_shards(store, tars, warn, created, progress)
        corrupt += corrupt_tars
        params = {"file": None if parsed is None else str(prepared.file),
                  "file_sha256": parsed.sha256 if parsed else None,
                  "format": parsed.format if parsed else None, "layout": parsed.layout if parsed else None,
                  "images": None if scan is None else str(scan.folder),
                  "metadata": None if scan is None or scan.metadata is None else str(scan.metadata),
                  "images_sha256": prepared.images_sha256 if scan else None,
                  "shards": None if tars is None else str(tars.source),
                  "shards_sha256": tars.sha256 if tars else None}
        streamed = isinstance(parsed, CaptionStream)
        caption_rows = list(parsed.rows) if parsed and not streamed else []
        image_captions = [CaptionRow(e.caption, url=e.url, source=scan.metadata.name)
                          for e, _, _ in decoded if e.caption is not None]
        image_captions += [CaptionRow(e.caption, url=e.url, source=e.shard.name)
                           for e, _, _ in decoded_tars if e.caption is not None]
        decoded += decoded_tars
        with store.transaction():
            run_id = store.start_run("ingest", "", params)
            n_captions_before = store.caption_count()
            n_images_before = store.training_set_version().count
            store.add_captions(caption_rows)
            n_streamed = 0
            for batch in parsed.batches() if streamed else ():   # one transaction: a bad row rolls all back
                store.add_captions(batch)
                n_streamed += len(batch)
                progress("captions", n_streamed, parsed.n_rows)
            ids = iter(store.add_captions(image_captions))
            for entry, sha, size in decoded:
                meta = dict(entry.meta, url=entry.url, width=size[0], height=size[1])
                store.add_training_image(sha, next(ids) if entry.caption is not None else None,
                                         entry.rel_path, {k: v for k, v in meta.items() if v is not None})
            added = store.caption_count() - n_captions_before
            images_added = store.training_set_version().count - n_images_before
            store.finish_run(run_id, evals=0)
    except BaseException:
        store.remove_unreferenced_images(created)
        raise
    n_rows = len(caption_rows) + n_streamed + len(image_captions)
    return IngestReport(run_id=run_id, caption_rows=n_rows, captions_added=added, captions_merged=n_rows - added,
                        images_added=images_added, images_skipped=len(corrupt), corrupt_files=tuple(corrupt),
                        format=parsed.format if parsed else None, layout=parsed.layout if parsed else None,
                        not_read=(prepared.scan.skipped if prepared.scan else ())
                        + (prepared.shards.skipped if prepared.shards else ()), already=tuple(already))


def _decode_shards(store: Store, tars, warn, created: list[str], progress=no_progress) -> tuple[list, list]:
    """_decode_each over webdataset shards: each image decoded from the tar stream, never unpacked."""
    from attack.ingest.shards import decode_bytes, stream_images

    n = len(tars.samples) if tars else 0
    return _decode_each(store, stream_images(tars) if tars else (), n, decode_bytes, warn, created, progress)


def ingest(store: Store, file: Optional[Path] = None, images: Optional[Path] = None,
           metadata: Optional[Path] = None, fmt: Optional[str] = None,
           warn=lambda msg: None) -> IngestReport:
    """Validate everything, write image files, then all rows in one transaction."""
    return apply_ingest(store, prepare_ingest(file, images, metadata, fmt), warn)
