"""Streamed parquet ingest (issue 15): read in batches, written in one transaction, so a bad row
in a late batch leaves the store as it was, and the result equals the whole-file path."""
from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from attack import ingest as ingest_mod
from attack.cli import main
from attack.ingest import apply_ingest, prepare_ingest
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
    monkeypatch.setattr(ingest_mod, "STREAM_ROWS", 10)     # 95 rows: ten batches, the last one short
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
    monkeypatch.setattr(ingest_mod, "STREAM_ROWS", 10)
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
