"""HTML for the candidate view. Every caption, URL, note and reviewer name is untrusted text and
goes through ``esc``; images are served by the app's file route (store files only) or inlined as
PNG data URIs (derived pictures)."""
from __future__ import annotations

import html
from pathlib import Path
from typing import Iterable, Optional
from urllib.parse import quote, urlsplit

from store import HUMAN_LABELS

# shortcut key -> human label, in HUMAN_LABELS order (0 is a second key for skip)
LABEL_KEYS = {str(i + 1): label for i, label in enumerate(HUMAN_LABELS)}
LABEL_KEYS["0"] = "skip"
LABEL_TITLES = {"MV": "matching verbatim", "TV": "template verbatim", "RV": "retrieval verbatim",
                "N": "not a copy", "FP:texture": "false positive: texture",
                "FP:background": "false positive: background", "FP:other": "false positive: other",
                "skip": "skip (decide later)"}
MIN_DISPLAY_PX = 160   # small images are enlarged by an integer factor to at least this width
TILE_PX = 256          # the one-screen strip: each picture about this size (whole factors for small ones)
COMPACT_PX = 224       # the strip on a laptop screen (review.css's compact media query): at most this size


def esc(text: object) -> str:
    """HTML-escape, and also neutralise template syntax (${...}, {{...}}) so no front-end
    template engine can ever evaluate caption text."""
    return (html.escape("" if text is None else str(text), quote=True)
            .replace("$", "&#36;").replace("{", "&#123;").replace("}", "&#125;"))


def file_url(path: Path) -> str:
    """The app's file route for a store file (relative, so it also works under a proxy prefix)."""
    return "gradio_api/file=" + quote(str(Path(path).resolve()))


