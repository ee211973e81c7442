"""One writer decides: two ingests of one list started together count it once and record one run,
whichever of them finishes first (the "already ingested" check is made again under the write lock)."""
from __future__ import annotations

import subprocess
import sys

from attack.ingest import apply_ingest, prepare_ingest
from attack.ingest import run as ingest_run
from store import Store
from tests.conftest import REPO, subprocess_env


def _write_list(path, n: int) -> None:
    path.write_text("caption\n" + "".join(f"a red chair number {i} by a window\n" for i in range(n)))


def test_an_ingest_that_finishes_while_another_decodes_is_not_counted_twice(tmp_path, monkeypatch):
    src = tmp_path / "list.csv"
    _write_list(src, 50)
    Store.open(tmp_path / "s").close()
    first, second = Store.open(tmp_path / "s"), Store.open(tmp_path / "s")
    decode_all = ingest_run._decode_all

    def meanwhile(store, *args, **kw):
        if store is second:                 # the other process finishes its ingest of the same list now
            monkeypatch.setattr(ingest_run, "_decode_all", decode_all)
            assert apply_ingest(first, prepare_ingest(file=src)).run_id is not None
        return decode_all(store, *args, **kw)

    monkeypatch.setattr(ingest_run, "_decode_all", meanwhile)
    try:
        report = apply_ingest(second, prepare_ingest(file=src))
        assert report.run_id is None and [w for w, _ in report.already] == ["caption list"]
        assert "already ingested by run 1 (same content): skipped" in report.summary()
        assert len(second.runs(stage="ingest")) == 1
        assert {second.get_caption(r.id).count for r in second.caption_refs()} == {1}
    finally:
        first.close(), second.close()


def test_two_ingest_processes_of_one_list_started_together_count_it_once(tmp_path):
    src = tmp_path / "list.csv"
    _write_list(src, 20_000)
    store = tmp_path / "s"
    Store.open(store).close()
    cmd = [sys.executable, "-m", "attack", "ingest", "--store", str(store), str(src)]
    procs = [subprocess.Popen(cmd, cwd=REPO, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    said = "".join(out for out, _ in outs)
    assert said.count("already ingested by run 1 (same content): skipped") == 1, said
    with Store.open(store, readonly=True) as s:
        assert len(s.runs(stage="ingest")) == 1
        assert s.caption_count() == 20_000
        assert max(s.get_caption(r.id).count for r in s.caption_refs()[:: 997]) == 1
