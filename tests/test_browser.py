"""End to end in a real browser: Debian's Chromium driven by Python Playwright (no browser download).

``dipseg serve`` runs in a subprocess on a free port with a folder of two small images; the
page is painted with mouse strokes, segmented, its mask downloaded and checked, saved, and
the next / previous buttons walk the folder. Skips with a reason when Chromium or the
playwright package is missing (``make browser`` installs Debian's chromium).
"""

from __future__ import annotations

import json
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

        # the preset of the next Segment: the server's first, then clicks, which the save
        # records and this browser remembers
        assert app.get_attribute("data-preset") == "fast"
        select = page.locator("[data-testid=preset]")
        assert select.input_value() == "" and select.locator("option").count() >= 6  # auto, then the presets
        select.select_option("clicks")
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done][data-preset=clicks]", timeout=60000)
        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]")
        assert json.loads((out / "first_meta.json").read_text())["fit"]["preset"] == "clicks"
        page.reload()
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)
        assert page.locator("[data-testid=preset]").input_value() == "clicks"
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
        assert page.text_content("#status").startswith("Cancelled after")  # not "stopped early" (convergence)
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


# ----------------------------------------------------------------------------- what the page says, at what size


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _folder(tmp_path: Path, n: int = 2) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    for i in range(n):
        Image.fromarray(_image(bool(i % 2))).save(images / f"im{i}.png")
    return images


def _paint_two(page) -> None:
    page.keyboard.press("0")
    _stroke(page, [(12, 10), (20, 50)])
    page.keyboard.press("8")
    _stroke(page, [(84, 10), (80, 50)])


def test_everything_fits_at_1280x800(browser, tmp_path):
    proc, url = _serve(["--images", str(_folder(tmp_path, 1)), "--out", str(tmp_path / "out")])
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)

        def inside(selector: str) -> bool:
            box = page.locator(selector).bounding_box()
            return box is not None and box["y"] >= 0 and box["x"] >= 0 and box["y"] + box["height"] <= 800 \
                and box["x"] + box["width"] <= 1280

        def unclipped(selector: str) -> bool:  # not scrolled out of its sidebar
            return page.eval_on_selector(selector, """e => { const r = e.getBoundingClientRect();
                const s = document.getElementById('sidebar').getBoundingClientRect();
                return r.top >= s.top && r.bottom <= s.bottom; }""")

        for c in range(21):
            assert inside(f"#class-{c}") and unclipped(f"#class-{c}"), c
        for sel in ("#segment", "#cancel", "#status", "#save", "#download", "#brush-size", "#opacity", "#zoom-fit"):
            assert inside(sel) and unclipped(sel), sel
        page.screenshot(path=str(tmp_path / "page-1280x800.png"))
        # the keys: a panel over the canvas, all of it in the window
        assert not page.is_visible("#help")
        page.keyboard.press("?")
        assert page.is_visible("#help")
        for i in range(page.locator("#help dt").count()):
            assert inside(f"#help dt >> nth={i}") and inside(f"#help dd >> nth={i}"), i
        page.screenshot(path=str(tmp_path / "keys-1280x800.png"))
        page.keyboard.press("Escape")
        assert not page.is_visible("#help")
    finally:
        _stop(proc)


