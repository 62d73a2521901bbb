"""Shared fixtures: small synthetic images with known answers, and the shared VOC folder."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

from dipseg.labels import IGNORE

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    # Tests run beside other processes on 2 cores; one torch thread avoids OpenMP contention.
    torch.set_num_threads(1)


def voc_root() -> Path | None:
    """VOC folder from DIPSEG_VOC_ROOT or ../shared/data/voc2012, or None."""
    env = os.environ.get("DIPSEG_VOC_ROOT")
    root = Path(env) if env else REPO.parent / "shared" / "data" / "voc2012"
    return root if (root / "ImageSets" / "Segmentation").is_dir() else None


@pytest.fixture
def voc() -> Path:
    root = voc_root()
    if root is None:
        pytest.skip("Pascal VOC not found: set DIPSEG_VOC_ROOT or place it at ../shared/data/voc2012")
    return root


def three_regions(size: int = 48, noise: float = 12.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Image with three flat coloured regions plus noise, and its ground truth (0, 1, 2)."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((size, size), np.int64)
    gt[:, size // 2 :] = 1
    yy, xx = np.mgrid[:size, :size]
    gt[(yy - size * 0.3) ** 2 + (xx - size * 0.3) ** 2 < (size * 0.18) ** 2] = 2
    colours = np.array([[200, 60, 50], [40, 70, 190], [230, 220, 60]], float)
    img = colours[gt] + rng.normal(0, noise, (size, size, 3))
    return np.clip(img, 0, 255).astype(np.uint8), gt


def seeds_from(gt: np.ndarray, per_class: int = 4, seed: int = 0) -> np.ndarray:
    from dipseg.samplers import sample_uniform

    return sample_uniform(gt, per_class, seed=seed)


@pytest.fixture
def regions():
    return three_regions()


__all__ = ["IGNORE", "three_regions", "seeds_from", "voc_root"]


# ----------------------------------------------------------------------------- the web app (tests/test_web_*.py)

WEB_FAST = {"iterations": 12, "working_size": 48}
"""Fit settings that keep a web test's fit to a fraction of a second."""
WEB_H, WEB_W = 48, 64
"""Size of the web tests' images."""


def two_regions(h: int = WEB_H, w: int = WEB_W, flip: bool = False) -> np.ndarray:
    """A red left half and a blue right half with noise (flipped: blue left)."""
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.float64)
    img[:, : w // 2] = (200, 60, 50)
    img[:, w // 2 :] = (40, 70, 190)
    img += rng.normal(0, 8, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[:, ::-1].copy() if flip else img


def red_square(folder: Path, name: str = "photo.png") -> Path:
    """A 60x40 PNG: a red 25x20 square (rows 10-29, columns 20-44) on a noisy green field."""
    from PIL import Image

    rng = np.random.default_rng(0)
    img = np.zeros((40, 60, 3))
    img[:] = (40, 150, 60)
    img[10:30, 20:45] = (220, 60, 50)
    path = folder / name
    Image.fromarray(np.clip(img + rng.normal(0, 5, img.shape), 0, 255).astype(np.uint8)).save(path)
    return path


def png_bytes(img: np.ndarray) -> bytes:
    from io import BytesIO

    from PIL import Image

    buf = BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def paint(h: int = WEB_H, w: int = WEB_W, a: int = 0, b: int = 15) -> np.ndarray:
    """Two fat blobs: class ``a`` on the left half, ``b`` on the right (255 elsewhere)."""
    lab = np.full((h, w), 255, np.uint8)
    lab[h // 4 : h // 2, w // 8 : w // 4] = a
    lab[h // 2 : 3 * h // 4, 5 * w // 8 : 3 * w // 4] = b
    return lab


def wire(lab: np.ndarray) -> dict:
    """The JSON body ``{"labels": {width, height, rle}}`` of a uint8 label map."""
    from dipseg.web.body import encode_rle

    return {"labels": {"width": lab.shape[1], "height": lab.shape[0], "rle": encode_rle(lab)}}


def sse_events(text: str) -> list[tuple[str, dict]]:
    """``(event, data)`` of a whole Server-Sent Events body."""
    import json

    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        ev = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), None)
        data = [ln[5:].strip() for ln in lines if ln.startswith("data:")]
        if ev and data:
            out.append((ev, json.loads("\n".join(data))))
    return out


def iter_sse_events(resp):
    """``(event, data)`` of a streamed ``httpx.Response``, as they arrive."""
    import json

    ev, data = None, []
    for line in resp.iter_lines():
        if line.startswith("event:"):
            ev = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].strip())
        elif line == "":
            if ev and data:
                yield ev, json.loads("\n".join(data))
            ev, data = None, []


def assert_error(r, status: int | tuple[int, ...]) -> str:
    """Check a JSON error answer with ``status``; returns its detail as JSON text."""
    import json

    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert detail
    return json.dumps(detail)


def huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (a decompression-bomb shape)."""
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def client_for(app):
    """FastAPI's TestClient of ``app`` (use as a context manager, so the lifespan runs)."""
    import warnings

    with warnings.catch_warnings():
        # Starlette 1.x prefers httpx2 for its TestClient and warns (at import) when it runs on httpx.
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    return TestClient(app)


class LiveServer:
    """uvicorn serving ``app`` on a free localhost port in a background thread.

    TestClient buffers a streamed response until it ends; cancelling, a full queue and a
    client that goes away need a real server.
    """

    def __init__(self, app):
        import socket
        import threading

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        import time

        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()


@pytest.fixture
def web_folder(tmp_path: Path) -> Path:
    """``img1.png``, ``img2.jpg`` (flipped) and a text file that is not listed."""
    from PIL import Image

    d = tmp_path / "images"
    d.mkdir()
    Image.fromarray(two_regions()).save(d / "img1.png")
    Image.fromarray(two_regions(flip=True)).save(d / "img2.jpg", quality=95)
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture
def web_out(tmp_path: Path) -> Path:
    return tmp_path / "masks"


@pytest.fixture
def web_client(web_folder, web_out):
    """A TestClient of the app on :func:`web_folder` with :data:`WEB_FAST` fits."""
    from dipseg.web import create_app

    with client_for(create_app(web_folder, web_out, fit_overrides=WEB_FAST)) as c:
        yield c


# ----------------------------------------------------------------------------- the web app as its page talks to it


def token_headers(app) -> dict[str, str]:
    """The header every state-changing request of the page carries (the server's token)."""
    return {"X-Dipseg-Token": app.state.settings.token}


def api_client(app):
    """:func:`client_for` sending the page's token header, as the page does (use as a context manager)."""
    client = client_for(app)
    client.headers.update(token_headers(app))
    return client


@pytest.fixture
def web_api(web_folder, web_out):
    """:func:`web_client` that talks like the page: with the server's token header."""
    from dipseg.web import create_app

    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST)) as c:
        yield c
