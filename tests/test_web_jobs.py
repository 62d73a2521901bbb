"""The fit queue: streamed fits, crashes, workers, thin images, and, on a live server, cancel,
a full queue and a client that goes away."""

from __future__ import annotations

import json
import threading
import time
from io import BytesIO

import httpx
import numpy as np
import pytest
from conftest import (
    WEB_FAST,
    WEB_H,
    WEB_W,
    LiveServer,
    assert_error,
    api_client,
    iter_sse_events,
    paint,
    png_bytes,
    sse_events,
    token_headers,
    two_regions,
    wire,
)
from PIL import Image

import dipseg.web.jobs as jobs_module
from dipseg.web import create_app

H, W = WEB_H, WEB_W


def test_one_class_fills_the_image_and_nothing_painted_is_refused(web_api):
    client = web_api
    lab = np.full((H, W), 255, np.uint8)
    assert "no pixel is labelled" in assert_error(client.post("/api/images/img1.png/segment", json=wire(lab)), 422)
    lab[5:10, 5:10] = 4
    done = dict(sse_events(client.post("/api/images/img1.png/segment", json=wire(lab)).text))["done"]
    assert done["message"] and [c["id"] for c in done["classes"]] == [4]


def test_thin_images_are_fitted(web_api):
    # the library stretches what is too thin for the network, so the server refuses nothing >= 2x2
    for h, w in ((4, 64), (64, 3)):
        r = web_api.post("/api/upload", content=png_bytes(two_regions(h, w)), headers={"content-type": "image/png"})
        assert r.status_code == 201, r.text
        lab = np.full((h, w), 255, np.uint8)
        lab[:, 0], lab[:, -1] = 0, 15
        lab[0, :], lab[-1, :] = 0, 15
        done = dict(sse_events(web_api.post(f"/api/images/{r.json()['id']}/segment", json=wire(lab)).text))["done"]
        assert (done["width"], done["height"]) == (w, h) and {c["id"] for c in done["classes"]} <= {0, 15}


def test_crash_in_a_fit_is_reported_and_the_server_keeps_serving(web_api, monkeypatch):
    client = web_api
    real = jobs_module.segment

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash inside the fit")

    monkeypatch.setattr(jobs_module, "segment", boom)
    evs = sse_events(client.post("/api/images/img1.png/segment", json=wire(paint())).text)
    assert evs[-1][0] == "error" and "simulated crash" in evs[-1][1]["detail"]
    assert client.get("/api/health").json() == {"status": "ok", "version": client.get("/api/config").json()["version"],
                                                "running": 0, "queued": 0}
    monkeypatch.setattr(jobs_module, "segment", real)
    assert sse_events(client.post("/api/images/img1.png/segment", json=wire(paint())).text)[-1][0] == "done"


def test_warm_start_only_with_the_same_classes(web_api, monkeypatch):
    client = web_api
    seen = []
    real = jobs_module.segment

    def spy(*args, **kwargs):
        seen.append(kwargs["warm_start"] is not None)
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "segment", spy)
    url = "/api/images/img1.png/segment"
    for lab, warm in ((paint(), True), (paint(), True), (paint(b=7), True), (paint(b=7), False)):
        start = dict(sse_events(client.post(url, json=dict(wire(lab), warm_start=warm)).text))["start"]
        assert start["warm_start"] == seen[-1]
    assert seen == [False, True, False, False]


def test_tight_boxes_reach_the_fit(web_api, monkeypatch):
    seen = []
    real = jobs_module.segment

    def spy(*args, **kwargs):
        seen.append(kwargs["tight_boxes"])
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "segment", spy)
    url = "/api/images/img1.png/segment"
    box = [[15, 2, 2, 30, 30]]
    for tight in (True, False):
        evs = sse_events(web_api.post(url, json={"boxes": box, "tight_boxes": tight}).text)
        assert evs[-1][0] == "done", evs[-1]
    assert sse_events(web_api.post(url, json={"boxes": box}).text)[-1][0] == "done"
    assert seen == [True, False, False]


