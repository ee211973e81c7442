"""The one policy for reading under a folder the user named (training images, metadata, index
folders, images: mappings): nothing outside it is read, symlinks resolved; what is skipped is named."""
from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def resolved(path: Path) -> Path | None:
    """path with its symlinks resolved; None for a symlink loop (Python raises RuntimeError or,
    from 3.13, OSError ELOOP for one)."""
    try:
        return path.resolve()
    except (RuntimeError, OSError):
        return None


def inside(folder: Path, path: Path) -> bool:
    """True when ``path``, symlinks resolved, lies inside ``folder`` (resolved): the one test of
    every folder the tool reads (images, metadata, index folders, images: mappings). A symlink
    loop lies nowhere."""
    root = folder.resolve()
    target = resolved(path)
    return target is not None and (target == root or root in target.parents)


def resolve_inside(folder: Path, name: str, allow_absolute: bool = False) -> Path | None:
    """The file ``name`` (relative to ``folder``; absolute too when allowed) names, if it stays
    inside the folder once '..' and symlinks are resolved; None otherwise."""
    if not name or (os.path.isabs(name) and not allow_absolute):
        return None
    target = resolved(folder / name)
    return target if target is not None and inside(folder, target) else None


def display_path(rel: str) -> str:
    """A file name as text the store can hold: undecodable bytes of a Linux file name (which
    Python carries as lone surrogates) become \\xNN escapes."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


def walk_files(folder: Path, suffixes: Iterable[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Regular files with these suffixes under ``folder`` (hidden entries skipped), and the ones
    not read with the reason: symlinks that lead outside the folder, FIFOs, devices, sockets.
    Symlinked folders are not followed."""
    root = folder.resolve()
    found, skipped = [], []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            p = Path(dirpath) / name
            if name.startswith(".") or p.suffix.lower() not in suffixes:
                continue
            rel = display_path(p.relative_to(root).as_posix())
            if p.is_symlink() and resolved(p) is None:
                skipped.append((rel, "a symlink loop (a link that leads back to itself)"))
            elif p.is_symlink() and not inside(root, p):
                skipped.append((rel, f"a symlink to {display_path(str(p.resolve()))}, outside {folder}"))
            elif not p.is_file():
                skipped.append((rel, "not a regular file" if p.exists() else "a broken symlink"))
            else:
                found.append(p)
    return found, skipped
