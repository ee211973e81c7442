"""`images:<folder>`: a closed model known only by images someone generated elsewhere.

The folder holds a mapping file (mapping.csv or mapping.jsonl; or name the file itself:
`images:<folder>/my.csv`) with one row per generation: caption, seed, steps, path (relative to the
mapping file, or absolute). It answers Gen(c, r, T) lookups, so blackbox scores (ECS with its T=1
images, Carlini, generation lookups) run on it; anything that needs the denoiser says why not.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from attack.images.metrics import to_compare
from attack.models.base import ModelError, Samples, TextToImageModel
from attack.paths import resolve_inside

MAPPING_NAMES = ("mapping.csv", "mapping.jsonl")
COLUMNS = ("caption", "seed", "steps", "path")

Key = tuple[str, int, int]  # (caption, seed, steps)


def _read_rows(path: Path) -> list[dict]:
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise ModelError(f"expected UTF-8 text in mapping file {path}, got undecodable bytes at {e.start}") from None
    if not text.strip():
        raise ModelError(f"expected rows in mapping file {path}, got an empty file")
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except (ValueError, RecursionError):
                    raise ModelError(f"expected one JSON object per line in {path}, got invalid JSON on line {n}") from None
                if not isinstance(row, dict):
                    raise ModelError(f"expected a JSON object on line {n} of {path}, got {type(row).__name__}")
                rows.append(row)
        return rows
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise ModelError(f"expected columns {', '.join(COLUMNS)} in {path}, got {reader.fieldnames} (missing {', '.join(missing)})")
    return list(reader)


def read_mapping(path: Path) -> dict[Key, Path]:
    """(caption, seed, steps) -> image path, validated: columns present, ints are ints, files exist,
    no (caption, seed, steps) twice."""
    out: dict[Key, Path] = {}
    for n, row in enumerate(_read_rows(path), 1):
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise ModelError(f"expected fields {', '.join(COLUMNS)} in row {n} of {path}, got none for {', '.join(missing)}")
        try:
            key = (str(row["caption"]), int(row["seed"]), int(row["steps"]))
        except (TypeError, ValueError):
            raise ModelError(f"expected integer seed and steps in row {n} of {path}, "
                             f"got seed={row['seed']!r}, steps={row['steps']!r}") from None
        img = resolve_inside(path.parent, str(row["path"]), allow_absolute=True)
        if img is None:
            raise ModelError(f"expected a path inside {path.parent} for row {n} of {path} (nothing outside the "
                             f"mapping's folder is read), got {str(row['path'])!r}")
        if not img.is_file():
            raise ModelError(f"expected an image file for row {n} of {path}, got no file at {img}")
        if key in out:
            raise ModelError(f"expected one image per (caption, seed, steps) in {path}, got {key} twice (row {n})")
        out[key] = img
    return out


class ImagesModel(TextToImageModel):
    """Lookups of externally generated images; whitebox access raises ModelError."""

    name = "images"
    whitebox = False

    def __init__(self, entries: dict[Key, Path], source: str = "images", mapping_sha256: str | None = None):
        super().__init__()
        self.entries = dict(entries)
        self.source = source
        self.mapping_sha256 = mapping_sha256

    def identity(self, cache: Any = None) -> dict:
        """The mapping's content (which images answer which (caption, seed, steps)) and every
        image's bytes: two folders with the same mapping file but other pictures (a closed model's
        v1 and v2) are two models. `cache` keeps the image digests (the store's)."""
        from attack.models.fingerprint import combine, file_digest

        entries = None if self.mapping_sha256 else sorted((c, s, t, str(p)) for (c, s, t), p in self.entries.items())
        digests = {}
        for (c, s, t), p in sorted(self.entries.items()):
            try:
                digests[f"{c}\x1f{s}\x1f{t}"] = file_digest(p, cache)
            except OSError as e:
                raise ModelError(f"{self.source}: expected a readable image for caption {c!r} seed {s}, got "
                                 f"{p} ({e.strerror or e})") from None
        return {"name": "images", "mapping_sha256": self.mapping_sha256, "entries": entries,
                "images": combine(digests)}

    @classmethod
    def load(cls, arg: str) -> "ImagesModel":
        p = Path(arg).expanduser()
        if p.is_file():
            mapping = p
        elif p.is_dir():
            found = [p / n for n in MAPPING_NAMES if (p / n).is_file()]
            if len(found) != 1:
                raise ModelError(f"expected exactly one of {', '.join(MAPPING_NAMES)} in {p}, got "
                                 f"{[f.name for f in found] or 'none'}")
            mapping = found[0]
        else:
            raise ModelError(f"expected images:<folder with {' or '.join(MAPPING_NAMES)}>, got images:{arg} (no such path)")
        return cls(read_mapping(mapping), source=f"images:{arg}",
                   mapping_sha256=hashlib.sha256(mapping.read_bytes()).hexdigest())

    def _why(self, what: str) -> ModelError:
        return ModelError(f"expected a whitebox model for {what}, got {self.source}: a closed model known only by "
                          f"its images has no denoiser, latents or text encoder; only blackbox scores (ecs, carlini) "
                          f"and image lookups run on it")

    # --- no whitebox surface
    @property
    def latent_shape(self) -> tuple[int, int, int]:
        raise self._why("latent_shape")

    @property
    def sigma_min(self) -> float:
        raise self._why("sigma_min")

    @property
    def sigma_max(self) -> float:
        raise self._why("sigma_max")

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def encode(self, captions: Sequence[str]) -> torch.Tensor:
        raise self._why("encode")

    def _denoise(self, x: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        raise self._why("the denoiser")

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise self._why("decode")

    # --- Gen(c, r, T)
    def seeds_for(self, caption: str, steps: int) -> list[int]:
        return sorted(s for c, s, t in self.entries if c == caption and t == steps)

    @property
    def sampler(self) -> str:
        return "external"

    @property
    def steps_held(self) -> list[int]:
        """Every steps value the mapping holds images for, ascending."""
        return sorted({t for _, _, t in self.entries})

    def images(self, captions: Sequence[str], seeds: Sequence[int], steps: int = 16,
               guidance: float = 7.5) -> list[np.ndarray]:
        """The stored files themselves, decoded at their own size (nothing resized)."""
        out = []
        for c, s in zip(captions, seeds):
            p = self.path_for(c, s, steps)
            try:
                with Image.open(p) as im:
                    out.append(np.asarray(im.convert("RGB"), dtype=np.uint8))
            except (UnidentifiedImageError, OSError) as e:
                raise ModelError(f"expected a readable image at {p}, got {type(e).__name__}: {e}") from None
        return out

    def path_for(self, caption: str, seed: int, steps: int) -> Path:
        try:
            return self.entries[(caption, int(seed), int(steps))]
        except KeyError:
            have = self.seeds_for(caption, steps)
            raise ModelError(f"expected an image for ({caption!r}, seed={seed}, steps={steps}) in {self.source}, "
                             f"got none (seeds there at steps={steps}: {have or 'none'})") from None

    def sample(self, captions: Sequence[str], seeds: Sequence[int], steps: int = 16,
               guidance: float = 7.5, decode: bool = True) -> Samples:
        """The stored images for each (caption, seed, steps), as [B,3,256,256] in [0,1] (Lanczos,
        the size every comparison uses); `guidance` is unknown for external images (NaN)."""
        if not decode:
            raise self._why("latents (decode=False)")
        captions, seeds = tuple(captions), tuple(int(s) for s in seeds)
        if len(captions) != len(seeds):
            raise ModelError(f"expected one seed per caption, got {len(seeds)} seeds for {len(captions)} captions")
        arrays = []
        for c, s in zip(captions, seeds):
            p = self.path_for(c, s, steps)
            try:
                with Image.open(p) as im:
                    im = im.convert("RGB")
                    arrays.append(to_compare(np.asarray(im, dtype=np.uint8))[0])
            except (UnidentifiedImageError, OSError) as e:
                raise ModelError(f"expected a readable image at {p}, got {type(e).__name__}: {e}") from None
        images = torch.stack(arrays) if arrays else torch.empty(0, 3, 256, 256)
        return Samples(images, captions, seeds, int(steps), "external", float("nan"), 0)

