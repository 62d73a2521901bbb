"""The web app's HTTP surface: the page, config, listing, routing, every rejection as JSON, the docs.

Fits, uploads and saving have their own files (``test_web_jobs.py``, ``test_web_store.py``).
"""

from __future__ import annotations

import base64
import json
from io import BytesIO
from pathlib import Path

import numpy as np
from conftest import (
    WEB_FAST,
    WEB_H,
    WEB_W,
    api_client,
    assert_error,
    client_for,
    huge_png_header,
    paint,
    png_bytes,
    sse_events,
    token_headers,
    two_regions,
    wire,
)
from PIL import Image

from dipseg.dip.presets import PRESETS
from dipseg.io import InputError, TooLargeError, UnsupportedFormatError
from dipseg.palette import PALETTE
from dipseg.web import create_app
from dipseg.web.app import STATIC_DIR
from dipseg.web.errors import BadRequest, Busy, Conflict, NotFound, ShuttingDown, StorageError, status_of

H, W = WEB_H, WEB_W


def test_page_and_static_assets_are_local(web_api):
    client = web_api
    r = client.get("/")
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    for needle in ('id="canvas"', 'data-testid="segment"', 'id="cancel"', 'id="progress"', 'id="download"',
                   'id="next"', 'id="prev"', 'id="done-count"', 'id="opacity"', 'id="brush-size"'):
        assert needle in r.text
    assert 'src="/static/js/main.js"' in r.text
    for name in ("js/main.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    files = [f for f in Path(STATIC_DIR).rglob("*") if f.is_file()]
    assert any(f.parent.name == "js" for f in files)
    for f in files:
        text = f.read_text()
        assert "http://" not in text and "https://" not in text, f"{f.relative_to(STATIC_DIR)} refers to the internet"
        if f.suffix == ".js":  # every ES module of the page is served
            assert client.get(f"/static/{f.relative_to(STATIC_DIR).as_posix()}").status_code == 200


def test_config_classes_default_and_custom(web_api, web_folder, web_out):
    cfg = web_api.get("/api/config").json()
    assert [c["name"] for c in cfg["classes"]][:2] == ["background", "aeroplane"] and len(cfg["classes"]) == 21
    assert cfg["classes"][15] == {"id": 15, "name": "person", "colour": "#c08080"}
    assert cfg["mode"] == "folder" and cfg["iterations"] == WEB_FAST["iterations"]
    # every preset a Segment may name, the server's first, each with the server's overrides
    presets = {p["name"]: p for p in cfg["presets"]}
    assert cfg["presets"][0]["name"] == cfg["preset"] and set(PRESETS) == set(presets)
    assert {p["iterations"] for p in cfg["presets"]} == {WEB_FAST["iterations"]}
    assert presets["clicks"]["can_transfer"] and not presets["paper"]["can_transfer"]
    assert presets["clicks"]["description"] == PRESETS["clicks"].description
    with api_client(create_app(web_folder, web_out, classes=["sky", "tree", "road"], fit_overrides=WEB_FAST)) as c:
        classes = c.get("/api/config").json()["classes"]
    assert [c["name"] for c in classes] == ["sky", "tree", "road"]
    assert classes[2]["colour"] == "#%02x%02x%02x" % tuple(PALETTE[2])


def test_listing_and_image(web_api):
    client = web_api
    listing = client.get("/api/images").json()
    assert [i["id"] for i in listing["images"]] == ["img1.png", "img2.jpg"]
    assert (listing["done"], listing["total"]) == (0, 2)
    info = client.get("/api/images/img1.png").json()
    assert (info["width"], info["height"], info["next"], info["prev"]) == (W, H, "img2.jpg", None)
    assert info["files"] == {"mask": "img1.png", "labels": "img1_labels.png", "meta": "img1_meta.json",
                             "boxes": "img1_boxes.csv"}
    assert (info["boxes"], info["tight_boxes"], info["boxes_note"]) == ([], False, None)
    r = client.get("/api/images/img2.jpg/image")
    assert r.headers["content-type"] == "image/png"
    with Image.open(BytesIO(r.content)) as im:
        assert im.size == (W, H)
    assert_error(client.get("/api/images/nope.png"), 404)
    assert_error(client.get("/api/images/notes.txt/image"), 404)
    assert_error(client.get("/api/images/img1.png/mask.png"), 404)
    assert_error(client.get("/api/images/img1.png/labels"), 404)


def test_names_never_become_paths(web_api, web_out):
    client = web_api
    for bad in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E", "..", "%2Fetc%2Fpasswd", "..%5C..%5Cwin.ini", "img1.png%00"):
        for path in (f"/api/images/{bad}", f"/api/images/{bad}/image", f"/api/images/{bad}/mask.png"):
            assert client.get(path).status_code == 404, path
        r = client.post(f"/api/images/{bad}/save", json=wire(paint()))
        assert r.status_code == 404 and "detail" in r.json()
    assert_error(client.post("/api/jobs/..%2F..%2Fx/cancel"), 404)
    assert client.get("/static/../app.py").status_code == 404
    assert client.get("/static/../store.py").status_code == 404
    assert not web_out.exists() or list(web_out.iterdir()) == []


def test_malformed_requests_get_json_4xx(web_folder, web_out):
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST, max_upload_bytes=20_000,
                               max_json_bytes=40_000)) as c:
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
                    [255, 10**30, 0, 1], [True, H * W], [-1, H * W], [300, H * W]):
            assert_error(c.post(url, json={"labels": {"width": W, "height": H, "rle": rle}}), 422)
        assert_error(c.post(url, json={"labels": {"width": "64", "height": H, "rle": [0, H * W]}}), 422)
        assert_error(c.post(url, json=dict(wire(lab), warm_start="yes")), 422)
        assert "tight_boxes must be" in assert_error(
            c.post(url, json=dict(wire(lab), boxes=[[1, 2, 2, 20, 20]], tight_boxes="yes")), 422)
        assert "no 'boxes'" in assert_error(c.post(url, json=dict(wire(lab), tight_boxes=True)), 422)
        assert_error(c.post(url, json={"labels": "data:image/png;base64,@@@"}), 422)
        assert_error(c.post(url, json={"labels": base64.b64encode(b"not a png").decode()}), 422)
        assert_error(c.post(url, json={"labels": "data:image/png;base64," + base64.b64encode(huge_png_header(64, 48)).decode()}), 422)
        assert "bytes" in assert_error(c.post(url, json={"labels": "x" * 50_000}), 413)
        assert_error(c.post("/api/images/img1.png/save", content=b"{", headers={"content-type": "application/json"}), 400)
        assert "nothing to save" in assert_error(c.post("/api/images/img1.png/save"), 409)
        assert "tight_boxes must be" in assert_error(
            c.post("/api/images/img1.png/save", json=dict(wire(lab), tight_boxes=1)), 422)
        assert_error(c.get("/api/images/img1.png/mask.png?download=perhaps"), 422)
        assert_error(c.put("/api/images/img1.png/segment"), 405)
        # still serving
        assert sse_events(c.post(url, json=wire(lab)).text)[-1][0] == "done"


