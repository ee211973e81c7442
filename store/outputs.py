"""Where a command may write a file it was asked to write: the one policy for every output path.

- never inside a store folder (a folder holding store.db and images/), symlinks resolved, so
  no export can replace a store's database or one of its content-addressed images; the store's
  own ``exports/`` folder (where the review app writes) is the one exception;
- never over an existing file unless ``force``; then the new file is written beside it and
  renamed over it atomically, keeping the old file's permissions;
- an existing directory, a missing parent folder (unless ``make_parents``) and an empty file
  name each get their own message.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Optional, Union

from .errors import OutputError

STORE_MARKERS = ("store.db", "images")
EXPORTS_DIR = "exports"


def store_root_of(path: Path) -> Optional[Path]:
    """The store folder that contains ``path`` (itself or an ancestor), if any."""
    for folder in (path, *path.parents):
        if (folder / STORE_MARKERS[0]).is_file() and (folder / STORE_MARKERS[1]).is_dir():
            return folder
    return None


def _resolved(out: Path) -> Path:
    """Where writing ``out`` lands: its parent with symlinks resolved; a symlink ``out`` counts
    as its target (writing through it must not reach a store either)."""
    target = out.resolve() if out.is_symlink() else out.parent.resolve() / out.name
    return target


def check_output(out: Union[str, Path], *, force: bool = False, make_parents: bool = False,
                 flag: str = "--out") -> Path:
    """``out`` if a command may write it; OutputError naming the path and the rule otherwise.
    Creates missing parents when make_parents is set (after every other check)."""
    out = Path(out)
    if not out.name or out.name in (".", ".."):
        raise OutputError(f"{flag} {out}: expected a file name, got none")
    if out.is_dir():
        raise OutputError(f"{flag} {out}: expected a file path, got an existing directory")
    target = _resolved(out)
    root = store_root_of(target.parent)
    if root is not None and not (target.parent == root / EXPORTS_DIR or root / EXPORTS_DIR in target.parents):
        raise OutputError(f"{flag} {out}: expected a path outside the store folder {root} (writing there could "
                          f"replace its database or images), got one inside it")
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputError(f"{flag} {out}: expected a new file, got an existing one (pass --force to replace it)")
        if not (out.is_file() or out.is_symlink()):
            raise OutputError(f"{flag} {out}: expected a regular file to replace, got something else")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        if parent.exists():
            raise OutputError(f"{flag} {out}: expected {parent} to be a folder, got a file")
        if not make_parents:
            raise OutputError(f"{flag} {out}: expected an existing folder {parent}, got none "
                              f"(create it, or pass --parents)")
        try:
            parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise OutputError(f"{flag} {out}: expected to create the folder {parent}, got {e.strerror or e}") from e
    return out


def _mode_for(out: Path) -> int:
    """The replaced file's permissions, or what a new file gets under the umask."""
    try:
        return stat.S_IMODE(out.stat().st_mode)
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def write_output(out: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``out``, fsync, rename over ``out``: a reader
    sees the old file or the whole new one, never a part. Call check_output first."""
    mode = _mode_for(out)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name[:80]}.", suffix=".tmp", dir=out.parent)
    except OSError as e:
        raise OutputError(f"{out}: expected a folder we can write, got {e.strerror or e}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, out)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise OutputError(f"{out}: expected to write the file, got {e.strerror or e}") from e
        raise

