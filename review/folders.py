"""Gradio's own folders, private to this process.

Gradio writes uploads and the files it makes for a page (the mask editor's layers, downloads) into
its upload folder and serves whatever is there. Its default, ``$TMPDIR/gradio``, is shared by every
Gradio app on the machine, so a file another app (or user) put there would be served by ours; its
example cache defaults to ``.gradio/cached_examples`` under the working directory. Both move into
one fresh folder of this process, mode 0700, removed at exit. No gradio import here: the
environment must be set before Gradio reads it (``route_utils`` at import, ``Blocks`` at creation).
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path

_ROOT: Path | None = None


def private_gradio_folders() -> Path:
    """Point GRADIO_TEMP_DIR and GRADIO_EXAMPLES_CACHE into this process's private folder (made on
    the first call, 0700, removed at exit) and return that folder. A GRADIO_TEMP_DIR set by the
    user is replaced too: the app serves the store's images and exports, and only what it made."""
    global _ROOT
    if _ROOT is None or not _ROOT.is_dir():
        _ROOT = Path(tempfile.mkdtemp(prefix="verbatim-gradio-"))     # mkdtemp: mode 0700, this user only
        atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
    os.environ["GRADIO_TEMP_DIR"] = str(_ROOT / "uploads")
    os.environ["GRADIO_EXAMPLES_CACHE"] = str(_ROOT / "examples")
    return _ROOT
