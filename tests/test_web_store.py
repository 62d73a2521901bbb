"""The image store: uploads and their names, labels from requests and files, saving and resuming."""

from __future__ import annotations

import base64
import json
from io import BytesIO
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    WEB_FAST,
    WEB_H,
    WEB_W,
    assert_error,
    api_client,
    huge_png_header,
    paint,
    png_bytes,
    sse_events,
    two_regions,
    wire,
)
from PIL import Image

import dipseg.web.store as store_module
from dipseg.io import InputError, write_labels
from dipseg.labels import IGNORE
from dipseg.palette import PALETTE
from dipseg.web import create_app
from dipseg.web.body import encode_rle
from dipseg.web.settings import Settings
from dipseg.web.store import ImageStore, safe_stem

H, W = WEB_H, WEB_W


def test_segment_streams_progress_saves_and_resumes(web_api, web_folder, web_out):
    client, out = web_api, web_out
    lab = paint()
    r = client.post("/api/images/img1.png/segment", json=wire(lab))
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    evs = sse_events(r.text)
    kinds = [e for e, _ in evs]
    assert kinds[0] == "queued" and kinds[1] == "start" and kinds[-1] == "done", kinds
    progress = [d for e, d in evs if e == "progress"]
    assert progress[-1]["iteration"] == WEB_FAST["iterations"] == progress[-1]["total"]
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
    evs2 = sse_events(client.post("/api/images/img1.png/segment", json=wire(lab2)).text)
    start = dict(evs2)["start"]
    assert start["warm_start"] and start["total"] == WEB_FAST["iterations"] // 2
    assert dict(evs2)["done"]["iterations"] == WEB_FAST["iterations"] // 2

    saved = client.post("/api/images/img1.png/save", json=wire(lab2)).json()
    assert saved["files"] == {"mask": "img1.png", "labels": "img1_labels.png", "meta": "img1_meta.json",
                              "coco": "annotations.json"}  # every saved mask also goes into the COCO file
    assert saved["progress"] == {"done": 1, "total": 2}
    with Image.open(out / "img1.png") as im:
        assert im.mode == "P" and im.size == (W, H) and set(np.unique(np.asarray(im))) <= {0, 15}
        assert np.array_equal(np.asarray(im.getpalette()[:48]).reshape(-1, 3), PALETTE[:16])
    with Image.open(out / "img1_labels.png") as im:
        assert np.array_equal(np.asarray(im), lab2)
    meta = json.loads((out / "img1_meta.json").read_text())
    assert meta["image"] == "img1.png" and meta["fit"]["method"] == "dipseg" and meta["mask_from_these_labels"]
    assert client.get("/api/images").json()["done"] == 1
    assert sorted(p.name for p in out.iterdir()) == ["annotations.json", "img1.png", "img1_labels.png", "img1_meta.json"]

    # a restarted server finds the saved work: reopening the image loads its labels and mask
    with api_client(create_app(web_folder, out, fit_overrides=WEB_FAST)) as c2:
        info = c2.get("/api/images/img1.png").json()
        assert info["done"] and info["has_labels"] and info["has_mask"]
        got = c2.get("/api/images/img1.png/labels").json()
        assert got["source"] == "file" and got["rle"] == encode_rle(lab2)
        with Image.open(BytesIO(c2.get("/api/images/img1.png/mask.png").content)) as im:
            assert im.size == (W, H)
        assert c2.get("/api/images").json()["done"] == 1