def test_reload_after_segment_shows_the_work_as_unsaved_and_next_saves_it(browser, tmp_path):
    out = tmp_path / "out"
    proc, url = _serve(["--images", str(_folder(tmp_path)), "--out", str(out), "--iterations", "20",
                        "--working-size", "48"])
    try:
        page, problems = _page(browser, url)
        dialogs, answers = [], []  # answers: False to dismiss the next dialog; accepted otherwise

        def on_dialog(d):
            dialogs.append(d.type)
            d.accept() if not answers or answers.pop(0) else d.dismiss()

        page.on("dialog", on_dialog)
        _paint_two(page)
        assert page.evaluate("window.dipseg.state().unsent")  # painted, not sent yet
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done]", timeout=60000)
        assert page.get_attribute("#app", "data-saved") == "false"
        assert not page.evaluate("window.dipseg.state().unsent")  # the server holds them now
        page.reload()
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)
        # the server holds the labels and mask in memory only: the page must not call them saved
        assert page.get_attribute("#app", "data-image-id") == "im0.png"
        assert page.get_attribute("#app", "data-saved") == "false"
        assert page.get_attribute("#app", "data-mask") == "final"
        text = page.text_content("#status")
        assert "not saved yet" in text and "from the output folder" not in text, text
        assert not out.exists() or not list(out.iterdir())
        page.keyboard.press("n")  # "save on next" is on: moving on writes the work
        page.wait_for_function("window.dipseg.state().image === 'im1.png' && window.dipseg.state().state === 'ready'")
        assert {p.name for p in out.iterdir()} == {"im0.png", "im0_labels.png", "im0_meta.json", "annotations.json"}
        assert dialogs == []  # nothing unsent at either reload or move
        # a stroke that never reached the server: the browser asks before a reload drops it
        _stroke(page, [(12, 10), (20, 50)])
        assert page.evaluate("window.dipseg.state().unsent")
        page.reload()
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)
        assert dialogs == ["beforeunload"]
        assert not page.evaluate("window.dipseg.state().unsent")
        # without "save on next", moving on from unsent edits asks too; "Cancel" stays
        page.uncheck("[data-testid=autosave]")
        here = page.evaluate("window.dipseg.state().image")
        _stroke(page, [(12, 10), (20, 50)])
        answers.append(False)
        page.keyboard.press("p" if here == "im1.png" else "n")
        page.wait_for_function("window.dipseg.state().state === 'ready'")
        assert dialogs == ["beforeunload", "confirm"]
        assert page.evaluate("window.dipseg.state().image") == here and page.evaluate("window.dipseg.state().unsent")
        page.keyboard.press("p" if here == "im1.png" else "n")  # "OK" leaves, the edits dropped
        page.wait_for_function(f"window.dipseg.state().image !== '{here}' && window.dipseg.state().state === 'ready'")
        assert dialogs == ["beforeunload", "confirm", "confirm"]
        assert not page.evaluate("window.dipseg.state().unsent")
        assert not problems, problems
    finally:
        _stop(proc)


def test_server_down_restarted_and_busy_are_told_apart(browser, tmp_path):
    import threading

    import httpx

    folder, out = _folder(tmp_path), tmp_path / "out"
    port = _free_port()
    args = ["--images", str(folder), "--out", str(out), "--iterations", "100000", "--working-size", "48",
            "--workers", "1", "--queue", "0"]
    proc, url = _serve([*args, "--port", str(port)])
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(url)
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)
        _paint_two(page)

        # busy: another client holds the only fit slot; the page says so, waits and retries by itself
        token = httpx.get(url + "api/config", timeout=10).json()["token"]
        other: dict = {}
        started = threading.Event()

        def hold():
            lab = np.full((H, W), 255, np.uint8)
            lab[:, :8], lab[:, -8:] = 0, 15
            from dipseg.web.body import encode_rle

            body = {"labels": {"width": W, "height": H, "rle": encode_rle(lab)}}
            with httpx.stream("POST", url + "api/images/im1.png/segment", json=body,
                              headers={"x-dipseg-token": token}, timeout=60) as r:
                for line in r.iter_lines():
                    if line.startswith("data:") and '"job"' in line and "job" not in other:
                        import json

                        other["job"] = json.loads(line[5:])["job"]
                        started.set()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        assert started.wait(20)
        before = page.locator("#save").bounding_box()
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=waiting]", timeout=20000)
        text = page.text_content("#status")
        assert "busy" in text and "trying again" in text and "{" not in text, text
        assert page.locator("#save").bounding_box() == before  # the message does not move the layout
        httpx.post(url + f"api/jobs/{other['job']}/cancel", headers={"x-dipseg-token": token}, timeout=10)
        page.wait_for_selector("#app[data-fit=running]", timeout=30000)
        page.click("#cancel")
        page.wait_for_selector("#app[data-fit=cancelled]", timeout=20000)
        holder.join(20)

        # down: a clear message, and no talk of a disk problem
        _stop(proc)
        page.click("#save")
        page.wait_for_selector("#status[data-kind=error]")
        text = page.text_content("#status")
        assert "cannot reach the dipseg server" in text and "write the files" not in text, text
        assert page.get_attribute("#app", "data-server") == "down"

        # restarted (new token): saving works again and the page knows it is a new server
        proc, url = _serve([*args, "--port", str(port)])
        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]", timeout=20000)
        assert page.get_attribute("#app", "data-server") == "restarted"
        assert (out / "im0_labels.png").is_file()
    finally:
        _stop(proc)


