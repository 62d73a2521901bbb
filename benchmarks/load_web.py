"""Load test of ``dipseg serve`` on loopback: many clients uploading and segmenting, and the memory probes.

Starts ``dipseg serve`` in a subprocess on 127.0.0.1 (a free port, upload mode, a temporary
``--out``), then runs, each bounded in count and time:

* ``clients``: N clients at once, each uploading its own image and segmenting it (a busy
  server's 429 is honoured: the client waits ``Retry-After`` and tries again, at most
  ``--retries`` times). Reports the status counts, latency percentiles of uploads and of
  whole fits (request to ``done``), and the server's resident memory.
* ``large-uploads``: N distinct 4096x4096 palette PNGs (~16 KB each) uploaded one after the other.
* ``large-fit``: one fit on a 4096x4096 photo-like image (fitted at ``--max-fit-pixels``).
* ``big-bodies``: N concurrent JSON bodies of ``--body-mb`` MiB while ``/api/health`` is polled.

The server's peak resident memory is its ``VmHWM`` (Linux), read at the end of each probe,
which runs against a fresh server. Numbers in docs/web.md come from::

    OMP_NUM_THREADS=1 python benchmarks/load_web.py --clients 50 --json bench-web.json

Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from io import BytesIO
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from dipseg.palette import encode_palette_png
from dipseg.web.body import encode_rle


def mib(kb: int) -> float:
    return round(kb / 1024, 1)


def proc_memory(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` (peak) of a process, in kB (Linux)."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    return out


class Server:
    """``dipseg serve`` in a subprocess on a free loopback port."""

    def __init__(self, args: list[str]):
        self.out = tempfile.mkdtemp(prefix="dipseg-load-")
        env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dipseg.cli", "serve", "--host", "127.0.0.1", "--port", "0", "--out", self.out, *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"dipseg serve exited: {self.proc.stderr.read()}")
            if "http://" in line:
                self.url = line[line.index("http://"):].split()[0].rstrip("/")
                break
        else:
            raise RuntimeError("dipseg serve printed no URL")
        self.token = httpx.get(self.url + "/api/config", timeout=30).json()["token"]
        self.headers = {"X-Dipseg-Token": self.token}

    def memory(self) -> dict[str, float]:
        m = proc_memory(self.proc.pid)
        return {"rss_mib": mib(m["VmRSS"]), "peak_rss_mib": mib(m["VmHWM"])}

    def stop(self) -> str:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return err


def percentiles(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"n": 0, "p50": None, "p90": None, "p99": None, "max": None}
    a = np.asarray(values)
    return {"n": len(values), "p50": round(float(np.percentile(a, 50)), 3), "p90": round(float(np.percentile(a, 90)), 3),
            "p99": round(float(np.percentile(a, 99)), 3), "max": round(float(a.max()), 3)}


def photo(h: int, w: int, seed: int) -> np.ndarray:
    """Two textured regions (left / right), different per seed, so uploads are distinct."""
    rng = np.random.default_rng(seed)
    img = np.zeros((h, w, 3), np.float32)
    img[:, : w // 2] = rng.uniform(120, 220, 3)
    img[:, w // 2:] = rng.uniform(20, 110, 3)
    img += rng.normal(0, 10, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def png(array: np.ndarray, **kw) -> bytes:
    buf = BytesIO()
    Image.fromarray(array).save(buf, format="PNG", **kw)
    return buf.getvalue()


def two_blobs(h: int, w: int) -> dict:
    lab = np.full((h, w), 255, np.uint8)
    lab[h // 4: 3 * h // 4, w // 8: w // 4] = 0
    lab[h // 4: 3 * h // 4, 3 * w // 4: 7 * w // 8] = 15
    return {"labels": {"width": w, "height": h, "rle": encode_rle(lab)}}


def segment(http: httpx.Client, image_id: str, body: dict, retries: int, deadline: float, statuses: list) -> dict:
    """One fit to its end, waiting out at most ``retries`` 429s before ``deadline``; the last event's data."""
    for _ in range(retries + 1):
        with http.stream("POST", f"/api/images/{image_id}/segment", json=body) as r:
            statuses.append(r.status_code)
            if r.status_code == 429:
                r.read()
                time.sleep(float(r.headers.get("retry-after", "2")))
                if time.monotonic() > deadline:
                    break
                continue
            if r.status_code != 200:
                return {"error": r.read().decode()[:200]}
            last, event = {}, None
            for line in r.iter_lines():
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:") and event in ("done", "error"):
                    last = dict(json.loads(line[5:]), event=event)
            return last
    return {"error": "still busy"}


