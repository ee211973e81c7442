"""A realistic fixture world at 256 or 512 px: what the labels, masks and flags are measured on.

Built by code from scikit-image's bundled photos and textures plus procedural drawings, seeded,
nothing downloaded. Training images are saved as PNG and JPEG; the "generations" come from a
closed model, as an `images:` folder (mapping.csv). Every attack caption is one planted case:

- exact (MV): the generation is the caption's own image with small noise, re-encoded; the
  training set also holds JPEG re-encodings of it (LAION's near-duplicates);
- surround (MV, no flag): a photo on a large plain surround, copied;
- template (TV): families of siblings that differ only in one region, each family laid out
  differently (bottom band, left panel, centre box, top band, corner, right strip); the
  generation fills the region with a variant no sibling has. Two families have a confuser: the
  same base photo, brightened as a whole, inside the near-duplicate window;
- retrieval (RV): the generation copies a training image captioned otherwise;
- background / texture (MV + the flag): plain backdrops and real textures, copied;
- unique / texture_other (N): a generation that is no copy of anything;
- crop / rescale / mirror (MV, only with the aligned evidence: the paper's pixel distance misses
  them, its section 5.4): 10-30% of the area cropped away and zoomed back to full frame, the
  whole image shrunk onto a plain border, mirrored (one also cropped).

The truth (expected label and flag per caption, each family's keep-mask and members) is returned
and written as truth.json beside the files.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

KINDS = ("exact", "surround", "template", "retrieval", "background", "texture", "unique", "texture_other",
         "crop", "rescale", "mirror")
EXPECTED = {"exact": "MV", "surround": "MV", "template": "TV", "retrieval": "RV", "background": "MV",
            "texture": "MV", "unique": "N", "texture_other": "N", "crop": "MV", "rescale": "MV", "mirror": "MV"}
FLAG = {"background": "suspect:background", "texture": "suspect:texture"}
KNOWN_MISSES = ("crop", "rescale", "mirror")      # found by the aligned evidence only
CROP_AREAS = (0.1, 0.2, 0.3)                      # share of the area a crop case cuts away
LAYOUTS = ("bottom", "left", "centre", "top", "corner", "right")


@dataclass(frozen=True)
class Case:
    caption: str
    kind: str
    expected: str                  # MV TV RV N (crop / rescale / mirror: by the aligned evidence)
    flag: str | None               # the suspect flag a reviewer should see, if any
    family: str | None = None      # template family
    target: str | None = None      # the training file the generation copies (None: no copy)


@dataclass(frozen=True)
class RealWorld:
    root: Path
    size: int
    train_dir: Path                # image files + metadata.jsonl (file_name, caption, url)
    captions: Path                 # the attack captions, one a line
    model_dir: Path                # images: folder, mapping.csv
    cases: tuple[Case, ...]
    families: dict = field(default_factory=dict)   # family -> {"members": [file], "keep": file of its keep-mask}
    seeds: tuple[int, ...] = (0, 1)
    steps: int = 50

    def case(self, caption: str) -> Case:
        return next(c for c in self.cases if c.caption == caption)

    def keep_mask(self, family: str) -> np.ndarray:
        return np.asarray(Image.open(self.root / self.families[family]["keep"])) > 127


# -- sources --------------------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _photos() -> dict[str, np.ndarray]:
    import skimage.data as d

    from attack.demo.world import rgb

    names = ("astronaut", "coffee", "chelsea", "rocket", "retina", "colorwheel", "camera", "coins", "moon",
             "clock", "horse")
    out = {n: rgb(getattr(d, n)()) for n in names}
    out["motorcycle"] = rgb(d.stereo_motorcycle()[0])
    return out


@lru_cache(maxsize=1)
def _small_photos() -> dict[str, tuple[np.ndarray, float]]:
    """Each photo with its shorter side at 192 px, and that scale (for quick trial crops)."""
    out = {}
    for name, a in _photos().items():
        scale = 192 / min(a.shape[:2])
        h, w = int(a.shape[0] * scale), int(a.shape[1] * scale)
        out[name] = (np.asarray(Image.fromarray(a).resize((w, h), Image.BILINEAR)), scale)
    return out


@lru_cache(maxsize=1)
def _textures() -> dict[str, np.ndarray]:
    import skimage.data as d
    return {n: np.stack([getattr(d, n)()] * 3, -1).astype(np.uint8) for n in ("brick", "grass", "gravel")}


def _resize(a: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((size, size), Image.LANCZOS), dtype=np.uint8)


def _crop(a: np.ndarray, rng: np.random.Generator, lo: float = 0.45, hi: float = 1.0) -> np.ndarray:
    h, w = a.shape[:2]
    s = int(rng.uniform(lo, hi) * min(h, w))
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    return a[y:y + s, x:x + s]


def _small(img: np.ndarray) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR), dtype=np.float32) / 255


def content(img: np.ndarray) -> float:
    """Fraction of 8x8-px tiles of the 64-px grey thumbnail with detail (std >= 0.03)."""
    g = _small(img).mean(-1)
    return float((g.reshape(8, 8, 8, 8).transpose(0, 2, 1, 3).reshape(64, 64).std(1) >= 0.03).mean())


class Distinct:
    """Every base image of the world, so a new one can be refused when it is within min_rmse of
    one already there: the planted relations (copies, siblings) are the only near pairs."""

    def __init__(self, min_rmse: float = 0.2, min_content: float = 0.4):
        self.min_rmse, self.min_content = min_rmse, min_content
        self.seen = np.zeros((0, 64 * 64 * 3), np.float32)

    def ok(self, img: np.ndarray) -> bool:
        if content(img) < self.min_content:
            return False
        s = _small(img).reshape(1, -1)
        return not len(self.seen) or float(np.sqrt(((self.seen - s) ** 2).mean(1)).min()) >= self.min_rmse

    def add(self, img: np.ndarray) -> np.ndarray:
        self.seen = np.concatenate([self.seen, _small(img).reshape(1, -1)])
        return img


class Photos:
    """Square crops of the bundled photos, no two overlapping much (IoU <= 0.2 within a photo),
    flipped and tinted at random: the few bundled photos give many images that are no
    accidental near-duplicates of each other (a world's uniques must be unique)."""

    def __init__(self, rng: np.random.Generator, distinct: Distinct):
        self.rng = rng
        self.distinct = distinct
        self.used: dict[str, list[tuple[int, int, int]]] = {}

    def _free(self, name: str, y: int, x: int, s: int) -> bool:
        for yy, xx, ss in self.used.get(name, []):
            iy = max(0, min(y + s, yy + ss) - max(y, yy))
            ix = max(0, min(x + s, xx + ss) - max(x, xx))
            inter = iy * ix
            if inter / (s * s + ss * ss - inter) > 0.2:
                return False
        return True

    def __call__(self, size: int) -> np.ndarray:
        photos, rng = _photos(), self.rng
        for _ in range(200):
            name = list(photos)[int(rng.integers(0, len(photos)))]
            a = photos[name]
            h, w = a.shape[:2]
            s = int(rng.uniform(0.35, 0.8) * min(h, w))
            y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
            if not self._free(name, y, x, s):
                continue
            flip, tint = rng.random() < 0.5, rng.uniform(0.75, 1.0, 3)

            def render(src: np.ndarray, scale: float, out: int) -> np.ndarray:
                y0, x0, s0 = int(y * scale), int(x * scale), max(1, int(s * scale))
                crop = src[y0:y0 + s0, x0:x0 + s0]
                crop = crop[:, ::-1] if flip else crop
                return _resize(np.ascontiguousarray((crop * tint).astype(np.uint8)), out)

            small, scale = _small_photos()[name]
            if self.distinct.ok(render(small, scale, 64)):   # judged on a cheap 64-px rendering
                self.used.setdefault(name, []).append((y, x, s))
                return self.distinct.add(render(a, 1.0, size))
        return self.drawing(size)   # every photo is used up: an illustration instead

    def drawing(self, size: int) -> np.ndarray:
        """An illustration distinct from every image so far."""
        for _ in range(200):
            img = drawing(self.rng, size)
            if self.distinct.ok(img):
                return self.distinct.add(img)
        raise RuntimeError("expected to draw a distinct illustration in 200 tries, got none")


def drawing(rng: np.random.Generator, size: int) -> np.ndarray:
    """Coloured shapes on a coloured ground (an illustration, a logo, a product shot)."""
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(im)
    for _ in range(int(rng.integers(10, 22))):
        box = sorted(rng.integers(0, size, 2).tolist()), sorted(rng.integers(0, size, 2).tolist())
        xy = [box[0][0], box[1][0], max(box[0][1], box[0][0] + size // 16), max(box[1][1], box[1][0] + size // 16)]
        colour = tuple(int(v) for v in rng.integers(0, 256, 3))
        shape = int(rng.integers(0, 3))
        if shape == 0:
            draw.rectangle(xy, fill=colour)
        elif shape == 1:
            draw.ellipse(xy, fill=colour)
        else:
            draw.line(xy, fill=colour, width=max(2, size // 40))
    return np.asarray(im.filter(ImageFilter.GaussianBlur(size / 512)), dtype=np.uint8)


def texture(rng: np.random.Generator, size: int, name: str | None = None) -> np.ndarray:
    textures = _textures()
    name = name or list(textures)[int(rng.integers(0, len(textures)))]
    tint = rng.uniform(0.6, 1.0, 3)
    return _resize((_crop(textures[name], rng, 0.3, 0.6) * tint).astype(np.uint8), size)


def backdrop(rng: np.random.Generator, size: int, mark: bool = False) -> np.ndarray:
    """A plain, near-uniform image: one colour, a faint gradient, faint noise; with mark, a
    small watermark in a corner (a backdrop still: 2% of the frame)."""
    base = rng.uniform(0.1, 0.95, 3)
    ramp = np.linspace(-1, 1, size)[None, :, None] * rng.uniform(-0.04, 0.04, 3)
    noise = rng.normal(0, 0.004, (size, size, 3))
    img = (np.clip(base + ramp + noise, 0, 1) * 255).round().astype(np.uint8)
    if mark:
        s = size // 7
        img[size - s - size // 32: size - size // 32, size // 32: size // 32 + s] = \
            rng.integers(0, 256, (s, s, 3)).astype(np.uint8)
    return img


def on_surround(rng: np.random.Generator, size: int, photo) -> np.ndarray:
    """A photo occupying about a third of the frame on a plain white, grey or black surround."""
    canvas = np.full((size, size, 3), int(rng.choice([255, 235, 128, 20])), np.uint8)
    side = int(size * rng.uniform(0.5, 0.62))
    p = photo(side)
    y, x = (size - side) // 2 + int(rng.integers(-size // 16, size // 16)), (size - side) // 2
    canvas[y:y + side, x:x + side] = p
    return canvas


def geometric_copy(img: np.ndarray, kind: str, i: int) -> np.ndarray:
    """What a pixel distance misses: crop (CROP_AREAS[i % 3] of the area cut away, from a corner
    or the centre, zoomed back to full frame), rescale (the whole image shrunk to 80-90% onto a
    plain border), mirror (the odd ones also cropped by 15% of the area)."""
    size = img.shape[0]
    if kind == "crop" or (kind == "mirror" and i % 2):
        area = CROP_AREAS[i % 3] if kind == "crop" else 0.15
        h = int(round(size * np.sqrt(1 - area)))
        y, x = [(0, 0), (size - h, size - h), ((size - h) // 2, (size - h) // 2)][i % 3]
        img = _resize(np.ascontiguousarray(img[y:y + h, x:x + h]), size)
    if kind == "rescale":
        side = int(size * (0.8 + 0.1 * (i % 2)))
        canvas = np.full((size, size, 3), (128, 236)[i % 2], np.uint8)
        o = (size - side) // 2
        canvas[o:o + side, o:o + side] = _resize(img, side)
        img = canvas
    if kind == "mirror":
        img = np.ascontiguousarray(img[:, ::-1])
    return img


def _noisy(a: np.ndarray, rng: np.random.Generator, sigma: float = 0.012) -> np.ndarray:
    """A copy as a generator would give it back: the pixels with a little noise."""
    out = np.clip(a.astype(np.float32) / 255 + rng.normal(0, sigma, a.shape), 0, 1)
    return (out * 255).round().astype(np.uint8)


def jpeg_roundtrip(a: np.ndarray, quality: int) -> np.ndarray:
    """The image as a JPEG of this quality decodes (what a re-encoded copy looks like)."""
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))


# -- template families -------------------------------------------------------------------------------
def region(layout: str, size: int) -> np.ndarray:
    """Where a family's siblings differ (True), by layout."""
    r = np.zeros((size, size), bool)
    s = size
    if layout == "bottom":
        r[int(0.68 * s):, :] = True
    elif layout == "left":
        r[:, : int(0.3 * s)] = True
    elif layout == "centre":
        r[int(0.3 * s): int(0.7 * s), int(0.28 * s): int(0.72 * s)] = True
    elif layout == "top":
        r[: int(0.25 * s), :] = True
    elif layout == "corner":
        r[int(0.5 * s):, int(0.5 * s):] = True
    elif layout == "right":
        r[:, int(0.74 * s):] = True
    else:
        raise ValueError(f"expected a layout among {LAYOUTS}, got {layout!r}")
    return r


def _variant(base: np.ndarray, where: np.ndarray, rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """The base with its region painted a shade of one colour (a carpet, a shirt, a label),
    with the light and grain of the base kept."""
    out = base.astype(np.float32) / 255
    shade = np.clip(colour + rng.uniform(-0.09, 0.09, 3), 0, 1)
    grain = out[where].mean(-1, keepdims=True)
    out[where] = np.clip(0.75 * shade + 0.25 * grain, 0, 1)
    return (out * 255).round().astype(np.uint8)


# -- the world -----------------------------------------------------------------------------------
COUNTS = {"exact": 10, "surround": 4, "template": 6, "retrieval": 5, "background": 3, "texture": 3,
          "unique": 18, "texture_other": 2, "crop": 3, "rescale": 2, "mirror": 3}
SIBLINGS = 6
DISTRACTORS = 40
PRODUCTS = ("sofa", "rug", "shirt", "mug", "poster", "lamp", "chair", "tile", "bag", "print")
COLOURS = ("sea mist", "ivory", "charcoal", "sand", "forest", "berry", "slate", "honey")


def world_dirs(root: Path) -> tuple[Path, Path]:
    """train/ and closed-model/ (and masks/) under a world's root, made if missing."""
    root = Path(root)
    train, gen = root / "train", root / "closed-model"
    for d in (train, gen, root / "masks"):
        d.mkdir(parents=True, exist_ok=True)
    return train, gen


def write_world(root: Path, truth: dict, meta: list[dict], mapping: list, cases: list[Case],
                families: dict) -> RealWorld:
    """A world's index files beside its images: train/metadata.jsonl, closed-model/mapping.csv,
    captions.txt and truth.json (`truth`'s keys, then the cases and families); returns the world."""
    root = Path(root)
    train, gen = world_dirs(root)
    (train / "metadata.jsonl").write_text("".join(json.dumps(m) + "\n" for m in meta), encoding="utf-8")
    with open(gen / "mapping.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["caption", "seed", "steps", "path"])
        w.writerows(mapping)
    (root / "captions.txt").write_text("".join(c.caption + "\n" for c in cases), encoding="utf-8")
    (root / "truth.json").write_text(json.dumps({**truth, "cases": [asdict(c) for c in cases], "families": families},
                                                indent=1), encoding="utf-8")
    return RealWorld(root, truth["size"], train, root / "captions.txt", gen, tuple(cases), families)


def build_world(root: Path, size: int = 256, seed: int = 0, counts: dict | None = None) -> RealWorld:
    """Write the world under root (train/, closed-model/, captions.txt, truth.json); returns it."""
    rng = np.random.default_rng(seed)
    distinct = Distinct()
    photos = Photos(rng, distinct)
    counts = {**COUNTS, **(counts or {})}
    root = Path(root)
    train, gen = world_dirs(root)
    meta: list[dict] = []
    mapping: list[tuple[str, int, int, str]] = []
    cases: list[Case] = []
    families: dict = {}
    n_file = [0]

    def save_train(img: np.ndarray, caption: str | None, fmt: str = "png", quality: int = 92) -> str:
        n_file[0] += 1
        name = f"{n_file[0]:05d}.{'jpg' if fmt == 'jpg' else 'png'}"
        kw = {"quality": quality} if fmt == "jpg" else {}
        Image.fromarray(img).save(train / name, **kw)
        meta.append({"file_name": name, "caption": caption, "url": f"https://images.example/{name}"})
        return name

    def save_gens(caption: str, images: list[np.ndarray]) -> None:
        for s, img in zip((0, 1), images):
            name = f"g{len(mapping):05d}.{'jpg' if len(mapping) % 2 else 'png'}"
            kw = {"quality": 95} if name.endswith("jpg") else {}
            Image.fromarray(img).save(gen / name, **kw)
            mapping.append((caption, s, 50, name))

    def copies(img: np.ndarray) -> list[np.ndarray]:
        return [_noisy(img, rng), _noisy(img, rng)]

    def add(kind: str, caption: str, gens: list[np.ndarray], family: str | None = None,
            target: str | None = None) -> None:
        cases.append(Case(caption, kind, EXPECTED[kind], FLAG.get(kind), family, target))
        save_gens(caption, gens)

    for i in range(counts["exact"]):
        img = photos(size) if i % 3 else photos.drawing(size)
        cap = f"exact copy {i}: {PRODUCTS[i % len(PRODUCTS)]} photograph, high resolution"
        target = save_train(img, cap, "jpg" if i % 2 else "png")
        for q in (75, 85):                    # LAION's re-encoded duplicates, same caption
            save_train(jpeg_roundtrip(img, q), cap, "jpg", q)
        add("exact", cap, copies(img), target=target)
    for i in range(counts["surround"]):
        img = on_surround(rng, size, photos)
        cap = f"product {i} on a plain studio background"
        add("surround", cap, copies(img), target=save_train(img, cap, "png"))
    for f in range(counts["template"]):
        layout = LAYOUTS[f % len(LAYOUTS)]
        where = region(layout, size)
        base = photos(size) if f % 2 else photos.drawing(size)
        colour = rng.uniform(0.15, 0.85, 3)
        product = PRODUCTS[f % len(PRODUCTS)]
        fam = f"family {f} ({layout})"
        members = []
        for k in range(SIBLINGS):
            cap = f"Shaw {product} collection {f} in {COLOURS[k % len(COLOURS)]} {k}"
            members.append(save_train(_variant(base, where, rng, colour), cap, "png" if k % 3 else "jpg", 95))
        keep_file = f"masks/family{f}.png"
        Image.fromarray((~where).astype(np.uint8) * 255).save(root / keep_file)
        families[fam] = {"members": members, "keep": keep_file, "layout": layout}
        if f < 2:   # a confuser: the same base brightened, inside the near-duplicate window
            bright = np.clip(_variant(base, where, rng, colour).astype(np.float32) * 1.06 + 4, 0, 255).astype(np.uint8)
            save_train(bright, f"{product} photo, bright edit", "png")
        for a in range(2):   # two of the siblings' captions are attacked; the generation is a new variant
            cap = meta[[m["file_name"] for m in meta].index(members[a])]["caption"]
            add("template", cap, [_noisy(_variant(base, where, rng, colour), rng) for _ in range(2)], family=fam,
                target=members[a])
    for i in range(counts["retrieval"]):
        copied = photos(size) if i % 2 else photos.drawing(size)
        target = save_train(copied, f"stock image {i}, another listing's caption", "jpg")
        cap = f"retrieval case {i}: {PRODUCTS[i % len(PRODUCTS)]} for sale"
        save_train(photos(size), cap, "png")                  # its own image is something else
        add("retrieval", cap, copies(copied), target=target)
    for i in range(counts["background"]):
        img = distinct.add(backdrop(rng, size, mark=i % 2 == 1))
        cap = f"plain background {i}"
        add("background", cap, copies(img), target=save_train(img, cap, "png"))
    for i in range(counts["texture"]):
        img = distinct.add(texture(rng, size, ("brick", "grass", "gravel")[i % 3]))
        cap = f"seamless texture {i}"
        add("texture", cap, copies(img), target=save_train(img, cap, "jpg"))
    for i in range(counts["unique"]):
        own = photos(size) if i % 2 else photos.drawing(size)
        cap = f"unique scene {i}"
        save_train(own, cap, "jpg" if i % 2 else "png")
        add("unique", cap, [photos(size), photos.drawing(size)])
    for i in range(counts["texture_other"]):
        name = ("grass", "gravel")[i % 2]
        cap = f"texture sample {i}"
        save_train(texture(rng, size, name), cap, "png")
        add("texture_other", cap, [texture(rng, size, name), texture(rng, size, name)])
    for kind in KNOWN_MISSES:
        for i in range(counts[kind]):
            img = photos(size)
            cap = f"{kind} case {i}"
            target = save_train(img, cap, "png")
            add(kind, cap, copies(geometric_copy(img, kind, i)), target=target)
    for i in range(DISTRACTORS):          # training images nobody asks for
        save_train(photos(size) if i % 3 else photos.drawing(size), f"unrelated listing {i}",
                   "jpg" if i % 2 else "png")

    return write_world(root, {"size": size, "seed": seed}, meta, mapping, cases, families)