def test_uploads_gone_after_a_restart_are_explained(browser, tmp_path):
    port = _free_port()
    args = ["--out", str(tmp_path / "out"), "--port", str(port)]
    Image.fromarray(_image(False)).save(tmp_path / "a.png")
    Image.fromarray(_image(True)).save(tmp_path / "b.png")
    proc, url = _serve(args)
    try:
        page, problems = _page_empty(browser, url)
        page.set_input_files("#file-input", [str(tmp_path / "a.png"), str(tmp_path / "b.png")])
        page.wait_for_function("window.dipseg.state().state === 'ready' && document.getElementById('done-count')"
                               ".textContent === '0 / 2 done'", timeout=20000)
        _stop(proc)
        proc, url = _serve(args)
        page.keyboard.press("n")
        page.wait_for_function("document.getElementById('status').textContent.includes('restarted')", timeout=20000)
        text = page.text_content("#status")
        assert "no image with id" not in text, text
        assert page.text_content("#done-count") == "0 / 0 done"  # the list is the new server's
    finally:
        _stop(proc)


def test_a_page_of_another_site_cannot_write(browser, tmp_path):
    import http.server
    import threading

    import httpx

    import base64
    import io

    out = tmp_path / "out"
    proc, url = _serve(["--images", str(_folder(tmp_path, 1)), "--out", str(out), "--iterations", "5"])
    # the user's unsaved work: something a forged save would write
    token = httpx.get(url + "api/config", timeout=10).json()["token"]
    lab = np.full((H, W), 255, np.uint8)
    lab[:, :8], lab[:, -8:] = 0, 15
    from dipseg.web.body import encode_rle

    r = httpx.post(url + "api/images/im0.png/segment", headers={"x-dipseg-token": token}, timeout=60,
                   json={"labels": {"width": W, "height": H, "rle": encode_rle(lab)}})
    assert '"stopped":"done"' in r.text
    buf = io.BytesIO()
    Image.fromarray(_image(True)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode()
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "index.html").write_text(f"""<!doctype html><script>
    (async () => {{
      const png = await (await fetch("data:image/png;base64,{png}")).blob();
      for (let i = 0; i < 3; i++) {{
        const fd = new FormData(); fd.append("file", png, "foreign.png");
        try {{ await fetch("{url}api/upload", {{method: "POST", mode: "no-cors", body: fd}}); }} catch (e) {{}}
      }}
      try {{ await fetch("{url}api/images/im0.png/save", {{method: "POST", mode: "no-cors", body: ""}}); }} catch (e) {{}}
      try {{ await fetch("{url}api/images/im0.png/save", {{method: "POST", mode: "no-cors",
        headers: {{"Content-Type": "text/plain"}}, body: "{{}}"}}); }} catch (e) {{}}
      document.title = "done";
    }})();
    </script>""")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(evil), **k)  # noqa: E731
    site = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{site.server_address[1]}/index.html")
        page.wait_for_function("document.title === 'done'", timeout=20000)
        listing = httpx.get(url + "api/images", timeout=10).json()
        assert listing["total"] == 1 and [i["id"] for i in listing["images"]] == ["im0.png"]
        assert not out.exists() or not list(out.iterdir())
    finally:
        site.shutdown()
        site.server_close()
        _stop(proc)


def test_label_here_next_shows_the_uncertain_spot(browser, tmp_path):
    proc, url = _serve(["--images", str(_folder(tmp_path, 1)), "--out", str(tmp_path / "out"), "--iterations", "20",
                        "--working-size", "48"])
    try:
        page, problems = _page(browser, url)
        assert page.get_attribute("#app", "data-suggestion") in (None, "")
        _paint_two(page)
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done]", timeout=60000)
        page.wait_for_function("document.getElementById('app').dataset.suggestion")
        x, y = map(int, page.get_attribute("#app", "data-suggestion").split(","))
        assert 0 <= x < W and 0 <= y < H
        before = page.locator("#canvas").screenshot()
        page.keyboard.press("l")
        assert page.get_attribute("#app", "data-hint") == "on" and page.is_checked("#hint")
        page.wait_for_timeout(200)
        assert page.locator("#canvas").screenshot() != before  # the overlay and the marker are drawn
        page.click("#hint")
        assert page.get_attribute("#app", "data-hint") == "off"
        assert not problems, problems
    finally:
        _stop(proc)


