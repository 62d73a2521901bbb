"""``dipseg serve`` (:mod:`dipseg.cli.serve`): argument checks, the printed URL, the Host guard."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
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
