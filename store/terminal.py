"""Text the tools print is made terminal-safe: file names, captions and URLs come from datasets
nobody vetted, and an escape sequence in one could clear, retitle or rewrite the terminal or
hide a warning. Every command prints through ``echo``."""
from __future__ import annotations

import sys
import unicodedata
from typing import Optional, TextIO

# bidirectional overrides and isolates reorder what follows them on screen
_BIDI = {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069",
         "\u200e", "\u200f", "\u061c"}


def _escape(ch: str) -> str:
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def terminal_safe(text: object, keep_newlines: bool = True) -> str:
    """``text`` with every control character (C0, DEL, C1, bidi controls; newlines kept unless
    keep_newlines is False) written as a visible escape such as ``\\x1b``, and lone surrogates
    as ``\\udXXX``, so printing it cannot act on the terminal."""
    s = str(text)
    out = []
    for ch in s:
        if ch == "\n" and keep_newlines:
            out.append(ch)
        elif ch in _BIDI or unicodedata.category(ch) in ("Cc", "Cs"):
            out.append(_escape(ch))
        else:
            out.append(ch)
    return "".join(out)


def echo(message: object = "", file: Optional[TextIO] = None, one_line: bool = False) -> None:
    """print() for anything that may carry untrusted text. one_line: a newline inside the message
    (a file name can hold one) is shown as \x0a, so the message stays one line."""
    stream = file if file is not None else sys.stdout
    print(terminal_safe(message, keep_newlines=not one_line), file=stream, flush=True)