def test_boxes_and_their_tightness_come_back_with_the_image(web_api, web_folder, web_out):
    client, out = web_api, web_out
    url = "/api/images/img1.png"
    box = [15, 2, 3, 30, 31]
    assert sse_events(client.post(f"{url}/segment", json={"boxes": [box], "tight_boxes": True}).text)[-1][0] == "done"
    info = client.get(url).json()
    assert (info["boxes"], info["tight_boxes"]) == ([box], True)
    saved = client.post(f"{url}/save", json={"boxes": [box, [3, 40, 5, 60, 40]]}).json()  # tightness kept
    assert saved["files"]["boxes"] == "img1_boxes.csv"
    assert (out / "img1_boxes.csv").read_text().splitlines() == ["class,x0,y0,x1,y1", "person,2,3,30,31",
                                                                 "bird,40,5,60,40"]
    assert json.loads((out / "img1_meta.json").read_text())["tight_boxes"] is True
    assert client.get("/api/images/img2.jpg").json()["boxes"] == []  # one image's boxes only

    # a restarted server reads them from --out, tightness from the metadata
    with api_client(create_app(web_folder, out, fit_overrides=WEB_FAST)) as c2:
        info = c2.get(url).json()
        assert (info["boxes"], info["tight_boxes"], info["boxes_note"]) == ([box, [3, 40, 5, 60, 40]], True, None)
        saved = c2.post(f"{url}/save", json=dict(wire(paint()), boxes=[box], tight_boxes=False)).json()
        assert saved["saved"], saved
        assert json.loads((out / "img1_meta.json").read_text())["tight_boxes"] is False
        assert c2.get(url).json()["tight_boxes"] is False
    # a saved box file that no longer fits is reported, and the image still opens
    (out / "img1_boxes.csv").write_text("class,x0,y0,x1,y1\nperson,2,3,300,31\n")
    with api_client(create_app(web_folder, out, fit_overrides=WEB_FAST)) as c3:
        info = c3.get(url).json()
        assert info["boxes"] == [] and "img1_boxes.csv" in info["boxes_note"] and "outside" in info["boxes_note"]


def test_imported_boxes_open_with_each_image_until_it_is_saved(tmp_path, web_folder, web_out):
    # a detector's COCO file, written with folders in file_name as export tools do
    coco = tmp_path / "detections.json"
    coco.write_text(json.dumps({
        "images": [{"id": 1, "file_name": "frames/img1.png"}, {"id": 2, "file_name": "frames/other.png"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "bird"}],
        "annotations": [{"image_id": 1, "category_id": 1, "bbox": [2, 3, 28, 28]},
                        {"image_id": 2, "category_id": 2, "bbox": [0, 0, 5, 5]}]}))
    url = "/api/images/img1.png"
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST, boxes=coco, tight_boxes=True)) as c:
        info = c.get(url).json()
        assert (info["boxes"], info["tight_boxes"], info["boxes_note"]) == ([[15, 2, 3, 30, 31]], True, None)
        assert (c.get("/api/images/img2.jpg").json()["boxes"], c.get("/api/images/img2.jpg").json()["tight_boxes"]) \
            == ([], False)
        # the user's edit wins over the import; saving it without boxes decides for good
        assert sse_events(c.post(f"{url}/segment", json={"boxes": [[3, 1, 1, 20, 20]]}).text)[-1][0] == "done"
        assert c.get(url).json()["boxes"] == [[3, 1, 1, 20, 20]]
        assert c.post(f"{url}/save", json=dict(wire(paint()), boxes=[])).json()["saved"]
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST, boxes=coco, tight_boxes=True)) as c:
        assert c.get(url).json()["boxes"] == []

    # a folder of per-image files: VOC XML for one image, a CSV outside its image for the other
    boxes_dir = tmp_path / "Annotations"
    boxes_dir.mkdir()
    (boxes_dir / "img2.xml").write_text("<annotation><object><name>dog</name><bndbox><xmin>5</xmin><ymin>6</ymin>"
                                        "<xmax>20</xmax><ymax>30</ymax></bndbox></object></annotation>")
    (boxes_dir / "img1.csv").write_text("class,x0,y0,x1,y1\nperson,2,3,300,31\n")
    with api_client(create_app(web_folder, tmp_path / "out2", fit_overrides=WEB_FAST, boxes=boxes_dir)) as c:
        info = c.get("/api/images/img2.jpg").json()
        assert (info["boxes"], info["tight_boxes"]) == ([[12, 4, 5, 20, 30]], False)
        info = c.get(url).json()  # shown, never raised: the image still opens
        assert info["boxes"] == [] and "imported boxes" in info["boxes_note"] and "outside" in info["boxes_note"]


