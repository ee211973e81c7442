"""Ingest caption lists and training images into a store.

Caption lists: parquet, CSV, JSONL or plain text (one caption a line). The
column layouts of the community's published memorized-prompt lists are
recognised from their headers:
- ``paper``: Webster's public parquet: caption, url, optional overfit_type (MV/RV/TV/N)
- ``wen``: Wen et al.'s JSONL: caption, index, url
- ``nemo``: NeMo's ';'-separated CSV: Caption;URL;type;mean_sscd;max_sscd;Index (type VM->MV, TM->TV)
- ``membench``: MemBench's CSV: prompt, urls (a list written as a string)
- ``generic``: any table with a caption / prompt / text column.
Reference labels from a list are stored as ``captions.reference_label``
(benchmarks only, never shown as a human label); other columns go to ``extra``.

Training images: every image file under a folder, optionally described by an
imagefolder-style metadata file (file_name, caption/text, url).

Everything that can be bad input is checked before anything is written, then
images go to images/ (content-addressed, harmless if left over) and all rows
are written in ONE transaction: an error leaves the store as it was. A corrupt
or truncated image is not an error: it is reported and skipped. The command
line streams a caption list (CaptionStream): its structure is checked by a first
pass that keeps no row, its cells batch by batch inside that one transaction.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from attack.ingest.captions import CaptionStream, ParsedList, open_caption_stream, parse_caption_file
from attack.ingest.formats import sha256_of_file
from attack.ingest.images import MAX_SIDE, ImageScan, decode_image, scan_images, seen_notes
from attack.progress import no_progress
from store import CaptionRow, IngestError, Store


@dataclass(frozen=True)
class IngestReport:
    run_id: Optional[int]   # None: nothing new to ingest (the same content was ingested before)
    caption_rows: int
    captions_added: int
    captions_merged: int
    images_added: int
    images_skipped: int
    corrupt_files: tuple    # of (relative path, reason)
    format: Optional[str] = None
    layout: Optional[str] = None
    not_read: tuple = ()    # (relative path, why): files under --images that were not read
    already: tuple = ()     # (what, run id): parts skipped because that run ingested the same content

    def summary(self) -> str:
        not_read = f", {len(self.not_read)} files not read (outside the folder or not regular files)" \
            if self.not_read else ""
        again = "".join(f"; {what} already ingested by run {run} (same content): skipped" for what, run in self.already)
        return (f"ingest: {self.captions_added} captions added, {self.captions_merged} merged"
                f"{f' ({self.layout} layout, {self.format})' if self.layout else ''}; "
                f"{self.images_added} training images added, "
                f"{self.images_skipped} corrupt image files skipped{not_read}{again}")


# -- the whole ingest -------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedIngest:
    """Validated input, nothing written yet (the store need not exist)."""
    file: Optional[Path]
    parsed: Optional[ParsedList]
    scan: Optional[ImageScan]
    images_sha256: str = ""   # of the metadata file and every image file (names and bytes)
    stream: Optional[CaptionStream] = None   # a caption list read in batches (parsed is then None)
    shards: Any = None        # an attack.ingest.shards.ShardScan: img2dataset webdataset shards, streamed
    max_side: Optional[int] = MAX_SIDE   # training images are stored with their longest side at most this

    @property
    def captions(self) -> "Optional[ParsedList | CaptionStream]":
        return self.parsed if self.parsed is not None else self.stream


def scan_sha256(scan: ImageScan) -> str:
    """Content identity of an image folder ingest: metadata bytes, then each file's name and bytes."""
    h = hashlib.sha256()
    if scan.metadata is not None:
        h.update(bytes.fromhex(sha256_of_file(scan.metadata)))
    for e in scan.entries:
        h.update(e.rel_path.encode("utf-8") + b"\0" + bytes.fromhex(sha256_of_file(e.abs_path)))
    return h.hexdigest()


def prepare_ingest(file: Optional[Path] = None, images: Optional[Path] = None,
                   metadata: Optional[Path] = None, fmt: Optional[str] = None,
                   stream: bool = False, shards: Optional[Path] = None,
                   max_side: Optional[int] = MAX_SIDE) -> PreparedIngest:
    """Parse and check every input; raises IngestError naming file, row and column. stream: a
    caption list is checked here by its schema or header and a first pass that keeps no row, and
    read in batches while written (memory bounded by STREAM_ROWS; a bad cell still rolls the whole
    ingest back). A JSON array is parsed whole either way. max_side: larger training images are
    downscaled (None: kept whole)."""
    if max_side is not None and max_side < 16:
        raise IngestError(f"ingest: expected a largest image side of at least 16 px, got {max_side}")
    if file is None and images is None and shards is None:
        raise IngestError("ingest: expected a caption FILE, --images DIR and/or --shards PATH, got none")
    if metadata is not None and images is None:
        raise IngestError("ingest: expected --images DIR with --metadata, got --metadata alone")
    streamed = open_caption_stream(Path(file), fmt) if file is not None and stream else None
    parsed = parse_caption_file(Path(file), fmt) if file is not None and streamed is None else None
    scan = scan_images(Path(images), Path(metadata) if metadata else None) if images is not None else None
    from attack.ingest.shards import scan_shards

    tars = scan_shards(Path(shards)) if shards is not None else None
    return PreparedIngest(None if file is None else Path(file), parsed, scan,
                          scan_sha256(scan) if scan is not None else "", streamed, tars, max_side)


