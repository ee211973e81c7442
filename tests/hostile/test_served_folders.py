"""The app serves only the store: a file in Gradio's default upload folder (shared by every Gradio
app on the machine) is refused; what the app makes lives in a private folder of this process."""
from __future__ import annotations

import json
import os
import stat
import tempfile
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from review.folders import private_gradio_folders
from tests.conftest import http_status, served_sample_app


def _upload(url: str, data: bytes, name: str) -> str:
    """POST one file to Gradio's upload route (as the mask editor does); the path it stored it at."""
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"{name}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(url + "gradio_api/upload", data=body, method="POST",
                                 headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        (path,) = json.loads(r.read())
    return path


def test_a_file_in_gradios_shared_temp_folder_is_refused_and_uploads_stay_private(tmp_path):
    shared = Path(tempfile.gettempdir()) / "gradio"
    shared.mkdir(exist_ok=True)
    planted = shared / f"another-app-{uuid.uuid4().hex}.png"          # what another Gradio app left there
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(planted)
    try:
        with served_sample_app(tmp_path / "s", n=4) as (s, ids, url, _):
            private = private_gradio_folders()
            assert stat.S_IMODE(os.stat(private).st_mode) == 0o700
            assert os.environ["GRADIO_TEMP_DIR"].startswith(str(private))
            assert http_status(url + "gradio_api/file=" + str(planted)) == 403
            sha = s.generations(ids[0])[0].image_sha                    # the store's images are still served
            assert http_status(url + "gradio_api/file=" + str(s.image_path(sha).resolve())) == 200
            served = _upload(url, b"\x89PNG not really", "mine.png")        # what the app keeps of an upload
            assert Path(served).resolve().is_relative_to(private.resolve()), served
            assert http_status(url + "gradio_api/file=" + served) == 200
    finally:
        planted.unlink()
