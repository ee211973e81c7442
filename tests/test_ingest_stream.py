"""Streamed caption ingest (issue 15): parquet, CSV, JSONL and text lists read in batches, written
in one transaction, so a bad row in a late batch leaves the store as it was, and the result equals
the whole-file path."""
from __future__ import annotations

import csv
import io
import json
import os

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attack.ingest import formats as ingest_formats
from attack.cli import main
from attack.ingest import apply_ingest, open_caption_stream, parse_caption_file, prepare_ingest, read_table
from store import IngestError, Store

from .conftest import snapshot


def _paper_list(path, n: int, bad_row: int | None = None) -> None:
    captions = [f"caption number {i}" for i in range(n)]
    if bad_row is not None:
        captions[bad_row - 1] = "   "
    pq.write_table(pa.table({"caption": captions, "url": [f"http://x/{i}" for i in range(n)],
                             "overfit_type": [["MV", "TV", "N", None][i % 4] for i in range(n)],
                             "score": [float(i) for i in range(n)]}), path, row_group_size=7)


def _captions(store: Store) -> list:
    return [(c.text, c.url, c.reference_label, c.extra) for c in map(store.get_caption,
                                                                      [r.id for r in store.caption_refs()])]


def test_streamed_parquet_equals_the_whole_file_path(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_formats, "STREAM_ROWS", 10)     # 95 rows: ten batches, the last one short
    src = tmp_path / "list.parquet"
    _paper_list(src, 95)
    streamed = prepare_ingest(src, stream=True)
    assert streamed.parsed is None and streamed.stream.n_rows == 95 and streamed.stream.layout == "paper"
    assert len(list(streamed.stream.batches())) == 10
    with Store.open(tmp_path / "a") as a, Store.open(tmp_path / "b") as b:
        ra = apply_ingest(a, streamed)
        rb = apply_ingest(b, prepare_ingest(src))
        assert (ra.captions_added, ra.caption_rows, ra.layout) == (rb.captions_added, rb.caption_rows, rb.layout) \
            == (95, 95, "paper")
        assert _captions(a) == _captions(b)
        again = apply_ingest(a, prepare_ingest(src, stream=True))   # the same content: skipped, not merged
        assert again.run_id is None and a.caption_count() == 95


def test_a_bad_row_in_a_late_batch_changes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest_formats, "STREAM_ROWS", 10)
    good, bad = tmp_path / "good.parquet", tmp_path / "bad.parquet"
    _paper_list(good, 5)
    _paper_list(bad, 95, bad_row=93)
    with Store.open(tmp_path / "s") as s:
        apply_ingest(s, prepare_ingest(good, stream=True))
    before = snapshot(tmp_path / "s")
    with Store.open(tmp_path / "s") as s:
        prepared = prepare_ingest(bad, stream=True)      # the schema is fine: the row fails while writing
        with pytest.raises(IngestError, match=r"bad\.parquet, row 93, column 'caption': expected a non-empty"):
            apply_ingest(s, prepared)
    assert snapshot(tmp_path / "s") == before


def test_cli_streams_parquet_and_exits_2_on_a_bad_row(tmp_path, capsys):
    src = tmp_path / "list.parquet"
    _paper_list(src, 30)
    assert main(["ingest", "--store", str(tmp_path / "s"), str(src)]) == 0
    out = capsys.readouterr().out
    assert "paper layout (parquet, read in batches" in out and "30 captions added" in out
    _paper_list(tmp_path / "bad.parquet", 30, bad_row=30)
    before = snapshot(tmp_path / "s")
    assert main(["ingest", "--store", str(tmp_path / "s"), str(tmp_path / "bad.parquet")]) == 2
    assert "row 30, column 'caption'" in capsys.readouterr().err
    assert snapshot(tmp_path / "s") == before


