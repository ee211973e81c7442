"""img2dataset webdataset shards (issue 15): streamed without unpacking, under the folder path's
rules: only regular members are read, links and '..' names are named and skipped, a corrupt image
is skipped, bad JSON or a broken tar is refused with the store left as it was."""
from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from attack.cli import main
from attack.ingest import apply_ingest, prepare_ingest
from store import Store
from tests.conftest import snapshot, tiny_image


def _jpg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(tiny_image(seed, 24)).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes, kind: bytes = tarfile.REGTYPE, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)


def _shard(path: Path, first: int, n: int, extra=()) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(first, first + n):
            key = f"{i:09d}"
            _add(tar, f"{key}.jpg", _jpg(i))
            if i % 2 == 0:
                _add(tar, f"{key}.txt", f"a shard caption {i}".encode())
            _add(tar, f"{key}.json", json.dumps({"key": key, "url": f"http://x/{i}.jpg", "width": 24}).encode())
        for args in extra:
            _add(tar, *args)


def _sidecar(path: Path, keys: list[str]) -> None:
    pq.write_table(pa.table({"key": keys, "url": [f"http://side/{k}" for k in keys],
                             "caption": [f"sidecar caption {k}" for k in keys], "status": ["success"] * len(keys)}),
                   path)


def test_shards_are_streamed_with_captions_urls_and_img2dataset_parquet(tmp_path):
    folder = tmp_path / "laion"
    folder.mkdir()
    _shard(folder / "00000.tar", 0, 3)
    _shard(folder / "00001.tar", 3, 3, extra=[("000000099.jpg", b"not a jpeg at all")])
    _sidecar(folder / "00001.parquet", [f"{i:09d}" for i in range(3, 6)])
    warnings = []
    with Store.open(tmp_path / "s") as s:
        report = apply_ingest(s, prepare_ingest(shards=folder), warn=warnings.append)
        assert (report.images_added, report.images_skipped) == (6, 1)
        assert any("00001.tar/000000099.jpg" in w for w in warnings)
        img = s.training_image_at("00000.tar/000000000.jpg")
        assert img is not None and img.meta["url"] == "http://x/0.jpg" and img.meta["width"] == 24
        texts = {s.get_caption(r.id).text for r in s.caption_refs()}
        # .txt wins; a sample without one takes the sidecar parquet's caption; shard 0's odd keys have none
        assert texts == {"a shard caption 0", "a shard caption 2", "a shard caption 4", "sidecar caption 000000003",
                         "sidecar caption 000000005"}
        assert not list(tmp_path.glob("**/000000000.jpg"))    # nothing unpacked
        again = apply_ingest(s, prepare_ingest(shards=folder))
        assert again.run_id is None and again.already[0][0] == "shards"


def test_links_and_escaping_names_inside_a_shard_are_named_not_read(tmp_path, capsys):
    shard = tmp_path / "00000.tar"
    _shard(shard, 0, 2, extra=[("../../escape.jpg", _jpg(7)), ("/abs.jpg", _jpg(8)),
                               ("link.jpg", b"", tarfile.SYMTYPE, "/etc/passwd"),
                               ("hard.jpg", b"", tarfile.LNKTYPE, "000000000.jpg"),
                               ("fifo.jpg", b"", tarfile.FIFOTYPE)])
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(shard)]) == 0
    err = capsys.readouterr().err
    for name in ("../../escape.jpg", "/abs.jpg", "link.jpg", "hard.jpg", "fifo.jpg"):
        assert f"not read: 00000.tar/{name}" in err
    with Store.open(tmp_path / "s") as s:
        assert s.training_set_version().count == 2
    assert not (tmp_path.parent / "escape.jpg").exists()


def test_a_shard_symlinked_from_outside_the_folder_is_skipped(tmp_path, capsys):
    outside, folder = tmp_path / "outside", tmp_path / "laion"
    outside.mkdir(), folder.mkdir()
    _shard(outside / "99999.tar", 0, 1)
    _shard(folder / "00000.tar", 5, 1)
    (folder / "00001.tar").symlink_to(outside / "99999.tar")
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(folder)]) == 0
    assert "not read: 00001.tar (a symlink to" in capsys.readouterr().err
    with Store.open(tmp_path / "s") as s:
        assert s.training_set_version().count == 1


def test_bad_json_or_a_broken_tar_is_refused_and_changes_nothing(tmp_path, capsys):
    good = tmp_path / "good.tar"
    _shard(good, 0, 1)
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(good)]) == 0
    before = snapshot(tmp_path / "s")
    bad_json = tmp_path / "bad.tar"
    _shard(bad_json, 1, 2, extra=[("000000009.jpg", _jpg(9)), ("000000009.json", b"{not json")])
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(bad_json)]) == 2
    assert "bad.tar, member 000000009.json: expected a JSON object" in capsys.readouterr().err
    cut = tmp_path / "cut.tar"
    cut.write_bytes(good.read_bytes()[:700])
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(cut)]) == 2
    assert "cut.tar: expected a readable tar shard" in capsys.readouterr().err
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(tmp_path / "none")]) == 2
    assert snapshot(tmp_path / "s") == before