@pytest.mark.parametrize("kind, message", [
    ("missing", "box source not found"),
    ("text", "COCO JSON of all the images or a folder"),
    ("bad-json", "not valid JSON"),
    ("no-images", "--boxes needs --images"),
    ("tight-alone", "give --boxes too"),
])
def test_imported_boxes_are_checked_at_start(tmp_path, web_folder, kind, message):
    path = {"missing": tmp_path / "nope.json", "text": tmp_path / "b.txt", "bad-json": tmp_path / "b.json",
            "no-images": tmp_path, "tight-alone": None}[kind]
    (tmp_path / "b.txt").write_text("person,1,1,3,3\n")
    (tmp_path / "b.json").write_text("{")
    with pytest.raises(InputError, match=message):
        create_app(None if kind == "no-images" else web_folder, tmp_path / "o", boxes=path,
                   tight_boxes=kind == "tight-alone")


def test_labels_as_png_data_urls(web_api):
    client = web_api
    lab = paint(a=3, b=7)
    buf = BytesIO()
    Image.fromarray(lab, mode="L").save(buf, format="PNG")
    url = "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()
    done = dict(sse_events(client.post("/api/images/img2.jpg/segment", json={"labels": url}).text))["done"]
    assert {c["id"] for c in done["classes"]} == {3, 7}
    # colour scribbles (RGBA, transparent = unlabelled) work too
    rgba = np.zeros((H, W, 4), np.uint8)
    rgba[lab != 255, :3] = PALETTE[lab[lab != 255]]
    rgba[lab != 255, 3] = 255
    buf = BytesIO()
    Image.fromarray(rgba, mode="RGBA").save(buf, format="PNG")
    r = client.post("/api/images/img2.jpg/segment", json={"labels": base64.b64encode(buf.getvalue()).decode()})
    assert {c["id"] for c in dict(sse_events(r.text))["done"]["classes"]} == {3, 7}


def test_upload_segment_save_with_hostile_name(web_api, web_out, tmp_path):
    client, out = web_api, web_out
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
    assert info["new"] and not again.json()["new"]
    evs = sse_events(client.post(f"/api/images/{info['id']}/segment", json=wire(paint())).text)
    assert evs[-1][0] == "done"
    saved = client.post(f"/api/images/{info['id']}/save", json={}).json()
    assert saved["files"]["mask"] == "evil_name.png"
    assert (out / "evil_name.png").is_file()
    assert not (tmp_path.parent / "etc").exists() and not list(tmp_path.glob("evil*"))
    # raw-body uploads name the image from ?name=
    r = client.post("/api/upload?name=..%2Fraw.png", content=data, headers={"content-type": "image/png"})
    assert r.status_code == 201 and r.json()["files"]["mask"] == "raw.png"
    assert client.get("/api/images").json()["total"] == 4