# -- CSV, JSONL and text lists: the same rules, streamed line by line ------------------------------------------
def _text_list(path, fmt: str, n: int, bad_row: int | None = None) -> None:
    """n captions as CSV (CRLF, a quoted newline and separator, a blank line), JSONL (a key first seen in a late
    row: the columns are the union) or text (blank lines between); bad_row's caption is empty / too long."""
    caps = [f"caption number {i}" for i in range(n)]
    caps[3] = 'a "quoted", two-line\ncaption'
    if fmt == "csv":
        quoted = [c.replace('"', '""') for c in caps]
        rows = [f'"{c}",http://x/{i},{["MV", "TV", "N", ""][i % 4]}' for i, c in enumerate(quoted)]
        if bad_row is not None:
            rows[bad_row - 1] = f",http://x/{bad_row},N"
        rows.insert(5, "")
        path.write_bytes(("\ufeffcaption,url,overfit_type\r\n" + "\r\n".join(rows) + "\r\n").encode())
    elif fmt == "jsonl":
        recs = [{"caption": c, "url": f"http://x/{i}"} for i, c in enumerate(caps)]
        recs[n - 2]["late"] = 1
        if bad_row is not None:
            recs[bad_row - 1]["caption"] = None
        path.write_text("".join(json.dumps(r) + "\n" + ("\n" if i % 7 == 0 else "") for i, r in enumerate(recs)))
    else:
        lines = [c.replace("\n", " ") for c in caps]
        if bad_row is not None:
            lines[bad_row - 1] = "x" * 10_001
        path.write_text("\n\n".join(lines) + "\n")


@pytest.mark.parametrize("fmt, name", [("csv", "list.csv"), ("jsonl", "list.jsonl"), ("text", "list.txt")])
def test_streamed_text_lists_equal_the_whole_file_parse(tmp_path, monkeypatch, fmt, name):
    monkeypatch.setattr(ingest_formats, "STREAM_ROWS", 10)     # 95 rows: ten batches, the last one short
    src = tmp_path / name
    _text_list(src, fmt, 95)
    streamed = prepare_ingest(src, stream=True)
    whole = parse_caption_file(src)
    st = streamed.stream
    assert streamed.parsed is None and (st.n_rows, st.format, st.layout) == (95, whole.format, whole.layout)
    assert (st.columns, st.roles, st.extra_columns, st.delimiter) == \
        (tuple(read_table(src, fmt).columns), whole.roles, whole.extra_columns, whole.delimiter)
    batches = list(st.batches())
    assert [len(b) for b in batches] == [10] * 9 + [5]
    assert tuple(r for b in batches for r in b) == whole.rows
    # what it says before writing: the whole parse's words, and that it reads in batches
    assert [line.replace(", read in batches of 10", "") for line in st.recognised()] == whole.recognised()
    with Store.open(tmp_path / "a") as a, Store.open(tmp_path / "b") as b:
        sizes = []
        add = a.add_captions
        monkeypatch.setattr(a, "add_captions", lambda rows: sizes.append(len(rows)) or add(rows))
        ra = apply_ingest(a, streamed)
        rb = apply_ingest(b, prepare_ingest(src))
        assert max(sizes) == 10          # never more than a batch of rows in memory at a time
        assert (ra.captions_added, ra.caption_rows, ra.layout) == (rb.captions_added, rb.caption_rows, rb.layout)
        assert _captions(a) == _captions(b) and ra.captions_added == 95
        again = apply_ingest(a, prepare_ingest(src, stream=True))   # the same content: skipped, not merged
        assert again.run_id is None and a.caption_count() == 95


@pytest.mark.parametrize("fmt, name, message", [
    ("csv", "bad.csv", r"bad\.csv, row 93 \(line 96\), column 'caption': expected a non-empty caption"),
    ("jsonl", "bad.jsonl", r"bad\.jsonl, row 93 \(line 107\), column 'caption': expected caption text, got nothing"),
    ("text", "bad.txt", r"bad\.txt, line 185, column 'caption': expected a caption of at most 10000 characters"),
])
def test_a_bad_text_row_in_a_late_batch_changes_nothing(tmp_path, monkeypatch, fmt, name, message):
    monkeypatch.setattr(ingest_formats, "STREAM_ROWS", 10)
    good, bad = tmp_path / f"good.{fmt}", tmp_path / name
    _text_list(good, fmt, 5)
    _text_list(bad, fmt, 95, bad_row=93)
    with Store.open(tmp_path / "s") as s:
        apply_ingest(s, prepare_ingest(good, stream=True))
    before = snapshot(tmp_path / "s")
    with Store.open(tmp_path / "s") as s:
        prepared = prepare_ingest(bad, stream=True)      # the structure is fine: the cell fails while writing
        with pytest.raises(IngestError, match=message):
            apply_ingest(s, prepared)
        with pytest.raises(IngestError, match=message):  # the whole-file parse names the same row
            parse_caption_file(bad)
    assert snapshot(tmp_path / "s") == before


