"""Training images stored as they look (issue 26's silent wrong data): 16-bit greyscale scaled to
8 bits, not clipped to white; an EXIF orientation applied; transparency composited on white, not
dropped to show the colour under it; CMYK and palette images converted; an animation's first frame
(said, and kept in the metadata); an image over --max-side downscaled (said, its size kept). From
a folder (--images) and from a webdataset shard alike."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
from PIL import Image

from attack.ingest import apply_ingest, prepare_ingest
from attack.ingest.images import as_seen
from store import Store

ORIENTATION = 0x0112


def gradient16() -> np.ndarray:
    """A 16-bit ramp over the whole range: its 8-bit version has mean 127.5."""
    return np.tile(np.linspace(0, 65535, 64).round().astype(np.uint16), (16, 1))


def sideways_jpeg() -> bytes:
    """40 wide x 20 high as stored, red on its left half; orientation 6 says: turn it 90° clockwise."""
    a = np.zeros((20, 40, 3), np.uint8)
    a[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def hidden_colour_png() -> bytes:
    """Fully transparent red, half-transparent blue, opaque green."""
    a = np.zeros((4, 3, 4), np.uint8)
    a[:, 0] = (255, 0, 0, 0)
    a[:, 1] = (0, 0, 255, 128)
    a[:, 2] = (0, 255, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(a, "RGBA").save(buf, "PNG")
    return buf.getvalue()


def png16() -> bytes:
    buf = io.BytesIO()
    Image.fromarray(gradient16(), "I;16").save(buf, "PNG")
    return buf.getvalue()


def cmyk_jpeg() -> bytes:
    """A flat (200, 100, 50) saved as a CMYK JPEG (print workflows write them)."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 8), (200, 100, 50)).convert("CMYK").save(buf, "JPEG", quality=95)
    return buf.getvalue()


def palette_png() -> bytes:
    a = np.zeros((6, 6, 3), np.uint8)
    a[:3] = (255, 0, 0)
    a[3:] = (0, 0, 255)
    buf = io.BytesIO()
    Image.fromarray(a).convert("P", palette=Image.Palette.ADAPTIVE, colors=4).save(buf, "PNG")
    return buf.getvalue()


def animated_webp() -> bytes:
    """Two lossless frames: red, then blue."""
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 0, 255))]
    buf = io.BytesIO()
    frames[0].save(buf, "WEBP", save_all=True, append_images=frames[1:], lossless=True, duration=100)
    return buf.getvalue()


FILES = {"grey16.png": png16, "sideways.jpg": sideways_jpeg, "hidden.png": hidden_colour_png,
         "cmyk.jpg": cmyk_jpeg, "palette.png": palette_png, "anim.webp": animated_webp}


def check(stored: dict[str, np.ndarray]) -> None:
    grey = stored["grey16.png"]
    eight = np.rint(gradient16() / 257.0)
    assert grey.shape == (16, 64, 3) and np.abs(grey[..., 0] - eight).max() <= 1, grey.mean()
    assert abs(grey.mean() - 127.5) < 1                       # was 254.4: clipped to white
    side = stored["sideways.jpg"]
    assert side.shape == (40, 20, 3)                          # as every viewer shows it (was 20 x 40)
    assert side[:18, :, 0].mean() > 200 and side[22:, :, 0].mean() < 50    # the red half is on top now
    hidden = stored["hidden.png"]
    assert hidden[:, 0].tolist() == [[255, 255, 255]] * 4     # transparent: white, not the red under it
    assert np.abs(hidden[:, 1].astype(int) - [127, 127, 255]).max() <= 1   # half blue over white
    assert hidden[:, 2].tolist() == [[0, 255, 0]] * 4
    cmyk = stored["cmyk.jpg"]
    assert cmyk.shape == (8, 16, 3) and np.abs(cmyk.reshape(-1, 3).mean(0) - (200, 100, 50)).max() < 4
    pal = stored["palette.png"]
    assert pal[:3].reshape(-1, 3).tolist() == [[255, 0, 0]] * 18 and pal[3:].reshape(-1, 3).tolist() == [[0, 0, 255]] * 18
    anim = stored["anim.webp"]
    assert anim.reshape(-1, 3).tolist() == [[255, 0, 0]] * 64       # the first frame


def check_meta(s: Store, warnings: list[str], prefix: str = "") -> None:
    """What changed beyond the pixels' form is said, naming the file, and kept in the metadata."""
    assert f"{prefix}anim.webp: an animation of 2 frames: the first frame is stored" in warnings, warnings
    assert s.training_image_at(prefix + "anim.webp").meta["frames"] == 2
    assert "frames" not in s.training_image_at(prefix + "palette.png").meta


def stored_images(s: Store, prefix: str = "") -> dict[str, np.ndarray]:
    """Each file's stored pixels, by its name (under `prefix`: a shard's path)."""
    out = {}
    for name in FILES:
        img = s.training_image_at(prefix + name)
        assert img is not None, name
        out[name] = np.asarray(s.load_image(img.sha256).convert("RGB"))
    return out


