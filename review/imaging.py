"""Pixel work for the review views: comparisons, mask overlays, heatmaps, PNG data URIs.

Pixels are compared on [0, 1] floats. When a generation and a training image differ in size the
generation is resized to the training image's size (Lanczos, as the scores do), so masks, which
live at the training image's size, apply unchanged.
"""
from __future__ import annotations

import base64
import io
import os
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

# kept pixels in the editor and overlays: a saturated magenta that natural images rarely contain
MASK_RGB = (255, 0, 170)
MASK_ALPHA = 150
# an editor layer pixel counts as kept from this alpha up: brush edges are anti-aliased
KEEP_ALPHA = 64


class MaskShapeError(ValueError):
    """A mask whose size does not match the image it belongs to."""


def to_float(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0


def match_size(img: Image.Image, size: tuple[int, int]) -> Image.Image:
    """``img`` at ``size`` (width, height); Lanczos when it differs."""
    return img if img.size == size else img.convert("RGB").resize(size, Image.LANCZOS)


def rmse(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> float | None:
    """Root mean squared difference over all values, or only where ``mask`` keeps pixels.
    None when the mask keeps nothing (no distance can be measured)."""
    d2 = (a - b) ** 2
    if mask is None:
        return float(np.sqrt(d2.mean()))
    if mask.shape != a.shape[:2]:
        raise MaskShapeError(f"mask: expected shape {a.shape[:2]}, got {mask.shape}")
    if not mask.any():
        return None
    return float(np.sqrt(d2[mask].mean()))


def abs_diff_heatmap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """|a - b| summed over channels, scaled to [0, 1] by the largest possible difference (3),
    through a black-red-yellow-white ramp (uint8 RGB): black means identical."""
    d = np.clip(np.abs(a - b).sum(axis=2) / 3.0 * 2.0, 0.0, 1.0)  # x2: small differences stay visible
    r = np.clip(d * 3.0, 0, 1)
    g = np.clip(d * 3.0 - 1.0, 0, 1)
    bl = np.clip(d * 3.0 - 2.0, 0, 1)
    return (np.stack([r, g, bl], axis=2) * 255).round().astype(np.uint8)


def mask_overlay(img: np.ndarray, mask: np.ndarray, strength: float = 0.55) -> np.ndarray:
    """The image with pixels the mask drops darkened and kept pixels tinted (uint8 RGB)."""
    if mask.shape != img.shape[:2]:
        raise MaskShapeError(f"mask: expected shape {img.shape[:2]}, got {mask.shape}")
    out = img.copy()
    tint = np.array(MASK_RGB, dtype=np.float32) / 255.0
    out[mask] = out[mask] * (1 - strength * 0.5) + tint * strength * 0.5
    out[~mask] = out[~mask] * 0.25
    return (np.clip(out, 0, 1) * 255).round().astype(np.uint8)


def mask_layer(mask: np.ndarray) -> np.ndarray:
    """An RGBA editor layer: kept pixels painted in MASK_RGB, dropped ones transparent."""
    h, w = mask.shape
    layer = np.zeros((h, w, 4), dtype=np.uint8)
    layer[mask, :3] = MASK_RGB
    layer[mask, 3] = MASK_ALPHA
    return layer


def editor_scale(size: tuple[int, int], px: int = 512) -> int:
    """The whole factor a training image is enlarged by in the mask editor (crisp pixels, a
    usable brush): its long side near ``px``; 1 for images that large already."""
    return max(1, round(px / max(size[0], size[1], 1)))


def enlarge(a: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour enlargement by a whole factor (each pixel a k x k block)."""
    return a if k == 1 else np.repeat(np.repeat(a, k, axis=0), k, axis=1)


def mask_from_layer(layer: np.ndarray, size: tuple[int, int], scale: int = 1) -> np.ndarray:
    """Kept pixels of an editor layer (alpha >= KEEP_ALPHA); ``size`` is (width, height) of the
    training image, ``scale`` the editor's enlargement: a pixel is kept when most of its block is."""
    if layer.ndim != 3 or layer.shape[2] != 4:
        raise MaskShapeError(f"mask layer: expected an RGBA image, got shape {layer.shape}")
    if (layer.shape[1], layer.shape[0]) != (size[0] * scale, size[1] * scale):
        raise MaskShapeError(f"mask layer: expected {size[0] * scale}x{size[1] * scale} (the training image's size"
                             f"{f' x {scale}' if scale > 1 else ''}), got {layer.shape[1]}x{layer.shape[0]}")
    kept = layer[:, :, 3] >= KEEP_ALPHA
    if scale == 1:
        return kept
    return kept.reshape(size[1], scale, size[0], scale).mean(axis=(1, 3)) >= 0.5


def shows_image(background: np.ndarray | None, image: np.ndarray, tol: int = 8, frac: float = 0.01) -> bool:
    """Whether an editor's background [H,W,3|4] uint8 is ``image`` [H,W,3] uint8: same size, and at
    most ``frac`` of the pixels off by more than ``tol`` levels in a channel (the canvas may round;
    another picture, even a template sibling differing in one region, is far off)."""
    if background is None:
        return False
    bg = np.asarray(background)
    if bg.ndim != 3 or bg.shape[:2] != image.shape[:2] or bg.shape[2] < 3:
        return False
    off = np.abs(bg[:, :, :3].astype(np.int16) - image[:, :, :3].astype(np.int16)).max(axis=2) > tol
    return float(off.mean()) <= frac


LAYER_DIR = Path(tempfile.gettempdir()) / "verbatim-mask-layers"


def _write_once(key: str, pixels: np.ndarray, mode: str) -> Path:
    """A PNG under LAYER_DIR named by ``key``, written once, atomically, never rewritten: Gradio
    rewrites in-memory images into its cache in place, which can truncate a file a browser is
    still fetching."""
    path = LAYER_DIR / f"{key}.png"
    if not path.exists():
        LAYER_DIR.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=LAYER_DIR)
        try:
            with os.fdopen(fd, "wb") as f:
                Image.fromarray(pixels, mode).save(f, format="PNG", compress_level=1)
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return path


def layer_file(mask: np.ndarray, key: str, scale: int = 1) -> Path:
    """The editor layer of a mask, enlarged by ``scale``, as an RGBA PNG named by ``key`` (the
    mask's sha, a draft's hash, or a name for the all-kept mask of a size)."""
    return _write_once(f"{key}-x{scale}", mask_layer(enlarge(mask, scale)), "RGBA")


def background_file(image: Image.Image, key: str, scale: int) -> Path:
    """The editor's background: the training image enlarged by ``scale`` (nearest neighbour)."""
    return _write_once(f"bg-{key}-x{scale}", enlarge(np.asarray(image.convert("RGB")), scale), "RGB")


def png_data_uri(arr: np.ndarray) -> str:
    """A lossless inline image (derived pictures are never written to disk)."""
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", compress_level=1)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
