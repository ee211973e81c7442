"""Training images from img2dataset output: webdataset .tar shards, read as streams (never unpacked).

A shard holds samples as consecutive members sharing a key: KEY.jpg (or .png/.webp), KEY.txt
(the caption) and KEY.json (img2dataset's url, caption, key, width, ...). img2dataset writes a
NNNNN.parquet beside each NNNNN.tar (key, url, caption, status, ...): its url and caption fill
what a sample's own files lack.

The folder rules of attack.paths hold: only regular .tar files inside the folder are read
(symlinks leading out and special files are named and skipped), and inside a shard only regular
members are read (links, devices and names with '..' or an absolute path are named and skipped).
A corrupt image is skipped with a warning; a bad caption or JSON, or a shard that is not a
readable tar, is an IngestError naming shard and member, and nothing is written.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from attack.paths import display_path, inside, walk_files
from store import IngestError

SHARD_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
# members are sized from their tar header before a byte is read (a gzip-compressed shard expands
# 1000-fold): a caption is at most MAX_CAPTION_CHARS characters, img2dataset's JSON a few KiB, and a
# 64 MiB image file is larger than any web image a caption list points at
MAX_TEXT_MEMBER = 1 << 20
MAX_IMAGE_MEMBER = 64 << 20


@dataclass(frozen=True)
class ShardSample:
    """One image of a shard: where it is (shard, member) and what describes it."""
    shard: Path
    member: str
    rel_path: str            # shard name / member name, as stored for the training image
    caption: Optional[str] = None
    url: Optional[str] = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ShardScan:
    source: Path
    shards: tuple            # of Path
    samples: tuple           # of ShardSample
    skipped: tuple = ()      # (name, why): files or members not read
    sha256: str = ""         # of every shard's bytes and every sidecar parquet


def _list_shards(source: Path) -> tuple[list[Path], list[tuple[str, str]]]:
    if source.is_file():
        if source.suffix.lower() != ".tar":
            raise IngestError(f"--shards {source}: expected a webdataset .tar shard or a folder of them, "
                              f"got a {source.suffix or 'extension-less'} file")
        return [source], []
    if not source.is_dir():
        raise IngestError(f"--shards {source}: expected a webdataset .tar shard or a folder of them, got no such path")
    found, skipped = walk_files(source, {".tar"})
    if not found:
        raise IngestError(f"--shards {source}: expected at least one .tar shard, got none"
                          + (f" it may read ({skipped[0][0]}: {skipped[0][1]})" if skipped else ""))
    return sorted(found), skipped


def _sidecar(shard: Path, source: Path) -> dict[str, dict]:
    """key -> {url, caption} of img2dataset's NNNNN.parquet beside the shard (empty when absent)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    side = shard.with_suffix(".parquet")
    if not side.is_file() or (source.is_dir() and not inside(source, side)):
        return {}
    try:
        table = pq.read_table(side, columns=None)
    except (OSError, pa.ArrowException, ValueError) as e:
        raise IngestError(f"{side}: expected img2dataset's parquet, got {type(e).__name__}: {e}") from None
    cols = set(table.column_names)
    if "key" not in cols:
        raise IngestError(f"{side}, row 1 (header), column key: expected img2dataset's key column, "
                          f"got columns {sorted(cols)}")
    keep = [c for c in ("key", "url", "caption", "status") if c in cols]
    return {str(r["key"]): r for r in table.select(keep).to_pylist() if r.get("status") in (None, "success")}


def _ext(name: str) -> str:
    """webdataset: the key ends at the base name's first dot, the rest is the extension."""
    base = name.rpartition("/")[2]
    stem, dot, suffix = base.partition(".")
    return "." + suffix.lower() if dot else ""


def _members(shard: Path) -> Iterator[tuple[tarfile.TarInfo, Optional[bytes], str]]:
    """(member, its bytes or None when it is not read, why not) in stream order. A member's size is
    checked before it is read: a compressed shard cannot make a caption of hundreds of MB."""
    last = None
    try:
        with tarfile.open(shard, mode="r|*") as tar:
            for m in tar:
                why, limit = _why(m), _limit(m.name)
                if not why and limit is None:           # not a sample's file (e.g. .cls): nothing to read
                    yield m, None, ""
                    last = m.name
                    continue
                if not why and m.size > limit:
                    if _ext(m.name) in (".txt", ".json"):
                        raise IngestError(f"{shard}, member {display_path(m.name)}: expected a caption or JSON "
                                          f"member of at most {limit:,} bytes, got {m.size:,} bytes")
                    why = f"an image member of {m.size:,} bytes, over the limit of {MAX_IMAGE_MEMBER:,} bytes"
                yield m, (None if why else tar.extractfile(m).read()), why
                last = m.name
            # the stream reads the end-of-archive block after the last member; a shard cut at a member
            # boundary (an interrupted copy) ends there instead, and would pass for a smaller shard
            if getattr(tar.fileobj, "pos", tar.offset + tarfile.BLOCKSIZE) < tar.offset + tarfile.BLOCKSIZE:
                raise IngestError(f"{shard}: expected a whole tar shard ending in its end-of-archive block, got one "
                                  f"that stops after member {display_path(last or '(none)')} (cut short, e.g. by an "
                                  f"interrupted copy)")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise IngestError(f"{shard}: expected a readable tar shard, got {type(e).__name__}: {e}") from None