def test_a_segment_may_name_its_preset_and_warm_starts_follow_the_network(web_api, monkeypatch):
    seen = []
    real = jobs_module.segment

    def spy(*args, **kwargs):
        seen.append((kwargs["preset"], kwargs["warm_start"] is not None))
        return real(*args, **kwargs)

    monkeypatch.setattr(jobs_module, "segment", spy)
    url = "/api/images/img1.png/segment"
    server = web_api.get("/api/config").json()["preset"]
    starts = []
    for preset in (None, "clicks", "clicks", None):
        body = wire(paint()) if preset is None else dict(wire(paint()), preset=preset)
        evs = dict(sse_events(web_api.post(url, json=body).text))
        starts.append(evs["start"]["preset"])
        assert "done" in evs
    assert starts == [server, "clicks", "clicks", server]
    # the same labels: `clicks` has the default's network and input, so its fits go on warm
    assert seen == [(server, False), ("clicks", True), ("clicks", True), (server, True)]
    # `lite` has narrower layers: a fit with it starts afresh, and so does the next default one
    seen.clear()
    for preset in ("lite", None):
        body = wire(paint()) if preset is None else dict(wire(paint()), preset=preset)
        assert sse_events(web_api.post(url, json=body).text)[-1][0] == "done"
    assert seen == [("lite", False), (server, False)]


@pytest.mark.parametrize("preset", ["no-such-preset", 3, ["clicks"]])
def test_an_unknown_preset_is_refused_before_any_fit(web_api, monkeypatch, preset):
    monkeypatch.setattr(jobs_module, "segment", lambda *a, **k: pytest.fail("no fit for a bad preset"))
    r = web_api.post("/api/images/img1.png/segment", json=dict(wire(paint()), preset=preset))
    assert "unknown preset" in assert_error(r, 422) and "clicks" in r.json()["detail"]


def test_clicks_get_the_click_preset_and_the_protocol_frame(web_api, web_out, monkeypatch):
    """Labels sent as clicks are fitted as the click protocol's robot sees them: the border
    frame seeds the background until a background pixel is labelled, and a Segment that
    names no preset uses the click preset; the image keeps the labels as clicked."""
    from dipseg.clicks import CLICK_RADIUS, FRAME_WIDTH
    from dipseg.labels import IGNORE
    from dipseg.web.body import decode_rle

    seen = []
    real = jobs_module.segment

    def spy(image, labels, *args, **kwargs):
        seen.append((kwargs["preset"], labels.copy()))
        return real(image, labels, *args, **kwargs)

    monkeypatch.setattr(jobs_module, "segment", spy)
    cfg = web_api.get("/api/config").json()
    assert (cfg["click_preset"], cfg["click_radius"], cfg["click_frame"]) == ("clicks", CLICK_RADIUS, FRAME_WIDTH)
    url = "/api/images/img1.png/segment"
    lab = np.full((H, W), 255, np.uint8)
    lab[20:25, 40:45] = 15  # one positive click: a single class of its own
    evs = dict(sse_events(web_api.post(url, json=dict(wire(lab), clicks=True)).text))
    assert evs["start"]["preset"] == "clicks" and {c["id"] for c in evs["done"]["classes"]} == {0, 15}
    fitted = seen[-1][1]
    frame = np.zeros((H, W), bool)
    frame[:FRAME_WIDTH] = frame[-FRAME_WIDTH:] = frame[:, :FRAME_WIDTH] = frame[:, -FRAME_WIDTH:] = True
    assert (fitted[frame] == 0).all() and (fitted[20:25, 40:45] == 15).all()
    assert (fitted[~frame & (lab == 255)] == IGNORE).all()
    stored = decode_rle(web_api.get("/api/images/img1.png/labels").json(), (H, W))
    np.testing.assert_array_equal(stored, lab)  # the frame is the fit's, not the annotator's
    assert web_api.post("/api/images/img1.png/save", json={}).status_code == 200
    saved = json.loads((web_out / "img1_meta.json").read_text())
    assert saved["fit"]["clicks"] is True and saved["fit"]["preset"] == "clicks"

    # a background click replaces the frame; a named preset wins over the click preset
    lab[2:7, 2:7] = 0
    evs = dict(sse_events(web_api.post(url, json=dict(wire(lab), clicks=True, preset="fast")).text))
    assert evs["start"]["preset"] == "fast" and "done" in evs
    np.testing.assert_array_equal(seen[-1][1] == IGNORE, lab == 255)
    # not clicks: the server's preset, no frame, one class fills the image
    one = np.full((H, W), 255, np.uint8)
    one[20:25, 40:45] = 15
    evs = dict(sse_events(web_api.post(url, json=wire(one)).text))
    assert evs["start"]["preset"] == cfg["preset"] and [c["id"] for c in evs["done"]["classes"]] == [15]


