"""Figures of a fit: the poster's fit-progress figure (mask and RGB reconstruction at chosen steps).

``matplotlib`` is imported on first use.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .labels import IGNORE
from .palette import colourize


@dataclass(frozen=True)
class Snapshot:
    """The network after ``step`` Adam steps: class map and RGB reconstruction at working resolution.

    Attributes
    ----------
    step : int
    classes : ndarray (h, w) int
    rgb : ndarray (h, w, 3) uint8
    """

    step: int
    classes: np.ndarray
    rgb: np.ndarray


def parse_steps(text: str | None, iterations: int) -> list[int]:
    """``--figure-steps``: ``"0,40,200"`` -> ``[0, 40, 200]``; None: 0, a fifth and all of ``iterations``.

    The default is the poster's figure (epochs 0, 40 and 200 of 200) scaled to the fit's length.

    Raises
    ------
    ValueError
        Not a list of whole numbers in ``0 .. iterations``.
    """
    if text is None:
        return sorted({0, round(iterations / 5), iterations})
    try:
        steps = sorted({int(p) for p in str(text).split(",") if p.strip()})
    except ValueError:
        raise ValueError(f"--figure-steps {text!r}: give whole numbers separated by commas, e.g. 0,40,200") from None
    if not steps or steps[0] < 0 or steps[-1] > iterations:
        raise ValueError(f"--figure-steps {text!r}: steps must be in 0..{iterations} (the fit's steps; "
                         "raise --iterations for later ones)")
    return steps


def progress_figure(
    image: np.ndarray,
    labels: np.ndarray,
    snapshots: Sequence[Snapshot],
    final: np.ndarray,
    path: str | os.PathLike,
    title: str = "",
) -> Path:
    """Write the fit-progress figure: image and labels, then mask and RGB per step, then the result.

    Parameters
    ----------
    image : (H, W, 3) uint8
    labels : (H, W) int
        ``IGNORE`` where unlabelled.
    snapshots : list of Snapshot
        In step order.
    final : (H, W) int
        The full-resolution result (after refinement).
    path : path-like
        A ``.png`` file.
    title : str

    Returns
    -------
    Path
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    # column 0: the image and its labels; then RGB over mask per step; last: the refined result
    cols = 2 + len(snapshots)
    fig, axes = plt.subplots(2, cols, figsize=(2.6 * cols, 2.6 * 2 * image.shape[0] / image.shape[1] + 1.0),
                             squeeze=False)
    from scipy import ndimage

    seeded = labels != IGNORE
    # labels drawn thicker than they are, so that single pixels show at figure size
    grow = max(1, max(labels.shape) // 150)
    nearest = ndimage.distance_transform_edt(~seeded, return_distances=True, return_indices=True)
    near = nearest[0] <= grow
    shown = image.copy()
    shown[near] = colourize(labels[tuple(i[near] for i in nearest[1])].astype(np.int64))
    result = colourize(final.astype(np.int64))
    blend = (0.5 * image + 0.5 * result).astype(np.uint8)
    columns = [((image, "image"), (shown, f"labels ({int(seeded.sum())} px)"))]
    columns += [((s.rgb, f"RGB, step {s.step}"), (colourize(s.classes.astype(np.int64)), f"mask, step {s.step}"))
                for s in snapshots]
    columns.append(((result, "result (refined)"), (blend, "result on the image")))
    for j, column in enumerate(columns):
        for i, (img, text) in enumerate(column):
            axes[i, j].imshow(img, interpolation="nearest")
            axes[i, j].set_title(text, fontsize=8)
            axes[i, j].axis("off")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