def _ingested_before(store: Store, key: str, sha: str) -> Optional[int]:
    """The id of a finished ingest run whose input had this content hash."""
    if not sha:
        return None
    done = [r.id for r in store.runs(stage="ingest") if r.status == "done" and r.params.get(key) == sha]
    return done[-1] if done else None


def _decode_each(store: Store, items, n: int, decode, warn, created: list[str], max_side: Optional[int],
                 progress=no_progress) -> tuple[list, list]:
    """Decode each (entry, source) with ``decode(source, max_side)`` (a corrupt image is skipped with
    a warning; a downscaled or animated one is named) and write its file; the files this call
    creates are listed in ``created``. Each decoded item: (entry, sha, stored size, metadata)."""
    decoded, corrupt = [], []
    if n == 0:      # nothing to decode: no bar (an empty one is noise beside a caption error)
        return decoded, corrupt
    progress("images", 0, n)
    for i, (entry, source) in enumerate(items):
        progress("images", i, n)
        try:
            img = decode(source, max_side)
        except Exception as e:  # PIL raises many types for bad files: all mean "skip it"
            reason = f"{type(e).__name__}: {e}"
            corrupt.append((entry.rel_path, reason))
            warn(f"skipped corrupt image {entry.rel_path} ({reason})")
            continue
        meta, notes = seen_notes(img, max_side)
        for note in notes:
            warn(f"{entry.rel_path}: {note}")
        decoded.append((entry, store.put_image_tracked(img, created, compare_view=True), img.size, meta))
    progress("images", n, n)
    return decoded, corrupt


def _decode_all(store: Store, scan: Optional[ImageScan], warn, created: list[str], max_side: Optional[int],
                progress=no_progress) -> tuple[list, list]:
    """_decode_each over an image folder's entries."""
    entries = scan.entries if scan else ()
    return _decode_each(store, ((e, e.abs_path) for e in entries), len(entries), decode_image, warn, created,
                        max_side, progress)


def _skip_done(store: Store, prepared: PreparedIngest, parts: dict, already: list) -> dict:
    """parts (captions, scan, shards) with those an earlier finished ingest took set to None, named
    in ``already``. Called before decoding (to skip the work) and again inside the write
    transaction, whose lock makes the second call see every other ingest that finished first."""
    keys = {"captions": ("file_sha256", "caption list"), "scan": ("images_sha256", "image folder"),
            "shards": ("shards_sha256", "shards")}
    shas = {"captions": parts["captions"].sha256 if parts["captions"] else "",
            "scan": prepared.images_sha256, "shards": parts["shards"].sha256 if parts["shards"] else ""}
    out = dict(parts)
    for part, (key, what) in keys.items():
        run = _ingested_before(store, key, shas[part]) if parts[part] else None
        if run is not None:
            already.append((what, run))
            out[part] = None
    return out


def _params(prepared: PreparedIngest, parsed, scan, tars) -> dict:
    return {"file": None if parsed is None else str(prepared.file),
            "file_sha256": parsed.sha256 if parsed else None,
            "format": parsed.format if parsed else None, "layout": parsed.layout if parsed else None,
            "images": None if scan is None else str(scan.folder),
            "metadata": None if scan is None or scan.metadata is None else str(scan.metadata),
            "images_sha256": prepared.images_sha256 if scan else None,
            "shards": None if tars is None else str(tars.source),
            "shards_sha256": tars.sha256 if tars else None, "max_side": prepared.max_side}


