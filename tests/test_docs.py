"""Every Python and shell snippet of the README and docs/ runs as written.

Each Markdown file's ```python and ```bash blocks run in order, in one scratch folder that
plays the repository root: tiny files stand in for the README's ``photo.jpg`` and
``scribbles.png``, and tiny datasets for ``../shared/data/{voc2012,grabcut,camvid}``.
``dipseg`` on the PATH is this checkout's command line. A block preceded by
``<!-- not run: REASON -->`` is skipped (installing packages, ``make``); ```text blocks are
synopses. docs/web.md is not run here: ``dipseg serve`` runs until Ctrl+C and its Python is
a Playwright session, both exercised by tests/test_web_serve.py and tests/test_browser.py.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import dipseg
from benchutil import make_voc
from conftest import REPO, three_regions
from dipseg.io import write_labels
from dipseg.labels import IGNORE
from dipseg.palette import PALETTE

RUN = {"python": "python", "py": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
NOT_RUN_FILES = {"docs/web.md"}
FENCE = re.compile(r"^```(\S*)\s*$")
SKIP = re.compile(r"<!--\s*not run:\s*(\S.*?)\s*-->")


@dataclass
class Block:
    path: str
    line: int
    lang: str
    code: str
    skip: str | None


def blocks(path: Path) -> list[Block]:
    """The fenced code blocks of a Markdown file, with the reason to skip each (or None)."""
    out, lines, i = [], path.read_text().splitlines(), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, lang = i, m.group(1).lower()
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        prev = next((ln for ln in reversed(lines[:start]) if ln.strip()), "")
        skip = SKIP.search(prev)
        out.append(Block(str(path.relative_to(REPO)), start + 1, lang, "\n".join(lines[start + 1 : j]) + "\n",
                         skip.group(1) if skip else None))
        i = j + 1
    return out


DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
RUN_DOCS = [p for p in DOCS if str(p.relative_to(REPO)) not in NOT_RUN_FILES
            and any(b.lang in RUN and not b.skip for b in blocks(p))]


def test_every_runnable_block_is_run_or_says_why_not():
    found = [b for p in DOCS for b in blocks(p)]
    assert any(b.path == "docs/labels.md" for b in found) and any(b.path == "README.md" for b in found)
    for b in found:
        if b.lang in RUN and b.path not in NOT_RUN_FILES:
            assert b.skip is None or len(b.skip) > 10, f"{b.path}:{b.line}: give a reason to skip the block"
        elif b.path not in NOT_RUN_FILES:
            # anything else is a synopsis or output; a command in an unmarked fence would go untested
            assert b.lang in ("text", "console-output", ""), f"{b.path}:{b.line}: fence language {b.lang!r}"
            assert b.lang or not b.code.lstrip().startswith(("dipseg ", "python", "import ")), f"{b.path}:{b.line}"


# ----------------------------------------------------------------------------- the scratch folder


def _grabcut(root: Path, n: int = 2, size: int = 40) -> None:
    andrade = [0, 0, 0, 255, 255, 207, 219, 0, 0, 0, 0, 219] + [0] * 756
    for k in range(n):
        img, gt = three_regions(size, seed=k)
        fg = gt == 2
        for sub in ("images", "masks", "andrade2015/scribbles-set-1", "andrade2015/scribbles-set-2"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / "images" / f"im{k}.jpg", quality=95)
        Image.fromarray(np.where(fg, 255, 0).astype(np.uint8), mode="L").save(root / "masks" / f"im{k}.bmp")
        for s in ("1", "2"):
            anno = np.zeros((size, size), np.uint8)
            anno[12, 10:14] = 1
            anno[size - 4, 5 : size - 5] = 2
            p = Image.fromarray(anno, mode="P")
            p.putpalette(andrade)
            p.save(root / "andrade2015" / f"scribbles-set-{s}" / f"im{k}-anno.png")


def _camvid(root: Path, n: int = 2, size: int = 40) -> None:
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    for k in range(n):
        img, gt = three_regions(size, seed=k)
        Image.fromarray(img).save(root / "val" / f"f{k}.png")
        Image.fromarray(gt.astype(np.uint8), mode="L").save(root / "valannot" / f"f{k}.png")


def _coco_mval(root: Path, n: int = 2, size: int = 40) -> None:
    (root / "img").mkdir(parents=True)
    (root / "gt").mkdir()
    yy, xx = np.mgrid[:size, :size]
    for k in range(n):
        gt = (yy - 20) ** 2 + (xx - 18 - 2 * k) ** 2 < 9**2
        img = np.where(gt[..., None], (210, 70, 60), (50, 90, 190)).astype(np.uint8)
        Image.fromarray(img).save(root / "img" / f"thing0{k}_00000{k}.jpg", quality=95)
        Image.fromarray((gt * 255).astype(np.uint8), mode="L").save(root / "gt" / f"thing0{k}_00000{k}.png")


@pytest.fixture
def scratch(tmp_path) -> tuple[Path, dict]:
    """``tmp/repo`` (the working folder) beside ``tmp/shared/data``, and the environment to run in."""
    repo = tmp_path / "repo"
    repo.mkdir()
    data = tmp_path / "shared" / "data"
    voc = make_voc(data / "voc2012")
    img, gt = three_regions(48)
    gt = np.where(gt == 2, 15, gt)  # background, aeroplane, person
    Image.fromarray(img).save(voc / "JPEGImages" / "2007_000033.jpg", quality=95)
    write_labels(voc / "SegmentationClass" / "2007_000033.png", gt)
    _grabcut(data / "grabcut")
    _camvid(data / "camvid")
    _coco_mval(data / "coco_mval")
    # the README's own example files
    Image.fromarray(img).save(repo / "photo.jpg", quality=95)
    labels = np.full(gt.shape, IGNORE)
    labels[5:8, 5:8], labels[30:33, 30:33], labels[12:15, 12:15] = 0, 1, 15
    write_labels(repo / "scribbles.png", labels)
    write_labels(repo / "2007_000033.png", gt)
    # `dipseg` is this checkout's command line
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "dipseg"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m dipseg.cli "$@"\n')
    shim.chmod(shim.stat().st_mode | stat.S_IEXEC)
    src = str(Path(dipseg.__file__).resolve().parents[1])
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    for var in ("DIPSEG_VOC_ROOT", "DIPSEG_GRABCUT_ROOT", "DIPSEG_CAMVID_ROOT", "DIPSEG_COCO_MVAL_ROOT"):
        env.pop(var, None)
    return repo, env


def _run_blocks(doc: Path, repo: Path, env: dict) -> int:
    ran = 0
    for b in blocks(doc):
        if b.lang not in RUN or b.skip:
            continue
        if RUN[b.lang] == "python":
            script = repo / f"_snippet_{b.line}.py"
            script.write_text(b.code)
            cmd = [sys.executable, "-W", "error", str(script)]
        else:
            cmd = ["bash", "-e", "-o", "pipefail", "-c", b.code]
        p = subprocess.run(cmd, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        assert p.returncode == 0, f"{b.path}:{b.line} failed ({p.returncode}):\n{b.code}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
        assert "Traceback" not in p.stderr, f"{b.path}:{b.line}:\n{p.stderr[-3000:]}"
        ran += 1
    return ran


@pytest.mark.slow  # tens of seconds each; docs/results.md runs three small `dipseg bench` sweeps
@pytest.mark.parametrize("doc", RUN_DOCS, ids=[str(p.relative_to(REPO)) for p in RUN_DOCS])
def test_snippets_run_as_written(doc, scratch):
    repo, env = scratch
    ran = _run_blocks(doc, repo, env)
    if doc.name in ("README.md", "labels.md"):
        assert ran >= 2
    if doc.name == "labels.md":
        # the examples' masks: every encoding gave the three regions (or the disc) back
        with Image.open(repo / "out" / "photo_mask.png") as m:
            assert m.size == (64, 48)
    if doc.name == "README.md":
        assert (repo / "out" / "2007_000033_mask.png").is_file() and (repo / "mask.png").is_file()
