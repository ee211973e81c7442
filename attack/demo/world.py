"""The demo world: a deterministic miniature of LAION's duplication structure.

Built only from scikit-image's bundled sample photos and procedural drawings, so a fresh
machine can rebuild it offline. Planted groups mirror the paper's findings: exact duplicates
(one image, one caption, many copies), template families (fixed layout, one region varies,
many captions: the "Shaw Floors" series), retrieval verbatims (one image duplicated under
many captions other than the attacker's), textures and plain backgrounds (adversarial false
positives) and a bulk of unique images with unique captions.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

RESOLUTION = 32
_CANVAS = 128  # procedural scenes are drawn large, then Lanczos-downsampled like web thumbnails

KINDS = ("exact", "template", "retrieval", "texture", "unique")


@dataclass(frozen=True)
class TrainRow:
    """One training pair; `group` names the planted group ('' for uniques)."""
    caption: str
    image_index: int
    kind: str
    group: str = ""


@dataclass(frozen=True)
class AttackCaption:
    """A caption an attacker would try, with the truth kept beside it."""
    caption: str
    kind: str
    group: str
    own_image: int | None  # the caption's own training image (its first pair), if any
    target_images: tuple[int, ...] = ()  # images that count as a copy for this caption


@dataclass
class World:
    images: list[np.ndarray]  # HxWx3 uint8, distinct images (rows reference them)
    rows: list[TrainRow]
    attack: list[AttackCaption]
    masks: dict[str, np.ndarray] = field(default_factory=dict)  # template family -> keep mask
    seed: int = 0

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for im in self.images:
            h.update(im.tobytes())
        for r in self.rows:
            h.update(f"{r.caption}\t{r.image_index}\t{r.kind}\t{r.group}\n".encode())
        return h.hexdigest()

    def truth(self) -> dict:
        groups: dict[str, dict] = {}
        for r in self.rows:
            if not r.group:
                continue
            g = groups.setdefault(r.group, {"group": r.group, "kind": r.kind, "rows": 0,
                                            "images": set(), "captions": set()})
            g["rows"] += 1
            g["images"].add(r.image_index)
            g["captions"].add(r.caption)
        return {
            "resolution": RESOLUTION,
            "seed": self.seed,
            "fingerprint": self.fingerprint(),
            "rows": len(self.rows),
            "images": len(self.images),
            "groups": [{**g, "images": sorted(g["images"]), "captions": sorted(g["captions"])}
                       for g in sorted(groups.values(), key=lambda g: g["group"])],
            "attack": [{"caption": a.caption, "kind": a.kind, "group": a.group,
                        "own_image": a.own_image, "target_images": list(a.target_images)}
                       for a in self.attack],
        }


# ----------------------------------------------------------------------------- sources

def rgb(a: np.ndarray) -> np.ndarray:
    """A scikit-image sample as RGB uint8 (bool and grey ones kept as they look)."""
    if a.dtype == bool:
        a = a.astype(np.uint8) * 255
    if a.ndim == 2:
        a = np.stack([a] * 3, -1)
    return np.ascontiguousarray(a[..., :3]).astype(np.uint8)


@lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    """scikit-image's bundled photos as RGB uint8 (grey ones are kept grey in RGB)."""
    import skimage.data as d

    names = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
             "immunohistochemistry", "retina", "colorwheel", "camera", "coins", "moon",
             "page", "text", "clock", "brick", "grass", "gravel", "horse"]
    out = {n: rgb(getattr(d, n)()) for n in names}
    out["logo"] = _flatten_rgba(d.logo())
    out["motorcycle"] = rgb(d.stereo_motorcycle()[0])
    return out


def _flatten_rgba(a: np.ndarray) -> np.ndarray:
    rgb = a[..., :3].astype(np.float32)
    alpha = a[..., 3:4].astype(np.float32) / 255.0
    return (rgb * alpha + 255.0 * (1 - alpha)).round().astype(np.uint8)


def _thumb(a: np.ndarray | Image.Image, size: int = RESOLUTION) -> np.ndarray:
    im = a if isinstance(a, Image.Image) else Image.fromarray(a)
    return np.asarray(im.convert("RGB").resize((size, size), Image.LANCZOS), dtype=np.uint8)


