"""Training images stored as they look (issue 26's silent wrong data): 16-bit greyscale scaled to
8 bits, not clipped to white; an EXIF orientation applied; transparency composited on white, not
dropped to show the colour under it. From a folder (--images) and from a webdataset shard alike."""
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


FILES = {"grey16.png": png16, "sideways.jpg": sideways_jpeg, "hidden.png": hidden_colour_png}


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
        report = apply_ingest(s, prepare_ingest(images=folder))
        assert (report.images_added, report.images_skipped) == (3, 0)
        check(stored_images(s))


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
        report = apply_ingest(s, prepare_ingest(shards=folder))
        assert report.images_added == 3
        check(stored_images(s, "00000.tar/"))


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
