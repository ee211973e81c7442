"""What every callback shares: who the reviewer is, and library errors shown as gr.Error."""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import gradio as gr

from attack.errors import AttackError
from store import StoreError

from .checks import ViewError
from .imaging import MaskShapeError
from .views import check_reviewer

MISSING_NAME = "Type your name at the top right to label. Nothing written."


class MissingName(ViewError):
    """A label or undo without a reviewer name: the message is for the reviewer, as it is shown."""


def reviewer_name(request: Optional[gr.Request], typed: Optional[str]) -> str:
    """The logged-in user when the app runs with --auth (not editable), else the typed name;
    a name is required (no default: each reviewer's labels, leases and undos are their own)."""
    who = typed_reviewer(request, typed)
    if not who:
        raise MissingName(MISSING_NAME)
    return check_reviewer(who)


def typed_reviewer(request: Optional[gr.Request], typed: Optional[str]) -> str:
    """The reviewer's name as given so far ('' when none yet): for navigation and leases."""
    user = getattr(request, "username", None) if request is not None else None
    return (user or typed or "").strip()


def gradio_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Show store/view errors (bad input, missing rows, wrong mask size) in the page instead of a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (StoreError, AttackError, MaskShapeError) as e:
            raise gr.Error(str(e)) from None
    return wrapper


def warn_errors(n_outputs: int) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """For callbacks that write the mask editor: a store/view error becomes a warning toast and
    every output is left as it is (a raised gr.Error would blank the editor and its strokes)."""
    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except (StoreError, MaskShapeError) as e:
                gr.Warning(str(e))
                return tuple(gr.update() for _ in range(n_outputs))
        return wrapper
    return deco