def _crop(a: np.ndarray, cy: float, cx: float, frac: float) -> np.ndarray:
    """Square crop centred at (cy, cx) (fractions of the photo) of side frac*min(H, W)."""
    h, w = a.shape[:2]
    s = max(8, int(frac * min(h, w)))
    y0 = int(np.clip(cy * h - s / 2, 0, h - s))
    x0 = int(np.clip(cx * w - s / 2, 0, w - s))
    return a[y0:y0 + s, x0:x0 + s]


def _tint(a: np.ndarray, rgb: tuple[int, int, int], amount: float = 0.6) -> np.ndarray:
    g = a.astype(np.float32).mean(-1, keepdims=True) / 255.0
    col = np.asarray(rgb, np.float32)[None, None] / 255.0
    out = (1 - amount) * g + amount * g * col * 1.6
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


# ----------------------------------------------------------------------------- planted groups

# (photo, cy, cx, frac, caption, copies): the paper's "one image, one caption, many copies".
_EXACT = [
    ("astronaut", 0.30, 0.50, 0.45, "NASA astronaut Eileen Collins official portrait in orange flight suit", 200),
    ("coffee", 0.45, 0.40, 0.95, "Cappuccino with latte art in a white cup on saucer, top view", 150),
    ("chelsea", 0.45, 0.55, 0.85, "Orange tabby cat Chelsea looking at the camera close up", 120),
    ("rocket", 0.50, 0.45, 0.90, "Falcon rocket on the launch pad at sunrise photo", 100),
    ("hubble_deep_field", 0.50, 0.50, 0.60, "Hubble ultra deep field galaxies HD wallpaper", 80),
    ("immunohistochemistry", 0.50, 0.50, 0.70, "Immunohistochemistry stained tissue slide under the microscope", 64),
    ("retina", 0.50, 0.50, 0.95, "Fundus photograph of a healthy human retina", 56),
    ("motorcycle", 0.55, 0.50, 0.90, "Red sport motorcycle parked in a garage", 48),
    ("colorwheel", 0.50, 0.50, 1.00, "RGB color wheel chart for graphic designers", 40),
    ("logo", 0.50, 0.50, 1.00, "Vintage snake emblem logo vector illustration", 32),
    ("poster", 0, 0, 0, "The Midnight Tour 2019 concert poster", 28),
    ("card", 0, 0, 0, "Happy Birthday balloons greeting card template", 20),
]

_COLOURS = [
    ("Sandy Beige", (214, 190, 150)), ("Ocean Blue", (40, 90, 170)),
    ("Forest Green", (40, 115, 60)), ("Charcoal Gray", (70, 70, 76)),
    ("Burgundy", (125, 25, 45)), ("Ivory", (242, 236, 214)),
    ("Terracotta", (200, 100, 60)), ("Navy", (25, 35, 85)),
    ("Mustard Yellow", (222, 172, 40)), ("Blush Pink", (232, 168, 176)),
    ("Slate", (110, 126, 142)), ("Chocolate Brown", (92, 56, 34)),
]

# family id -> caption template ({c} = the variant's colour words)
_TEMPLATES = {
    "carpet": "Shaw Floors Value Collections Sandy Hollow Net Carpet in {c}",
    "paint": "Behr Marquee interior wall paint {c} living room",
    "rug": "Mohawk SmartStrand area rug {c} 8x10",
    "tshirt": "Essentials crew neck t-shirt mockup {c}",
    "phonecase": "Silicone iPhone case {c} back view",
    "sofa": "Upholstered velvet sofa in {c} fabric",
}
_TEMPLATE_COPIES = 4

# Retrieval verbatims: one image, many captions; the attacker's caption is held out and its own
# training pair shows a different image, so only retrieval finds what the model copies.
_RETRIEVAL = [
    ("moon", 0.50, 0.50, 0.95, "full moon", ["Supermoon", "Bright", "Detailed", "Giant", "Harvest"],
     ["photo", "wall art", "poster", "canvas print", "wallpaper", "night sky picture"]),
    ("coins", 0.50, 0.50, 0.80, "antique coins", ["Old", "Rare", "Silver", "Roman", "Collectible"],
     ["collection", "lot", "for sale", "on display", "set", "auction"]),
    ("clock", 0.50, 0.50, 0.75, "wall clock", ["Vintage", "Modern", "Silent", "Retro", "Minimalist"],
     ["for kitchen", "decor", "black and white", "gift", "home office", "quartz"]),
    ("camera", 0.40, 0.50, 0.80, "cameraman", ["Classic", "Black and white", "Film", "Street", "Old"],
     ["photography print", "portrait", "stock photo", "with tripod", "in the park", "archive"]),
    ("horse", 0.50, 0.50, 0.95, "horse silhouette", ["Galloping", "Black", "Running", "Wild", "Elegant"],
     ["vector", "clipart", "wall sticker", "decal", "svg", "stencil"]),
    ("text", 0.50, 0.35, 0.95, "handwritten letters", ["Old", "Printed", "Scanned", "Typewriter", "Sample"],
     ["document", "page", "font specimen", "scan", "worksheet", "paper"]),
]
_RETRIEVAL_COPIES = 25
_RETRIEVAL_ATTACKS = 3