def test_labels_say_whether_they_are_a_fits_clicks_after_a_reload(web_folder, web_out):
    """The page's *auto* preset keeps clicks as clicks on reopening an image: the labels
    endpoint says so while the labels are exactly those of a fit of clicks, from memory and,
    after a restart, from the saved metadata."""
    lab = np.full((H, W), 255, np.uint8)
    lab[20:25, 40:45] = 15
    url = "/api/images/img1.png"
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST)) as c:
        assert "done" in dict(sse_events(c.post(f"{url}/segment", json=dict(wire(lab), clicks=True)).text))
        got = c.get(f"{url}/labels").json()
        assert (got["source"], got["clicks"]) == ("memory", True)
        assert c.post(f"{url}/save", json={}).status_code == 200
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST)) as c:
        got = c.get(f"{url}/labels").json()
        assert (got["source"], got["clicks"]) == ("file", True)
        # a stroke after the fit: no longer the fit's clicks, in memory or once saved
        lab[30:34, 10:30] = 0
        assert c.post(f"{url}/save", json=wire(lab)).status_code == 200
        assert c.get(f"{url}/labels").json()["clicks"] is False
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST)) as c:
        assert c.get(f"{url}/labels").json()["clicks"] is False
        assert "done" in dict(sse_events(c.post(f"{url}/segment", json=wire(lab)).text))
        assert c.get(f"{url}/labels").json()["clicks"] is False  # fitted, but not as clicks


@pytest.mark.parametrize("clicks", ["yes", 1, None])
def test_clicks_must_be_true_or_false(web_api, monkeypatch, clicks):
    monkeypatch.setattr(jobs_module, "segment", lambda *a, **k: pytest.fail("no fit for a bad body"))
    r = web_api.post("/api/images/img1.png/segment", json=dict(wire(paint()), clicks=clicks))
    assert "clicks must be true or false" in assert_error(r, 422)


def test_two_workers_fit_with_one_thread_each(web_folder, web_out):
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST, workers=2, queue_size=1)) as c:
        assert c.get("/api/jobs").json() == {"jobs": [], "capacity": 3, "workers": 2}
        assert c.app.state.jobs.threads == 1
        assert sse_events(c.post("/api/images/img2.jpg/segment", json=wire(paint())).text)[-1][0] == "done"


# ----------------------------------------------------------------------------- live server: cancel, queue, disconnect


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    d = tmp_path_factory.mktemp("live")
    (d / "images").mkdir()
    Image.fromarray(two_regions()).save(d / "images" / "a.png")
    app = create_app(d / "images", d / "out", fit_overrides={"iterations": 100000, "working_size": 48},
                     queue_size=0, workers=1, heartbeat=0.2)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30, headers=token_headers(app)) as http:
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
        it = iter_sse_events(resp)
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
        it = iter_sse_events(resp)
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
                    next(d for e, d in iter_sse_events(r) if e == "progress")
        except httpx.HTTPError as exc:  # pragma: no cover - reported below
            results.append(repr(exc))

    threads = [threading.Thread(target=hit) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results).count(200) >= 1 and set(results) <= {200, 429}, results
    _wait_idle(live)


def test_clients_that_left_the_queue_give_their_places_back(tmp_path):
    d = tmp_path / "images"
    d.mkdir()
    Image.fromarray(two_regions()).save(d / "a.png")
    app = create_app(d, tmp_path / "out", fit_overrides={"iterations": 100000, "working_size": 48},
                     queue_size=2, workers=1, heartbeat=0.2)
    url = "/api/images/a.png/segment"
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30, headers=token_headers(app)) as http:
        with http.stream("POST", url, json=wire(paint())) as running:
            it = iter_sse_events(running)
            next(d for e, d in it if e == "progress")
            for _ in range(2):  # two clients queue, then close their tabs
                with http.stream("POST", url, json=wire(paint())) as waiting:
                    assert next(iter_sse_events(waiting))[0] == "queued"
            deadline = time.monotonic() + 10
            while len(http.get("/api/jobs").json()["jobs"]) > 1:
                assert time.monotonic() < deadline, http.get("/api/jobs").json()
                time.sleep(0.05)
            # nobody waits, so the next Segment is queued, not refused
            with http.stream("POST", url, json=wire(paint())) as third:
                assert third.status_code == 200
                events = iter_sse_events(third)  # kept: dropping the iterator closes the stream
                job = next(d for e, d in events if e == "queued")["job"]
                # a waiting fit cancelled through the API ends its stream at once
                cancelled = http.post(f"/api/jobs/{job}/cancel")
                assert cancelled.status_code == 200 and cancelled.json().get("state") == "finished", cancelled.text
                done = next(d for e, d in events if e == "done")
                assert done["stopped"] == "cancelled" and done["iterations"] == 0
        _wait_idle(http)