def test_odd_images_from_a_folder_are_stored_as_they_look(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for name, make in FILES.items():
        (folder / name).write_bytes(make())
    with Store.open(tmp_path / "s") as s:
        warnings = []
        report = apply_ingest(s, prepare_ingest(images=folder), warn=warnings.append)
        assert (report.images_added, report.images_skipped) == (len(FILES), 0)
        check(stored_images(s))
        check_meta(s, warnings)


def test_odd_images_from_a_shard_are_stored_as_they_look(tmp_path):
    folder = tmp_path / "shards"
    folder.mkdir()
    with tarfile.open(folder / "00000.tar", "w") as tar:
        for name, make in FILES.items():
            data = make()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with Store.open(tmp_path / "s") as s:
        warnings = []
        report = apply_ingest(s, prepare_ingest(shards=folder), warn=warnings.append)
        assert report.images_added == len(FILES)
        check(stored_images(s, "00000.tar/"))
        check_meta(s, warnings, "00000.tar/")


@pytest.mark.parametrize("mode", ["RGB", "L", "P"])
def test_ordinary_images_are_unchanged(mode):
    """What the fix must not touch: an opaque image without orientation decodes as convert('RGB') did."""
    rng = np.random.default_rng(0)
    im = Image.fromarray(rng.integers(0, 256, (9, 7, 3), dtype=np.uint8)).convert(mode)
    assert np.array_equal(np.asarray(as_seen(im)), np.asarray(im.convert("RGB")))


def test_float_greyscale_in_unit_range_is_scaled():
    im = Image.fromarray(np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4), "F")
    out = np.asarray(as_seen(im))
    assert out[0, 0, 0] == 0 and out[-1, -1, 0] == 255 and out.shape == (3, 4, 3)


def test_an_image_over_the_largest_side_is_downscaled_named_and_its_size_kept(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    a = np.zeros((40, 100, 3), np.uint8)
    a[:, :50] = (255, 0, 0)                                     # red left half, black right half
    Image.fromarray(a).save(folder / "wide.png")
    Image.fromarray(a[:, :30]).save(folder / "small.png")      # 30 px: within the limit, untouched
    warnings = []
    with Store.open(tmp_path / "s") as s:
        apply_ingest(s, prepare_ingest(images=folder, max_side=50), warn=warnings.append)
        wide = s.training_image_at("wide.png")
        stored = np.asarray(s.load_image(wide.sha256).convert("RGB"))
        small = s.training_image_at("small.png")
        assert np.array_equal(np.asarray(s.load_image(small.sha256).convert("RGB")), a[:, :30])
    assert stored.shape == (20, 50, 3) and stored[:, :24, 0].min() > 240 and stored[:, 26:].max() < 15
    assert (wide.meta["width"], wide.meta["height"], wide.meta["original_width"], wide.meta["original_height"]) \
        == (50, 20, 100, 40)
    assert "original_width" not in small.meta
    assert warnings == ["wide.png: 100x40 px, stored downscaled to 50x20 (longest side at most 50 px; "
                        "--max-side changes it)"]


def test_a_sideways_image_over_the_limit_keeps_its_upright_size():
    buf = io.BytesIO(sideways_jpeg())                           # 40 x 20 stored, 20 x 40 upright
    with Image.open(buf) as im:
        out = as_seen(im, max_side=20)
    assert out.size == (10, 20) and out.info["original_size"] == (20, 40)


@pytest.mark.slow
def test_a_10000_px_png_is_ingested_downscaled_in_bounded_memory(tmp_path):
    import subprocess
    import sys

    from attack.bench.scale import PEAK_PROBE
    from tests.conftest import REPO, subprocess_env

    folder = tmp_path / "imgs"
    folder.mkdir()
    big = np.zeros((10_000, 10_000, 3), np.uint8)
    big[:5000] = (0, 128, 255)
    Image.fromarray(big).save(folder / "huge.png", compress_level=1)
    del big
    proc = subprocess.run([sys.executable, "-c", PEAK_PROBE, "ingest", "--store", str(tmp_path / "s"), "--images",
                           str(folder)], cwd=REPO, env=subprocess_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "huge.png: 10000x10000 px, stored downscaled to 4096x4096" in proc.stderr
    assert "DecompressionBomb" not in proc.stderr                # PIL's own warning, which names no file, is not shown
    peak_mb = int(next(line.split()[1] for line in proc.stderr.splitlines()
                       if line.startswith("VERBATIM_PEAK_KB "))) / 1024
    assert peak_mb < 1100, peak_mb                              # 1.48 GB when stored whole (--max-side 0)
    with Store.open(tmp_path / "s") as s:
        img = s.training_image_at("huge.png")
        assert (img.meta["width"], img.meta["original_width"]) == (4096, 10_000)
