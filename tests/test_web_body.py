"""The wire formats: run-length labels, data URLs and Server-Sent Events."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from conftest import LiveServer, api_client, assert_error, paint, png_bytes, sse_events, token_headers, two_regions, wire

from dipseg.io import InputError
from dipseg.web import create_app
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


# ----------------------------------------------------------------------------- bodies on a live server: stalls, budget, event loop, aborts


def _raw(url: str, head: bytes, body: bytes, wait: float = 10.0) -> bytes:
    """Send ``head`` and ``body`` over a raw socket, then read what the server answers within ``wait``."""
    import socket
    from urllib.parse import urlsplit

    u = urlsplit(url)
    with socket.create_connection((u.hostname, u.port), timeout=wait) as s:
        s.sendall(head + body)
        got = b""
        try:
            while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < _length(got):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
        except socket.timeout:
            pass
        return got


def _length(answer: bytes) -> int:
    for line in answer.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":", 1)[1])
    return 0


def test_a_stalled_body_is_answered_408(web_folder, web_out):
    app = create_app(web_folder, web_out, body_timeout=0.5)
    with LiveServer(app) as server:
        head = (f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                f"Content-Length: 1000\r\nX-Dipseg-Token: {app.state.settings.token}\r\n\r\n").encode()
        answer = _raw(server.url, head, b"\x89PNG" + b"\0" * 20)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b"stalled" in answer


def test_requests_share_a_bounded_body_budget(web_folder, web_out):
    app = create_app(web_folder, web_out, body_budget_bytes=50_000)
    with api_client(app) as c:
        r = c.post("/api/upload", content=b"\x89PNG" + b"\0" * 60_000, headers={"content-type": "image/png"})
        assert "too much at once" in assert_error(r, 429) and r.headers["retry-after"] == "1"
        assert app.state.bodies.held == 0  # given back
        ok = c.post("/api/upload", content=png_bytes(two_regions()), headers={"content-type": "image/png"})
        assert ok.status_code == 201 and app.state.bodies.held == 0


def test_json_is_parsed_off_the_event_loop(web_folder, web_out, monkeypatch):
    import threading

    import httpx

    import dipseg.web.body as body_module

    entered, release = threading.Event(), threading.Event()
    real = body_module.parse_json_object

    def slow_parse(data):
        entered.set()
        release.wait(20)
        return real(data)

    monkeypatch.setattr(body_module, "parse_json_object", slow_parse)
    app = create_app(web_folder, web_out)
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=20, headers=token_headers(app)) as http:
        saving = threading.Thread(target=http.post, args=("/api/images/img1.png/save",), kwargs={"json": wire(paint())})
        saving.start()
        try:
            assert entered.wait(20)
            # the loop answers while the body is being parsed
            assert httpx.get(server.url + "/api/health", timeout=2).json()["status"] == "ok"
        finally:
            release.set()
            saving.join(20)


def test_an_aborted_upload_logs_one_quiet_line(web_folder, web_out, caplog):
    import logging
    import socket
    from urllib.parse import urlsplit

    app = create_app(web_folder, web_out)
    with LiveServer(app) as server, caplog.at_level(logging.INFO):
        u = urlsplit(server.url)
        with socket.create_connection((u.hostname, u.port), timeout=10) as s:
            s.sendall((f"POST /api/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
                       f"Content-Length: 100000\r\nX-Dipseg-Token: {app.state.settings.token}\r\n\r\n").encode()
                      + b"\x89PNG" + b"\0" * 1000)
        # the client is gone; give the server a moment to notice
        import time

        deadline = time.monotonic() + 10
        while not any("went away" in r.getMessage() for r in caplog.records):
            assert time.monotonic() < deadline, [r.getMessage() for r in caplog.records]
            time.sleep(0.05)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], [r.getMessage() for r in caplog.records]
    assert not any(r.exc_info for r in caplog.records)
