"""Training images: the files under a folder, optionally described by an imagefolder-style
metadata file (file_name, caption/text, url), and how one is decoded."""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from attack.ingest.captions import caption_text, find_column, json_value, optional_str, unicode_text
from attack.ingest.formats import CAPTION_COLUMNS, detect_format, read_table
from attack.paths import display_path, inside, resolve_inside, resolved, walk_files
from store import IngestError

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


METADATA_NAMES = ("metadata.jsonl", "metadata.csv", "metadata.parquet")


@dataclass(frozen=True)
class ImageEntry:
    rel_path: str
    abs_path: Path
    caption: Optional[str] = None
    url: Optional[str] = None
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ImageScan:
    folder: Path
    metadata: Optional[Path]
    entries: tuple          # of ImageEntry
    skipped: tuple = ()     # (relative path, why): files under the folder that are not read


# -- training images -------------------------------------------------------------------------------
def _find_metadata(folder: Path, metadata: Optional[Path]) -> Optional[Path]:
    if metadata is not None:
        if not metadata.is_file():
            raise IngestError(f"--metadata {metadata}: expected a metadata file, got "
                              f"{'something else' if metadata.exists() else 'no such file'}")
        return metadata
    found = [folder / n for n in METADATA_NAMES if (folder / n).is_file() or (folder / n).is_symlink()]
    if len(found) > 1:
        raise IngestError(f"{folder}: expected at most one metadata file, got {[p.name for p in found]}; "
                          f"choose one with --metadata")
    if found and not inside(folder, found[0]):
        raise IngestError(f"{found[0]}: expected a metadata file inside {folder}, got a symlink to "
                          f"{resolved(found[0]) or 'itself (a symlink loop)'} (name it with --metadata if it is meant)")
    if found and not found[0].is_file():
        raise IngestError(f"{found[0]}: expected a metadata file, got a broken symlink or a special file")
    return found[0] if found else None


def scan_images(folder: Path, metadata: Optional[Path] = None) -> ImageScan:
    """List image files and join them with metadata rows; no image is decoded here."""
    if not folder.is_dir():
        raise IngestError(f"--images {folder}: expected a folder of images, got "
                          f"{'a file' if folder.exists() else 'no such folder'}")
    meta_path = _find_metadata(folder, metadata)
    described: dict[Path, dict] = {}
    if meta_path is not None:
        fmt = detect_format(meta_path)
        if fmt == "text":
            raise IngestError(f"{meta_path}: expected metadata as JSONL, CSV or parquet, got plain text")
        table = read_table(meta_path, fmt)
        name_col = find_column(table.columns, ("file_name",))
        if name_col is None:
            raise IngestError(f"{meta_path}, row 1 (header), column file_name: expected a file_name column, "
                              f"got columns {list(table.columns)}")
        caption_col = find_column(table.columns, CAPTION_COLUMNS)
        url_col = find_column(table.columns, ("url",))
        for record, loc in zip(table.records, table.locations):
            def where(col: str) -> str:
                return f"{meta_path}, {loc}, column {col!r}"
            rel = record.get(name_col)
            target = resolve_inside(folder, rel) if isinstance(rel, str) else None
            if target is None:
                raise IngestError(f"{where(name_col)}: expected a relative path inside {folder}, got {rel!r}")
            if not target.is_file():
                raise IngestError(f"{where(name_col)}: expected an existing image file, got no file {rel!r}")
            if target in described:
                raise IngestError(f"{where(name_col)}: expected each file once, got {rel!r} again")
            caption = record.get(caption_col) if caption_col else None
            described[target] = {
                "caption": None if caption in (None, "") else caption_text(caption, where(caption_col)),
                "url": optional_str(record.get(url_col), where(url_col)) if url_col else None,
                "meta": {unicode_text(str(k), where(k)): json_value(v, where(k))
                         for k, v in record.items() if k not in (name_col, caption_col, url_col)},
            }
    root = folder.resolve()
    walked, skipped = walk_files(root, IMAGE_EXTENSIONS)
    files = set(described) | {p.resolve() if p.is_symlink() else p for p in walked}
    if meta_path is not None:
        files.discard(meta_path.resolve())
    if not files:
        raise IngestError(f"--images {folder}: expected at least one image file "
                          f"({', '.join(sorted(IMAGE_EXTENSIONS))}), got none"
                          + (f" it may read ({len(skipped)} skipped: {skipped[0][0]}, {skipped[0][1]})" if skipped else ""))
    entries = []
    for p in sorted(files, key=lambda p: p.relative_to(root).as_posix()):
        d = described.get(p, {})
        entries.append(ImageEntry(display_path(p.relative_to(root).as_posix()), p, d.get("caption"), d.get("url"),
                                  d.get("meta", {})))
    return ImageScan(folder, meta_path, tuple(entries), tuple(skipped))


