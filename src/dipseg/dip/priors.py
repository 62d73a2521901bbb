"""Spatial priors on where each class lies, added to the network's logits."""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from ..features import GRID_CELL, enlarge_box, grid_cells, label_box

POINT_AREA = 4
"""Largest piece, in pixels, that :func:`point_count` takes for a point."""


def box_prior(
    labels: np.ndarray,
    class_ids: np.ndarray,
    shape: tuple[int, int],
    margin: float = 0.15,
    strength: float = 3.0,
    falloff: float = 0.1,
    min_extent: float = 0.0,
    spot_min: int = 0,
    spot_margin: float = 0.05,
    spot_falloff: float = 0.05,
    background: int | None = None,
    point_gap: float = 0.0,
    spot_span: float = 0.0,
    span_min_points: int = 0,
) -> np.ndarray:
    """Log-prior that a class lies near the bounding box of its own labels.

    For class ``c`` with labels spanning a box enlarged by ``margin`` of its size on each
    side, the prior is ``-strength * d / (falloff * L)`` where ``d`` is the distance to that
    box (0 inside) and ``L`` the longest side of the image. The ``background`` class if
    given and labelled, else the class whose box is largest (in VOC, the background), and
    any class whose box covers more than 60 % of the image get no penalty: they are expected
    anywhere. So does any class whose labels span less than ``min_extent`` of the image's
    longest side (one click or pixel: its box tells where the class is, not how far it
    reaches). The background is no object with an extent: a few background clicks beside
    an object whose clicks span more (the click loop's first negative click) must neither
    confine the background nor free the object. With one class the prior is zero.

    A class whose labels are ``spot_min`` or more separate spots (:func:`spot_classes`:
    points, clicks or small blobs, not strokes) gets the tighter ``spot_margin`` and
    ``spot_falloff`` instead: spots scattered over an object by a sampler or an annotator
    reach towards its extremes, so their box is close to the object's, while strokes are
    drawn inside it and stop short of its outline (docs/study.md, "Spots and strokes").

    How close depends on how many there are. ``n`` points drawn at random inside an object
    leave on average ``1/(n + 1)`` of its extent uncovered on each side (order statistics),
    so the object's extent is estimated as the points' span times ``(n + 1) / (n - 1)``: a
    margin of ``1 / (n - 1)`` of the span per side (the "German tank" estimator). A spot
    class whose pieces are single points (:func:`point_count`) gets the margin
    ``max(spot_margin, point_gap / (n - 1))``: three points leave half their span per side,
    thirty barely any. Blobs and clicks, drawn towards an object's extremes or at its
    errors, keep ``spot_margin``.

    The falloff is a fraction of the image, so a small object's prior would reach as far
    beside it as a large one's; with ``spot_span`` a spot class's falloff is also at most
    that fraction of its own box, and a small object is confined in proportion to its size.
    A class of fewer than ``span_min_points`` single points (:func:`few_points`) keeps the
    image's falloff: a few random points rarely reach across their object, so their box
    understates its size.

    Parameters
    ----------
    labels : (H0, W0) int
        Sparse labels at any resolution; boxes are scaled to ``shape``.
    class_ids : (k,) int
    shape : (H, W)
        Resolution of the returned prior.
    margin, strength, falloff, min_extent : float
    spot_min : int
        Spots from which a class's labels count as scattered samples; 0 never.
    spot_margin, spot_falloff : float
        ``margin`` and ``falloff`` for such classes.
    background : int, optional
        Class that is the free one whenever it is labelled, instead of the class of
        largest box.
    point_gap : float
        Multiplier of the ``1 / (n - 1)`` margin for spot classes labelled by ``n`` single
        points; 0 keeps ``spot_margin`` for them.
    spot_span : float
        A spot class's falloff is at most ``spot_span`` times its enlarged box's longer side
        (at least one pixel); 0 keeps ``spot_falloff`` of the image for every size.
    span_min_points : int
        Classes of fewer single points than this are exempt from ``spot_span``; 0 none.

    Returns
    -------
    (k, H, W) float32
        Additive log-prior per class (<= 0).
    """
    h0, w0 = labels.shape
    h, w = shape
    k = len(class_ids)
    prior = np.zeros((k, h, w), np.float32)
    if k < 2 or strength <= 0:
        return prior
    spots = spot_classes(labels, class_ids, spot_min) if spot_min > 0 else np.zeros(k, bool)
    small = point_like(labels, class_ids, min_extent)
    spanned = spots & ~few_points(labels, class_ids, span_min_points)
    boxes = []
    for c, spot in zip(class_ids, spots):
        mask = labels == c
        raw = label_box(mask)
        grow = margin
        if spot:
            points = point_count(mask) if point_gap > 0 else 0
            grow = max(spot_margin, point_gap / (points - 1)) if points >= 2 else spot_margin
        y0, y1, x0, x1 = enlarge_box(raw, grow, (h0, w0))
        boxes.append((y0 * h / h0, y1 * h / h0, x0 * w / w0, x1 * w / w0))
    areas = [(b[1] - b[0]) * (b[3] - b[2]) for b in boxes]
    present = np.flatnonzero(np.asarray(class_ids) == background) if background is not None else ()
    free_class = int(present[0]) if len(present) else int(np.argmax(areas))
    yy = np.arange(h, dtype=np.float32)[:, None] + 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] + 0.5
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        if i == free_class or areas[i] > 0.6 * h * w or small[i]:
            continue
        scale = (spot_falloff if spots[i] else falloff) * max(h, w)
        if spanned[i] and spot_span > 0:
            scale = min(scale, max(spot_span * max(y1 - y0, x1 - x0), 1.0))
        dy = np.maximum(np.maximum(y0 - yy, yy - y1), 0)
        dx = np.maximum(np.maximum(x0 - xx, xx - x1), 0)
        prior[i] = -strength * np.hypot(dy, dx) / scale
    return prior


