"""End to end in a real browser: Debian's Chromium driven by Python Playwright (no browser download).

``dipseg serve`` runs in a subprocess on a free port with a folder of two small images; the
page is painted with mouse strokes, segmented, its mask downloaded and checked, saved, and
the next / previous buttons walk the folder. Skips with a reason when Chromium or the
playwright package is missing (``make browser`` installs Debian's chromium).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = os.environ.get("DIPSEG_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
H, W = 64, 96


def _need_browser():
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"Chromium not found ({CHROMIUM}); install Debian's chromium (`make browser`) to run this test")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed (pip install -e '.[test]')")
    return sync_playwright


def _image(flip: bool) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = np.zeros((H, W, 3))
    img[:, : W // 2] = (210, 70, 60)
    img[:, W // 2 :] = (50, 80, 200)
    img = np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    return img[:, ::-1].copy() if flip else img


def _serve(args: list[str]):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "dipseg.cli", "serve", "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"dipseg serve exited: {proc.stderr.read()}")
        if "http://" in line:
            return proc, line[line.index("http://"):].split()[0]
    proc.kill()
    raise RuntimeError("dipseg serve printed no URL")


def _stop(proc):
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:  # pragma: no cover
        proc.kill()
        proc.wait(5)
    proc.stdout.close()
    proc.stderr.close()


@pytest.fixture
def browser():
    sync_playwright = _need_browser()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


def _page(browser, url: str):
    page = browser.new_page(viewport={"width": 1100, "height": 720}, accept_downloads=True)
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.goto(url)
    page.wait_for_selector("#app[data-state=ready]", timeout=20000)
    return page, problems


def _page_empty(browser, url: str):
    page = browser.new_page(viewport={"width": 1000, "height": 700})
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    page.wait_for_selector("#app[data-state=empty]", timeout=20000)
    return page, problems


def _stroke(page, points: list[tuple[float, float]]) -> None:
    """Drag the mouse through image coordinates ``points``."""
    xy = [page.evaluate("([x, y]) => window.dipseg.imageToClient(x, y)", list(pt)) for pt in points]
    page.mouse.move(xy[0]["x"], xy[0]["y"])
    page.mouse.down()
    for q in xy[1:]:
        page.mouse.move(q["x"], q["y"], steps=12)
    page.mouse.up()


def test_paint_segment_download_save_and_walk_the_folder(browser, tmp_path):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    Image.fromarray(_image(False)).save(images / "first.png")
    Image.fromarray(_image(True)).save(images / "second.jpg", quality=95)
    proc, url = _serve(["--images", str(images), "--out", str(out), "--iterations", "80", "--working-size", "64"])
    try:
        page, problems = _page(browser, url)
        app = page.locator("#app")
        assert app.get_attribute("data-image-id") == "first.png"
        assert page.text_content("#done-count") == "0 / 2 done"
        assert page.locator("[data-testid^=class-]").count() == 21

        # zoom with keys, back to fit; opacity slider; brush size with ]
        z0 = float(app.get_attribute("data-zoom"))
        page.keyboard.press("+")
        assert float(app.get_attribute("data-zoom")) > z0
        page.keyboard.press("f")
        page.locator("#opacity").evaluate("e => { e.value = 70; e.dispatchEvent(new Event('input')); }")
        assert page.text_content("#opacity-value") == "70%"
        for _ in range(3):
            page.keyboard.press("]")
        assert int(app.get_attribute("data-brush-size")) > 3

        # background (key 0) on the left region, person (clicked) on the right
        page.keyboard.press("0")
        assert page.get_attribute("#class-0", "aria-checked") == "true"
        _stroke(page, [(12, 10), (20, 30), (14, 54)])
        page.click("[data-testid=class-15]")
        assert app.get_attribute("data-class") == "15"
        _stroke(page, [(84, 10), (76, 30), (82, 54)])
        counts = page.evaluate("window.dipseg.labelCounts()")
        assert set(counts) == {"0", "15"}, counts

        # undo / redo of the last stroke
        page.keyboard.press("Control+z")
        assert set(page.evaluate("window.dipseg.labelCounts()")) == {"0"}
        page.keyboard.press("Control+Shift+z")
        assert page.evaluate("window.dipseg.labelCounts()") == counts

        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done]", timeout=60000)
        assert app.get_attribute("data-mask") == "final"
        assert int(app.get_attribute("data-preview-count")) >= 1
        assert "Done" in page.text_content("#status")

        with page.expect_download() as info:
            page.click("#download")
        download = info.value
        assert download.suggested_filename == "first.png"
        path = tmp_path / "downloaded.png"
        download.save_as(path)
        with Image.open(path) as im:
            assert im.mode == "P" and im.size == (W, H)
            mask = np.asarray(im)
        assert set(np.unique(mask)) == {0, 15}
        assert (mask[:, : W // 2] == 0).mean() > 0.7 and (mask[:, W // 2 :] == 15).mean() > 0.7

        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]")
        page.wait_for_function("document.getElementById('done-count').textContent === '1 / 2 done'")
        assert {p.name for p in out.iterdir()} >= {"first.png", "first_labels.png", "first_meta.json"}
        with Image.open(out / "first.png") as im:
            assert im.mode == "P" and im.size == (W, H) and np.array_equal(np.asarray(im), mask)
        with Image.open(out / "first_labels.png") as im:
            labels = np.asarray(im)
        assert {int(v) for v in np.unique(labels)} == {0, 15, 255}

        page.click("#next")
        page.wait_for_function("window.dipseg.state().image === 'second.jpg' && window.dipseg.state().state === 'ready'")
        assert app.get_attribute("data-mask") == "none" and page.evaluate("window.dipseg.state().labelled") == 0
        assert page.is_disabled("#next") and not page.is_disabled("#prev")

        # back again: the saved labels and mask are loaded
        page.click("#prev")
        page.wait_for_function("window.dipseg.state().image === 'first.png' && window.dipseg.state().state === 'ready'")
        assert app.get_attribute("data-mask") == "final"
        assert page.evaluate("window.dipseg.labelCounts()") == counts
        assert not problems, problems
    finally:
        _stop(proc)


def test_open_a_file_cancel_and_close_the_tab(browser, tmp_path):
    import httpx

    Image.fromarray(_image(False)).save(tmp_path / "photo.png")
    (tmp_path / "notes.png").write_text("not really a png")
    # a fit far too long to finish: only Cancel or closing the tab ends it
    proc, url = _serve(["--out", str(tmp_path / "out"), "--iterations", "100000", "--working-size", "64"])
    try:
        page, problems = _page_empty(browser, url)
        assert page.is_visible("#drop-hint")
        page.set_input_files("#file-input", str(tmp_path / "photo.png"))
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)
        assert page.get_attribute("#app", "data-image-name") == "photo.png"
        assert page.text_content("#done-count") == "0 / 1 done"

        page.keyboard.press("0")
        _stroke(page, [(12, 10), (20, 50)])
        page.keyboard.press("8")
        _stroke(page, [(84, 10), (80, 50)])
        page.keyboard.press("Enter")  # Enter runs the fit
        page.wait_for_selector("#app[data-fit=running]", timeout=20000)
        page.wait_for_function("Number(document.getElementById('progress').value) > 2")
        assert page.is_disabled("#segment") and not page.is_disabled("#cancel")
        page.click("#cancel")
        page.wait_for_selector("#app[data-fit=cancelled]", timeout=20000)
        assert page.get_attribute("#app", "data-mask") == "final"  # the prediction when it stopped
        assert httpx.get(url + "api/jobs", timeout=10).json()["jobs"] == []

        # a non-image is refused with the server's message, and the page keeps working
        page.set_input_files("#file-input", str(tmp_path / "notes.png"))
        page.wait_for_selector("#status[data-kind=error]")
        assert "not an image" in page.text_content("#status")
        assert page.get_attribute("#app", "data-state") == "ready"

        # closing the tab mid-fit stops the fit on the server
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=running]", timeout=20000)
        assert len(httpx.get(url + "api/jobs", timeout=10).json()["jobs"]) == 1
        assert not problems, problems
        page.close()
        deadline = time.monotonic() + 20
        while httpx.get(url + "api/jobs", timeout=10).json()["jobs"]:
            assert time.monotonic() < deadline, "the fit outlived its tab"
            time.sleep(0.1)
    finally:
        _stop(proc)