def display_size(width: int, height: int) -> tuple[int, int]:
    scale = max(1, -(-MIN_DISPLAY_PX // max(width, 1)))
    return width * scale, height * scale


def tile_size(width: int, height: int, box: int = TILE_PX) -> tuple[int, int]:
    """Display size in a box of about ``box`` px: a small image enlarged by the whole factor that
    brings its long side nearest the box (crisp pixels), a large one scaled down to it."""
    side = max(width, height, 1)
    if side <= box:
        k = max(1, round(box / side))
        return width * k, height * k
    return max(1, round(width * box / side)), max(1, round(height * box / side))


def fit_size(width: int, height: int, box: int = COMPACT_PX) -> tuple[int, int]:
    """Display size at most ``box`` px: a small image enlarged by the largest whole factor that
    stays inside the box (never more, unlike ``tile_size``: the compact strip must fit), a large
    one scaled down to it."""
    side = max(width, height, 1)
    if side <= box:
        k = max(1, box // side)
        return width * k, height * k
    return max(1, round(width * box / side)), max(1, round(height * box / side))


def tile_vars(size: tuple[int, int]) -> str:
    """CSS custom properties of a strip figure: its picture's size at TILE_PX and at COMPACT_PX
    (review.css picks one by the viewport; both are whole factors of a small image)."""
    (w, h), (cw, ch) = tile_size(*size), fit_size(*size)
    return f"--vb-w:{w}px;--vb-h:{h}px;--vb-cw:{cw}px;--vb-ch:{ch}px"


def img(src: str, size: tuple[int, int], alt: str, cls: str = "", box: Optional[int] = None) -> str:
    """An image at its display size: ``box`` None enlarges small ones to MIN_DISPLAY_PX, else
    ``tile_size`` in that box. Eager and decoded before display: the strip is the decision."""
    w, h = display_size(*size) if box is None else tile_size(*size, box)
    return (f'<img class="vb-px {cls}" src="{esc(src)}" width="{w}" height="{h}" alt="{esc(alt)}" '
            f'decoding="sync">')


def figure(image_html: str, caption_lines: Iterable[str], size: Optional[tuple[int, int]] = None) -> str:
    """A picture and its caption lines; ``size`` (the picture's pixels): a strip figure, which
    review.css sizes by the viewport through ``tile_vars``."""
    lines = "".join(f"<div>{line}</div>" for line in caption_lines)
    style = f' style="{tile_vars(size)}"' if size is not None else ""
    return f'<figure class="vb-fig"{style}>{image_html}<figcaption>{lines}</figcaption></figure>'


def fmt(value: Optional[float], digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def url_html(url: Optional[str]) -> str:
    """A link only for http(s) URLs; anything else (javascript:, data:, ...) is shown as text."""
    if not url:
        return ""
    if urlsplit(url).scheme.lower() in ("http", "https"):
        return (f'<a class="vb-url" href="{esc(url)}" target="_blank" rel="noopener noreferrer nofollow">'
                f'{esc(url)}</a>')
    return f'<span class="vb-url">{esc(url)}</span>'


def table(headers: list[str], rows: list[list[str]], cls: str = "vb-table") -> str:
    """Cells are already-safe HTML fragments (callers escape text with ``esc``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def section(title: str, body: str, cls: str = "") -> str:
    return f'<section class="vb-sec {cls}"><h3>{esc(title)}</h3>{body}</section>'


def label_badge(label: Optional[str]) -> str:
    if label is None:
        return '<span class="vb-badge vb-none">unlabelled</span>'
    cls = label.replace(":", "-")
    return f'<span class="vb-badge vb-{esc(cls)}" title="{esc(LABEL_TITLES.get(label, label))}">{esc(label)}</span>'


HELP_KEYS = (("j / k", "next / previous candidate in the queue"), ("n", "next unlabelled candidate"),
             ("u", "undo your last label (in the grid: your last bulk label) and go back to it; "
                   "others' labels are theirs to undo"),
             ("o / Esc", "when someone labelled the candidate since you opened it: override with yours / "
                         "keep theirs"),
             ("/", "type a note for the next label"), ("c", "compare: swipe or onion skin"),
             ("space (hold)", "flip the comparison to the generation"), ("m", "edit the match's mask"),
             ("g", "the grid (bulk labels)"), ("] / [", "in the grid: next / previous group"),
             ("↓ / ↑", "in the queue: focus the next / previous row"),
             ("Enter", "from the queue or grid: open the candidate (the focused row, else the top one)"),
             ("? / Esc", "show / hide this help"))

LABEL_HELP = (
    "<p><b>MV</b> matching verbatim: a generation copies the caption's own training image. "
    "<b>TV</b> template verbatim: it copies a retrieved image's fixed layout (a template: same frame, "
    "different fill), measured on the template mask's kept pixels only. <b>RV</b> retrieval verbatim: it copies "
    "another training image found by retrieval. The automatic label checks TV, then MV, then RV (the paper's "
    "order) and takes the first whose distance is at or under its δ, so a TV can stand although the MV distance "
    "was also under δ: the candidate's side panel says which distances passed.</p>")


def store_problems_banner(report) -> str:
    """A banner over the app when the store failed its quick check at start (a store.CheckReport)."""
    left = [p for p in report.problems if not p.repaired]
    items = "".join(f"<li>{esc(p.kind)}: {esc(p.where)}: {esc(p.what)}</li>" for p in left[:5])
    more = f"<li>… and {len(left) - 5} more</li>" if len(left) > 5 else ""
    return (f'<div class="vb-store-problems" role="alert"><b>This store failed its quick check: {len(left)} '
            f'problem(s).</b> Labels still save, but pictures or counts may be wrong. Run <code>python -m store '
            f'check --store {esc(report.store)}</code> to see all of them and repair what it can.<ul>{items}{more}'
            f'</ul></div>')


def help_overlay() -> str:
    """The keyboard help shown by '?' (toggled by the page script in review/assets/keys.js)."""
    rows = "".join(f"<tr><td><kbd>{esc(k)}</kbd></td><td>{esc(label)} — {esc(LABEL_TITLES[label])}</td></tr>"
                   for k, label in LABEL_KEYS.items())
    rows += "".join(f"<tr><td><kbd>{esc(k)}</kbd></td><td>{esc(what)}</td></tr>" for k, what in HELP_KEYS)
    return (f'<div id="vb-help" class="vb-help" hidden><div class="vb-help-box"><h3>Keyboard</h3>'
            f'<table>{rows}</table>{LABEL_HELP}<p>A label is saved at once and the next unlabelled candidate '
            f'opens; in the queue a digit opens the top candidate. Keys are ignored while typing in a text field.'
            f'</p></div></div>')
