"""Procedural pictures for the held-out world (attack.bench.heldout): landscapes, skies, portraits,
products on white, gradients, rendered text, scikit-learn's two photos, textures and backdrops,
each a pure function of a seeded generator and a size."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

WORDS = ("summer", "harbour", "quiet", "atlas", "north", "garden", "velvet", "orbit", "paper", "river", "amber",
         "signal", "meadow", "copper", "echo", "lantern", "violet", "stone", "tide", "maple")


# -- building blocks --------------------------------------------------------------------------------
def fbm(rng: np.random.Generator, size: int, octaves: int = 5, base: int = 4, gain: float = 0.55) -> np.ndarray:
    """Fractal value noise [size,size] in about [-1, 1]: random grids upsampled and summed."""
    out, amp, total = np.zeros((size, size), np.float32), 1.0, 0.0
    for o in range(octaves):
        n = base * 2 ** o
        grid = rng.uniform(-1, 1, (n + 1, n + 1)).astype(np.float32)
        out += amp * np.asarray(Image.fromarray(grid).resize((size, size), Image.BICUBIC))
        total += amp
        amp *= gain
    return out / total


def fbm1(rng: np.random.Generator, size: int, octaves: int = 5, base: int = 3) -> np.ndarray:
    """Fractal noise along one axis [size] in about [-1, 1] (a ridge line)."""
    out, amp, total = np.zeros(size), 1.0, 0.0
    for o in range(octaves):
        n = base * 2 ** o
        pts = rng.uniform(-1, 1, n + 1)
        out += amp * np.interp(np.linspace(0, n, size), np.arange(n + 1), pts)
        total += amp
        amp *= 0.5
    return out / total


def to_u8(a: np.ndarray) -> np.ndarray:
    return (np.clip(a, 0, 1) * 255).round().astype(np.uint8)


def _grain(rng: np.random.Generator, a: np.ndarray, sigma: float = 0.01) -> np.ndarray:
    return a + rng.normal(0, sigma, a.shape).astype(np.float32)


def _soften(img: np.ndarray, radius: float) -> np.ndarray:
    return np.asarray(Image.fromarray(img).filter(ImageFilter.GaussianBlur(radius)))


def _vgrad(size: int, top, bottom) -> np.ndarray:
    t = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    return np.broadcast_to((1 - t) * np.asarray(top, np.float32) + t * np.asarray(bottom, np.float32),
                           (size, size, 3)).copy()


@lru_cache(maxsize=8)
def text_font(px: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=px)


@lru_cache(maxsize=1)
def _sample_photos() -> tuple[np.ndarray, ...]:
    from sklearn.datasets import load_sample_images

    return tuple(np.asarray(i, np.uint8) for i in load_sample_images().images)


# -- categories ------------------------------------------------------------------------------------
def landscape(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth natural scene: sky gradient, two or three mountain ridges fading with distance, a field."""
    sky_top, horizon = rng.uniform([0.2, 0.35, 0.6], [0.45, 0.6, 0.95]), rng.uniform([0.7, 0.7, 0.75], [0.95, 0.9, 0.95])
    img = _vgrad(size, sky_top, horizon)
    y = np.arange(size)[:, None]
    ridges = int(rng.integers(2, 4))
    for k in range(ridges):
        line = size * (rng.uniform(0.3, 0.5) + 0.12 * k + rng.uniform(0.05, 0.12) * fbm1(rng, size))
        colour = rng.uniform([0.15, 0.25, 0.2], [0.45, 0.5, 0.45]) * (0.7 + 0.3 * (ridges - k) / ridges)
        shade = 1 + 0.12 * fbm(rng, size, 4, 6)[..., None]
        below = (y >= line[None, :])[..., None]
        img = np.where(below, colour * shade, img)
    field = size * rng.uniform(0.72, 0.85)
    ground = rng.uniform([0.3, 0.4, 0.1], [0.6, 0.65, 0.3]) * (1 + 0.15 * fbm(rng, size, 5, 8)[..., None])
    img = np.where((y >= field + 8 * fbm1(rng, size)[None, :])[..., None], ground, img)
    return _soften(to_u8(_grain(rng, img, 0.006)), size / 400)


def sky(rng: np.random.Generator, size: int) -> np.ndarray:
    """A sky: a gradient with soft clouds."""
    img = _vgrad(size, rng.uniform([0.15, 0.3, 0.55], [0.4, 0.55, 0.9]), rng.uniform([0.6, 0.7, 0.8], [0.85, 0.9, 1.0]))
    cloud = np.clip((fbm(rng, size, 5, 3) - rng.uniform(-0.1, 0.15)) * 2.5, 0, 1)[..., None]
    img = img * (1 - 0.8 * cloud) + 0.95 * 0.8 * cloud
    return to_u8(_grain(rng, img, 0.004))