MAX_SIDE = 4096          # the longest side an ingested image keeps (--max-side); larger ones are downscaled


def decode_image(path: Path, max_side: Optional[int] = MAX_SIDE) -> Image.Image:
    """Fully decode (a truncated file fails here, not later) into the RGB image a viewer shows,
    downscaled to ``max_side`` (see as_seen); raises on any problem."""
    with warnings.catch_warnings():     # PIL's bomb warning names no file: the ingest says it, naming the file
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            im.load()
            return as_seen(im, max_side)


SIXTEEN_BIT = ("I;16", "I;16B", "I;16L", "I;16N", "I")
# EXIF orientation -> the transpose that shows the image upright (ImageOps.exif_transpose's table)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


def _orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # noqa: BLE001 - an unreadable EXIF block: the pixels as stored are still the image
        return 1


def _reduced(im: Image.Image, max_side: int) -> Image.Image:
    """A whole-factor box reduction towards max_side before any copy of a very large image is made
    (the exact downscale follows on the 8-bit RGB image); modes reduce() lacks are left as they are."""
    factor = max(im.size) // max_side
    if factor < 2:
        return im
    try:
        return im.reduce(factor)
    except (ValueError, NotImplementedError):
        return im


def as_seen(im: Image.Image, max_side: Optional[int] = None) -> Image.Image:
    """8-bit RGB as a viewer shows the image: its EXIF orientation applied, 16-bit (and 32-bit
    integer) greyscale scaled to 8 bits instead of clipped to white, float greyscale in [0, 1]
    scaled, transparent pixels composited on white instead of showing the colour under them, the
    first frame of an animation, and the longest side at most ``max_side`` (None: any size). What
    was changed beyond the pixels' form is in ``info``: "original_size" (as seen, upright) when
    downscaled, "frames" when the file held several."""
    orientation, size, frames = _orientation(im), im.size, getattr(im, "n_frames", 1)
    if max_side and max(size) > max_side:
        im = _reduced(im, max_side)
    if orientation in _UPRIGHT:
        im = im.transpose(_UPRIGHT[orientation])
    if im.mode in SIXTEEN_BIT:          # round(v / 257) in integers: no float copy of a large image
        a = np.clip(np.asarray(im), 0, 65535).astype(np.uint32)
        im = Image.fromarray(((a * 2 + 257) // 514).astype(np.uint8), "L")
    elif im.mode == "F":
        a = np.asarray(im, dtype=np.float64)
        a = a * 255.0 if np.nanmax(a, initial=0.0) <= 1.0 else a
        im = Image.fromarray(np.rint(np.clip(np.nan_to_num(a), 0, 255)).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(white, rgba).convert("RGB")
    else:
        out = im.convert("RGB")
    if max_side and max(out.size) > max_side:
        out.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    upright = size[::-1] if orientation >= 5 and orientation in _UPRIGHT else size
    out.info.clear()
    if tuple(upright) != out.size:
        out.info["original_size"] = tuple(upright)
    if frames > 1:
        out.info["frames"] = frames
    return out


def seen_notes(img: Image.Image, max_side: Optional[int]) -> tuple[dict, list[str]]:
    """(training image metadata, warnings) for what as_seen changed beyond the pixels' form."""
    meta, notes = {}, []
    if "original_size" in img.info:
        (w, h), (sw, sh) = img.info["original_size"], img.size
        meta.update(original_width=w, original_height=h)
        notes.append(f"{w}x{h} px, stored downscaled to {sw}x{sh} (longest side at most {max_side} px; "
                     f"--max-side changes it)")
    if "frames" in img.info:
        meta["frames"] = img.info["frames"]
        notes.append(f"an animation of {img.info['frames']} frames: the first frame is stored")
    return meta, notes