def point_like(labels: np.ndarray, class_ids: np.ndarray, min_extent: float) -> np.ndarray:
    """Which classes' labels span less than ``min_extent`` of the image's longest side.

    One click or pixel: its box says where the class is, not how far it reaches, so
    :func:`box_prior` leaves such a class free and :func:`border_prior` may keep it off
    the image's border. A class without labels is not point-like.

    Returns
    -------
    (k,) bool
    """
    limit = min_extent * max(labels.shape)
    out = np.zeros(len(class_ids), bool)
    for i, c in enumerate(class_ids):
        mask = labels == c
        if mask.any():
            y0, y1, x0, x1 = label_box(mask)
            out[i] = max(y1 - y0, x1 - x0) < limit
    return out


def border_prior(labels: np.ndarray, class_ids: np.ndarray, shape: tuple[int, int], background: int,
                 strength: float, band: float, min_extent: float) -> np.ndarray:
    """Log-prior that a class known by one point stays off the image's border.

    The border of a photograph is mostly background, and nothing else says where an object
    clicked once ends: every :func:`point_like` class but ``background`` gets ``-strength``
    in a band of ``band`` of the image's height (top and bottom rows) and width (left and
    right columns), provided ``background`` is labelled; else the prior is zero.

    Parameters
    ----------
    labels : (H0, W0) int
    class_ids : (k,) int
    shape : (H, W)
        Resolution of the returned prior.
    background : int
    strength : float
        Nats, >= 0.
    band : float in (0, 0.5)
    min_extent : float
        As in :func:`box_prior`.

    Returns
    -------
    (k, H, W) float32
        Additive log-prior per class (<= 0).
    """
    h, w = shape
    prior = np.zeros((len(class_ids), h, w), np.float32)
    if strength <= 0 or background not in class_ids:
        return prior
    edge = np.zeros(shape, bool)
    bh, bw = max(1, int(round(band * h))), max(1, int(round(band * w)))
    edge[:bh], edge[-bh:], edge[:, :bw], edge[:, -bw:] = True, True, True, True
    for i, (c, point) in enumerate(zip(class_ids, point_like(labels, class_ids, min_extent))):
        if point and c != background:
            prior[i][edge] = -strength
    return prior