def portrait(rng: np.random.Generator, size: int) -> np.ndarray:
    """A head-and-shoulders portrait on a studio backdrop."""
    bg = rng.uniform(0.3, 0.8, 3)
    im = Image.fromarray(to_u8(_vgrad(size, bg, bg * rng.uniform(0.6, 0.9))))
    d = ImageDraw.Draw(im)
    s, cx = size, size * rng.uniform(0.42, 0.58)
    skin = tuple(int(v) for v in rng.uniform([150, 100, 80], [240, 190, 160]))
    cloth = tuple(int(v) for v in rng.integers(20, 200, 3))
    hair = tuple(int(v) for v in rng.integers(10, 110, 3))
    hw, hh, top = s * rng.uniform(0.16, 0.21), s * rng.uniform(0.21, 0.26), s * rng.uniform(0.15, 0.25)
    d.ellipse([cx - s * 0.4, s * 0.75, cx + s * 0.4, s * 1.3], fill=cloth)
    d.rectangle([cx - hw * 0.4, top + hh * 1.6, cx + hw * 0.4, s * 0.82], fill=skin)
    d.ellipse([cx - hw * 1.08, top - hh * 0.12, cx + hw * 1.08, top + hh * 1.2], fill=hair)
    d.ellipse([cx - hw, top, cx + hw, top + 2 * hh], fill=skin)
    ey = top + hh * rng.uniform(0.8, 0.95)
    for side in (-1, 1):
        ex = cx + side * hw * 0.42
        d.ellipse([ex - hw * 0.14, ey - hh * 0.06, ex + hw * 0.14, ey + hh * 0.06], fill=(245, 245, 245))
        d.ellipse([ex - hw * 0.07, ey - hh * 0.06, ex + hw * 0.07, ey + hh * 0.06], fill=hair)
        d.line([ex - hw * 0.18, ey - hh * 0.2, ex + hw * 0.18, ey - hh * 0.22], fill=hair, width=max(2, s // 120))
    d.line([cx, ey + hh * 0.1, cx - hw * 0.08, ey + hh * 0.5], fill=tuple(int(v * 0.8) for v in skin), width=max(2, s // 160))
    my = top + hh * rng.uniform(1.45, 1.6)
    d.arc([cx - hw * 0.35, my - hh * 0.12, cx + hw * 0.35, my + hh * 0.12], 10, 170, fill=(150, 60, 60), width=max(2, s // 120))
    img = np.asarray(im.filter(ImageFilter.GaussianBlur(size / 256)), np.float32) / 255
    return to_u8(_grain(rng, img * (1 + 0.05 * fbm(rng, size, 3, 4)[..., None]), 0.008))


def product_on_white(rng: np.random.Generator, size: int, colour=None) -> np.ndarray:
    """One product (bottle, box, mug or shoe) on a white studio surround with a soft shadow."""
    im = Image.new("RGB", (size, size), tuple(int(v) for v in rng.integers(238, 256, 1).repeat(3)))
    d = ImageDraw.Draw(im)
    s = size
    cx, base = s * rng.uniform(0.4, 0.6), s * rng.uniform(0.7, 0.8)
    w, h = s * rng.uniform(0.15, 0.3), s * rng.uniform(0.3, 0.5)
    d.ellipse([cx - w * 0.9, base - s * 0.03, cx + w * 0.9, base + s * 0.03], fill=(205, 205, 205))
    c = tuple(int(v) for v in (colour if colour is not None else rng.integers(20, 230, 3)))
    dark = tuple(int(v * 0.7) for v in c)
    kind = int(rng.integers(0, 4))
    if kind == 0:      # bottle
        d.rounded_rectangle([cx - w / 2, base - h, cx + w / 2, base], radius=int(w / 4), fill=c)
        d.rectangle([cx - w / 6, base - h * 1.25, cx + w / 6, base - h], fill=dark)
        d.rectangle([cx - w / 2, base - h * 0.6, cx + w / 2, base - h * 0.35], fill=(240, 240, 230))
    elif kind == 1:    # box
        d.polygon([(cx - w / 2, base), (cx + w / 2, base), (cx + w / 2, base - h * 0.7), (cx - w / 2, base - h * 0.7)], fill=c)
        d.polygon([(cx + w / 2, base), (cx + w * 0.8, base - h * 0.1), (cx + w * 0.8, base - h * 0.8),
                   (cx + w / 2, base - h * 0.7)], fill=dark)
    elif kind == 2:    # mug
        d.rectangle([cx - w / 2, base - h * 0.6, cx + w / 2, base], fill=c)
        d.arc([cx + w * 0.3, base - h * 0.5, cx + w * 0.85, base - h * 0.1], 270, 90, fill=dark, width=max(3, s // 60))
    else:              # shoe
        d.ellipse([cx - w, base - h * 0.35, cx + w, base], fill=c)
        d.polygon([(cx - w * 0.9, base - h * 0.2), (cx - w * 0.2, base - h * 0.6), (cx + w * 0.2, base - h * 0.55),
                   (cx + w * 0.1, base - h * 0.2)], fill=dark)
        d.line([cx - w, base - 2, cx + w, base - 2], fill=(240, 240, 240), width=max(3, s // 80))
    return to_u8(_grain(rng, np.asarray(im.filter(ImageFilter.GaussianBlur(size / 300)), np.float32) / 255, 0.004))


def gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth two- or three-colour gradient, linear or radial."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    if rng.random() < 0.5:
        a = rng.uniform(0, 2 * np.pi)
        t = (np.cos(a) * (xx - 0.5) + np.sin(a) * (yy - 0.5)) * 1.2 + 0.5
    else:
        cy, cx = rng.uniform(0.2, 0.8, 2)
        t = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2) * 1.4
    t = np.clip(t, 0, 1)[..., None]
    c0, c1, c2 = rng.uniform(0.05, 0.95, (3, 3))
    img = np.where(t < 0.5, c0 + (c1 - c0) * 2 * t, c1 + (c2 - c1) * (2 * t - 1))
    return to_u8(_grain(rng, img, 0.003))


def text_card(rng: np.random.Generator, size: int, words: int = 8) -> np.ndarray:
    """A poster or sign: a coloured ground with lines of text in several sizes."""
    bg = tuple(int(v) for v in rng.integers(0, 256, 3))
    im = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(im)
    y = size * rng.uniform(0.05, 0.15)
    while y < size * 0.85:
        px = int(size * rng.uniform(0.05, 0.13))
        line = " ".join(rng.choice(WORDS, int(rng.integers(1, 3))))
        fg = tuple(int((v + 128 + rng.integers(-60, 60)) % 256) for v in bg)
        d.text((size * rng.uniform(0.04, 0.2), y), line, fill=fg, font=text_font(px))
        y += px * rng.uniform(1.2, 1.7)
    return np.asarray(im)


def photo(rng: np.random.Generator, size: int) -> np.ndarray:
    """A square crop of one of scikit-learn's bundled photos, flipped and tinted at random."""
    src = _sample_photos()[int(rng.integers(0, 2))]
    h, w = src.shape[:2]
    s = int(rng.uniform(0.4, 0.8) * h)
    y, x = int(rng.integers(0, h - s + 1)), int(rng.integers(0, w - s + 1))
    crop = src[y:y + s, x:x + s]
    crop = crop[:, ::-1] if rng.random() < 0.5 else crop
    crop = (crop * rng.uniform(0.8, 1.0, 3)).astype(np.uint8)
    return np.asarray(Image.fromarray(np.ascontiguousarray(crop)).resize((size, size), Image.LANCZOS))


def fabric(rng: np.random.Generator, size: int) -> np.ndarray:
    """A woven fabric: crossing threads with slub noise, one colour."""
    period = rng.uniform(5, 9) * size / 512
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    warp = np.sin(2 * np.pi * xx / period) * (np.sin(np.pi * yy / period) > 0)
    weft = np.sin(2 * np.pi * yy / period) * (np.sin(np.pi * yy / period) <= 0)
    v = 0.5 + 0.25 * (warp + weft) + 0.1 * fbm(rng, size, 4, 16)
    colour = rng.uniform(0.2, 0.9, 3)
    return to_u8(_grain(rng, v[..., None] * colour, 0.02))


def wood(rng: np.random.Generator, size: int) -> np.ndarray:
    """Wood grain: distorted rings, brown."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    rings = np.sin(2 * np.pi * (xx * rng.uniform(12, 20) + 3 * fbm(rng, size, 4, 3) + 0.3 * yy))
    v = 0.55 + 0.2 * rings + 0.08 * fbm(rng, size, 5, 24)
    colour = rng.uniform([0.55, 0.35, 0.15], [0.8, 0.55, 0.3])
    return to_u8(_grain(rng, v[..., None] * colour / 0.75, 0.01))


def noise_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Fine coloured noise (sand, a speckled surface)."""
    base = rng.uniform(0.3, 0.7, 3)
    return to_u8(base + rng.normal(0, rng.uniform(0.08, 0.15), (size, size, 3)).astype(np.float32))


TEXTURES = {"fabric": fabric, "wood": wood, "noise": noise_texture}


def backdrop(rng: np.random.Generator, size: int) -> np.ndarray:
    """Studio paper: one colour, a soft vignette, faint grain."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    vig = 1 - rng.uniform(0.03, 0.08) * ((xx - 0.5) ** 2 + (yy - 0.5) ** 2) * 4
    return to_u8(_grain(rng, rng.uniform(0.15, 0.9, 3) * vig[..., None], 0.004))


CATEGORIES = {"landscape": landscape, "sky": sky, "portrait": portrait, "product": product_on_white,
              "gradient": gradient, "text": text_card, "photo": photo}
