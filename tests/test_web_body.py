"""The wire formats: run-length labels, data URLs and Server-Sent Events."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from conftest import paint, sse_events

from dipseg.io import InputError
from dipseg.web.body import data_url, decode_data_url, decode_rle, encode_rle, sse


def test_rle_round_trip():
    lab = paint()
    rle = encode_rle(lab)
    assert rle[0] == 255 and sum(rle[1::2]) == lab.size
    assert np.array_equal(decode_rle({"width": lab.shape[1], "height": lab.shape[0], "rle": rle}, lab.shape), lab)
    assert encode_rle(np.zeros((0, 3), np.uint8)) == []
    assert encode_rle(np.array([[1, 1], [1, 2]], np.uint8)) == [1, 3, 2, 1]


@pytest.mark.parametrize("value, message", [
    ({"width": 2, "height": 2, "rle": [0, 3]}, "cover"),
    ({"width": 2, "height": 3, "rle": [0, 4]}, "image is 2x2"),
    ({"width": 2.0, "height": 2, "rle": [0, 4]}, "integers"),
    ({"width": 2, "height": 2, "rle": [0, 0, 1, 4]}, "run lengths"),
    ({"width": 2, "height": 2, "rle": [False, 4]}, "integers"),
    ({"width": 2, "height": 2, "rle": [256, 4]}, "0..255"),
    ({"width": 2, "height": 2, "rle": [0, 2**70]}, "integers"),
    ({"width": 2, "height": 2, "rle": "0,4"}, "flat list"),
])
def test_rle_refusals(value, message):
    with pytest.raises(InputError, match=message):
        decode_rle(value, (2, 2))


def test_data_urls():
    assert decode_data_url(data_url(b"\x89PNG..")) == b"\x89PNG.."
    assert decode_data_url(base64.b64encode(b"abc").decode()) == b"abc"
    with pytest.raises(InputError, match="base64-encoded"):
        decode_data_url("data:image/png,plain")
    with pytest.raises(InputError, match="not valid base64"):
        decode_data_url("@@@")


def test_sse_format():
    block = sse("done", {"a": [1, 2], "b": None})
    assert block == b'event: done\ndata: {"a":[1,2],"b":null}\n\n'
    assert sse_events(block.decode() + sse("x", {}).decode()) == [("done", json.loads('{"a":[1,2],"b":null}')), ("x", {})]