def apply_ingest(store: Store, prepared: PreparedIngest, warn=lambda msg: None,
                 progress=no_progress) -> IngestReport:
    """Write image files (skipping corrupt ones), then every row in one transaction. All or
    nothing: on any failure or signal the image files this call created are removed again.
    A caption list or image folder whose content an earlier ingest already took is skipped, also
    when that ingest ran at the same time as this one (checked again under the write lock)."""
    not_read = (prepared.scan.skipped if prepared.scan else ()) + (prepared.shards.skipped if prepared.shards else ())
    for rel, why in not_read:
        warn(f"not read: {rel} ({why})")
    already: list = []
    parts = _skip_done(store, prepared, {"captions": prepared.captions, "scan": prepared.scan,
                                         "shards": prepared.shards}, already)
    if not any(parts.values()):
        return IngestReport(None, 0, 0, 0, 0, 0, (), not_read=not_read, already=tuple(already))
    created: list[str] = []
    try:
        decoded, corrupt = _decode_all(store, parts["scan"], warn, created, prepared.max_side, progress)
        decoded_tars, corrupt_tars = _decode_shards(store, parts["shards"], warn, created, prepared.max_side,
                                                    progress)
        with store.transaction():
            late = _skip_done(store, prepared, parts, already)     # another ingest may have finished meanwhile
            parsed, scan, tars = late["captions"], late["scan"], late["shards"]
            run_id, counts = _write(store, prepared, parsed, scan, tars, decoded if scan else [],
                                    decoded_tars if tars else [], progress) if any(late.values()) else (None, None)
    except BaseException:
        store.remove_unreferenced_images(created)
        raise
    if late != parts:                    # the image files of a part another ingest took meanwhile
        store.remove_unreferenced_images(created)
    if run_id is None:
        return IngestReport(None, 0, 0, 0, 0, 0, (), not_read=not_read, already=tuple(already))
    corrupt = (corrupt if scan else []) + (corrupt_tars if tars else [])
    n_rows, added, images_added = counts
    return IngestReport(run_id=run_id, caption_rows=n_rows, captions_added=added, captions_merged=n_rows - added,
                        images_added=images_added, images_skipped=len(corrupt), corrupt_files=tuple(corrupt),
                        format=parsed.format if parsed else None, layout=parsed.layout if parsed else None,
                        not_read=not_read, already=tuple(already))


def _write(store: Store, prepared: PreparedIngest, parsed, scan, tars, decoded: list, decoded_tars: list,
           progress) -> tuple[int, tuple[int, int, int]]:
    """Every row of one ingest, inside the caller's transaction: (run id, (caption rows, captions
    added, images added))."""
    streamed = isinstance(parsed, CaptionStream)
    caption_rows = list(parsed.rows) if parsed and not streamed else []
    image_captions = [CaptionRow(e.caption, url=e.url, source=scan.metadata.name)
                      for e, *_ in decoded if e.caption is not None]
    image_captions += [CaptionRow(e.caption, url=e.url, source=e.shard.name)
                       for e, *_ in decoded_tars if e.caption is not None]
    run_id = store.start_run("ingest", "", _params(prepared, parsed, scan, tars))
    n_captions_before = store.caption_count()
    n_images_before = store.training_set_version().count
    store.add_captions(caption_rows)
    n_streamed = 0
    for batch in parsed.batches() if streamed else ():   # one transaction: a bad row rolls all back
        store.add_captions(batch)
        n_streamed += len(batch)
        progress("captions", n_streamed, parsed.n_rows)
    ids = iter(store.add_captions(image_captions))
    for entry, sha, size, seen in decoded + decoded_tars:
        meta = dict(entry.meta, url=entry.url, width=size[0], height=size[1], **seen)
        store.add_training_image(sha, next(ids) if entry.caption is not None else None,
                                 entry.rel_path, {k: v for k, v in meta.items() if v is not None})
    added = store.caption_count() - n_captions_before
    images_added = store.training_set_version().count - n_images_before
    store.finish_run(run_id, evals=0)
    return run_id, (len(caption_rows) + n_streamed + len(image_captions), added, images_added)


def ingest_unless_present(store: Store, prepared: PreparedIngest, warn=lambda msg: None) -> str:
    """Ingest a caption list unless every caption is already in the store (a rerun, to resume, of
    the same list: ingesting again would only bump each caption's count); the summary line."""
    texts = list(dict.fromkeys(r.text for r in prepared.parsed.rows))
    if all(store.caption_id(t) is not None for t in texts):
        return f"ingest: all {len(texts)} captions already in the store, skipped"
    return apply_ingest(store, prepared, warn=warn).summary()


def _decode_shards(store: Store, tars, warn, created: list[str], max_side: Optional[int],
                   progress=no_progress) -> tuple[list, list]:
    """_decode_each over webdataset shards: each image decoded from the tar stream, never unpacked."""
    from attack.ingest.shards import decode_bytes, stream_images

    n = len(tars.samples) if tars else 0
    return _decode_each(store, stream_images(tars) if tars else (), n, decode_bytes, warn, created, max_side,
                        progress)


def ingest(store: Store, file: Optional[Path] = None, images: Optional[Path] = None,
           metadata: Optional[Path] = None, fmt: Optional[str] = None,
           warn=lambda msg: None) -> IngestReport:
    """Validate everything, write image files, then all rows in one transaction."""
    return apply_ingest(store, prepare_ingest(file, images, metadata, fmt), warn)