def spot_classes(labels: np.ndarray, class_ids: np.ndarray, min_spots: int = 3, cells_per_spot: float = 3.0,
                 cell: float = GRID_CELL) -> np.ndarray:
    """Which classes' labels are scattered spots (points, clicks, blobs) rather than strokes.

    A class's labels are spots when they form at least ``min_spots`` separate
    (8-connected) pieces that together touch at most ``cells_per_spot`` grid cells (of side
    ``cell`` times the image's longest side) per piece. Measured on the shared data (the
    first 120 VOC train images, seed 0; all 50 GrabCut images): 98 % of VOC ``blobs:100``
    classes and every ``uniform:3/10/30`` class are spots (a pixel or a ~33-pixel blob
    touches one or two cells); no class of either GrabCut scribble set is (a stroke
    touches 6-30 cells per piece); ``blobs:1000`` blobs (~330 pixels) mostly are not.

    Parameters
    ----------
    labels : (H, W) int
        Sparse labels, ``IGNORE`` (-1) where unlabelled.
    class_ids : (k,) int
    min_spots : int
    cells_per_spot, cell : float

    Returns
    -------
    (k,) bool
    """
    out = np.zeros(len(class_ids), bool)
    for i, c in enumerate(class_ids):
        mask = labels == c
        ys, xs = np.nonzero(mask)
        if len(ys) == 0:
            continue
        pieces = _pieces(mask, ys, xs)[1]
        if pieces < min_spots:
            continue
        cells = len(np.unique(grid_cells(ys, xs, labels.shape, cell)))
        out[i] = cells <= cells_per_spot * pieces
    return out


def point_count(mask: np.ndarray) -> int:
    """How many single points ``mask`` holds, or 0 if any of its pieces is larger.

    A piece is a point when it is one pixel or a few touching pixels (at most
    :data:`POINT_AREA`, so a point labelled at a lower resolution and resized still counts);
    sampled pixels (VOC ``uniform:N``) are points, blobs, clicks drawn as disks and strokes
    are not.

    Parameters
    ----------
    mask : (H, W) bool

    Returns
    -------
    int
    """
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return 0
    pieces, n = _pieces(mask, ys, xs)
    areas = np.bincount(pieces.ravel())[1:]
    return int(n) if areas.max() <= POINT_AREA else 0


def _pieces(mask: np.ndarray, ys: np.ndarray, xs: np.ndarray) -> tuple[np.ndarray, int]:
    """8-connected pieces of ``mask`` (non-empty, pixels at ``ys, xs``), labelled within its own box.

    Labelling the labels' box rather than the image keeps this cheap for sparse labels.
    """
    return ndi.label(mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1], np.ones((3, 3), bool))


def few_points(labels: np.ndarray, class_ids: np.ndarray, below: int) -> np.ndarray:
    """Which classes are labelled by fewer than ``below`` single points (:func:`point_count`).

    Classes without labels, or whose labels hold a piece larger than a point (a blob, a
    click drawn as a disk, a stroke), are not; ``below`` <= 1 marks none.

    Returns
    -------
    (k,) bool
    """
    out = np.zeros(len(class_ids), bool)
    if below <= 1:
        return out
    for i, c in enumerate(class_ids):
        mask = labels == c
        # fewer than ``below`` points hold at most POINT_AREA * (below - 1) pixels: no need to label more
        if np.count_nonzero(mask) <= POINT_AREA * (below - 1):
            out[i] = 0 < point_count(mask) < below
    return out
