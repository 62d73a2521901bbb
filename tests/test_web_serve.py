"""``dipseg serve`` (:mod:`dipseg.cli.serve`): argument checks, the printed URL, the Host guard."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
from conftest import iter_sse_events, paint, two_regions, wire
from typer.testing import CliRunner

from dipseg.cli import app as cli_app

runner = CliRunner()


def test_serve_rejects_bad_arguments(tmp_path, web_folder):
    folder = web_folder
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
            ["--images", folder, "--boxes", tmp_path / "no-boxes.json", *o],
            ["--images", folder, "--boxes", one, *o],
            ["--images", folder, "--tight-boxes", *o],
            ["--boxes", tmp_path, *o],
        ]
        for args in cases:
            r = runner.invoke(cli_app, ["serve", *map(str, args)])
            assert r.exit_code == 2, (args, r.output)
            assert r.stderr.count("\n") == 1 and "error" in r.stderr, (args, r.stderr)
    finally:
        busy.close()


def test_serve_prints_its_url_and_serves(tmp_path, web_folder):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "dipseg.cli", "serve", "--images", str(web_folder), "--out", str(tmp_path / "o"),
         "--port", "0", "--iterations", "5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            assert line, proc.stderr.read()
            if "2 images in" in line:
                assert str(tmp_path / "o") in line
            if "http://" in line:
                url = line[line.index("http://"):].split()[0]
        assert url and url.startswith("http://127.0.0.1:")
        assert httpx.get(url + "api/health", timeout=10).json()["status"] == "ok"
        assert httpx.get(url + "api/health", headers={"host": "evil.example"}, timeout=10).status_code == 400
        assert httpx.get(url + "api/config", timeout=10).json()["iterations"] == 5
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        finally:
            proc.stdout.close()
            proc.stderr.close()


def _start(args: list[str]):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dipseg.cli", "serve", "--port", "0", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        assert line, proc.stderr.read()
        if "http://" in line:
            return proc, line[line.index("http://"):].split()[0]
    proc.kill()
    raise AssertionError("no URL printed")


def test_beyond_localhost_a_token_is_required(tmp_path, web_folder):
    proc, url = _start(["--images", web_folder, "--out", tmp_path / "o", "--host", "0.0.0.0"])
    try:
        assert "?token=" in url
        token = url.split("?token=")[1]
        port = url.split(":")[2].split("/")[0]
        local = f"http://127.0.0.1:{port}"
        assert httpx.get(local + "/api/health", timeout=10).status_code == 401
        assert httpx.get(local + "/", timeout=10).status_code == 401
        assert httpx.get(local + "/api/health", headers={"authorization": f"Bearer {token}"}, timeout=10).status_code == 200
        with httpx.Client(timeout=10) as browser:  # opening the printed URL logs in with a cookie
            assert browser.get(f"{local}/?token={token}", follow_redirects=True).status_code == 200
            assert browser.get(local + "/api/images").json()["total"] == 2
    finally:
        proc.terminate()
        proc.wait(15)
        proc.stdout.close()
        proc.stderr.close()


def test_ctrl_c_during_a_fit_ends_the_stream_and_exits_quietly(tmp_path):
    import signal

    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(two_regions()).save(images / "a.png")
    proc, url = _start(["--images", images, "--out", tmp_path / "o", "--iterations", "100000", "--working-size", "48"])
    try:
        token = httpx.get(url + "api/config", timeout=10).json()["token"]
        events = []
        with httpx.stream("POST", url + "api/images/a.png/segment", json=wire(paint()),
                          headers={"x-dipseg-token": token}, timeout=30) as resp:
            it = iter_sse_events(resp)
            next(d for e, d in it if e == "progress")
            proc.send_signal(signal.SIGINT)
            events = [e for e, _ in it]
        # the fit was cancelled, so its stream ended with "done" before uvicorn's graceful limit cut it
        assert events and events[-1] == "done", events
        assert proc.wait(15) == 0
        err = proc.stderr.read()
        assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        proc.stdout.close()
        proc.stderr.close()
