"""Caption lists: the column layouts of the community's published lists recognised from their
headers (see attack.ingest.run), each row checked into a CaptionRow, read whole or streamed in batches."""
from __future__ import annotations

import ast
import itertools
import json
import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from attack.ingest import formats
from attack.ingest.formats import (
    CAPTION_COLUMNS,
    DUP_COLUMNS,
    LAYOUT_FORMATS,
    Source,
    Table,
    detect_format,
    first_line,
    looks_like_header,
    open_source,
    parquet_records,
    read_table,
    sha256_of_file,
)
from store import CaptionRow, IngestError, StoreError
from store.canon import unicode_text as store_text

MAX_CAPTION_CHARS = 10_000


MAX_NESTING = 32          # extra columns: deeper JSON is refused (no real list nests so deep)


LABEL_COLUMNS = ("overfit_type", "type")


# NeMo writes VM/TM; the paper's lists write MV/TV/RV/N
LABEL_MAP = {"MV": "MV", "TV": "TV", "RV": "RV", "N": "N", "VM": "MV", "TM": "TV"}


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


# -- interpreting columns ------------------------------------------------------------------------
def find_column(columns: Iterable[str], names: Iterable[str]) -> Optional[str]:
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


def json_value(v: Any, where: str = "value", depth: int = 0) -> Any:
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
        return [json_value(x, where, depth + 1) for x in v]
    if isinstance(v, dict):
        return {unicode_text(str(k), where): json_value(x, where, depth + 1) for k, x in v.items()}
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


def caption_text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise IngestError(f"{where}: expected caption text, got {'nothing' if value is None else type(value).__name__}")
    text = unicode_text(value, where).strip()
    if not text:
        raise IngestError(f"{where}: expected a non-empty caption, got an empty value")
    if len(text) > MAX_CAPTION_CHARS:
        raise IngestError(f"{where}: expected a caption of at most {MAX_CAPTION_CHARS} characters, "
                          f"got {len(text)}")
    return text


def optional_str(value: Any, where: str) -> Optional[str]:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestError(f"{where}: expected text, got {type(value).__name__} {value!r}")
    return unicode_text(value, where).strip() or None


def column_roles(table: Table, layout: str) -> dict[str, Optional[str]]:
    """Which column of the table plays which role (caption, url, urls, reference label, dup_count)."""
    caption_col = find_column(table.columns, ("prompt",) if layout == "membench" else CAPTION_COLUMNS)
    if caption_col is None:
        raise IngestError(f"{table.path}, row 1 (header), column caption: expected a caption column "
                          f"(one of {', '.join(CAPTION_COLUMNS)}), got columns {list(table.columns)}")
    url_col = find_column(table.columns, ("url",))
    return {"caption": caption_col, "url": url_col,
            "urls": find_column(table.columns, ("urls",)) if url_col is None else None,
            "reference label": find_column(table.columns, ("type",) if layout == "nemo" else ("overfit_type",)),
            "dup_count": find_column(table.columns, DUP_COLUMNS)}


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
        text = caption_text(record.get(caption_col), where(caption_col))
        url = optional_str(record.get(url_col), where(url_col)) if url_col else None
        extra = {unicode_text(str(k), where(k)): json_value(v, where(k)) for k, v in record.items() if k not in used}
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


def _caption_format(path: Path, fmt: Optional[str]) -> tuple[str, bool]:
    """(format or layout name, sniffed): a .txt (or extension-less) file whose first line is a
    caption-list header is read as CSV (``--format text`` keeps it as lines)."""
    forced = fmt
    fmt = detect_format(path, fmt)
    sniffed = forced is None and fmt == "text" and path.is_file() and looks_like_header(first_line(path))
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
                      delimiter=table.delimiter, sniffed=sniffed, sha256=sha256_of_file(path))


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
                           self.roles, Counter(dict(self.labels)), self.extra_columns, formats.STREAM_ROWS)

    def batches(self, rows: Optional[int] = None) -> Iterator[tuple]:
        """Tuples of CaptionRow, every cell checked as parse_caption_file checks it."""
        rows = rows or formats.STREAM_ROWS
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
        records = parquet_records(source.path, formats.STREAM_ROWS, wanted) if wanted else iter(())
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
                         tuple(c for c in columns if c not in used), sha256_of_file(path), source.format,
                         source.delimiter, sniffed, tuple(sorted(labels.items())))