def _limit(name: str) -> Optional[int]:
    """The most bytes a member of this name may hold; None: a member the ingest does not read."""
    ext = _ext(name)
    return MAX_TEXT_MEMBER if ext in (".txt", ".json") else MAX_IMAGE_MEMBER if ext in SHARD_IMAGE_EXTENSIONS else None


def _why(m: tarfile.TarInfo) -> str:
    """Why a member is not read ("" when it is)."""
    if m.issym() or m.islnk():
        return "a link inside the shard, not read"
    if not m.isreg():
        return "not a regular member" if not m.isdir() else "a directory"
    if m.name.startswith("/") or ".." in Path(m.name).parts:
        return "a path outside the shard ('..' or absolute)"
    return ""


def iter_samples(shard: Path, source: Path, skipped: list, with_bytes: bool = False) -> Iterator[tuple]:
    """(ShardSample, image bytes or None) per image member, sidecar files joined by key."""
    from attack.ingest.captions import caption_text, json_value, optional_str

    side = _sidecar(shard, source)
    pending: dict[str, dict] = {}
    current: Optional[str] = None

    def flush(key: str) -> Iterator[tuple]:
        parts = pending.pop(key)
        image = next(((n, b) for n, b in parts.get("images", [])), None)
        if image is None:
            return
        where = f"{shard}, member {display_path(image[0])}"
        meta = parts.get("json", {})
        row = side.get(key.rpartition("/")[2]) or {}     # img2dataset's key: the name without its folder
        caption = parts.get("txt", meta.get("caption") or row.get("caption"))
        url = meta.get("url") or row.get("url")
        extra = {k: json_value(v, where) for k, v in meta.items() if k not in ("caption", "url")}
        yield (ShardSample(shard, image[0], display_path(f"{shard.name}/{image[0]}"),
                           None if caption in (None, "") else caption_text(caption, f"{where} caption"),
                           optional_str(url, f"{where} url"), extra), image[1] if with_bytes else None)

    for m, data, why in _members(shard):
        name = display_path(m.name)
        if data is None:
            if why and not m.isdir():
                skipped.append((f"{shard.name}/{name}", why))
            continue
        folder, _, base = m.name.rpartition("/")
        stem = base.partition(".")[0]                  # webdataset: the key ends at the name's first dot
        key, ext = (f"{folder}/{stem}" if folder else stem), _ext(m.name)
        if current is not None and key != current and current in pending:
            yield from flush(current)
        current = key
        entry = pending.setdefault(key, {})
        if ext in SHARD_IMAGE_EXTENSIONS:
            entry.setdefault("images", []).append((m.name, data))
        elif ext == ".txt":
            try:
                entry["txt"] = data.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise IngestError(f"{shard}, member {name}: expected a UTF-8 caption, got invalid bytes") from None
        elif ext == ".json":
            try:
                obj = json.loads(data)
            except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
                raise IngestError(f"{shard}, member {name}: expected a JSON object, got invalid JSON "
                                  f"({type(e).__name__})") from None
            if not isinstance(obj, dict):
                raise IngestError(f"{shard}, member {name}: expected a JSON object, got {type(obj).__name__}")
            entry["json"] = obj
    for key in list(pending):
        yield from flush(key)


def scan_shards(source: Path) -> ShardScan:
    """Check every shard (names, captions, JSON) without decoding an image or writing a file."""
    shards, skipped = _list_shards(source)
    skipped = list(skipped)
    samples = []
    h = hashlib.sha256()
    for shard in shards:
        samples += [s for s, _ in iter_samples(shard, source, skipped)]
        h.update(display_path(shard.name).encode() + b"\0" + _sha_file(shard))
        if shard.with_suffix(".parquet").is_file():
            h.update(_sha_file(shard.with_suffix(".parquet")))
    if not samples:
        raise IngestError(f"--shards {source}: expected at least one image ({', '.join(SHARD_IMAGE_EXTENSIONS)}) "
                          f"in its shards, got none")
    return ShardScan(source, tuple(shards), tuple(samples), tuple(skipped), h.hexdigest())


def _sha_file(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.digest()


def stream_images(scan: ShardScan) -> Iterator[tuple[ShardSample, bytes]]:
    """Each scanned sample with its image bytes, shard by shard, as a stream."""
    for shard in scan.shards:
        yield from iter_samples(shard, scan.source, [], with_bytes=True)


def decode_bytes(data: bytes, max_side: Optional[int] = None):
    """Fully decode an image from bytes (a truncated one fails here) into the RGB image a viewer shows
    (attack.ingest.images.as_seen, longest side at most max_side); raises on any problem."""
    import warnings

    from PIL import Image

    from attack.ingest.images import as_seen

    with warnings.catch_warnings():     # PIL's bomb warning names no file: the ingest says it, naming the member
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            return as_seen(im, max_side)
