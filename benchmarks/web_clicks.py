"""The web page's Click tool, measured: the click protocol's robot clicking through ``dipseg serve``.

    python benchmarks/web_clicks.py --root ../shared/data/grabcut --out runs/web-clicks.jsonl

Starts ``dipseg serve --images ROOT/images`` on 127.0.0.1 (a temporary ``--out``) and, for
every object of the GrabCut set, does what the page does with its Click tool and the
*Preset* list on *auto*: each click of the robot (``dipseg.eval.clicker.next_click``, the
protocol of docs/interactive.md) adds a disk of ``/api/config``'s ``click_radius`` to the
labels (object: class 1, background: class 0), and the labels go to
``POST /api/images/{id}/segment`` with ``"clicks": true`` and no preset, warm starts on as
the page sends them. The mask comes back from ``mask.png``. Prints NoC@85 / NoC@90, the
objects that never reach 90 % IoU in 20 clicks, and the seconds per click as the page waits
for them (request to the end of the event stream, mask fetched), to set beside
``dipseg bench --protocol clicks -d grabcut -m dipseg:clicks --warm on`` (the same clicks,
labels and preset through the library).

One JSON line per object is appended to ``--out``; a rerun skips the objects already there,
so an interrupted run resumes without redoing or losing any.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from io import BytesIO
from pathlib import Path
from urllib.parse import quote

import httpx
import numpy as np
from PIL import Image
from tqdm import tqdm

from dipseg.eval.clicker import Click, iou, next_click, noc
from dipseg.eval.datasets import open_dataset
from dipseg.eval.interactive import MAX_CLICKS, STOP_IOU, object_masks
from dipseg.web.body import encode_rle

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load_web import Server  # noqa: E402  (benchmarks/load_web.py, beside this script)

OBJECT, BACKGROUND, UNLABELLED = 1, 0, 255


def disk(labels: np.ndarray, click: Click, radius: int) -> None:
    """Paint the page's click: the pixels whose centre lies within ``radius`` of the clicked pixel's."""
    h, w = labels.shape
    yy, xx = np.ogrid[:h, :w]
    labels[(yy - click.y) ** 2 + (xx - click.x) ** 2 <= radius**2] = OBJECT if click.positive else BACKGROUND


def session(server: Server, client: httpx.Client, image_id: str, gt: np.ndarray, ignore: np.ndarray,
            radius: int, stop: float, max_clicks: int) -> list[dict]:
    labels = np.full(gt.shape, UNLABELLED, np.uint8)
    clicks: list[Click] = []
    pred = None
    rows = []
    q = quote(image_id, safe="")
    for k in range(1, max_clicks + 1):
        click = next_click(gt, pred, ignore, clicks)
        if click is None:
            break
        clicks.append(click)
        disk(labels, click, radius)
        body = {"labels": {"width": labels.shape[1], "height": labels.shape[0], "rle": encode_rle(labels)},
                "clicks": True}
        t0 = time.perf_counter()
        r = client.post(f"{server.url}/api/images/{q}/segment", json=body, headers=server.headers, timeout=600)
        r.raise_for_status()
        events = [json.loads(line[5:]) for line in r.text.splitlines() if line.startswith("data:")]
        done = events[-1]
        if "mask_url" not in done:
            raise RuntimeError(f"{image_id}, click {k}: the fit did not finish: {done}")
        with Image.open(BytesIO(client.get(server.url + done["mask_url"], timeout=60).content)) as im:
            pred = np.asarray(im) == OBJECT
        seconds = time.perf_counter() - t0
        start = next(e for e in events if "warm_start" in e and "preset" in e)
        rows.append({"click": k, "y": click.y, "x": click.x, "positive": click.positive,
                     "iou": iou(gt, pred, ignore), "seconds": round(seconds, 3), "preset": start["preset"],
                     "warm": bool(start["warm_start"])})
        if rows[-1]["iou"] >= stop:
            break
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--root", required=True, help="the GrabCut set (images/ and masks/)")
    ap.add_argument("--out", required=True, help="JSON lines, one per object (appended; done objects are skipped)")
    ap.add_argument("--limit", type=int, default=None)
    args = ap.parse_args(argv)

    ds = open_dataset("grabcut", args.root, limit=args.limit)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = {}
    if out.exists():
        for line in out.read_text().splitlines():
            if line.strip():
                row = json.loads(line)
                done[row["image"]] = row
    todo = [i for i in ds.ids if i not in done]
    if todo:
        # one worker: a fit uses torch's default threads, as a page's fits do
        server = Server(["--images", str(Path(args.root) / "images")])
        try:
            with httpx.Client() as client:
                cfg = client.get(server.url + "/api/config").json()
                names = {im["id"].rsplit(".", 1)[0]: im["id"] for im in client.get(server.url + "/api/images").json()["images"]}
                for image_id in tqdm(todo, desc="web clicks", unit="object"):
                    s = ds.load(image_id)
                    gt, ignore = object_masks(s)
                    rows = session(server, client, names[image_id], gt, ignore, cfg["click_radius"], STOP_IOU,
                                   MAX_CLICKS)
                    row = {"image": image_id, "clicks": rows, "click_preset": cfg["click_preset"],
                           "version": cfg["version"]}
                    with out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    done[image_id] = row
        finally:
            server.stop()
    rows = [done[i] for i in ds.ids if i in done]
    ious = [[c["iou"] for c in r["clicks"]] for r in rows]
    n85 = [noc(v, 0.85, MAX_CLICKS) for v in ious]
    n90 = [noc(v, 0.90, MAX_CLICKS) for v in ious]
    secs = [c["seconds"] for r in rows for c in r["clicks"]]
    presets = sorted({c["preset"] for r in rows for c in r["clicks"]})
    print(f"{len(rows)} objects through dipseg serve's Click path (presets run: {', '.join(presets)}):")
    print(f"  NoC@85 {np.mean(n85):.2f}  NoC@90 {np.mean(n90):.2f}  never at 90 %: "
          f"{sum(max(v) < STOP_IOU for v in ious)}  s per click median {statistics.median(secs):.2f}, "
          f"p95 {np.percentile(secs, 95):.2f}")


if __name__ == "__main__":
    main()