def _box_image() -> np.ndarray:
    """A red square on a noisy green field: the object a box is drawn around."""
    rng = np.random.default_rng(2)
    img = np.zeros((H, W, 3))
    img[:] = (40, 150, 60)
    img[16:48, 30:66] = (220, 60, 50)
    return np.clip(img + rng.normal(0, 6, img.shape), 0, 255).astype(np.uint8)


def _download_mask(page, tmp_path: Path) -> np.ndarray:
    """The mask as the page's Download button saves it."""
    with page.expect_download() as info:
        page.click("#download")
    path = tmp_path / "mask.png"
    info.value.save_as(path)
    with Image.open(path) as im:
        return np.asarray(im)


def _serve_box_image(tmp_path: Path, name: str, iterations: int):
    """``dipseg serve`` on a folder holding :func:`_box_image` as ``name``, writing into ``tmp_path/out``."""
    images = tmp_path / "images"
    images.mkdir()
    Image.fromarray(_box_image()).save(images / name)
    return _serve(["--images", str(images), "--out", str(tmp_path / "out"), "--iterations", str(iterations),
                   "--working-size", "64"])


def test_box_tool_draw_move_delete_undo_mix_with_brush_and_segment(browser, tmp_path):
    import json

    out = tmp_path / "out"
    proc, url = _serve_box_image(tmp_path, "box.png", iterations=60)
    try:
        page, problems = _page(browser, url)
        app = page.locator("#app")
        page.click("[data-testid=class-12]")  # dog
        page.click("#tool-box")
        assert app.get_attribute("data-tool") == "box"
        # a wrong box first, then delete it (button), undo the delete, delete again (key)
        _stroke(page, [(2, 2), (20, 20)])
        assert page.evaluate("window.dipseg.state().boxes") == [[12, 2, 2, 20, 20]]
        page.click("#delete-box")
        assert page.evaluate("window.dipseg.state().boxes") == []
        page.keyboard.press("Control+z")
        assert len(page.evaluate("window.dipseg.state().boxes")) == 1
        _stroke(page, [(10, 10), (10, 10)])  # a click selects it
        page.keyboard.press("Delete")
        assert page.evaluate("window.dipseg.state().boxes") == []
        # the real box, drawn a little off, then moved by dragging it
        _stroke(page, [(24, 12), (62, 46)])
        assert page.evaluate("window.dipseg.state().boxes") == [[12, 24, 12, 62, 46]]
        _stroke(page, [(40, 30), (44, 33)])
        box = page.evaluate("window.dipseg.state().boxes")[0]
        assert box[0] == 12 and abs(box[1] - 28) <= 1 and abs(box[2] - 15) <= 1 and box[3] - box[1] == 38
        page.keyboard.press("Control+z")
        assert page.evaluate("window.dipseg.state().boxes") == [[12, 24, 12, 62, 46]]
        page.keyboard.press("Control+Shift+z")
        assert page.text_content("#box-count") == "1 box"
        # mixed with the brush: a stroke of the dog inside the box
        page.click("#tool-brush")
        page.evaluate("window.dipseg.setBrushSize(3)")
        _stroke(page, [(40, 28), (52, 34)])
        assert set(page.evaluate("window.dipseg.labelCounts()")) == {"12"}
        page.check("[data-testid=tight-boxes]")  # the box above was drawn touching the object
        with page.expect_request(lambda r: r.url.endswith("/segment") and r.method == "POST") as sent:
            page.click("#segment")
        body = json.loads(sent.value.post_data)
        assert body["tight_boxes"] is True and len(body["boxes"]) == 1
        page.wait_for_selector("#app[data-fit=done]", timeout=90000)
        assert app.get_attribute("data-mask") == "final"
        mask = _download_mask(page, tmp_path)
        assert set(np.unique(mask)) <= {0, 12}
        bx = page.evaluate("window.dipseg.state().boxes")[0]
        r0, r1, c0, c1 = int(bx[2]), int(bx[4]), int(bx[1]), int(bx[3])
        outside = np.ones(mask.shape, bool)
        outside[r0:r1, c0:c1] = False
        assert (mask[outside] == 0).all()  # outside every box is background
        assert (mask[18:46, 32:64] == 12).mean() > 0.6
        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]")
        coco = json.loads((out / "annotations.json").read_text())
        assert [im["file_name"] for im in coco["images"]] == ["box.png"]
        assert [a["category_id"] for a in coco["annotations"]] == [12]
        assert (out / "box_boxes.csv").read_text().splitlines()[1].startswith("dog,")
        assert json.loads((out / "box_meta.json").read_text())["tight_boxes"] is True
        # a reload brings the boxes back, still tight
        page.reload()
        page.wait_for_selector("#app[data-state=ready]")
        assert page.evaluate("window.dipseg.state().boxes") == [bx]
        assert page.is_checked("[data-testid=tight-boxes]")
        assert page.evaluate("window.dipseg.state().saved") and not page.evaluate("window.dipseg.state().unsent")
        # unticking is an edit: not saved, not sent, and Save writes it
        page.uncheck("[data-testid=tight-boxes]")
        assert not page.evaluate("window.dipseg.state().saved") and page.evaluate("window.dipseg.state().unsent")
        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]")
        assert json.loads((out / "box_meta.json").read_text())["tight_boxes"] is False
        assert not problems, problems
    finally:
        _stop(proc)


