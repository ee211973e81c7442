"""The held-out world: a second fixture world built differently from attack/bench/realworld.py (the
development world the labeller's thresholds are chosen on), so `bench labels` can say how the
labels do on data they were not tuned for.

Nothing here comes from scikit-image's samples. Sources: scikit-learn's two bundled photos,
procedural scenes (landscapes, skies, portraits, products on white, smooth gradients, rooms),
text rendered with PIL, procedural textures (fabric, wood grain, noise) and studio backdrops.
Every attack caption is one planted case:

- copies (MV, or RV when the copy is of an image captioned otherwise): exact copies after JPEG,
  colour-shifted copies, crops of 15-30% of the area, rescales onto a border, mirrors, 3-5 degree
  rotations;
- template (TV): five LAION-like families whose members differ in a large region: a T-shirt
  mock-up with a different print, a phone case with a different back, a framed poster on a room
  wall, a book cover whose title differs, a product in colour variants; the generation fills the
  region with content no member has;
- same-category negatives (N): the caption's own image and the generation are two different
  pictures of one kind (landscapes, skies, portraits, products on white, smooth gradients);
- textures and backdrops copied (MV + suspect:texture / suspect:background), another texture of
  the same kind (N), and generations that copy nothing (N).

Distractors fill the training set to 300 images, many of the same categories (products on a
white surround share their background: no family). The truth is written as truth.json.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from attack.bench.pictures import (
    CATEGORIES,
    TEXTURES,
    WORDS,
    backdrop,
    fbm,
    landscape,
    photo,
    text_card,
    text_font,
    to_u8,
    wood,
)
from attack.bench.realworld import Case, RealWorld, jpeg_roundtrip, world_dirs, write_world

FLAG = {"texture": "suspect:texture", "backdrop": "suspect:background"}


COPY_KINDS = ("exact", "colour", "retrieval", "crop", "rescale", "mirror", "rotate")


GEOMETRIC = ("crop", "rescale", "mirror", "rotate")


NEGATIVE_CATEGORIES = ("landscape", "sky", "portrait", "product", "gradient")


FAMILIES = ("tshirt", "phonecase", "poster", "bookcover", "colourway")


COUNTS = {"exact": 8, "colour": 5, "retrieval": 5, "crop": 5, "rescale": 4, "mirror": 4, "rotate": 4,
          "texture": 3, "backdrop": 3, "texture_other": 2, "unique": 8, "negative": 2}


MEMBERS = 5


PNG = {"compress_level": 1}     # lossless either way; the default level spends most of a build compressing


TRAINING_IMAGES = 300


# -- template families -------------------------------------------------------------------------------
def _room(rng: np.random.Generator, size: int) -> np.ndarray:
    """A room: a textured wall, a floor, a sofa and a lamp."""
    wall = rng.uniform(0.55, 0.9, 3) * (1 + 0.06 * fbm(rng, size, 5, 8)[..., None])
    floor = rng.uniform([0.35, 0.25, 0.15], [0.6, 0.45, 0.3]) * (1 + 0.1 * fbm(rng, size, 5, 12)[..., None])
    y = np.arange(size)[:, None, None]
    img = np.where(y > size * 0.72, floor, wall)
    im = Image.fromarray(to_u8(img))
    d = ImageDraw.Draw(im)
    s = size
    sofa = tuple(int(v) for v in rng.integers(30, 200, 3))
    d.rounded_rectangle([s * 0.05, s * 0.6, s * 0.6, s * 0.82], radius=s // 30, fill=sofa)
    d.rectangle([s * 0.08, s * 0.52, s * 0.57, s * 0.66], fill=tuple(int(v * 0.8) for v in sofa))
    d.line([s * 0.8, s * 0.35, s * 0.8, s * 0.8], fill=(40, 40, 40), width=max(3, s // 100))
    d.polygon([(s * 0.72, s * 0.35), (s * 0.88, s * 0.35), (s * 0.84, s * 0.25), (s * 0.76, s * 0.25)], fill=(235, 225, 190))
    return np.asarray(im)


def _fill(rng: np.random.Generator, size: int) -> np.ndarray:
    """What a family member shows in its varying region: a print, a photo crop, text or a pattern."""
    pick = int(rng.integers(0, 4))
    if pick == 0:
        return text_card(rng, size)
    if pick == 1:
        return photo(rng, size)
    if pick == 2:
        return landscape(rng, size)
    c0, c1 = rng.integers(0, 256, (2, 3))
    yy, xx = np.mgrid[0:size, 0:size]
    stripes = ((xx + yy) // max(4, size // int(rng.integers(6, 14))) % 2).astype(bool)[..., None]
    return np.where(stripes, c0, c1).astype(np.uint8)


class Family:
    """A template: a scene drawn once, and a varying region (a box, or a shape) each member fills
    differently. member(rng) draws a new member; region is the truth (True: varies)."""

    def __init__(self, kind: str, rng: np.random.Generator, size: int):
        self.kind, self.size = kind, size
        s = size
        if kind == "tshirt":
            base = Image.fromarray(_room(rng, s))
            d = ImageDraw.Draw(base)
            shirt = tuple(int(v) for v in rng.integers(40, 230, 3))
            d.polygon([(s * .3, s * .18), (s * .42, s * .14), (s * .58, s * .14), (s * .7, s * .18), (s * .86, s * .32),
                       (s * .76, s * .42), (s * .7, s * .36), (s * .7, s * .9), (s * .3, s * .9), (s * .3, s * .36),
                       (s * .24, s * .42), (s * .14, s * .32)], fill=shirt)
            d.arc([s * .42, s * .08, s * .58, s * .2], 0, 180, fill=tuple(int(v * .7) for v in shirt), width=s // 60)
            self.box = (int(s * .38), int(s * .3), int(s * .62), int(s * .62))
        elif kind == "phonecase":
            base = Image.fromarray(wood(rng, s))
            d = ImageDraw.Draw(base)
            d.rounded_rectangle([s * .26, s * .06, s * .74, s * .94], radius=s // 14, fill=(25, 25, 28))
            self.box = (int(s * .3), int(s * .1), int(s * .7), int(s * .9))
        elif kind == "poster":
            base = Image.fromarray(_room(rng, s))
            d = ImageDraw.Draw(base)
            d.rectangle([s * .22, s * .06, s * .66, s * .5], fill=tuple(int(v) for v in rng.integers(20, 90, 3)))
            self.box = (int(s * .25), int(s * .09), int(s * .63), int(s * .47))
        elif kind == "bookcover":
            art = landscape(rng, s)
            base = Image.fromarray(art)
            d = ImageDraw.Draw(base)
            band = tuple(int(v) for v in rng.integers(0, 256, 3))
            d.rectangle([0, 0, s, s * .28], fill=band)
            self.band = band
            self.box = (int(s * .03), int(s * .03), int(s * .97), int(s * .26))
        elif kind == "colourway":
            base = Image.fromarray(_room(rng, s))
            d = ImageDraw.Draw(base)
            d.rectangle([s * .15, s * .62, s * .85, s * .68], fill=(90, 60, 40))          # a shelf
            self.box = (int(s * .3), int(s * .3), int(s * .7), int(s * .62))
        else:
            raise ValueError(f"expected a family among {FAMILIES}, got {kind!r}")
        self.base = np.asarray(base)
        self.region = np.zeros((s, s), bool)
        x0, y0, x1, y1 = self.box
        self.region[y0:y1, x0:x1] = True
        if kind == "colourway":     # only the sneaker's body and upper change colour
            shape = Image.new("L", (s, s), 0)
            self._sneaker(ImageDraw.Draw(shape), 255, 255, sole=0)
            self.region = np.asarray(shape) > 127
        if kind == "phonecase":     # the camera bump is the template's, not the print's
            self.bump = (int(s * .34), int(s * .14), int(s * .5), int(s * .32))
            bx0, by0, bx1, by1 = self.bump
            self.region[by0:by1, bx0:bx1] = False

    def member(self, rng: np.random.Generator) -> np.ndarray:
        s, (x0, y0, x1, y1) = self.size, self.box
        im = Image.fromarray(self.base.copy())
        d = ImageDraw.Draw(im)
        if self.kind == "bookcover":
            d.rectangle([x0, y0, x1, y1], fill=self.band)
            fg = tuple(int((v + 128) % 256) for v in self.band)
            title = " ".join(rng.choice(WORDS, 2)).upper()
            d.text((x0 + s * .03, y0 + s * .02), title, fill=fg, font=text_font(int(s * .08)))
            d.text((x0 + s * .03, y0 + s * .13), " ".join(rng.choice(WORDS, 3)), fill=fg, font=text_font(int(s * .045)))
        elif self.kind == "colourway":     # a sneaker in this member's colour
            c = tuple(int(v) for v in rng.integers(10, 245, 3))
            self._sneaker(d, c, tuple(int(v * .75) for v in c))
        else:
            fill = _fill(rng, max(x1 - x0, y1 - y0))[: y1 - y0, : x1 - x0]
            im.paste(Image.fromarray(np.ascontiguousarray(fill)), (x0, y0))
        if self.kind == "phonecase":
            bx0, by0, bx1, by1 = self.bump
            d.rounded_rectangle([bx0, by0, bx1, by1], radius=s // 40, fill=(35, 35, 40))
            for cy in (by0 + (by1 - by0) * .3, by0 + (by1 - by0) * .72):
                r = (bx1 - bx0) * .2
                cx = (bx0 + bx1) / 2
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=(10, 10, 12), outline=(120, 120, 130), width=2)
        return np.asarray(im)

    def _sneaker(self, d: ImageDraw.ImageDraw, body, shade, sole=(245, 245, 245)) -> None:
        x0, y0, x1, y1 = self.box
        w, h = x1 - x0, y1 - y0
        d.ellipse([x0, y0 + h * .35, x1, y1], fill=body)
        d.polygon([(x0 + w * .05, y0 + h * .6), (x0 + w * .35, y0), (x0 + w * .6, y0 + h * .05),
                   (x0 + w * .55, y0 + h * .6)], fill=shade)
        d.line([x0, y1 - 3, x1, y1 - 3], fill=sole, width=max(3, self.size // 70))


# -- copies --------------------------------------------------------------------------------------
def _noisy(a: np.ndarray, rng: np.random.Generator, sigma: float = 0.01) -> np.ndarray:
    return to_u8(a.astype(np.float32) / 255 + rng.normal(0, sigma, a.shape).astype(np.float32))


def copy_of(img: np.ndarray, kind: str, rng: np.random.Generator, i: int) -> np.ndarray:
    """A generation copying img as `kind` says (exact and retrieval: re-encoded with noise)."""
    size = img.shape[0]
    out = img
    if kind == "colour":
        gain, shift = rng.uniform(0.88, 1.1, 3), rng.uniform(-0.04, 0.04, 3)
        out = to_u8(img.astype(np.float32) / 255 * gain + shift)
    elif kind == "crop":
        area = (0.15, 0.2, 0.25, 0.3)[i % 4]
        h = int(round(size * np.sqrt(1 - area)))
        y, x = [(0, 0), (size - h, size - h), ((size - h) // 2, (size - h) // 2), (0, size - h)][i % 4]
        out = np.asarray(Image.fromarray(np.ascontiguousarray(img[y:y + h, x:x + h])).resize((size, size), Image.BICUBIC))
    elif kind == "rescale":
        side = int(size * (0.75, 0.8, 0.85, 0.9)[i % 4])
        canvas = np.full((size, size, 3), int(rng.choice([0, 255, 128])), np.uint8)
        o = (size - side) // 2
        canvas[o:o + side, o:o + side] = np.asarray(Image.fromarray(img).resize((side, side), Image.BICUBIC))
        out = canvas
    elif kind == "mirror":
        out = np.ascontiguousarray(img[:, ::-1])
    elif kind == "rotate":
        angle = (3, -4, 5, -3.5)[i % 4]
        rot = Image.fromarray(img).rotate(angle, Image.BICUBIC)
        m = int(size * 0.06)       # cut the corners the rotation left black, zoom back
        out = np.asarray(rot.crop((m, m, size - m, size - m)).resize((size, size), Image.BICUBIC))
    return jpeg_roundtrip(_noisy(out, rng), int(rng.integers(80, 95)))


# -- the world -----------------------------------------------------------------------------------
def build_heldout(root: Path, size: int = 512, seed: int = 1) -> RealWorld:
    """Write the held-out world under root (train/, closed-model/, captions.txt, truth.json)."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    train, gen = world_dirs(root)
    meta: list[dict] = []
    mapping: list[tuple[str, int, int, str]] = []
    cases: list[Case] = []
    families: dict = {}

    def save_train(img: np.ndarray, caption: str, jpg: bool = False, quality: int = 92) -> str:
        name = f"{len(meta):05d}.{'jpg' if jpg else 'png'}"
        Image.fromarray(img).save(train / name, **({"quality": quality} if jpg else PNG))
        meta.append({"file_name": name, "caption": caption, "url": f"https://stranger.example/{name}"})
        return name

    def add(kind: str, expected: str, caption: str, gens: list[np.ndarray], family: str | None = None,
            target: str | None = None, flag: str | None = None) -> None:
        cases.append(Case(caption, kind, expected, flag, family, target))
        for s, img in enumerate(gens):
            name = f"g{len(mapping):05d}.{'jpg' if len(mapping) % 2 else 'png'}"
            Image.fromarray(img).save(gen / name, **({"quality": 95} if name.endswith("jpg") else PNG))
            mapping.append((caption, s, 50, name))

    products: list[tuple[np.ndarray, np.ndarray]] = []

    def picture(category: str) -> np.ndarray:
        """A new picture of a category. Products are drawn again when they would be the same product
        as an earlier one: its silhouette (a colour variant of one shot is a family), or its colour
        (the same bottle at another scale is a copy)."""
        for _ in range(100):
            img = CATEGORIES[category](rng, size)
            if category != "product":
                return img
            small = np.asarray(Image.fromarray(img).resize((64, 64), Image.BILINEAR)).astype(np.float32)
            sil = small.min(-1) < 200
            colour = np.median(small[sil], 0) if sil.any() else np.zeros(3)
            if all((sil & s).sum() < 0.7 * (sil | s).sum() and np.abs(colour - c).max() > 40 for s, c in products):
                products.append((sil, colour))
                return img
        raise RuntimeError("expected a product unlike the earlier ones in 100 tries, got none")

    def any_picture(photos: bool = False) -> np.ndarray:
        # crops of the two bundled photos overlap: they are copy targets only, never a "unique"
        names = ("landscape", "portrait", "product", "text", "sky") + (("photo",) if photos else ())
        return picture(names[int(rng.integers(0, len(names)))])

    for kind in COPY_KINDS:
        for i in range(COUNTS[kind]):
            img = any_picture(photos=True)
            cap = f"{kind} listing {i}: {' '.join(rng.choice(WORDS, 3))}"
            if kind == "retrieval":      # the copied image is captioned otherwise; the caption's own is another
                target = save_train(img, f"stock photo {i} from another shop", jpg=True)
                save_train(any_picture(), cap)
            else:
                target = save_train(img, cap, jpg=bool(i % 2))
                if kind == "exact" and i % 2 == 0:      # LAION's re-encoded duplicates
                    save_train(jpeg_roundtrip(img, 70), cap, jpg=True, quality=70)
            add(kind, "RV" if kind == "retrieval" else "MV", cap, [copy_of(img, kind, rng, 2 * i + s) for s in range(2)],
                target=target)
    for f, kind in enumerate(FAMILIES):
        fam = Family(kind, rng, size)
        name = f"{kind} family"
        members = [save_train(fam.member(rng), f"{kind} mockup {f}: {WORDS[k]} edition {k}", jpg=bool(k % 2), quality=92)
                   for k in range(MEMBERS)]
        keep_file = f"masks/{kind}.png"
        Image.fromarray((~fam.region).astype(np.uint8) * 255).save(root / keep_file)
        families[name] = {"members": members, "keep": keep_file, "layout": kind}
        for a in range(2):
            cap = meta[[m["file_name"] for m in meta].index(members[a])]["caption"]
            add("template", "TV", cap, [jpeg_roundtrip(_noisy(fam.member(rng), rng), 92) for _ in range(2)], family=name,
                target=members[a])
    for category in NEGATIVE_CATEGORIES:
        for i in range(COUNTS["negative"]):
            cap = f"a {category} picture {i}: {' '.join(rng.choice(WORDS, 2))}"
            save_train(picture(category), cap, jpg=bool(i % 2))
            add(f"negative:{category}", "N", cap, [picture(category) for _ in range(2)])
    for i in range(COUNTS["texture"]):
        tname = tuple(TEXTURES)[i % len(TEXTURES)]
        img = TEXTURES[tname](rng, size)
        cap = f"seamless {tname} texture {i}"
        add("texture", "MV", cap, [copy_of(img, "exact", rng, s) for s in range(2)], target=save_train(img, cap),
            flag=FLAG["texture"])
    for i in range(COUNTS["backdrop"]):
        img = backdrop(rng, size)
        cap = f"studio backdrop {i}"
        add("backdrop", "MV", cap, [copy_of(img, "exact", rng, s) for s in range(2)], target=save_train(img, cap),
            flag=FLAG["backdrop"])
    for i in range(COUNTS["texture_other"]):
        tname = ("wood", "fabric")[i % 2]
        cap = f"{tname} sample {i}"
        save_train(TEXTURES[tname](rng, size), cap)
        add("texture_other", "N", cap, [TEXTURES[tname](rng, size) for _ in range(2)])
    for i in range(COUNTS["unique"]):
        cap = f"unique scene {i}: {' '.join(rng.choice(WORDS, 2))}"
        save_train(any_picture(), cap, jpg=bool(i % 2))
        add("unique", "N", cap, [any_picture() for _ in range(2)])
    i = 0
    while len(meta) < TRAINING_IMAGES:      # distractors, many of the hard categories
        category = ("product", "landscape", "portrait", "sky", "gradient", "text")[i % 6]
        save_train(picture(category), f"unrelated {category} {i}", jpg=bool(i % 2))
        i += 1

    return write_world(root, {"size": size, "seed": seed, "world": "held-out"}, meta, mapping, cases, families)