def test_upload_rejections(web_folder, web_out):
    good = png_bytes(two_regions())
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST, max_upload_bytes=len(good) + 10,
                               max_pixels=100 * 100)) as c:

        def up(data, name="x.png", ctype="image/png"):
            return c.post("/api/upload", files={"file": (name, data, ctype)})

        assert up(good).status_code == 201
        assert "bytes" in assert_error(up(good + b"\0" * 4096), 413)
        assert "bytes" in assert_error(
            c.post("/api/upload", content=good + b"\0" * 4096, headers={"content-type": "image/png"}), 413)
        assert "pixels" in assert_error(up(png_bytes(np.zeros((101, 120, 3), np.uint8))), 413)
        assert_error(up(huge_png_header(40000, 40000)), 413)  # decompression bomb, refused before decoding
        assert "not an image" in assert_error(up(b"hello, I am not an image"), 415)
        assert_error(up(b"<html><script>alert(1)</script></html>", "page.png"), 415)
        assert_error(up(good[: len(good) // 2]), 422)  # truncated
        assert_error(up(b""), 400)
        # the library fits any image of at least 2x2 (it stretches thin ones), so only smaller is refused
        assert "2x2" in assert_error(up(png_bytes(np.zeros((1, 40, 3), np.uint8))), 422)
        assert up(png_bytes(np.zeros((8, 8, 3), np.uint8))).status_code == 201
        assert_error(c.post("/api/upload", files={"image": ("x.png", good, "image/png")}), 422)
        assert_error(c.post("/api/upload", json={"file": "x"}), 415)
        assert_error(c.post("/api/upload", content=b"--zzz\r\nbroken", headers={"content-type": "multipart/form-data; boundary=zzz"}), (400, 422))
        assert c.get("/api/health").json()["status"] == "ok"
        assert c.get("/api/images").json()["total"] == 4


def test_safe_stem():
    assert safe_stem("../../a b/..\\c:d?.png") == "d"
    assert safe_stem("..") == "image" and safe_stem(".hidden.png") == "hidden"
    assert safe_stem("C:\\x\\Straße.JPG") == "Strae"


@pytest.fixture
def store(web_folder, web_out) -> ImageStore:
    return ImageStore(Settings(images_dir=web_folder, out_dir=web_out, classes=("a", "b", "c")))


def test_parse_labels_refuses_what_is_not_a_class(store):
    lab = paint(a=0, b=2)
    got = store.parse_labels(wire(lab)["labels"], (H, W))
    assert got.dtype == np.uint8 and np.array_equal(got, lab)
    with pytest.raises(InputError, match="not a class"):
        store.parse_labels(wire(paint(a=0, b=3))["labels"], (H, W))
    # colours of classes beyond the server's three are no class either
    rgb = np.full((H, W, 3), (224, 224, 192), np.uint8)
    rgb[:4, :4] = PALETTE[5]
    with pytest.raises(InputError, match="not a class colour"):
        store.parse_labels(base64.b64encode(png_bytes(rgb)).decode(), (H, W))
    # an index PNG of 16-bit values is read as classes, not cut to 8 bits
    buf = BytesIO()
    Image.fromarray(np.full((H, W), 258, np.uint16)).save(buf, format="PNG")
    with pytest.raises(InputError, match="not a class"):
        store.parse_labels(base64.b64encode(buf.getvalue()).decode(), (H, W))


def test_saved_label_file_without_labels_loads_empty_and_a_bad_one_is_a_conflict(store, web_out):
    from dipseg.web.errors import Conflict

    entry = store.entry("img1.png")
    web_out.mkdir()
    write_labels(web_out / "img1_labels.png", np.full((H, W), IGNORE))
    labels, source = store.current_labels(entry, (H, W))
    assert source == "file" and (labels == 255).all()
    write_labels(web_out / "img1_labels.png", np.full((H + 1, W), 1))
    with pytest.raises(Conflict, match="cannot be used"):
        store.current_labels(entry, (H, W))


def test_the_oldest_upload_is_forgotten_everywhere(web_out, monkeypatch):
    monkeypatch.setattr(store_module, "MAX_UPLOADS", 2)
    forgotten: list[str] = []
    s = ImageStore(Settings(out_dir=web_out), on_forget=forgotten.append)
    ids = []
    for i in range(3):
        data = png_bytes(two_regions(16, 16 + i))
        entry, new = s.add_upload(f"u{i}.png", data, s.decode_upload(data))
        assert new
        s.set_labels(entry, np.zeros((16, 16 + i), np.uint8))
        ids.append(entry.id)
    assert forgotten == ids[:1] and len(s) == 2 and not s.has(ids[0])
    assert ids[0] not in s.labels


# ----------------------------------------------------------------------------- what is saved, and how


def test_the_page_is_told_what_is_not_saved(web_api, web_folder, web_out):
    url = "/api/images/img1.png"
    assert web_api.get(url).json()["unsaved"] == {"labels": False, "mask": False}
    assert sse_events(web_api.post(f"{url}/segment", json=wire(paint())).text)[-1][0] == "done"
    # segmented, not saved: held in memory only, and the info says so
    info = web_api.get(url).json()
    assert info["unsaved"] == {"labels": True, "mask": True} and not info["done"]
    assert web_api.post(f"{url}/save").status_code == 200
    assert web_api.get(url).json()["unsaved"] == {"labels": False, "mask": False}
    # new labels: the labels are unsaved again, the mask is still the saved one
    web_api.post(f"{url}/segment", json=wire(paint(b=7)))
    assert web_api.get(url).json()["unsaved"] == {"labels": True, "mask": True}
    # a restarted server has nothing in memory: what it shows is what is on disk
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST)) as c2:
        info = c2.get(url).json()
        assert info["unsaved"] == {"labels": False, "mask": False} and info["has_mask"] and info["done"]


def test_simultaneous_saves_of_one_image_write_one_request_each(web_api, web_out, monkeypatch):
    import threading
    import time

    real = ImageStore._atomic

    def slow_disk(self, name, data):  # widens the window in which two saves could interleave
        time.sleep(0.01 * (hash(name) % 3))
        return real(self, name, data)

    monkeypatch.setattr(ImageStore, "_atomic", slow_disk)
    assert sse_events(web_api.post("/api/images/img1.png/segment", json=wire(paint())).text)[-1][0] == "done"
    for _ in range(3):
        bodies = []
        for k in range(8):
            lab = np.full((H, W), 255, np.uint8)
            lab[: k + 1, :] = 0  # request k labels k+1 rows
            lab[-1, -1] = 15
            bodies.append(wire(lab))
        threads = [threading.Thread(target=web_api.post, args=("/api/images/img1.png/save",), kwargs={"json": b})
                   for b in bodies]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        meta = json.loads((web_out / "img1_meta.json").read_text())
        with Image.open(web_out / "img1_labels.png") as im:
            labelled = int((np.asarray(im) != 255).sum())
        assert meta["labelled_pixels"] == labelled


def test_files_are_synced_before_the_rename_and_leftovers_removed_at_start(web_folder, web_out, monkeypatch):
    import os

    events: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: (events.append("fsync"), real_fsync(fd))[1])
    monkeypatch.setattr(os, "replace", lambda a, b: (events.append(f"replace {Path(b).name}"), real_replace(a, b))[1])
    store = ImageStore(Settings(images_dir=web_folder, out_dir=web_out))
    entry = store.entry("img1.png")
    store.save(entry, store.load_image(entry), paint())
    replaced = [e for e in events if e.startswith("replace")]
    assert replaced == ["replace img1_labels.png", "replace img1_meta.json"]
    for name in replaced:  # each file's data is on disk before its name is
        assert events[events.index(name) - 1] == "fsync"
    monkeypatch.undo()
    # what a server killed during a save leaves behind is cleaned when the next one starts
    left = [web_out / ".img1.0123abcd.tmp.png", web_out / ".img1_meta.89abcdef.tmp.json"]
    for p in left:
        p.write_bytes(b"")
    keep = [web_out / ".notes.tmp.png", web_out / "img1_labels.png"]
    keep[0].write_bytes(b"x")
    ImageStore(Settings(images_dir=web_folder, out_dir=web_out))
    assert not any(p.exists() for p in left) and all(p.exists() for p in keep)