_TEXTURES = [
    ("brick", (190, 70, 50), "Seamless red brick wall texture background", 24),
    ("grass", (70, 160, 60), "Green grass texture top view seamless", 24),
    ("gravel", (150, 150, 150), "Gray gravel stones texture background", 20),
    ("wood", None, "Light oak wood grain texture", 20),
    ("white", None, "Plain white background", 30),
    ("offwhite", None, "Soft off-white paper background with subtle gradient", 20),
    ("gray", None, "Solid light gray backdrop for product photography", 20),
    ("blackvignette", None, "Black background with vignette", 16),
]

N_UNIQUE = 1200
N_UNIQUE_ATTACK = 600

_UNIQUE_PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field",
                  "immunohistochemistry", "retina", "motorcycle", "camera", "page", "moon",
                  "coins", "clock", "colorwheel", "brick", "grass", "gravel"]
_ADJ = ["Vintage", "Modern", "Beautiful", "Rustic", "Colorful", "Minimalist", "Elegant", "Cozy",
        "Abstract", "Classic", "Handmade", "Luxury", "Bright", "Dark", "Tiny", "Large", "Stylish",
        "Cute", "Retro", "Natural", "Premium", "Simple", "Bold", "Warm", "Cool", "Scenic",
        "Detailed", "Soft", "Urban", "Tropical"]
_NOUN = ["lamp", "backpack", "mug", "poster", "bicycle", "garden", "kitchen", "sneakers",
         "watch", "bookshelf", "guitar", "cake", "beach", "mountain", "cityscape", "necklace",
         "jacket", "candle", "notebook", "teapot", "dog", "bird", "flower vase", "chair",
         "table", "painting", "headphones", "camera bag", "sunglasses", "plant pot", "bridge",
         "lighthouse", "forest path", "bathroom", "desk", "wallet", "pillow", "blanket",
         "bowl", "river"]
_CTX = ["on a wooden table", "in the morning light", "for sale online", "stock photo",
        "close up", "on white", "product shot", "at sunset", "in the city", "high resolution",
        "top view", "side view", "free shipping", "in the living room", "outdoors",
        "isolated", "with shadow", "studio photo", "new arrival", "best seller"]


# ----------------------------------------------------------------------------- drawing

def _canvas(bg: tuple[int, int, int]) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    im = Image.new("RGB", (_CANVAS, _CANVAS), bg)
    return im, ImageDraw.Draw(im)


def _paste_photo(im: Image.Image, photo: str, box: tuple[int, int, int, int], cy=0.5, cx=0.5, frac=0.8):
    x0, y0, x1, y1 = box
    crop = Image.fromarray(_crop(_photos()[photo], cy, cx, frac)).resize((x1 - x0, y1 - y0), Image.LANCZOS)
    im.paste(crop, (x0, y0))