def test_host_header_guard(web_folder, web_out):
    with api_client(create_app(web_folder, web_out, allowed_hosts=["localhost", "127.0.0.1"])) as c:
        assert_error(c.get("/api/health"), 400)
        assert c.get("/api/health", headers={"host": "127.0.0.1:8000"}).status_code == 200
        assert c.get("/api/health", headers={"host": "localhost"}).status_code == 200
        assert_error(c.get("/api/health", headers={"host": "localhost.evil.example:8000"}), 400)


def test_errors_map_to_one_status_each():
    assert [status_of(e) for e in (BadRequest("x"), NotFound("x"), Conflict("x"), Busy("x"), ShuttingDown("x"),
                                   StorageError("x"), TooLargeError("x"), UnsupportedFormatError("x"),
                                   InputError("x"), RuntimeError("x"))] == [400, 404, 409, 429, 503, 500, 413,
                                                                          415, 422, 500]
    assert Busy("x", retry_after=5).headers() == {"Retry-After": "5"}


def test_openapi_documents_every_json_endpoint(web_api):
    spec = web_api.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    paths = spec["paths"]
    for path, method, model in [
        ("/api/config", "get", "ServerConfig"), ("/api/health", "get", "Health"),
        ("/api/images", "get", "ImageListing"), ("/api/upload", "post", "UploadedImage"),
        ("/api/images/{image_id}", "get", "ImageInfo"), ("/api/images/{image_id}/labels", "get", "StoredLabels"),
        ("/api/images/{image_id}/save", "post", "SaveResult"), ("/api/jobs", "get", "JobList"),
        ("/api/jobs/{job_id}/cancel", "post", "Cancelled"),
    ]:
        ok = paths[path][method]["responses"]
        ok = ok.get("200") or ok.get("201")
        assert ok["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
    for path, model in [("/api/images/{image_id}/segment", "SegmentRequest"), ("/api/images/{image_id}/save", "SaveRequest")]:
        body = paths[path]["post"]["requestBody"]["content"]["application/json"]["schema"]
        assert body == {"$ref": f"#/components/schemas/{model}"}
    assert {"SegmentRequest", "SaveRequest", "RunLengthLabels", "ErrorBody"} <= set(schemas)
    assert schemas["ErrorBody"]["properties"]["detail"]["type"] == "string"
    seg = paths["/api/images/{image_id}/segment"]["post"]["responses"]
    assert "text/event-stream" in seg["200"]["content"]
    assert seg["429"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}
    # Swagger UI would fetch its code from a CDN: no docs page, only the local OpenAPI document
    for path in ("/api/docs", "/docs", "/redoc"):
        assert web_api.get(path).status_code == 404


def test_head_of_the_page(web_api):
    r = web_api.head("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and not r.content


# ----------------------------------------------------------------------------- only the page may change things


def _upload(c, headers=None, content=None):
    return c.post("/api/upload", files={"file": ("x.png", content or png_bytes(two_regions()), "image/png")},
                  headers=headers or {})


def test_other_sites_cannot_write(web_folder, web_out):
    app = create_app(web_folder, web_out, fit_overrides=WEB_FAST)
    token = token_headers(app)
    with client_for(app) as c:  # no token header: like a page of another site, or a form
        c.post("/api/images/img1.png/save", headers=token, json=wire(paint()))  # something to overwrite
        before = {p.name: p.stat().st_mtime_ns for p in web_out.iterdir()}
        listed = c.get("/api/images").json()["total"]
        foreign = [
            {},  # fetch(..., {mode: "no-cors"}) from an old browser: no Origin, no token
            {"origin": "http://evil.example", "sec-fetch-site": "cross-site"},
            {"origin": "http://localhost:9999", "sec-fetch-site": "same-site"},
            {"origin": "null"},
            {**token, "origin": "http://evil.example"},  # even with the token: the browser says who sent it
            {**token, "sec-fetch-site": "cross-site"},
            {"x-dipseg-token": "a-wrong-token-of-enough-length"},
        ]
        for headers in foreign:
            assert_error(_upload(c, headers), 403)
            assert_error(c.post("/api/images/img1.png/save", headers=headers, content=b""), 403)
            assert_error(c.post("/api/images/img1.png/segment", headers=headers, json=wire(paint())), 403)
            assert_error(c.post("/api/jobs/x/cancel", headers=headers), 403)
        assert c.get("/api/images").json()["total"] == listed
        assert {p.name: p.stat().st_mtime_ns for p in web_out.iterdir()} == before
        # the page: same origin, its token; reads need neither
        assert c.get("/api/config").json()["token"] == token["X-Dipseg-Token"]
        page = {**token, "origin": "http://testserver", "sec-fetch-site": "same-origin"}
        assert _upload(c, page).status_code == 201
        assert c.post("/api/images/img1.png/save", headers=page, content=b"").status_code == 200
        assert c.post("/api/images/img1.png/save",
                      headers={"authorization": f"Bearer {token['X-Dipseg-Token']}"}).status_code == 200


def test_beyond_localhost_every_request_needs_the_token(web_folder, web_out):
    app = create_app(web_folder, web_out, fit_overrides=WEB_FAST, require_token=True,
                     token="a-token-that-is-long-enough")
    with client_for(app) as c:
        for path in ("/", "/api/config", "/api/images", "/api/images/img1.png/image", "/static/js/main.js",
                     "/api/openapi.json"):
            assert "access token" in assert_error(c.get(path), 401), path
        assert_error(c.get("/?token=wrong"), 401)
        assert_error(c.get("/api/config", headers={"authorization": "Bearer wrong"}), 401)
        assert c.get("/api/config", headers={"authorization": "Bearer a-token-that-is-long-enough"}).status_code == 200
        # the printed URL sets an HttpOnly, SameSite=Strict cookie and drops the token from the address
        r = c.get("/?token=a-token-that-is-long-enough", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie
        assert c.get("/").status_code == 200 and c.get("/api/images").status_code == 200
        # the cookie lets the page read, but writing still needs the page's header
        assert_error(_upload(c), 403)
        assert _upload(c, {"x-dipseg-token": "a-token-that-is-long-enough"}).status_code == 201
