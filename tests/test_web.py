"""The annotation web app's API: uploads, streamed fits, cancel, saving, and every rejection.

Most tests use FastAPI's TestClient (which buffers a streamed response until the fit ends);
cancel, a full queue and a client that goes away need a real server, so those run uvicorn
in a thread and talk to it with httpx.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import warnings
import zlib
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient and warns (at import) when it runs on httpx.
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

import dipseg.web.app as webapp
from dipseg.cli import app as cli_app
from dipseg.io import PALETTE
from dipseg.web import create_app
from dipseg.web.app import encode_rle, safe_stem

FAST = {"iterations": 12, "working_size": 48}
H, W = 48, 64


def two_regions(h: int = H, w: int = W, flip: bool = False) -> np.ndarray:
    rng = np.random.default_rng(0)
    img = np.zeros((h, w, 3), np.float64)
    img[:, : w // 2] = (200, 60, 50)
    img[:, w // 2 :] = (40, 70, 190)
    img += rng.normal(0, 8, img.shape)
    img = np.clip(img, 0, 255).astype(np.uint8)
    return img[:, ::-1].copy() if flip else img


def png_bytes(img: np.ndarray) -> bytes:
    buf = BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def paint(h: int = H, w: int = W, a: int = 0, b: int = 15) -> np.ndarray:
    """Two fat blobs: class ``a`` on the left half, ``b`` on the right (255 elsewhere)."""
    lab = np.full((h, w), 255, np.uint8)
    lab[h // 4 : h // 2, w // 8 : w // 4] = a
    lab[h // 2 : 3 * h // 4, 5 * w // 8 : 3 * w // 4] = b
    return lab


def wire(lab: np.ndarray) -> dict:
    return {"labels": {"width": lab.shape[1], "height": lab.shape[0], "rle": encode_rle(lab)}}


def events(text: str) -> list[tuple[str, dict]]:
    out = []
    for block in text.split("\n\n"):
        lines = block.split("\n")
        ev = next((ln[6:].strip() for ln in lines if ln.startswith("event:")), None)
        data = [ln[5:].strip() for ln in lines if ln.startswith("data:")]
        if ev and data:
            out.append((ev, json.loads("\n".join(data))))
    return out


def iter_events(resp: httpx.Response):
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


def assert_error(r: httpx.Response, status: int | tuple[int, ...]) -> str:
    assert r.status_code in ((status,) if isinstance(status, int) else status), (r.status_code, r.text)
    assert r.headers["content-type"].startswith("application/json")
    detail = r.json()["detail"]
    assert detail
    return json.dumps(detail)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "images"
    d.mkdir()
    Image.fromarray(two_regions()).save(d / "img1.png")
    Image.fromarray(two_regions(flip=True)).save(d / "img2.jpg", quality=95)
    (d / "notes.txt").write_text("not an image")
    return d


@pytest.fixture
def out(tmp_path: Path) -> Path:
    return tmp_path / "masks"


@pytest.fixture
def client(folder, out):
    with TestClient(create_app(folder, out, fit_overrides=FAST)) as c:
        yield c


# ----------------------------------------------------------------------------- page and listing


def test_page_and_static_assets_are_local(client):
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for needle in ('id="canvas"', 'data-testid="segment"', 'id="cancel"', 'id="progress"', 'id="download"',
                   'id="next"', 'id="prev"', 'id="done-count"', 'id="opacity"', 'id="brush-size"'):
        assert needle in r.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    static = Path(webapp.STATIC_DIR)
    for f in static.iterdir():
        text = f.read_text()
        assert "http://" not in text and "https://" not in text, f"{f.name} refers to the internet"


def test_config_classes_default_and_custom(client, folder, out):
    cfg = client.get("/api/config").json()
    assert [c["name"] for c in cfg["classes"]][:2] == ["background", "aeroplane"] and len(cfg["classes"]) == 21
    assert cfg["classes"][15] == {"id": 15, "name": "person", "colour": "#c08080"}
    assert cfg["mode"] == "folder" and cfg["iterations"] == FAST["iterations"]
    with TestClient(create_app(folder, out, classes=["sky", "tree", "road"], fit_overrides=FAST)) as c:
        classes = c.get("/api/config").json()["classes"]
    assert [c["name"] for c in classes] == ["sky", "tree", "road"]
    assert classes[2]["colour"] == "#%02x%02x%02x" % tuple(PALETTE[2])


def test_listing_and_image(client):
    listing = client.get("/api/images").json()
    assert [i["id"] for i in listing["images"]] == ["img1.png", "img2.jpg"]
    assert (listing["done"], listing["total"]) == (0, 2)
    info = client.get("/api/images/img1.png").json()
    assert (info["width"], info["height"], info["next"], info["prev"]) == (W, H, "img2.jpg", None)
    assert info["files"] == {"mask": "img1.png", "labels": "img1_labels.png", "meta": "img1_meta.json"}
    r = client.get("/api/images/img2.jpg/image")
    assert r.headers["content-type"] == "image/png"
    with Image.open(BytesIO(r.content)) as im:
        assert im.size == (W, H)
    assert_error(client.get("/api/images/nope.png"), 404)
    assert_error(client.get("/api/images/notes.txt/image"), 404)
    assert_error(client.get("/api/images/img1.png/mask.png"), 404)
    assert_error(client.get("/api/images/img1.png/labels"), 404)


# ----------------------------------------------------------------------------- segment, save, resume


def test_segment_streams_progress_saves_and_resumes(client, folder, out):
    lab = paint()
    r = client.post("/api/images/img1.png/segment", json=wire(lab))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = events(r.text)
    kinds = [e for e, _ in evs]
    assert kinds[0] == "queued" and kinds[1] == "start" and kinds[-1] == "done", kinds
    progress = [d for e, d in evs if e == "progress"]
    assert progress[-1]["iteration"] == FAST["iterations"] == progress[-1]["total"]
    previews = [d["preview"] for d in progress if "preview" in d]
    assert len(previews) >= 2
    with Image.open(BytesIO(base64.b64decode(previews[-1].split(",", 1)[1]))) as p:
        assert p.mode == "P" and max(p.size) <= 48
    done = evs[-1][1]
    assert done["stopped"] == "done" and not done["warm_start"]
    assert {c["id"] for c in done["classes"]} == {0, 15}

    m = client.get(done["mask_url"])
    with Image.open(BytesIO(m.content)) as im:
        assert im.mode == "P" and im.size == (W, H)
        mask = np.asarray(im)
    assert set(np.unique(mask)) == {0, 15}
    assert (mask[lab == 0] == 0).all() and (mask[lab == 15] == 15).all()
    dl = client.get("/api/images/img1.png/mask.png?download=1")
    assert 'filename="img1.png"' in dl.headers["content-disposition"]

    # painting more and segmenting again continues from the previous fit
    lab2 = lab.copy()
    lab2[2:6, 50:60] = 15
    evs2 = events(client.post("/api/images/img1.png/segment", json=wire(lab2)).text)
    start = dict(evs2)["start"]
    assert start["warm_start"] and start["total"] == FAST["iterations"] // 2
    assert dict(evs2)["done"]["iterations"] == FAST["iterations"] // 2

    saved = client.post("/api/images/img1.png/save", json=wire(lab2)).json()
    assert saved["files"] == {"mask": "img1.png", "labels": "img1_labels.png", "meta": "img1_meta.json"}
    assert saved["progress"] == {"done": 1, "total": 2}
    with Image.open(out / "img1.png") as im:
        assert im.mode == "P" and im.size == (W, H) and set(np.unique(np.asarray(im))) <= {0, 15}
        assert np.array_equal(np.asarray(im.getpalette()[:48]).reshape(-1, 3), PALETTE[:16])
    with Image.open(out / "img1_labels.png") as im:
        assert np.array_equal(np.asarray(im), lab2)
    meta = json.loads((out / "img1_meta.json").read_text())
    assert meta["image"] == "img1.png" and meta["fit"]["method"] == "dipseg" and meta["mask_from_these_labels"]
    assert client.get("/api/images").json()["done"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["img1.png", "img1_labels.png", "img1_meta.json"]

    # a restarted server finds the saved work: reopening the image loads its labels and mask
    with TestClient(create_app(folder, out, fit_overrides=FAST)) as c2:
        info = c2.get("/api/images/img1.png").json()
        assert info["done"] and info["has_labels"] and info["has_mask"]
        got = c2.get("/api/images/img1.png/labels").json()
        assert got["source"] == "file" and got["rle"] == encode_rle(lab2)
        with Image.open(BytesIO(c2.get("/api/images/img1.png/mask.png").content)) as im:
            assert im.size == (W, H)
        assert c2.get("/api/images").json()["done"] == 1


def test_labels_as_png_data_urls(client):
    lab = paint(a=3, b=7)
    buf = BytesIO()
    Image.fromarray(lab, mode="L").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    done = dict(events(client.post("/api/images/img2.jpg/segment", json={"labels": url}).text))["done"]
    assert {c["id"] for c in done["classes"]} == {3, 7}
    # colour scribbles (RGBA, transparent = unlabelled) work too
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[lab != 255, :3] = PALETTE[lab[lab != 255]]
    rgba[lab != 255, 3] = 255
    buf = BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    r = client.post("/api/images/img2.jpg/segment", json={"labels": base64.b64encode(buf.getvalue()).decode()})
    assert {c["id"] for c in dict(events(r.text))["done"]["classes"]} == {3, 7}


def test_one_class_fills_the_image_and_nothing_painted_is_refused(client):
    lab = np.full((H, W), 255, np.uint8)
    assert "no pixel is labelled" in assert_error(client.post("/api/images/img1.png/segment", json=wire(lab)), 422)
    lab[5:10, 5:10] = 4
    done = dict(events(client.post("/api/images/img1.png/segment", json=wire(lab)).text))["done"]
    assert done["message"] and [c["id"] for c in done["classes"]] == [4]


# ----------------------------------------------------------------------------- uploads


def test_upload_segment_save_with_hostile_name(client, out, tmp_path):
    data = png_bytes(two_regions())
    files = {"file": ("../../../etc/evil name.png", data, "image/png")}
    r = client.post("/api/upload", files=files)
    assert r.status_code == 201, r.text
    info = r.json()
    assert info["id"].startswith("upload-") and info["name"] == "evil name.png"
    assert info["files"]["mask"] == "evil_name.png"
    # the same file again is the same image
    again = client.post("/api/upload", files=files)
    assert again.status_code == 200 and again.json()["id"] == info["id"]
    evs = events(client.post(f"/api/images/{info['id']}/segment", json=wire(paint())).text)
    assert evs[-1][0] == "done"
    saved = client.post(f"/api/images/{info['id']}/save", json={}).json()
    assert saved["files"]["mask"] == "evil_name.png"
    assert (out / "evil_name.png").is_file()
    assert not (tmp_path.parent / "etc").exists() and not list(tmp_path.glob("evil*"))
    # raw-body uploads name the image from ?name=
    r = client.post("/api/upload?name=..%2Fraw.png", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 201 and r.json()["files"]["mask"] == "raw.png"
    assert client.get("/api/images").json()["total"] == 4


def _huge_png_header(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width x height`` pixels (a decompression-bomb shape)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1024)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def test_upload_rejections(folder, out):
    good = png_bytes(two_regions())
    with TestClient(create_app(folder, out, fit_overrides=FAST, max_upload_bytes=len(good) + 10,
                               max_pixels=100 * 100)) as c:

        def up(data, name="x.png", ctype="image/png"):
            return c.post("/api/upload", files={"file": (name, data, ctype)})

        assert up(good).status_code == 201
        assert "bytes" in assert_error(up(good + b"\0" * 4096), 413)
        assert "bytes" in assert_error(
            c.post("/api/upload", content=good + b"\0" * 4096, headers={"content-type": "image/png"}), 413)
        assert "pixels" in assert_error(up(png_bytes(np.zeros((101, 120, 3), np.uint8))), 413)
        assert_error(up(_huge_png_header(40000, 40000)), 413)  # decompression bomb, refused before decoding
        assert_error(up(b"hello, I am not an image"), 415)
        assert_error(up(b"<html><script>alert(1)</script></html>", "page.png"), 415)
        assert_error(up(good[: len(good) // 2]), 422)  # truncated
        assert_error(up(b""), 400)
        assert "too small" in assert_error(up(png_bytes(np.zeros((8, 8, 3), np.uint8))), 422)
        assert_error(c.post("/api/upload", files={"image": ("x.png", good, "image/png")}), 422)
        assert_error(c.post("/api/upload", json={"file": "x"}), 415)
        assert_error(c.post("/api/upload", content=b"--zzz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zzz"}), (400, 422))
        assert c.get("/api/health").json()["status"] == "ok"
        assert c.get("/api/images").json()["total"] == 3


def test_names_never_become_paths(client, out, tmp_path):
    for bad in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..", "%2Fetc%2Fpasswd", "..%5C..%5Cwin.ini", "img1.png%00"):
        for path in (f"/api/images/{bad}", f"/api/images/{bad}/image", f"/api/images/{bad}/mask.png"):
            assert client.get(path).status_code == 404, path
        r = client.post(f"/api/images/{bad}/save", json=wire(paint()))
        assert r.status_code == 404 and "detail" in r.json()
    assert_error(client.post("/api/jobs/..%2F..%2Fx/cancel"), 404)
    assert client.get("/static/../app.py").status_code == 404
    assert not out.exists() or list(out.iterdir()) == []
    assert safe_stem("../../a b/..\\c:d?.png") == "d"
    assert safe_stem("..") == "image" and safe_stem(".hidden.png") == "hidden"
    assert safe_stem("C:\\x\\Straße.JPG") == "Strae"


def test_malformed_requests_get_json_4xx(folder, out):
    with TestClient(create_app(folder, out, fit_overrides=FAST, max_upload_bytes=20_000)) as c:
        url = "/api/images/img1.png/segment"
        lab = paint()
        assert_error(c.post(url, content=b"{not json", headers={"content-type": "application/json"}), 400)
        assert_error(c.post(url, content=b"[" * 30000, headers={"content-type": "application/json"}), 400)
        assert_error(c.post(url, json=[1, 2]), 422)
        assert_error(c.post(url, content=json.dumps(wire(lab)), headers={"content-type": "text/plain"}), 415)
        assert_error(c.post(url, json={}), 422)
        assert_error(c.post(url, json={"labels": 5}), 422)
        assert "image is 64x48" in assert_error(c.post(url, json=wire(paint(10, 10))), 422)
        bad = wire(lab)
        bad["labels"]["rle"] = bad["labels"]["rle"][:-2]
        assert "cover" in assert_error(c.post(url, json=bad), 422)
        assert "not a class" in assert_error(c.post(url, json=wire(np.full((H, W), 99, np.uint8))), 422)
        for rle in ([255, H * W - 1.5, 0, 1.5], [255, -1, 0, H * W + 1], ["a", 1], [[1, 2]], [255], [],
                    [255, 10**30, 0, 1], [True, H * W]):
            assert_error(c.post(url, json={"labels": {"width": W, "height": H, "rle": rle}}), 422)
        assert_error(c.post(url, json={"labels": {"width": "64", "height": H, "rle": [0, H * W]}}), 422)
        assert_error(c.post(url, json=dict(wire(lab), warm_start="yes")), 422)
        assert_error(c.post(url, json={"labels": "data:image/png;base64,@@@"}), 422)
        assert_error(c.post(url, json={"labels": base64.b64encode(b"not a png").decode()}), 422)
        assert_error(c.post(url, json={"labels": "data:image/png;base64," + base64.b64encode(_huge_png_header(64, 48)).decode()}), 422)
        assert "bytes" in assert_error(c.post(url, json={"labels": "x" * 50_000}), 413)
        assert_error(c.post("/api/images/img1.png/save", content=b"{", headers={"content-type": "application/json"}), 400)
        assert "nothing to save" in assert_error(c.post("/api/images/img1.png/save"), 409)
        assert_error(c.get("/api/images/img1.png/mask.png?download=perhaps"), 422)
        assert_error(c.put("/api/images/img1.png/segment"), 405)
        # still serving
        assert events(c.post(url, json=wire(lab)).text)[-1][0] == "done"


def test_crash_in_a_fit_is_reported_and_the_server_keeps_serving(client, monkeypatch):
    real = webapp.segment

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash inside the fit")

    monkeypatch.setattr(webapp, "segment", boom)
    evs = events(client.post("/api/images/img1.png/segment", json=wire(paint())).text)
    assert evs[-1][0] == "error" and "simulated crash" in evs[-1][1]["detail"]
    assert client.get("/api/health").json() == {"status": "ok", "version": client.get("/api/config").json()["version"],
                                                "running": 0, "queued": 0}
    monkeypatch.setattr(webapp, "segment", real)
    assert events(client.post("/api/images/img1.png/segment", json=wire(paint())).text)[-1][0] == "done"


def test_two_workers_fit_with_one_thread_each(folder, out):
    with TestClient(create_app(folder, out, fit_overrides=FAST, workers=2, queue_size=1)) as c:
        assert c.get("/api/jobs").json() == {"jobs": [], "capacity": 3, "workers": 2}
        assert c.app.state.annotator.threads == 1
        assert events(c.post("/api/images/img2.jpg/segment", json=wire(paint())).text)[-1][0] == "done"


def test_host_header_guard(folder, out):
    with TestClient(create_app(folder, out, allowed_hosts=["localhost", "127.0.0.1"])) as c:
        assert_error(c.get("/api/health"), 400)
        assert c.get("/api/health", headers={"host": "127.0.0.1:8000"}).status_code == 200


# ----------------------------------------------------------------------------- live server: cancel, queue, disconnect


class LiveServer:
    """uvicorn serving ``app`` on a free localhost port in a background thread."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="none", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
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


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    (d / "images").mkdir()
    Image.fromarray(two_regions()).save(d / "images" / "a.png")
    app = create_app(d / "images", d / "out", fit_overrides={"iterations": 100000, "working_size": 48},
                     queue_size=0, workers=1, heartbeat=0.2)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def _wait_idle(http: httpx.Client, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while http.get("/api/jobs").json()["jobs"]:
        assert time.monotonic() < deadline, http.get("/api/jobs").json()
        time.sleep(0.05)


def test_cancel_and_full_queue(live):
    url = "/api/images/a.png/segment"
    with live.stream("POST", url, json=wire(paint())) as resp:
        assert resp.status_code == 200
        it = iter_events(resp)
        job = next(d for e, d in it if e == "queued")["job"]
        next(d for e, d in it if e == "progress")
        # one worker, no queue: a second fit is refused with 429 and JSON
        second = live.post(url, json=wire(paint()))
        assert "busy" in assert_error(second, 429) and second.headers["retry-after"]
        assert [j["id"] for j in live.get("/api/jobs").json()["jobs"]] == [job]
        assert live.get("/api/health").json()["running"] == 1
        assert live.post(f"/api/jobs/{job}/cancel").json()["cancelled"] is True
        done = next(d for e, d in it if e in ("done", "error"))
    assert done["stopped"] == "cancelled" and 0 < done["iterations"] < 100000
    assert done["mask_url"]  # the prediction at the moment it stopped
    _wait_idle(live)
    assert_error(live.post(f"/api/jobs/{job}/cancel"), 404)


def test_client_going_away_stops_the_fit(live):
    _wait_idle(live)
    with live.stream("POST", "/api/images/a.png/segment", json=wire(paint())) as resp:
        it = iter_events(resp)
        next(d for e, d in it if e == "progress")
        assert len(live.get("/api/jobs").json()["jobs"]) == 1
    # leaving the block closes the connection, like closing the tab
    _wait_idle(live)
    assert live.get("/api/health").json()["status"] == "ok"


def test_concurrent_requests_get_200_or_429(live):
    _wait_idle(live)
    results: list[int] = []

    def hit():
        try:
            with live.stream("POST", "/api/images/a.png/segment", json=wire(paint())) as r:
                results.append(r.status_code)
                if r.status_code == 200:  # watch it start, then hang up (which cancels it)
                    next(d for e, d in iter_events(r) if e == "progress")
        except httpx.HTTPError as exc:  # pragma: no cover - reported below
            results.append(repr(exc))

    threads = [threading.Thread(target=hit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results).count(200) >= 1 and set(results) <= {200, 429}, results
    _wait_idle(live)


# ----------------------------------------------------------------------------- the serve command

runner = CliRunner()


def test_serve_rejects_bad_arguments(tmp_path, folder):
    empty = tmp_path / "empty"
    empty.mkdir()
    one = tmp_path / "one.txt"
    one.write_text("cat\n")
    dup = tmp_path / "dup.txt"
    dup.write_text("cat\ndog\ncat\n")
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        o = ["--out", tmp_path / "o"]
        cases = [
            ["--images", tmp_path / "missing", *o],
            ["--images", folder / "img1.png", *o],
            ["--images", empty, *o],
            ["--images", folder, "--out", folder],
            ["--images", folder, "--out", one],
            ["--images", folder, "--classes", tmp_path / "nope.txt", *o],
            ["--images", folder, "--classes", one, *o],
            ["--images", folder, "--classes", dup, *o],
            ["--images", folder, "--preset", "no-such-preset", *o],
            ["--images", folder, "--device", "tpu", *o],
            ["--images", folder, "--port", busy.getsockname()[1], *o],
        ]
        for args in cases:
            r = runner.invoke(cli_app, ["serve", *map(str, args)])
            assert r.exit_code == 2, (args, r.output)
            assert r.stderr.count("\n") == 1 and "error" in r.stderr, (args, r.stderr)
    finally:
        busy.close()


def test_serve_prints_its_url_and_serves(tmp_path, folder):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dipseg.cli", "serve", "--images", str(folder), "--out", str(tmp_path / "o"),
         "--port", "0", "--iterations", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if "http://" in line:
                url = line[line.index("http://"):].split()[0]
        assert url and url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "api/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(url + "api/health", headers={"host": "evil.example"}, timeout=10).status_code == 400
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        finally:
            proc.stdout.close()
            proc.stderr.close()