def test_uploads_are_spooled_not_kept_decoded(web_out):
    store = ImageStore(Settings(out_dir=web_out))
    ids = []
    for i in range(store_module.IMAGE_CACHE + 3):
        data = png_bytes(two_regions(16, 16 + i))
        entry, _ = store.add_upload(f"u{i}.png", data, store.decode_upload(data))
        ids.append(entry.id)
        assert entry.path.read_bytes() == data
    assert len(store.cache) == store_module.IMAGE_CACHE  # the rest is on disk only
    first = store.entry(ids[0])
    assert first.id not in store.cache and store.load_image(first).shape == (16, 16, 3)
    spool = first.path.parent
    store.close()
    assert not spool.exists()


def test_large_images_stay_within_the_cache_budget(web_out, monkeypatch):
    monkeypatch.setattr(store_module, "CACHE_PIXELS", 3 * 64 * 64)
    store = ImageStore(Settings(out_dir=web_out))
    for i in range(5):
        data = png_bytes(two_regions(64, 64 + i))
        store.add_upload(f"big{i}.png", data, store.decode_upload(data))
        assert sum(a.shape[0] * a.shape[1] for a in store.cache.values()) <= 3 * 64 * 68


def test_labels_and_masks_are_kept_packed(store):
    entry = store.entry("img1.png")
    lab = paint(a=0, b=2)
    store.set_labels(entry, lab)
    assert len(bytes(store.labels[entry.id].data)) < lab.size // 10  # compressed, not H*W bytes
    assert np.array_equal(store.current_labels(entry, (H, W))[0], lab)
