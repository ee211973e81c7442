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


def img(src: str, size: tuple[int, int], alt: str, cls: str = "") -> str:
    w, h = display_size(*size)
    return (f'<img class="vb-px {cls}" src="{esc(src)}" width="{w}" height="{h}" alt="{esc(alt)}" '
            f'loading="lazy" decoding="async">')


def figure(image_html: str, caption_lines: Iterable[str]) -> str:
    lines = "".join(f"<div>{line}</div>" for line in caption_lines)
    return f'<figure class="vb-fig">{image_html}<figcaption>{lines}</figcaption></figure>'


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


def slider(before_src: str, after_src: str, size: tuple[int, int], before: str, after: str) -> str:
    """Before/after comparison: the after image is clipped from the left by a range input
    (wired by the HTML component's js_on_load, see tab_candidate.SLIDER_JS)."""
    w, h = display_size(*size)
    return (f'<div class="vb-slider" style="width:{w}px;height:{h}px">'
            f'<img class="vb-px vb-before" src="{esc(before_src)}" width="{w}" height="{h}" alt="{esc(before)}">'
            f'<img class="vb-px vb-after" src="{esc(after_src)}" width="{w}" height="{h}" alt="{esc(after)}" '
            f'style="clip-path: inset(0 0 0 50%)">'
            f'<input class="vb-range" type="range" min="0" max="100" value="50" aria-label="before / after">'
            f'</div><div class="vb-note">left: {esc(before)} · right: {esc(after)}</div>')


def label_badge(label: Optional[str]) -> str:
    if label is None:
        return '<span class="vb-badge vb-none">unlabelled</span>'
    cls = label.replace(":", "-")
    return f'<span class="vb-badge vb-{esc(cls)}" title="{esc(LABEL_TITLES.get(label, label))}">{esc(label)}</span>'


def help_overlay() -> str:
    """The keyboard help shown by '?' (toggled by the page script in review/keys.js)."""
    rows = "".join(f"<tr><td><kbd>{esc(k)}</kbd></td><td>{esc(label)} — {esc(LABEL_TITLES[label])}</td></tr>"
                   for k, label in LABEL_KEYS.items())
    rows += ("<tr><td><kbd>j</kbd> / <kbd>k</kbd></td><td>next / previous candidate in the queue</td></tr>"
             "<tr><td><kbd>n</kbd></td><td>next unlabelled candidate</td></tr>"
             "<tr><td><kbd>u</kbd></td><td>undo the last label and go back to it (a new history entry)</td></tr>"
             "<tr><td><kbd>?</kbd> / <kbd>Esc</kbd></td><td>show / hide this help</td></tr>")
    return (f'<div id="vb-help" class="vb-help" hidden><div class="vb-help-box"><h3>Keyboard</h3>'
            f'<table>{rows}</table><p>A label is saved at once and the next unlabelled candidate opens. '
            f'Keys are ignored while typing in a text field.</p></div></div>')


DISTANCE_NAMES = {"tv": "TV: masked RMSE", "mv": "MV: RMSE to own image", "rv": "RV: RMSE to a neighbour"}


def auto_label_html(auto) -> str:
    """An automatic label (store.AutoLabel): the label, its flags, and each distance with the
    generation / training image / mask that gave it (keys '<kind>_<what>' in the distances)."""
    d = auto.distances
    flags = ", ".join(esc(f) for f in auto.flags) or "none"
    rows = []
    for key, name in DISTANCE_NAMES.items():
        if key not in d and not any(k.startswith(key + "_") for k in d):
            continue
        value = d.get(key)
        source = ", ".join(f"{esc(k[len(key) + 1:].replace('_', ' '))} {esc(v)}" for k, v in sorted(d.items())
                           if k.startswith(key + "_") and not isinstance(v, (dict, list)))
        rows.append([esc(name), fmt(value) if isinstance(value, (int, float)) else esc(value if value is not None else "–"),
                     source])
    al = d.get("aligned")
    if isinstance(al, dict):   # the crop / rescale / mirror check (attack.align) of an N by the distances
        rows.append([f"aligned RMSE ({esc(al.get('label'))}, crop / rescale / mirror)", fmt(al.get("aligned_rmse")),
                     f"generation id {esc(al.get('generation_id'))}, train image id {esc(al.get('train_image_id'))}, "
                     f"overlap {esc(al.get('overlap'))}, {'mirrored, ' if al.get('mirrored') else ''}"
                     f"{'passed' if al.get('passed') else 'not evidence'}"])
    known = set(DISTANCE_NAMES) | {k for k in d if k.split("_", 1)[0] in DISTANCE_NAMES}
    other = ", ".join(f"{esc(k)} {esc(fmt(v) if isinstance(v, float) else v)}" for k, v in sorted(d.items())
                      if k not in known and not isinstance(v, (dict, list)))
    thresholds = d.get("thresholds")
    th = (" · thresholds " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(thresholds.items()))
          if isinstance(thresholds, dict) else "")
    return (f"<p>{label_badge(auto.label)} (run {esc(auto.run_id)}) · suspect flags: {flags}{th}</p>"
            + table(["distance", "value", "from"], rows)
            + (f'<div class="vb-note">{other}</div>' if other else ""))
