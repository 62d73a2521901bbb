""""Start from the previous image": the networks a server keeps after its fits, and
``POST /api/images/{id}/transfer``, which proposes another image's mask and labels."""

from __future__ import annotations

import json
from io import BytesIO

import numpy as np
import pytest
import torch
from conftest import WEB_FAST, api_client, assert_error, paint, sse_events, wire
from PIL import Image

from dipseg.web import create_app
from dipseg.web.body import decode_rle
from dipseg.web.transfer import MAX_MODELS, transferable_presets

H, W = 48, 64


def _frame(shift: int = 0, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red left part and a blue right part (the boundary ``shift`` px to the right), and its truth (0, 15)."""
    rng = np.random.default_rng(seed)
    gt = np.zeros((H, W), np.uint8)
    gt[:, W // 2 + shift :] = 15
    img = np.where(gt[..., None] == 0, np.array([200, 60, 50]), np.array([40, 70, 190])).astype(float)
    return np.clip(img + rng.normal(0, 8, img.shape), 0, 255).astype(np.uint8), gt


@pytest.fixture
def frames(tmp_path):
    """Three frames of one scene (``f0.png``..``f2.png``), the boundary moving right."""
    d = tmp_path / "frames"
    d.mkdir()
    for i in range(3):
        Image.fromarray(_frame(2 * i, seed=i)[0]).save(d / f"f{i}.png")
    return d


@pytest.fixture
def client(frames, tmp_path):
    with api_client(create_app(frames, tmp_path / "out", fit_overrides=WEB_FAST)) as c:
        yield c


def _grid() -> np.ndarray:
    """Labels of ``f0.png``: its truth every 6 px (spread clicks; the box prior of blob-like
    labels hurts a transfer on shifted synthetic copies, docs/transfer.md)."""
    lab = np.full((H, W), 255, np.uint8)
    lab[::6, ::6] = _frame(0)[1][::6, ::6]
    return lab


def _segment(client, image_id: str, lab: np.ndarray | None = None, **body) -> dict:
    evs = sse_events(client.post(f"/api/images/{image_id}/segment", json=dict(wire(paint() if lab is None else lab),
                                                                             **body)).text)
    assert evs[-1][0] == "done", evs[-1]
    return evs[-1][1]


def _transfer(client, image_id: str, source: str):
    return client.post(f"/api/images/{image_id}/transfer", json={"source": source})


def _labels(client, image_id: str) -> np.ndarray:
    return decode_rle(client.get(f"/api/images/{image_id}/labels").json(), (H, W))


def test_a_segmented_image_proposes_the_next_ones_mask_and_labels(client, tmp_path):
    assert client.get("/api/config").json()["can_transfer"] is True
    assert client.get("/api/images/f0.png").json()["has_model"] is False
    painted = _grid()
    _segment(client, "f0.png", painted)
    assert client.get("/api/images/f0.png").json()["has_model"] is True
    before = _labels(client, "f0.png")

    r = _transfer(client, "f1.png", "f0.png")
    assert r.status_code == 200, r.text
    p = r.json()
    assert (p["id"], p["source"], p["fitted_on"], p["width"], p["height"]) == ("f1.png", "f0.png", "f0.png", W, H)
    labels = decode_rle(p["labels"], (H, W))
    assert labels.shape == (H, W) and set(np.unique(labels)) <= {0, 15, 255}
    assert p["labelled"] == int((labels != 255).sum()) > 0
    gt = _frame(2)[1]
    sure = labels != 255
    assert (labels[sure] == gt[sure]).mean() > 0.9  # the confident pixels are right on this easy scene
    with Image.open(BytesIO(client.get(p["mask_url"]).content)) as im:
        mask = np.asarray(im)
    assert mask.shape == (H, W) and set(np.unique(mask)) <= {0, 15}
    assert (mask == gt).mean() > 0.8
    assert {c["id"] for c in p["classes"]} <= {0, 15} and abs(sum(c["fraction"] for c in p["classes"]) - 1) < 0.01
    meta = p["metadata"]
    assert meta["method"] == "dipseg-transfer" and meta["version"] and isinstance(meta["seed"], int)
    assert meta["config"] and meta["transfer"] == {"source_image": "f0.png", "requested_from": "f0.png"}
    assert meta["class_ids"] == [0, 15]

    # now f1's unsaved work, as after a fit; f0's labels are untouched
    info = client.get("/api/images/f1.png").json()
    assert info["proposed"] and info["has_labels"] and info["has_mask"] and info["has_model"]
    assert info["unsaved"] == {"labels": True, "mask": True}
    assert np.array_equal(_labels(client, "f1.png"), labels)
    assert np.array_equal(_labels(client, "f0.png"), before) and np.array_equal(before, painted)
    assert client.get("/api/images/f0.png").json()["proposed"] is False

    # a proposal never replaces work: not the proposal itself, not the source's
    assert "never replaces" in assert_error(_transfer(client, "f1.png", "f0.png"), 409)
    assert "never replaces" in assert_error(_transfer(client, "f0.png", "f0.png"), 409)

    # a proposed image hands its network on: f2 starts from f1, fitted on f0
    p2 = _transfer(client, "f2.png", "f1.png").json()
    assert p2["fitted_on"] == "f0.png" and p2["metadata"]["transfer"] == {"source_image": "f0.png",
                                                                         "requested_from": "f1.png"}

    # saving keeps the proposal, with its metadata
    saved = client.post("/api/images/f1.png/save", json={"labels": p["labels"]}).json()
    assert set(saved["files"]) >= {"mask", "labels", "meta"}
    meta_file = json.loads((tmp_path / "out" / "f1_meta.json").read_text())
    assert meta_file["fit"]["method"] == "dipseg-transfer" and meta_file["mask_from_these_labels"] is True
    with Image.open(tmp_path / "out" / "f1_labels.png") as im:
        assert np.array_equal(np.asarray(im), labels)

    # corrected and segmented: a normal fit from those labels, with its own network
    labels[:4, :4] = 0
    done = _segment(client, "f1.png", labels)
    assert done["warm_start"] is False and {c["id"] for c in done["classes"]} == {0, 15}
    info = client.get("/api/images/f1.png").json()
    assert info["proposed"] is False and info["has_model"] is True
    assert client.app.state.transfers.models["f1.png"].fitted_on == "f1.png"


def test_refusals(client, frames, tmp_path):
    assert "segment the previous image first" in assert_error(_transfer(client, "f1.png", "f0.png"), 409)
    assert_error(_transfer(client, "nope.png", "f0.png"), 404)
    assert_error(_transfer(client, "f1.png", "nope.png"), 404)
    for body in ({}, {"source": 3}, {"source": ""}, {"source": None}):
        assert "source" in assert_error(client.post("/api/images/f1.png/transfer", json=body), 422)
    assert_error(client.post("/api/images/f1.png/transfer", content=b"{", headers={"content-type": "application/json"}),
                 400)
    assert_error(client.get("/api/images/f1.png/transfer"), 405)

    # one class: no network to hand on, and the 409 says why
    one = np.full((H, W), 255, np.uint8)
    one[5:10, 5:10] = 4
    _segment(client, "f0.png", one)
    assert "one class" in assert_error(_transfer(client, "f1.png", "f0.png"), 409)
    # boxes: a transfer carries painted labels only
    _segment(client, "f0.png", paint(), boxes=[[15, 30, 0, 64, 48]])
    assert "boxes" in assert_error(_transfer(client, "f1.png", "f0.png"), 409)
    assert client.get("/api/images/f0.png").json()["has_model"] is False
    assert not client.get("/api/images/f1.png").json()["has_labels"]
    # a Segment that names a preset whose network never sees the image leaves none either
    _segment(client, "f0.png", _grid(), preset="slim")
    detail = assert_error(_transfer(client, "f1.png", "f0.png"), 409)
    assert "'slim'" in detail and "fast" in detail, detail
    _segment(client, "f0.png", _grid(), preset="clicks")  # one that does keeps its network
    assert client.get("/api/images/f0.png").json()["has_model"] is True

    # a server started with such a preset still offers transfers: the page's preset decides
    with api_client(create_app(frames, tmp_path / "out2", preset="slim", fit_overrides=WEB_FAST)) as c:
        assert c.get("/api/config").json()["can_transfer"] is True
        _segment(c, "f0.png", _grid())  # the server's own preset, slim: no network kept
        assert c.get("/api/images/f0.png").json()["has_model"] is False
        assert "'slim'" in assert_error(_transfer(c, "f1.png", "f0.png"), 409)
        _segment(c, "f0.png", _grid(), preset="fast")
        assert c.get("/api/images/f0.png").json()["has_model"] is True
        assert _transfer(c, "f1.png", "f0.png").status_code == 200
        assert set(transferable_presets()) >= {"fast", "lite", "clicks"} and "slim" not in transferable_presets()

    # a server none of whose presets sees the image cannot transfer: 422, naming the fix
    with api_client(create_app(frames, tmp_path / "out3", fit_overrides=dict(WEB_FAST, input="noise"))) as c:
        assert c.get("/api/config").json()["can_transfer"] is False
        detail = assert_error(_transfer(c, "f1.png", "f0.png"), 422)
        assert "'noise'" in detail and "noise+image+xy" in detail and "fast" in detail, detail
        assert _segment(c, "f0.png", _grid())  # fits go on as before
        assert c.get("/api/images/f0.png").json()["has_model"] is False


def test_the_kept_network_is_a_copy_and_warm_starts_go_on(client):
    _segment(client, "f0.png")
    kept = client.app.state.transfers.models["f0.png"].model
    weights = {k: v.clone() for k, v in kept.model.state_dict().items()}
    done = _segment(client, "f0.png")  # continues the fit's own state, not the kept copy
    assert done["warm_start"] is True
    assert all(torch.equal(v, kept.model.state_dict()[k]) for k, v in weights.items())
    assert client.app.state.transfers.models["f0.png"].model is not kept


def test_networks_are_bounded_and_forgotten_with_their_image(client):
    transfers = client.app.state.transfers
    _segment(client, "f0.png")
    client.app.state.store.on_forget("f0.png")  # what the store calls when it drops an upload
    assert not transfers.has("f0.png")
    assert client.get("/api/images/f0.png").json()["has_model"] is False
    assert MAX_MODELS >= 2


def test_large_images_are_proposed_at_the_fit_size(frames, tmp_path):
    with api_client(create_app(frames, tmp_path / "out", fit_overrides=WEB_FAST, max_fit_pixels=32 * 24)) as c:
        _segment(c, "f0.png")
        p = _transfer(c, "f1.png", "f0.png").json()
        assert (p["width"], p["height"]) == (W, H) and p["metadata"]["fit_size"] == [32, 24]
        assert decode_rle(p["labels"], (H, W)).shape == (H, W)
        with Image.open(BytesIO(c.get(p["mask_url"]).content)) as im:
            assert im.size == (W, H)


def test_openapi_documents_the_transfer(client):
    spec = client.get("/api/openapi.json").json()
    post = spec["paths"]["/api/images/{image_id}/transfer"]["post"]
    ref = "#/components/schemas/"
    assert post["requestBody"]["content"]["application/json"]["schema"] == {"$ref": ref + "TransferRequest"}
    assert post["responses"]["200"]["content"]["application/json"]["schema"] == {"$ref": ref + "Proposal"}
    assert {"409", "422", "404"} <= set(post["responses"])
    assert "TransferRequest" in spec["components"]["schemas"]


def test_metadata_is_plain_json_and_tiny_images_are_refused(frames, tmp_path):
    from dipseg.web.transfer import _finite_json

    assert _finite_json({"losses": {"total": float("nan"), "ce": 0.5}, "x": [float("inf"), 1]}) == \
        {"losses": {"total": None, "ce": 0.5}, "x": [None, 1]}
    Image.fromarray(np.zeros((1, 1, 3), np.uint8)).save(frames / "tiny.png")  # a folder takes what it finds
    with api_client(create_app(frames, tmp_path / "out", fit_overrides=WEB_FAST)) as c:
        _segment(c, "f0.png", _grid())
        assert "2x2" in assert_error(_transfer(c, "tiny.png", "f0.png"), 422)