def test_cli_streams_csv_and_a_broken_late_line_fails_before_the_store_is_made(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(ingest_formats, "STREAM_ROWS", 10)
    src = tmp_path / "list.csv"
    _text_list(src, "csv", 30)
    assert main(["ingest", "--store", str(tmp_path / "s"), str(src)]) == 0
    out = capsys.readouterr().out
    assert "recognised list.csv: paper layout (csv, ','-separated), 30 caption rows, read in batches of 10" in out
    assert "reference labels kept (benchmarks only, never shown as human labels): MV 8, N 7, TV 8" in out
    assert "30 captions added" in out
    _text_list(tmp_path / "bad.csv", "csv", 30, bad_row=30)
    before = snapshot(tmp_path / "s")
    assert main(["ingest", "--store", str(tmp_path / "s"), str(tmp_path / "bad.csv")]) == 2
    assert "bad.csv, row 30 (line 33), column 'caption'" in capsys.readouterr().err
    assert snapshot(tmp_path / "s") == before
    # the first pass finds a wrong field count, a bad byte or broken JSON before anything is opened
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("caption,url\n" + "".join(f"c{i},u{i}\n" for i in range(40)) + "late,u,extra\n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("".join(f"caption {i}\n" for i in range(40)).encode() + "caf\xe9\n".encode("latin-1"))
    broken = tmp_path / "broken.jsonl"
    broken.write_text("".join(json.dumps({"caption": f"c{i}"}) + "\n" for i in range(40)) + '{"caption": \n')
    for path, said in ((ragged, "ragged.csv, row 41 (line 42): expected 2 fields separated by ',', got 3"),
                       (latin, "latin.txt, line 41, byte 4 of the line: expected UTF-8 text, got invalid byte 0xe9"),
                       (broken, "broken.jsonl, row 41 (line 41): expected a JSON object, got invalid JSON")):
        assert main(["ingest", "--store", str(tmp_path / "new"), str(path)]) == 2
        assert said in capsys.readouterr().err
        assert not (tmp_path / "new").exists()


def test_a_json_array_is_parsed_whole_and_says_so_in_no_batches(tmp_path):
    src = tmp_path / "list.json"
    src.write_text(json.dumps([{"caption": f"c{i}", "url": f"u{i}"} for i in range(5)]))
    prepared = prepare_ingest(src, stream=True)
    assert prepared.stream is None and len(prepared.parsed.rows) == 5
    assert "read in batches" not in "\n".join(prepared.parsed.recognised())


text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\ud800\x00\r\n\x0b\u2028,;\"'"), max_size=12)


@settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "120")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.lists(st.sampled_from(["caption", "url", "type", "overfit_type", "x"]) | text, min_size=1,
                       max_size=4),
       rows=st.lists(st.lists(text, max_size=5), max_size=7), delimiter=st.sampled_from([",", ";", "\t"]),
       as_json=st.booleans(), newline=st.sampled_from(["\n", "\r\n", "\r"]))
def test_streamed_and_whole_reads_agree_on_any_input(tmp_path_factory, header, rows, delimiter, as_json, newline):
    """Whatever a CSV or JSONL list holds, batches of 2 give the whole parse's rows or its error."""
    folder = tmp_path_factory.mktemp("agree")
    if as_json:
        path = folder / "list.jsonl"
        body = "".join(json.dumps(dict(zip(header, r))) + newline for r in rows)
    else:
        path = folder / "list.csv"
        buf = io.StringIO()
        csv.writer(buf, delimiter=delimiter, lineterminator=newline).writerows([header] + rows)
        body = buf.getvalue()
    path.write_bytes(body.encode("utf-8", "surrogatepass"))

    def outcome(read):
        try:
            return read()
        except IngestError as e:
            return str(e)

    def streamed():
        stream = open_caption_stream(path)
        return tuple(r for b in stream.batches(2) for r in b)

    whole = outcome(lambda: parse_caption_file(path).rows)
    assert outcome(streamed) == whole