def test_imported_boxes_open_with_the_image_and_segment(browser, tmp_path):
    import json

    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    Image.fromarray(_box_image()).save(images / "box.png")
    coco = tmp_path / "detections.json"
    coco.write_text(json.dumps({"images": [{"id": 1, "file_name": "data/box.png"}],
                                "categories": [{"id": 1, "name": "dog"}],
                                "annotations": [{"image_id": 1, "category_id": 1, "bbox": [24, 12, 38, 34]}]}))
    proc, url = _serve(["--images", str(images), "--out", str(out), "--iterations", "30", "--working-size", "64",
                        "--boxes", str(coco), "--tight-boxes"])
    try:
        page, problems = _page(browser, url)
        assert page.evaluate("window.dipseg.state().boxes") == [[12, 24, 12, 62, 46]]
        assert page.is_checked("[data-testid=tight-boxes]")
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done]", timeout=90000)
        mask = _download_mask(page, tmp_path)
        assert (mask[18:46, 32:64] == 12).mean() > 0.6 and (mask[:10] == 0).all()
        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]")
        assert (out / "box_boxes.csv").read_text().splitlines()[1] == "dog,24,12,62,46"
        assert not problems, problems
    finally:
        _stop(proc)


def _click(page, x: float, y: float, button: str = "left") -> None:
    xy = page.evaluate("([x, y]) => window.dipseg.imageToClient(x, y)", [x, y])
    page.mouse.click(xy["x"], xy["y"], button=button)


def _next_fit_done(page, timeout: int = 90000) -> None:
    page.wait_for_function("['queued', 'running', 'waiting', 'done'].includes(window.dipseg.state().fit)")
    page.wait_for_function("window.dipseg.state().fit === 'done' && !window.dipseg.state().job", timeout=timeout)