def probe_clients(args) -> dict:
    server = Server(["--queue", str(args.queue), "--workers", str(args.workers),
                     *(["--iterations", str(args.iterations)] if args.iterations else [])])
    statuses: list[int] = []
    uploads: list[float] = []
    fits: list[float] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()
    deadline = time.monotonic() + args.deadline
    rss_samples: list[float] = []
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            rss_samples.append(server.memory()["rss_mib"])
            time.sleep(0.5)

    def client(i: int) -> None:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=args.deadline) as http:
            t0 = time.monotonic()
            r = http.post("/api/upload", files={"file": (f"client{i}.png", png(photo(args.size[0], args.size[1], i)),
                                                         "image/png")})
            with lock:
                statuses.append(r.status_code)
                uploads.append(time.monotonic() - t0)
            if r.status_code not in (200, 201):
                with lock:
                    outcomes["upload refused"] = outcomes.get("upload refused", 0) + 1
                return
            t1 = time.monotonic()
            local: list[int] = []
            end = segment(http, r.json()["id"], two_blobs(*args.size), args.retries, deadline, local)
            with lock:
                statuses.extend(local)
                key = end.get("stopped") or end.get("event") or "error"
                outcomes[key] = outcomes.get(key, 0) + 1
                if end.get("event") == "done":
                    fits.append(time.monotonic() - t1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(client, range(args.clients)))
    wall = time.monotonic() - t
    sampling.set()
    sampler.join(5)
    memory = server.memory()
    err = server.stop()
    counts: dict[str, int] = {}
    for s in statuses:
        counts[str(s)] = counts.get(str(s), 0) + 1
    return {"probe": "clients", "clients": args.clients, "image": f"{args.size[1]}x{args.size[0]}",
            "workers": args.workers, "queue": args.queue, "iterations": args.iterations or "preset",
            "wall_s": round(wall, 1), "status_counts": counts, "fit_outcomes": outcomes,
            "upload_latency_s": percentiles(uploads), "fit_latency_s": percentiles(fits),
            "server_rss_max_sampled_mib": max(rss_samples, default=None), **memory,
            "tracebacks_in_log": err.count("Traceback")}


def probe_large_uploads(args) -> dict:
    server = Server([])
    before = server.memory()
    codes = []
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as http:
        for i in range(args.large_uploads):
            index = np.zeros((4096, 4096), np.uint8)
            index[: 1 + i, :] = 1  # distinct bytes, so every upload is a new image
            data = encode_palette_png(index)
            codes.append(http.post("/api/upload", content=data, headers={"content-type": "image/png"},
                                   params={"name": f"big{i}.png"}).status_code)
    after = server.memory()
    server.stop()
    return {"probe": "large-uploads", "uploads": args.large_uploads, "bytes_each": len(data),
            "status_counts": {str(c): codes.count(c) for c in set(codes)},
            "rss_before_mib": before["rss_mib"], **after}


def probe_large_fit(args) -> dict:
    server = Server(["--iterations", str(args.iterations or 100)])
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=args.deadline) as http:
        buf = BytesIO()
        Image.fromarray(photo(4096, 4096, 0)).save(buf, format="JPEG", quality=90)
        data = buf.getvalue()
        r = http.post("/api/upload", content=data, headers={"content-type": "image/jpeg"}, params={"name": "huge.jpg"})
        r.raise_for_status()
        before = server.memory()
        t0 = time.monotonic()
        end = segment(http, r.json()["id"], two_blobs(4096, 4096), 0, time.monotonic() + args.deadline, [])
        took = time.monotonic() - t0
    memory = server.memory()
    server.stop()
    return {"probe": "large-fit", "image": "4096x4096", "upload_bytes": len(data), "outcome": end.get("stopped"),
            "fit_s": round(took, 1), "rss_before_fit_mib": before["rss_mib"], **memory}


def probe_big_bodies(args) -> dict:
    server = Server([])
    body = b'{"labels": {"width": 1, "height": 1, "rle": [' + b"0, 1, " * (args.body_mb * 1024 * 1024 // 6) + b"0, 1]}}"
    health: list[float] = []
    codes: list[int] = []
    stop = threading.Event()

    def poll():
        with httpx.Client(timeout=60) as http:
            while not stop.is_set():
                t = time.monotonic()
                http.get(server.url + "/api/health")
                health.append(time.monotonic() - t)
                time.sleep(0.05)

    with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as http:
        http.post("/api/upload", content=png(photo(64, 64, 1)), headers={"content-type": "image/png"},
                  params={"name": "small.png"})
        image_id = http.get("/api/images").json()["images"][0]["id"]
        poller = threading.Thread(target=poll, daemon=True)
        poller.start()

        def send(_):
            r = http.post(f"/api/images/{image_id}/segment", content=body, headers={"content-type": "application/json"})
            codes.append(r.status_code)

        with ThreadPoolExecutor(args.big_bodies) as pool:
            list(pool.map(send, range(args.big_bodies)))
        stop.set()
        poller.join(10)
    memory = server.memory()
    server.stop()
    return {"probe": "big-bodies", "bodies": args.big_bodies, "mib_each": round(len(body) / 2**20, 1),
            "status_counts": {str(c): codes.count(c) for c in set(codes)},
            "health_latency_s": percentiles(health), **memory}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clients", type=int, default=50, help="clients of the clients probe (at most 200)")
    p.add_argument("--size", type=int, nargs=2, default=(240, 320), metavar=("H", "W"), help="their images' size")
    p.add_argument("--iterations", type=int, default=None, help="steps per fit (default: the preset's)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--queue", type=int, default=8)
    p.add_argument("--retries", type=int, default=1000, help="429s a client waits out (until --deadline)")
    p.add_argument("--deadline", type=float, default=900, help="seconds the clients probe may take")
    p.add_argument("--large-uploads", type=int, default=70)
    p.add_argument("--big-bodies", type=int, default=8)
    p.add_argument("--body-mb", type=int, default=48)
    p.add_argument("--probes", nargs="+", default=["clients", "large-uploads", "large-fit", "big-bodies"],
                   choices=["clients", "large-uploads", "large-fit", "big-bodies"])
    p.add_argument("--json", type=Path, help="write the results here too")
    args = p.parse_args()
    args.clients = max(1, min(args.clients, 200))
    results = []
    run = {"clients": probe_clients, "large-uploads": probe_large_uploads, "large-fit": probe_large_fit,
           "big-bodies": probe_big_bodies}
    for name in args.probes:
        res = run[name](args)
        print(json.dumps(res), flush=True)
        results.append(res)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
