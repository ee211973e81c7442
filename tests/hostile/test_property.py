"""Property: whatever bytes or JSON / CSV structure a caption list holds, ingest either succeeds
or raises IngestError (exit 2 with a message) and leaves the store unchanged: never another
exception, never a partial write."""
from __future__ import annotations

import csv
import os
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attack.ingest import ingest
from store import IngestError, Store
from tests.hostile.conftest import picture

SUFFIXES = (".csv", ".jsonl", ".json", ".txt", ".tsv", ".parquet", "")
SETTINGS = settings(max_examples=int(os.environ.get("HOSTILE_EXAMPLES", "120")), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
                    database=None)

text = st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from("\ud800\udfff\x00\x1b\r\n,;\"'=@"),
               max_size=40)
json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | text,
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                           max_leaves=20)
records = st.dictionaries(st.sampled_from(["caption", "text", "prompt", "url", "urls", "type", "overfit_type",
                                           "dup_count", "index", "x"]) | text, json_values, max_size=6)


def _check(store_dir: Path, path: Path) -> None:
    """Ingest `path`: success, or IngestError with the store as it was."""
    before = picture(store_dir)
    with Store.open(store_dir) as s:
        try:
            ingest(s, path)
        except IngestError as e:
            assert str(e)
            assert picture(store_dir) == before


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("prop") / "store"
    Store.open(path).close()
    return path


@SETTINGS
@given(data=st.binary(max_size=400), suffix=st.sampled_from(SUFFIXES))
def test_random_bytes(store_dir, tmp_path_factory, data, suffix):
    path = tmp_path_factory.mktemp("bytes") / f"list{suffix}"
    path.write_bytes(data)
    _check(store_dir, path)


@SETTINGS
@given(rows=st.lists(st.one_of(records, json_values), max_size=6), as_array=st.booleans())
def test_random_json_structures(store_dir, tmp_path_factory, rows, as_array):
    path = tmp_path_factory.mktemp("json") / ("list.json" if as_array else "list.jsonl")
    body = json.dumps(rows) if as_array else "".join(json.dumps(r) + "\n" for r in rows)
    path.write_text(body, encoding="utf-8", errors="surrogatepass")
    _check(store_dir, path)


@SETTINGS
@given(header=st.lists(st.sampled_from(["caption", "Caption", "prompt", "url", "URL", "urls", "type",
                                        "overfit_type", "dup_count", "mean_sscd"]) | text, min_size=1, max_size=5),
       rows=st.lists(st.lists(text, max_size=6), max_size=6), delimiter=st.sampled_from([",", ";", "\t"]),
       suffix=st.sampled_from([".csv", ".txt", ""]))
def test_random_csv_structures(store_dir, tmp_path_factory, header, rows, delimiter, suffix):
    buf = io.StringIO()
    w = csv.writer(buf, delimiter=delimiter)
    w.writerow(header)
    w.writerows(rows)
    path = tmp_path_factory.mktemp("csv") / f"list{suffix}"
    path.write_text(buf.getvalue(), encoding="utf-8", errors="surrogatepass")
    _check(store_dir, path)