def test_click_tool_segments_each_click_with_the_click_preset(browser, tmp_path):
    """Clicks as the click protocol's robot makes them: a disk of its radius per click, a fit
    after each, the preset `clicks` (auto) with the background frame until a background click;
    reopened, they are still clicks; a brush stroke makes the labels strokes again, and the
    server's preset is back."""
    out = tmp_path / "out"
    proc, url = _serve_box_image(tmp_path, "obj.png", iterations=30)
    try:
        page, problems = _page(browser, url)
        app = page.locator("#app")
        assert page.locator("[data-testid=preset]").input_value() == ""  # auto
        page.click("[data-testid=class-12]")
        page.keyboard.press("k")
        assert app.get_attribute("data-tool") == "click"
        with page.expect_request(lambda r: r.url.endswith("/segment") and r.method == "POST") as sent:
            _click(page, 47, 31)
        body = json.loads(sent.value.post_data)
        assert body["clicks"] is True and "preset" not in body
        _next_fit_done(page)
        assert app.get_attribute("data-preset") == "clicks" and app.get_attribute("data-mask") == "final"
        disk = sum(1 for y in range(-5, 6) for x in range(-5, 6) if x * x + y * y <= 25)
        assert page.evaluate("window.dipseg.labelCounts()") == {"12": disk}
        assert page.evaluate("window.dipseg.state().clicksOnly")
        # a right click labels background and fits again (the frame gives way to it)
        _click(page, 8, 8, button="right")
        _next_fit_done(page)
        assert page.evaluate("window.dipseg.labelCounts()") == {"0": disk, "12": disk}
        assert page.evaluate("window.dipseg.state().undo") == 2
        mask = _download_mask(page, tmp_path)
        obj = np.zeros(mask.shape, bool)
        obj[16:48, 30:66] = True
        assert ((mask == 12) & obj).sum() / ((mask == 12) | obj).sum() > 0.8
        page.click("#save")
        page.wait_for_selector("#app[data-saved=true]")
        fit = json.loads((out / "obj_meta.json").read_text())["fit"]
        assert fit["preset"] == "clicks" and fit["clicks"] is True
        # reopened, the labels are still the fit's clicks (the server says so), not strokes
        page.reload()
        page.wait_for_selector("#app[data-state=ready]", timeout=20000)
        assert page.evaluate("window.dipseg.state().undo") == 0
        assert page.evaluate("window.dipseg.state().clicksOnly")
        # a brush stroke: the labels are no longer clicks only, and auto means the server's preset
        page.click("#tool-brush")
        page.evaluate("window.dipseg.setBrushSize(3)")
        _stroke(page, [(5, 55), (20, 58)])
        assert not page.evaluate("window.dipseg.state().clicksOnly")
        page.click("#segment")
        _next_fit_done(page)
        assert app.get_attribute("data-preset") == "fast"
        page.keyboard.press("Control+z")  # undo the stroke: clicks only again
        assert page.evaluate("window.dipseg.state().clicksOnly")
        assert not problems, problems
    finally:
        _stop(proc)


def test_start_from_previous_image_proposes_the_next_mask_and_labels(browser, tmp_path):
    images, out = tmp_path / "images", tmp_path / "out"
    images.mkdir()
    first = _image(False)
    for i in range(2):  # frames of one scene: the second shifted by 3 px
        Image.fromarray(np.roll(first, 3 * i, axis=1)).save(images / f"f{i}.png")
    proc, url = _serve(["--images", str(images), "--out", str(out), "--iterations", "20", "--working-size", "48"])
    try:
        page, problems = _page(browser, url)
        app = page.locator("#app")
        assert page.is_visible("#start-from-previous") and app.get_attribute("data-start-from-previous") == "off"
        _paint_two(page)
        own = page.evaluate("window.dipseg.labelCounts()")
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done]", timeout=60000)
        page.click("#start-from-previous")
        assert app.get_attribute("data-start-from-previous") == "on"

        page.click("#next")
        page.wait_for_function("(() => { const s = window.dipseg.state(); return s.image === 'f1.png' && "
                               "s.state === 'ready' && s.proposal === 'shown'; })()", timeout=30000)
        assert app.get_attribute("data-mask") == "proposed" and app.get_attribute("data-saved") == "false"
        assert "Proposed by the network of f0.png" in page.text_content("#status")
        proposed = page.evaluate("window.dipseg.labelCounts()")
        assert set(proposed) <= {"0", "8"} and sum(proposed.values()) > 0, proposed
        assert (out / "f0_labels.png").is_file()  # "save on next" wrote f0 on the way
        # the proposed labels are one undoable step
        page.keyboard.press("Control+z")
        assert page.evaluate("window.dipseg.state().labelled") == 0
        page.keyboard.press("Control+Shift+z")
        assert page.evaluate("window.dipseg.labelCounts()") == proposed
        # corrected with a stroke, then segmented: a normal fit from those labels
        page.keyboard.press("0")
        _stroke(page, [(3, 4), (3, 60)])
        page.click("#segment")
        page.wait_for_selector("#app[data-fit=done]", timeout=60000)
        assert app.get_attribute("data-mask") == "final"

        # back to f0: it has labels of its own, so nothing is proposed over them
        page.click("#prev")
        page.wait_for_function("window.dipseg.state().image === 'f0.png' && window.dipseg.state().state === 'ready'")
        assert app.get_attribute("data-proposal") == "skipped" and app.get_attribute("data-mask") == "final"
        assert page.evaluate("window.dipseg.labelCounts()") == own
        assert not problems, problems
    finally:
        _stop(proc)
