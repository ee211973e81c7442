"""What identifies a model's weights, so a run is keyed by the model and not by its path.

A weights file is identified by a BLAKE2b digest of every byte of it (streamed), with its size: a
fine-tune that rewrites only the middle of a file (a partial fine-tune, a merged LoRA) is a new
model. Digests are cached per (path, size, mtime, inode) for the process and, when the caller
passes one, in a persistent cache (the store's), so an unchanged 5 GB file is read once. A model
built in memory (tests, sd-random) is identified by its parameters or by how it was built.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Optional, Protocol, Union

import torch

CHUNK = 1 << 22
ALGORITHM = "blake2b-256"
_CACHE: dict[str, str] = {}


class DigestCache(Protocol):
    """A persistent digest cache (Store.digest_cache): None when the key is unknown."""

    def get(self, key: str) -> Optional[str]: ...

    def put(self, key: str, digest: str) -> None: ...


def _cache_key(path: Path) -> str:
    st = path.stat()
    return f"{ALGORITHM}|{path}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"


def file_digest(path: Path, cache: Optional[DigestCache] = None) -> str:
    """BLAKE2b-256 of the file's size and every byte, cached per (path, size, mtime, inode)."""
    path = Path(path).resolve()
    key = _cache_key(path)
    if key in _CACHE:
        return _CACHE[key]
    digest = cache.get(key) if cache is not None else None
    if digest is None:
        h = hashlib.blake2b(digest_size=32)
        h.update(str(path.stat().st_size).encode())
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
        digest = h.hexdigest()
        if cache is not None:
            cache.put(key, digest)
    _CACHE[key] = digest
    return digest


Tree = Union[Path, Mapping[str, "Tree"]]


def digest_tree(tree: Any, cache: Optional[DigestCache] = None) -> Any:
    """The same nesting of names with every Path replaced by its file_digest (other values kept)."""
    if isinstance(tree, Path):
        return file_digest(tree, cache)
    if isinstance(tree, Mapping):
        return {k: digest_tree(v, cache) for k, v in tree.items()}
    return tree


def files_by_name(files: Iterable[Path], root: Path | None = None) -> dict[str, Path]:
    """name (relative to root) -> path, for every file: what digest_tree hashes later."""
    out = {}
    for f in sorted(Path(p) for p in files):
        out[str(f.relative_to(root)) if root is not None else f.name] = f
    return out


def files_digest(files: Iterable[Path], root: Path | None = None, cache: Optional[DigestCache] = None) -> dict[str, str]:
    """name (relative to root) -> file_digest, for every file."""
    return digest_tree(files_by_name(files, root), cache)


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