def _noise_texture(rng: np.random.Generator, base: tuple[int, int, int], amp: float, h: int, w: int) -> Image.Image:
    n = rng.normal(0, amp, (h // 8 + 1, w // 8 + 1, 1))
    n = np.asarray(Image.fromarray(((n[..., 0] + 3 * amp) / (6 * amp) * 255).clip(0, 255).astype(np.uint8))
                   .resize((w, h), Image.BICUBIC), np.float32)[..., None] / 255.0 * 6 * amp - 3 * amp
    arr = np.clip(np.asarray(base, np.float32)[None, None] + n, 0, 255).astype(np.uint8)
    return Image.fromarray(arr)


def _template_image(family: str, colour: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A family's fixed layout with its variable region painted `colour`; returns (image, varying-region mask)."""
    rng = np.random.default_rng(hash_str(family) % 2**32)
    var = Image.new("L", (_CANVAS, _CANVAS), 0)
    vd = ImageDraw.Draw(var)
    C = _CANVAS
    if family == "carpet":
        im, d = _canvas((232, 226, 210))
        d.rectangle([84, 12, 118, 52], fill=(170, 200, 230), outline=(90, 80, 70), width=3)
        _paste_photo(im, "chelsea", (14, 14, 54, 46))
        im.paste(_noise_texture(rng, colour, 10, 50, C), (0, 78))
        vd.rectangle([0, 78, C, C], fill=255)
        d.rectangle([20, 56, 96, 86], fill=(90, 100, 120))
        d.rectangle([16, 50, 30, 86], fill=(80, 90, 110))
        d.rectangle([86, 50, 100, 86], fill=(80, 90, 110))
    elif family == "paint":
        im, d = _canvas(colour)
        vd.rectangle([0, 0, C, 84], fill=255)
        for y in range(84, C, 8):
            d.rectangle([0, y, C, y + 7], fill=(150 + (y % 16) * 3, 105, 60))
        _paste_photo(im, "rocket", (40, 14, 88, 50), frac=0.7)
        d.rectangle([38, 12, 90, 52], outline=(40, 30, 20), width=3)
        d.ellipse([10, 60, 40, 100], fill=(60, 60, 60))
        d.rectangle([96, 30, 100, 96], fill=(30, 30, 30))
        d.polygon([(86, 30), (110, 30), (104, 16), (92, 16)], fill=(250, 240, 190))
    elif family == "rug":
        im, d = _canvas((180, 130, 80))
        for x in range(0, C, 16):
            d.line([x, 0, x, C], fill=(140, 95, 55), width=2)
        d.rectangle([0, 0, C, 40], fill=(220, 220, 215))
        _paste_photo(im, "coffee", (48, 4, 80, 36), frac=0.8)
        im.paste(_noise_texture(rng, colour, 12, 56, 80), (24, 56))
        vd.rectangle([24, 56, 103, 111], fill=255)
        d.rectangle([4, 44, 30, 76], fill=(60, 40, 30))
    elif family == "tshirt":
        im, d = _canvas((205, 205, 208))
        d.line([64, 6, 64, 18], fill=(40, 40, 40), width=3)
        d.line([30, 22, 98, 22], fill=(40, 40, 40), width=3)
        shirt = [(36, 24), (52, 20), (76, 20), (92, 24), (116, 44), (102, 58), (92, 50),
                 (92, 118), (36, 118), (36, 50), (26, 58), (12, 44)]
        d.polygon(shirt, fill=colour)
        vd.polygon(shirt, fill=255)
        d.rectangle([58, 100, 70, 108], fill=(250, 250, 250))
        d.text((6, 112), "MOCKUP", fill=(90, 90, 90))
    elif family == "phonecase":
        im = Image.fromarray(np.asarray(Image.fromarray(_tint(_crop(_photos()["gravel"], .5, .5, .6), (230, 225, 220), 0.3)).resize((C, C))))
        d = ImageDraw.Draw(im)
        d.rounded_rectangle([38, 10, 90, 118], radius=12, fill=colour)
        vd.rounded_rectangle([38, 10, 90, 118], radius=12, fill=255)
        d.rounded_rectangle([44, 16, 66, 44], radius=6, fill=(30, 30, 30))
        d.ellipse([47, 19, 56, 28], fill=(80, 80, 110))
        d.ellipse([56, 31, 64, 39], fill=(80, 80, 110))
    elif family == "sofa":
        im, d = _canvas((236, 232, 225))
        _paste_photo(im, "astronaut", (80, 8, 116, 44), cy=0.3, frac=0.5)
        d.rectangle([0, 96, C, C], fill=(160, 120, 90))
        parts = [[14, 40, 114, 76], [8, 60, 28, 100], [100, 60, 120, 100], [20, 70, 108, 96]]
        for p in parts:
            d.rectangle(p, fill=colour)
            vd.rectangle(p, fill=255)
        for p in parts[:1]:
            d.rectangle([p[0] + 4, p[1] + 4, p[2] - 4, p[1] + 8], fill=tuple(max(0, c - 30) for c in colour))
        d.rectangle([50, 100, 78, 118], fill=(90, 60, 40))
        _paste_photo(im, "coffee", (56, 102, 72, 114), frac=0.5)
    else:  # pragma: no cover - internal table
        raise KeyError(family)
    img = _thumb(im)
    varying = np.asarray(var.resize((RESOLUTION, RESOLUTION), Image.BILINEAR)) > 0
    return img, varying


def _procedural(kind: str, rng: np.random.Generator) -> np.ndarray:
    C = _CANVAS
    if kind == "poster":
        im, d = _canvas((20, 12, 60))
        for i in range(6):
            d.ellipse([10 + i * 6, 10 + i * 6, 118 - i * 6, 118 - i * 6], outline=(255, 60 + 30 * i, 120), width=4)
        d.rectangle([10, 100, 118, 120], fill=(255, 200, 40))
        d.text((18, 104), "MIDNIGHT 2019", fill=(20, 12, 60))
        return _thumb(im)
    if kind == "card":
        im, d = _canvas((250, 240, 200))
        for i, col in enumerate([(230, 50, 60), (50, 120, 220), (60, 180, 90), (240, 160, 30)]):
            x = 18 + i * 26
            d.ellipse([x, 14 + (i % 2) * 12, x + 24, 46 + (i % 2) * 12], fill=col)
            d.line([x + 12, 46 + (i % 2) * 12, 64, 96], fill=(90, 90, 90), width=1)
        d.rectangle([14, 96, 114, 118], fill=(200, 40, 120))
        d.text((22, 100), "HAPPY BIRTHDAY", fill=(255, 255, 255))
        return _thumb(im)
    if kind == "wood":
        y = np.linspace(0, 1, C)[:, None]
        x = np.linspace(0, 1, C)[None, :]
        g = 0.5 + 0.5 * np.sin(40 * x + 3 * np.sin(6 * y))
        base = np.array([200, 160, 110], np.float32)
        arr = base[None, None] * (0.8 + 0.2 * g[..., None])
        return _thumb(arr.clip(0, 255).astype(np.uint8))
    if kind == "white":
        return np.full((RESOLUTION, RESOLUTION, 3), 255, np.uint8)
    if kind == "offwhite":
        y = np.linspace(0, 1, RESOLUTION)[:, None, None]
        return np.broadcast_to(240 + 10 * y, (RESOLUTION, RESOLUTION, 3)).round().astype(np.uint8).copy()
    if kind == "gray":
        return np.full((RESOLUTION, RESOLUTION, 3), 200, np.uint8)
    if kind == "blackvignette":
        yy, xx = np.mgrid[-1:1:RESOLUTION * 1j, -1:1:RESOLUTION * 1j]
        v = np.clip(40 * (1 - 0.8 * (xx ** 2 + yy ** 2)), 0, 255)
        return np.stack([v] * 3, -1).round().astype(np.uint8)
    raise KeyError(kind)


def _random_scene(rng: np.random.Generator) -> np.ndarray:
    """A unique procedural image: random shapes on a gradient, like clip-art product shots."""
    C = _CANVAS
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, C)[:, None, None]
    arr = (c0 * (1 - t) + c1 * t) * np.ones((1, C, 1))
    im = Image.fromarray(arr.astype(np.uint8))
    d = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(3, 8))):
        x0, y0 = rng.integers(0, C - 16, 2)
        w, h = rng.integers(12, 70, 2)
        col = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = rng.integers(0, 3)
        box = [int(x0), int(y0), int(min(C, x0 + w)), int(min(C, y0 + h))]
        if shape == 0:
            d.ellipse(box, fill=col)
        elif shape == 1:
            d.rectangle(box, fill=col)
        else:
            d.polygon([(box[0], box[3]), ((box[0] + box[2]) // 2, box[1]), (box[2], box[3])], fill=col)
    return _thumb(im)


def hash_str(s: str) -> int:
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:8], "little")


# ----------------------------------------------------------------------------- build

def build_world(seed: int = 0) -> World:
    """Build the demo training set and attack list deterministically from `seed`."""
    rng = np.random.default_rng(seed)
    photos = _photos()
    images: list[np.ndarray] = []
    rows: list[TrainRow] = []
    attack: list[AttackCaption] = []
    masks: dict[str, np.ndarray] = {}

    def add_image(a: np.ndarray) -> int:
        images.append(np.ascontiguousarray(a, dtype=np.uint8))
        return len(images) - 1

    for i, (src, cy, cx, frac, caption, copies) in enumerate(_EXACT):
        img = _procedural(src, rng) if src in ("poster", "card") else _thumb(_crop(photos[src], cy, cx, frac))
        k = add_image(img)
        group = f"exact-{i + 1:02d}"
        rows += [TrainRow(caption, k, "exact", group)] * copies
        attack.append(AttackCaption(caption, "exact", group, k, (k,)))

    for fam, tmpl in _TEMPLATES.items():
        group = f"template-{fam}"
        family_images = []
        varying_any = np.zeros((RESOLUTION, RESOLUTION), bool)
        fam_captions = []
        for name, rgb in _COLOURS:
            img, varying = _template_image(fam, rgb)
            varying_any |= varying
            k = add_image(img)
            family_images.append(k)
            cap = tmpl.format(c=name)
            fam_captions.append((cap, k))
            rows += [TrainRow(cap, k, "template", group)] * _TEMPLATE_COPIES
        masks[group] = ~varying_any
        for cap, k in fam_captions:
            attack.append(AttackCaption(cap, "template", group, k, tuple(family_images)))

    for i, (src, cy, cx, frac, phrase, adjs, tails) in enumerate(_RETRIEVAL):
        group = f"retrieval-{src}"
        img = photos[src]
        if src in ("camera", "text", "coins", "moon", "clock"):
            img = _tint(img, [(230, 210, 170), (200, 190, 150), (180, 200, 230), (210, 180, 160), (230, 230, 230), (160, 140, 120)][i], 0.5)
        k = add_image(_thumb(_crop(img, cy, cx, frac)))
        combos = [f"{a} {phrase} {t}" for a in adjs for t in tails]
        order = rng.permutation(len(combos))
        train_caps = [combos[j] for j in order[:_RETRIEVAL_COPIES]]
        held_out = [combos[j] for j in order[_RETRIEVAL_COPIES:_RETRIEVAL_COPIES + _RETRIEVAL_ATTACKS]]
        rows += [TrainRow(c, k, "retrieval", group) for c in train_caps]
        for c in held_out:
            # The attacker's caption has its own (different) training pair, seen once.
            own = add_image(_random_scene(rng))
            rows.append(TrainRow(c, own, "retrieval-own", group))
            attack.append(AttackCaption(c, "retrieval", group, own, (k,)))

    for i, (src, tint, caption, copies) in enumerate(_TEXTURES):
        if src in photos:
            img = _thumb(_tint(_crop(photos[src], 0.5, 0.5, 0.5), tint, 0.7))
        else:
            img = _procedural(src, rng)
        k = add_image(img)
        group = f"texture-{src}"
        rows += [TrainRow(caption, k, "texture", group)] * copies
        attack.append(AttackCaption(caption, "texture", group, k, (k,)))

    seen = {r.caption.lower() for r in rows}
    uniques: list[AttackCaption] = []
    while len(uniques) < N_UNIQUE:
        caption = f"{rng.choice(_ADJ)} {rng.choice(_NOUN)} {rng.choice(_CTX)}"
        if rng.random() < 0.5:
            caption += f" {rng.choice(_ADJ).lower()} {rng.choice(_NOUN)}"
        if caption.lower() in seen:
            continue
        r = rng.random()
        if r < 0.55:
            src = _UNIQUE_PHOTOS[int(rng.integers(len(_UNIQUE_PHOTOS)))]
            a = _crop(photos[src], rng.uniform(0.1, 0.9), rng.uniform(0.1, 0.9), rng.uniform(0.12, 0.45))
            if rng.random() < 0.5:
                a = _tint(a, tuple(int(v) for v in rng.integers(60, 256, 3)), rng.uniform(0.3, 0.8))
            img = _thumb(a)
            if img.std() < 28:  # near-uniform crops belong to the background group, not the uniques
                continue
        else:
            img = _random_scene(rng)
        seen.add(caption.lower())
        k = add_image(img)
        rows.append(TrainRow(caption, k, "unique", ""))
        uniques.append(AttackCaption(caption, "unique", "", k, (k,)))
    pick = rng.permutation(len(uniques))[:N_UNIQUE_ATTACK]
    attack += [uniques[j] for j in sorted(pick)]
    return World(images=images, rows=rows, attack=attack, masks=masks, seed=seed)


def write_truth(world: World, folder: Path) -> None:
    """Write the attack list (captions only) and the planted truth beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "attack_list.txt").write_text("".join(a.caption + "\n" for a in world.attack), encoding="utf-8")
    truth = world.truth()
    # keep-masks as rows of '0'/'1' (1 = fixed region, compared for template verbatims)
    truth["template_masks"] = {g: ["".join("1" if v else "0" for v in row) for row in m]
                               for g, m in sorted(world.masks.items())}
    (folder / "truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")
