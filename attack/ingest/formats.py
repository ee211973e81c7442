"""Reading caption files: their format (parquet, CSV, JSONL, text) and their records, streamed,
with a clear error naming the file and the place for anything unreadable."""
from __future__ import annotations

import codecs
import csv
import hashlib
import io
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from store import IngestError

FILE_FORMATS = ("parquet", "jsonl", "csv", "text")


LAYOUT_FORMATS = {"paper": "parquet", "wen": "jsonl", "nemo": "csv", "membench": "csv"}


FORMATS = FILE_FORMATS + tuple(LAYOUT_FORMATS)


EXTENSIONS = {".parquet": "parquet", ".pq": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl",
              ".json": "jsonl", ".csv": "csv", ".tsv": "csv", ".txt": "text"}


CAPTION_COLUMNS = ("caption", "prompt", "text")


DUP_COLUMNS = ("dup_count", "duplicates", "n_duplicates", "num_duplicates")


@dataclass(frozen=True)
class Table:
    """A parsed tabular file: records keyed by original column name."""
    path: Path
    columns: tuple
    records: tuple          # of dict
    locations: tuple        # human description of each record's place: "row 3 (line 4)"
    delimiter: Optional[str] = None


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


def parquet_records(path: Path, batch_rows: int, columns: Optional[list[str]] = None) -> Iterator[tuple[dict, str]]:
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
        return parquet_records(self.path, batch_rows or STREAM_ROWS)

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


def first_line(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return ""
    return head.decode("utf-8-sig", "replace").lstrip("\r\n").split("\n", 1)[0].rstrip("\r")


STREAM_ROWS = 20_000     # rows per batch of a streamed ingest: memory stays flat whatever the file


def sha256_of_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