def test_cancel_reaches_the_full_resolution_stage(web_folder, web_out, monkeypatch):
    import dipseg.dip.refine as refine

    inside, release = threading.Event(), threading.Event()
    guided: list[int] = []
    real_solve, real_guided = refine.RandomWalk.solve, refine.GuidedFilter.__call__

    def slow_solve(*args, **kwargs):  # the refinement of a large image takes seconds
        inside.set()
        release.wait(20)
        return real_solve(*args, **kwargs)

    monkeypatch.setattr(refine.RandomWalk, "solve", slow_solve)
    monkeypatch.setattr(refine.GuidedFilter, "__call__", lambda *a, **k: (guided.append(1), real_guided(*a, **k))[1])
    # refine_size below the image size: random walk at 32 px, then the guided filter at full size
    app = create_app(web_folder, web_out, fit_overrides={"iterations": 3, "working_size": 32, "refine_size": 32,
                                                       "quick_preview": False})  # only the final stage walks
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=30, headers=token_headers(app)) as http:
        with http.stream("POST", "/api/images/img1.png/segment", json=wire(paint())) as resp:
            it = iter_sse_events(resp)
            job = next(d for e, d in it if e == "queued")["job"]
            assert inside.wait(20)  # all steps done, refining
            assert http.post(f"/api/jobs/{job}/cancel").status_code == 200
            release.set()
            done = next(d for e, d in it if e in ("done", "error"))
        assert done["stopped"] == "cancelled" and done["mask_url"] and not guided
        with Image.open(BytesIO(http.get(done["mask_url"]).content)) as im:
            assert im.size == (W, H)


def test_large_images_are_fitted_at_a_capped_size(web_folder, web_out, monkeypatch):
    seen = []
    real = jobs_module.segment

    def spy(image, labels, *args, **kwargs):
        seen.append((image.shape, labels.shape, int((labels >= 0).sum())))
        return real(image, labels, *args, **kwargs)

    monkeypatch.setattr(jobs_module, "segment", spy)
    lab = paint()
    with api_client(create_app(web_folder, web_out, fit_overrides=WEB_FAST, max_fit_pixels=24 * 32)) as c:
        evs = dict(sse_events(c.post("/api/images/img1.png/segment", json=wire(lab)).text))
        with Image.open(BytesIO(c.get(evs["done"]["mask_url"]).content)) as im:
            mask = np.asarray(im)
    assert seen[0][0] == (24, 32, 3) and seen[0][1] == (24, 32) and seen[0][2] > 0
    assert (evs["start"]["fit_width"], evs["start"]["fit_height"]) == (32, 24)
    assert (evs["done"]["width"], evs["done"]["height"]) == (W, H)  # the mask is the image's size
    assert mask.shape == (H, W) and (mask[lab != 255] == lab[lab != 255]).all()  # painted pixels as painted


def test_next_label_hint_scales_the_suggestion_to_the_full_image():
    from dipseg.labels import IGNORE
    from dipseg.web.jobs import next_label_hint

    p = np.zeros((20, 30), np.float32)
    p[:, 15:] = 1.0
    p[4:11, 20:27] = 0.5  # the fit cannot decide here
    probs = np.stack([1 - p, p], -1)
    hint = next_label_hint(probs, np.full((20, 30), IGNORE), (40, 60))  # the fit ran at half size
    assert hint["suggestion"] == {"x": 47, "y": 15}
    assert hint["uncertainty"].startswith("data:image/png;base64,")
    assert next_label_hint(None, np.full((20, 30), IGNORE), (40, 60)) == {}
