"""Named exceptions for the store and its producers.

Every message says what was expected and what was found, and names the
file / row / column / id involved, so a user can fix the input without
reading code.
"""
from __future__ import annotations


class StoreError(Exception):
    """Base class of every error the store library raises on purpose."""


class SchemaError(StoreError):
    """The store's database is not one this code can open (newer, foreign, corrupt)."""


class NotFoundError(StoreError):
    """A referenced row or image does not exist in the store."""


class MissingImageError(NotFoundError):
    """A stored image file a row names is not there; ``path`` is where it should be."""

    def __init__(self, message: str, path=None) -> None:
        super().__init__(message)
        self.path = path


class DamagedImageError(StoreError):
    """A stored image file exists but is not the image its name says (truncated or overwritten);
    ``path`` is the file."""

    def __init__(self, message: str, path=None) -> None:
        super().__init__(message)
        self.path = path


class LabelError(StoreError):
    """A human label write was rejected (unknown label, nothing to undo, ...)."""


class LabelConflictError(LabelError):
    """Someone labelled the caption since the reviewer opened it: keep theirs or override.
    ``latest`` is that newer entry (a store.LabelEntry)."""

    def __init__(self, message: str, latest) -> None:
        super().__init__(message)
        self.latest = latest


class NotYourLabelError(LabelError):
    """An undo reached another reviewer's entry: only its author may undo it."""


class IngestError(StoreError):
    """Bad input to ingest: the store is left exactly as it was."""


class MaskError(StoreError):
    """A mask does not fit its training image (wrong size, not binary): nothing is written."""


class ExportError(StoreError):
    """An export could not be written (bad path, bad format, ...)."""


class OutputError(StoreError):
    """An output path a command may not write (inside a store, over a file without --force, ...)."""


class ReadOnlyStoreError(StoreError):
    """A write to a store the user may not write."""


class Interrupted(BaseException):
    """A signal (SIGTERM, SIGHUP) asked the process to stop; like KeyboardInterrupt it is not an
    Exception, so no error handler swallows it on its way to the command's top level."""

    def __init__(self, signum: int, name: str) -> None:
        super().__init__(name)
        self.signum, self.name = signum, name


def check_hint(path=None) -> str:
    """The sentence every message about a damaged store or image ends with."""
    return f"`python -m store check --store {path or 'DIR'}` lists what is wrong and repairs what it can"
