"""What identifies a model's weights, so a run is keyed by the model and not by its path.

A weights file is identified by its size and a sha256 of its safetensors header (names, shapes,
dtypes, offsets) and its first and last MiB: a fine-tune rewrites all of them, reading 2 MiB of a
5 GB file costs milliseconds. Digests are cached per (path, size, mtime) for the process. A model
built in memory (tests, sd-random) is identified by its parameters or by how it was built.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

CHUNK = 1 << 20
_CACHE: dict[tuple[str, int, int], str] = {}


def file_digest(path: Path) -> str:
    """size + sha256(safetensors header, first MiB, last MiB) of one file, cached per process."""
    path = Path(path).resolve()
    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _CACHE:
        h = hashlib.sha256(str(st.st_size).encode())
        with open(path, "rb") as f:
            head = f.read(CHUNK)
            h.update(head)
            if path.suffix == ".safetensors" and len(head) >= 8:
                (n,) = struct.unpack("<Q", head[:8])
                if 8 + n > len(head):       # a header longer than the first MiB
                    f.seek(8)
                    h.update(f.read(min(n, 64 * CHUNK)))
            if st.st_size > 2 * CHUNK:
                f.seek(-CHUNK, os.SEEK_END)
                h.update(f.read(CHUNK))
        _CACHE[key] = h.hexdigest()
    return _CACHE[key]


def files_digest(files: Iterable[Path], root: Path | None = None) -> dict[str, str]:
    """name (relative to root) -> file_digest, for every file."""
    out = {}
    for f in sorted(Path(p) for p in files):
        name = str(f.relative_to(root)) if root is not None else f.name
        out[name] = file_digest(f)
    return out


def module_digest(*modules: torch.nn.Module | None) -> str:
    """sha256 of every parameter and buffer (for models that exist only in memory)."""
    h = hashlib.sha256()
    for m in modules:
        if m is None:
            continue
        for name, t in sorted(m.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().to("cpu").contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def combine(parts: Mapping[str, Any]) -> str:
    """One sha256 over a JSON description of everything that identifies a model."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()
