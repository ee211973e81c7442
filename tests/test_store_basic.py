"""Store: opening, schema versions, images, evidence tables."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
from PIL import Image

from store import (
    SCHEMA_VERSION, CaptionRow, Neighbour, NotFoundError, PageQuery, SchemaError, Store, StoreError,
)
from tests.conftest import assert_derived_state, snapshot, tiny_image


def test_open_creates_folder_with_wal_and_schema(tmp_path):
    with Store.open(tmp_path / "s") as s:
        assert (tmp_path / "s" / "store.db").is_file()
        assert (tmp_path / "s" / "images").is_dir()
        assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert s.conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000
        assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert "captions" in s.db.table_names() and s.db["captions"].count == 0
    with Store.open(tmp_path / "s", create=False) as s:  # reopening migrates nothing
        assert s.info()["schema_version"] == SCHEMA_VERSION


def test_open_missing_without_create(tmp_path):
    with pytest.raises(StoreError, match="expected a store folder containing store.db, got none"):
        Store.open(tmp_path / "nope", create=False)


def test_open_newer_schema_is_refused(tmp_path):
    Store.open(tmp_path / "s").close()
    conn = sqlite3.connect(tmp_path / "s" / "store.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match=rf"expected schema version <= {SCHEMA_VERSION}.*got {SCHEMA_VERSION + 1}"):
        Store.open(tmp_path / "s")


def test_open_foreign_database_and_garbage(tmp_path):
    (tmp_path / "f").mkdir()
    conn = sqlite3.connect(tmp_path / "f" / "store.db")
    conn.execute("CREATE TABLE other (x)")
    conn.commit()
    conn.close()
    with pytest.raises(SchemaError, match=r"got a database with tables \['other'\]"):
        Store.open(tmp_path / "f")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "store.db").write_bytes(b"not a database at all" * 100)
    with pytest.raises(SchemaError, match="expected a SQLite database"):
        Store.open(tmp_path / "g")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="expected a store folder, got a file"):
        Store.open(tmp_path / "file")


def test_put_image_canonical_and_idempotent(store):
    arr = tiny_image(1)
    sha = store.put_image(arr)
    assert store.put_image(Image.fromarray(arr)) == sha            # PIL and ndarray agree
    assert store.put_image(arr.astype(np.float32) / 255.0) == sha  # floats in [0,1] too
    assert store.put_image(Image.fromarray(arr).convert("RGBA")) == sha
    path = store.image_path(sha)
    assert path == store.path / "images" / sha[:2] / f"{sha}.png"
    import hashlib
    assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
    assert np.array_equal(np.asarray(store.load_image(sha)), arr)
    with Image.open(path) as im:
        assert im.mode == "RGB" and not im.info.get("exif") and "dpi" not in im.info
    assert not list(store.path.joinpath("images").rglob(".tmp-*"))  # no temp files left


def test_put_image_rejects_bad_arrays(store):
    with pytest.raises(StoreError, match=r"expected float pixel values in \[0, 1\], got min -0.5"):
        store.put_image(np.full((4, 4, 3), -0.5))
    with pytest.raises(StoreError, match=r"expected an HxWx3 \(or HxW\) image array, got shape \(4, 4, 4\)"):
        store.put_image(np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(StoreError, match="expected a uint8 or float image array, got dtype int64"):
        store.put_image(np.zeros((4, 4, 3), np.int64))


def test_image_path_rejects_non_sha(store):
    for bad in ("../../etc/passwd", "AB" * 32, "a" * 63, None):
        with pytest.raises(StoreError, match="expected a sha256 of 64 lowercase hex digits"):
            store.image_path(bad)
    with pytest.raises(NotFoundError, match="got no such file"):
        store.load_image("0" * 64)


def test_runs_params_canonical(store):
    run = store.start_run("score", "demo", {"b": [1, 2], "a": {"z": 1, "y": 2}})
    raw = store.conn.execute("SELECT params FROM runs WHERE id = ?", (run,)).fetchone()[0]
    assert raw == '{"a":{"y":2,"z":1},"b":[1,2]}'
    assert store.get_run(run).status == "running"
    store.finish_run(run, evals=123)
    r = store.get_run(run)
    assert (r.status, r.evals, r.finished_at is not None) == ("done", 123, True)
    with pytest.raises(StoreError, match="expected JSON-serialisable data without NaN"):
        store.start_run("score", "demo", {"x": float("nan")})
    with pytest.raises(NotFoundError, match="expected an existing runs id, got 999"):
        store.finish_run(999, 1)


def test_captions_merge_with_count(store):
    ids = store.add_captions([
        CaptionRow("a cat", url=None, dup_count=3, source="a.csv", extra={"k": 1}),
        CaptionRow("a dog"),
        CaptionRow("a cat", url="https://x/cat.jpg", dup_count=7, reference_label="MV", source="b.csv",
                   extra={"k": 2, "j": 3}),
    ])
    assert ids[0] == ids[2] != ids[1]
    cat = store.get_caption(ids[0])
    assert (cat.count, cat.dup_count, cat.url, cat.reference_label, cat.source) == (2, 7, "https://x/cat.jpg", "MV", "a.csv")
    assert cat.extra == {"k": 1, "j": 3}  # first value of a key wins
    assert store.caption_id("a dog") == ids[1]
    assert store.caption_id("a bird") is None
    with pytest.raises(StoreError, match="reference_label: expected one of MV, TV, RV, N or None, got 'XX'"):
        store.add_captions([CaptionRow("x", reference_label="XX")])
    with pytest.raises(StoreError, match="add_captions row 1 text: expected a non-empty string"):
        store.add_captions([CaptionRow("ok"), CaptionRow("  ")])
    assert store.caption_id("ok") is None  # the whole call was rejected


def test_scores_upsert_and_validation(store):
    run = store.start_run("score", "demo", {})
    (cid,) = store.add_captions([CaptionRow("c")])
    assert store.add_scores(run, "dcs", [(cid, 0.5)]) == 1
    store.add_scores(run, "dcs", [(cid, 0.75)])  # same (caption, run, kind): replaced
    assert store.scores_for(cid) == {"dcs": 0.75}
    assert store.conn.execute("SELECT count(*) FROM scores").fetchone()[0] == 1
    with pytest.raises(StoreError, match=r"add_scores item 0 \(caption 1\) value: expected a finite number, got nan"):
        store.add_scores(run, "dcs", [(cid, float("nan"))])
    with pytest.raises(NotFoundError, match="expected existing caption ids"):
        store.add_scores(run, "dcs", [(cid + 100, 1.0)])
    run2 = store.start_run("score", "demo", {})
    store.add_scores(run2, "dcs", [(cid, 0.1)])
    assert store.scores_for(cid) == {"dcs": 0.1}  # latest run wins


def test_generations_neighbours_masks(store):
    run = store.start_run("generate", "demo", {})
    (cid,) = store.add_captions([CaptionRow("c")])
    with pytest.raises(NotFoundError, match="got no such file"):
        store.add_generation(cid, run, 0, 1, "heun", "f" * 64)
    sha = store.put_image(tiny_image(0))
    gid = store.add_generation(cid, run, 7, 1, "heun", sha, {"guidance": 7.5})
    assert store.generations(cid)[0].seed == 7
    tid = store.add_training_image(sha, cid, "a.png")
    assert store.add_training_image(sha, cid, "a.png") == tid  # idempotent
    store.add_neighbours(gid, [Neighbour(0, tid, 0.9, 0.1, None), Neighbour(1, tid, 0.8, 0.2, 0.05)])
    assert [n.rank for n in store.neighbours(gid)] == [0, 1]
    with pytest.raises(StoreError, match="expected unique ranks, got rank 2 twice"):
        store.add_neighbours(gid, [Neighbour(2, tid), Neighbour(2, tid)])
    with pytest.raises(NotFoundError, match="expected an existing training_images id, got 99"):
        store.add_neighbours(gid, [Neighbour(5, 99)])

    m = np.zeros((16, 16), bool)
    m[4:8] = True
    m1 = store.add_mask(tid, store.put_mask(m))
    m2 = store.add_mask(tid, store.put_mask(~m), source="edited", author="ann")
    versions = store.mask_versions(tid)
    assert [(v.version, v.source, v.author, v.parent_id) for v in versions] == [(1, "auto", None, None), (2, "edited", "ann", m1)]
    assert store.current_mask(tid).id == m2
    assert np.array_equal(store.load_mask(store.current_mask(tid).image_sha), ~m)
    with pytest.raises(StoreError, match="expected one of auto, edited, got 'manual'"):
        store.add_mask(tid, store.put_mask(m), source="manual")
    with pytest.raises(StoreError, match="expected a grey 0/255 mask, got a colour image"):
        store.add_mask(tid, sha)


def test_auto_labels_and_flags(store):
    run = store.start_run("label", "demo", {})
    (cid,) = store.add_captions([CaptionRow("c")])
    store.add_auto_label(cid, run, "TV", {"masked_rmse": 0.05}, ["suspect:texture"])
    with pytest.raises(StoreError, match="expected rows that satisfy"):
        store.add_auto_label(cid, run, "MV", {}, [])
    with pytest.raises(StoreError, match="expected one of MV, TV, RV, N, got 'FP:texture'"):
        store.add_auto_label(cid, run, "FP:texture", {}, [])
    run2 = store.start_run("label", "demo", {})
    store.add_auto_label(cid, run2, "N", {}, ["suspect:background"])
    assert [a.label for a in store.auto_labels(cid)] == ["TV", "N"]
    flags = store.conn.execute("SELECT flag FROM caption_flags WHERE caption_id = ?", (cid,)).fetchall()
    assert flags == [("suspect:background",)]  # only the latest proposal's flags


def test_transaction_rolls_back_everything(store):
    before = snapshot(store.path)
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.add_captions([CaptionRow("x")])
            store.start_run("s", "m", {})
            raise RuntimeError("boom")
    assert snapshot(store.path) == before


def test_info_counts(store):
    run = store.start_run("generate", "demo", {})
    (a, b) = store.add_captions([CaptionRow("a"), CaptionRow("b")])
    sha = store.put_image(tiny_image(0))
    store.add_generation(a, run, 0, 1, "heun", sha)
    store.add_label(a, "MV", "ann")
    info = store.info()
    assert info["tables"]["captions"] == 2 and info["tables"]["labels"] == 1
    assert info["candidates"] == 1
    assert info["labels"]["MV"] == 1 and info["labels"]["unlabelled"] == 0
    json.dumps(info)


def test_migration_from_v1(tmp_path):
    """A store written by schema v1 opens, migrates in place, and keeps its data searchable."""
    from store.db import split_sql
    from store.schema import MIGRATIONS
    (tmp_path / "old").mkdir()
    conn = sqlite3.connect(tmp_path / "old" / "store.db", isolation_level=None)
    for statement in split_sql(MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.execute("INSERT INTO captions (text) VALUES ('written by version one')")
    conn.execute("INSERT INTO generations (caption_id, seed, steps, sampler, image_sha, created_at) "
                 "VALUES (1, 0, 1, 'heun', 'x', 'now')")
    conn.execute("INSERT INTO labels (caption_id, label, reviewer, created_at) VALUES (1, 'MV', 'ann', 'now')")
    conn.close()
    with Store.open(tmp_path / "old") as s:
        assert s.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        s.add_captions([CaptionRow("written by version two"), CaptionRow("written by version one")])
        assert sorted(h.text for h in s.search("written version", 10)) == [
            "written by version one", "written by version two"]
        s.conn.execute("INSERT INTO captions_fts (captions_fts, rank) VALUES ('integrity-check', 1)")
        assert s.get_caption(1).count == 2
        assert_derived_state(s.conn)  # v3's counts were backfilled from v1 data
        assert s.page(PageQuery(human_label="MV")).total == 1


def test_fts_index_matches_captions(store):
    store.add_captions([CaptionRow(f"caption number {i}") for i in range(50)])
    store.add_captions([CaptionRow("caption number 3"), CaptionRow("a new one")])
    store.conn.execute("INSERT INTO captions (text) VALUES ('raw insert')")  # per-row trigger path
    # rank=1: also compare the index with the captions table (catches missing or doubled rows)
    store.conn.execute("INSERT INTO captions_fts (captions_fts, rank) VALUES ('integrity-check', 1)")
    n_fts = store.conn.execute("SELECT count(*) FROM captions_fts WHERE captions_fts MATCH 'caption OR new OR raw'").fetchone()[0]
    assert n_fts == 52
    assert store.conn.execute("SELECT count(*) FROM meta WHERE key = 'fts_bulk_insert'").fetchone()[0] == 0
