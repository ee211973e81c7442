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


def _member_ends(path: Path) -> list[int]:
    """Byte offsets where each member's data (padded to a block) ends in an uncompressed tar."""
    with tarfile.open(path) as tar:
        return [m.offset_data + -(-m.size // tarfile.BLOCKSIZE) * tarfile.BLOCKSIZE for m in tar.getmembers()]


def test_a_shard_cut_at_a_member_boundary_is_refused_naming_the_last_member(tmp_path, capsys):
    good = tmp_path / "good.tar"
    _shard(good, 0, 1)
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(good)]) == 0
    before = snapshot(tmp_path / "s")
    whole = tmp_path / "whole.tar"
    _shard(whole, 1, 3)
    ends = _member_ends(whole)
    cut = tmp_path / "cut.tar"
    cut.write_bytes(whole.read_bytes()[:ends[-3]])            # three samples, cut after the second one's files
    with tarfile.open(cut) as tar:                            # tarfile itself reads it as a smaller, whole shard
        assert len(tar.getmembers()) == len(ends) - 2
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(cut)]) == 2
    err = capsys.readouterr().err
    assert ("cut.tar: expected a whole tar shard ending in its end-of-archive block, got one that stops after "
            "member 000000002.json (cut short, e.g. by an interrupted copy)") in err, err
    assert snapshot(tmp_path / "s") == before


class _Repeated(io.RawIOBase):
    """n bytes of one letter, made as they are read (a bomb never held in this process's memory)."""

    def __init__(self, n: int):
        self.left = n

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        k = min(len(b), self.left)
        b[:k] = b"a" * k
        self.left -= k
        return k


def test_a_compressed_caption_bomb_is_refused_from_its_header_under_300_mb(tmp_path):
    import subprocess
    import sys

    from attack.bench.scale import PEAK_PROBE
    from tests.conftest import REPO, subprocess_env

    bomb = tmp_path / "bomb.tar"
    size = 200 << 20
    with tarfile.open(str(bomb), "w|gz") as tar:                   # a whole-shard gzip: 200 MB of caption in ~200 KB
        _add(tar, "000000000.jpg", _jpg(0))
        info = tarfile.TarInfo("000000000.txt")
        info.size = size
        tar.addfile(info, io.BufferedReader(_Repeated(size)))
    assert bomb.stat().st_size < 1 << 20
    proc = subprocess.run([sys.executable, "-c", PEAK_PROBE, "ingest", "--store", str(tmp_path / "s"),
                           "--shards", str(bomb)], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert (f"bomb.tar, member 000000000.txt: expected a caption or JSON member of at most 1,048,576 bytes, "
            f"got {size:,} bytes") in proc.stderr
    peak_mb = int(next(line.split()[1] for line in proc.stderr.splitlines()
                       if line.startswith("VERBATIM_PEAK_KB "))) / 1024
    assert peak_mb < 300, peak_mb


def test_an_oversized_image_member_is_skipped_and_named_unread(tmp_path, capsys, monkeypatch):
    from attack.ingest import shards

    monkeypatch.setattr(shards, "MAX_IMAGE_MEMBER", 4096)     # the limit, scaled down to a test's images
    shard = tmp_path / "big.tar"
    big = _jpg(5) + b"\0" * 5000                              # a JPEG with trailing bytes: over 4 KiB
    _shard(shard, 0, 2, extra=[("000000005.jpg", big)])
    assert main(["ingest", "--store", str(tmp_path / "s"), "--shards", str(shard)]) == 0
    err = capsys.readouterr().err
    assert f"not read: big.tar/000000005.jpg (an image member of {len(big):,} bytes, over the limit of 4,096 bytes)" \
        in err, err
    with Store.open(tmp_path / "s") as s:
        assert s.info()["tables"]["training_images"] == 2
