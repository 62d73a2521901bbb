"""GrabCut (Rother, Kolmogorov, Blake, SIGGRAPH 2004) from seeds, one-vs-rest for several classes."""

from __future__ import annotations

import cv2
import numpy as np

from ..boxes import Box, validate_boxes
from ..features import enlarge_box, label_box
from ..labels import IGNORE, validate_image, validate_labels
from .seeds import prepare, seed_distances



def _enlarged_box(seeds: np.ndarray, margin: float) -> tuple[int, int, int, int]:
    """Bounding box ``(y0, y1, x0, x1)`` of ``seeds`` grown by ``margin`` of its size per side, whole pixels."""
    return enlarge_box(label_box(seeds), margin, seeds.shape, whole_pixels=True)


def _grabcut_claim(
    bgr: np.ndarray, labels: np.ndarray, fg: int, iterations: int, box_margin: float
) -> np.ndarray | None:
    """Run one binary GrabCut with class ``fg`` as foreground; ``None`` where OpenCV refuses.

    Returns the boolean ``(H, W)`` foreground mask (definite or probable foreground).
    """
    seeds = labels == fg
    y0, y1, x0, x1 = _enlarged_box(seeds, box_margin)
    mask = np.full(labels.shape, cv2.GC_PR_BGD, dtype=np.uint8)
    mask[y0:y1, x0:x1] = cv2.GC_PR_FGD
    mask[(labels != IGNORE) & ~seeds] = cv2.GC_BGD
    mask[seeds] = cv2.GC_FGD
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    try:
        cv2.grabCut(bgr, mask, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        # OpenCV asserts when one side has no samples or fewer samples than GMM
        # components (opencv#14879, #13297), e.g. a single-pixel class whose box
        # is that pixel; the caller then uses the seeds-only rule for this class.
        return None
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def grabcut(
    image: np.ndarray,
    labels: np.ndarray,
    *,
    seed: int = 0,
    iterations: int = 5,
    box_margin: float = 0.15,
) -> np.ndarray:
    """OpenCV GrabCut from seeds, extended to several classes one-vs-rest.

    For each labelled class ``c`` one binary GrabCut (``cv2.GC_INIT_WITH_MASK``) runs on
    the mask

    * ``GC_FGD`` at the seeds of ``c``, ``GC_BGD`` at the seeds of every other class;
    * ``GC_PR_FGD`` inside the bounding box of ``c``'s seeds, enlarged by ``box_margin``
      of the box's height / width on each side (clipped to the image);
    * ``GC_PR_BGD`` everywhere else.

    Its (definite or probable) foreground is the set of pixels *claimed* by ``c``. The
    claims are combined by the following rule, using the Euclidean distance ``d_c(p)``
    from pixel ``p`` to the nearest seed of class ``c``:

    1. a pixel claimed by one class gets that class;
    2. a pixel claimed by several classes gets the claiming class with the smallest
       ``d_c(p)``;
    3. a pixel claimed by no class gets the class with the smallest ``d_c(p)`` over
       all labelled classes.

    Ties go to the lower class id. Seeds always keep their own class (they are
    definite foreground of their class and definite background of every other).

    With exactly two classes a single GrabCut runs: the foreground is the class whose
    enlarged seed box is smaller (ties: the higher class id, so VOC's background, 0,
    is the GrabCut background), which gives a box prior on the object rather than a
    box covering the whole image.

    When OpenCV cannot run (too few samples on one side, see opencv#14879 / #13297),
    that class falls back to the *seeds-only rule*: it claims the pixels whose nearest
    seed is one of its own (a Voronoi partition of the seeds).

    Parameters
    ----------
    image : ndarray, shape (H, W, 3), uint8
        RGB image (converted to BGR for OpenCV).
    labels : ndarray, shape (H, W), integer
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere.
    seed : int
        Seeds OpenCV's RNG (its k-means initialisation of the colour models), so the
        same call gives the same result.
    iterations : int
        GrabCut iterations per call (OpenCV's ``iterCount``), at least 1.
    box_margin : float
        Fraction of the seed box's size added on each side, at least 0.

    Returns
    -------
    ndarray, shape (H, W), int64
        Class per pixel, only classes present in ``labels``.

    Raises
    ------
    ValueError
        Bad image or labels (shape, dtype, no labelled pixel) or bad options.

    Notes
    -----
    About 1 s per GrabCut call on a 500x375 image (5 iterations): ``k`` labelled
    classes cost ``k`` calls (one when ``k == 2``).
    """
    image, labels, classes = prepare(image, labels)
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    if not np.isfinite(box_margin) or box_margin < 0:
        raise ValueError(f"box_margin must be a finite number >= 0, got {box_margin!r}")
    if len(classes) == 1:
        return np.full(labels.shape, classes[0], dtype=np.int64)

    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.setRNGSeed(int(seed))
    dist = seed_distances(labels, classes)
    voronoi = np.argmin(dist, axis=0)

    if len(classes) == 2:
        areas = []
        for c in classes:
            y0, y1, x0, x1 = _enlarged_box(labels == c, box_margin)
            areas.append((y1 - y0) * (x1 - x0))
        fg = 1 if areas[1] <= areas[0] else 0
        claim = _grabcut_claim(bgr, labels, int(classes[fg]), int(iterations), float(box_margin))
        if claim is None:
            return classes[voronoi].astype(np.int64)
        return np.where(claim, classes[fg], classes[1 - fg]).astype(np.int64)

    claims = np.empty(dist.shape, dtype=bool)
    for i, c in enumerate(classes):
        claim = _grabcut_claim(bgr, labels, int(c), int(iterations), float(box_margin))
        claims[i] = claim if claim is not None else voronoi == i
    claimed_dist = np.where(claims, dist, np.inf)
    choice = np.where(claims.any(axis=0), np.argmin(claimed_dist, axis=0), voronoi)
    return classes[choice].astype(np.int64)


def grabcut_boxes(
    image: np.ndarray,
    labels: np.ndarray | None,
    boxes: list[Box],
    *,
    seed: int = 0,
    background: int = 0,
    iterations: int = 5,
) -> np.ndarray:
    """OpenCV GrabCut in its native rectangle mode, one run per box.

    Each box runs one binary GrabCut: ``cv2.GC_INIT_WITH_RECT`` with the box's pixels
    (:meth:`dipseg.boxes.Box.pixels`) as the rectangle, i.e. definite background outside it
    and probable foreground inside. With user labels the same mask is built by hand and
    the seeds added (``GC_FGD`` at the labels of the box's class inside the box,
    ``GC_BGD`` at every other label), then ``GC_INIT_WITH_MASK``.

    **Pixels claimed by several boxes** (the rule): the pixel goes to the *smallest* box
    (by area) whose GrabCut claimed it, its class; ties to the lower class id. A smaller
    box overlapping a larger one is most often the object in front (a person on a horse).
    Pixels claimed by no box are ``background``; user labels are kept where given. A box
    whose GrabCut OpenCV refuses (a box covering the whole image leaves no background
    sample) claims its whole rectangle.

    Parameters
    ----------
    image : (H, W, 3) uint8
    labels : (H, W) int or None
        Optional user labels (``IGNORE`` elsewhere).
    boxes : list of Box or (class, x0, y0, x1, y1)
    seed : int
        Seeds OpenCV's RNG.
    background : int
    iterations : int
        GrabCut iterations per box.

    Returns
    -------
    (H, W) int64
    """
    image = validate_image(image)
    shape = image.shape[:2]
    boxes = validate_boxes(boxes, shape, background=background)
    if not boxes:
        raise ValueError("grabcut_boxes needs at least one box")
    user = None if labels is None else validate_labels(labels, shape=shape, allow_empty=True)
    if isinstance(iterations, bool) or not isinstance(iterations, (int, np.integer)) or iterations < 1:
        raise ValueError(f"iterations must be a positive integer, got {iterations!r}")
    bgr = np.ascontiguousarray(image[..., ::-1])
    cv2.setRNGSeed(int(seed))
    out = np.full(shape, background, dtype=np.int64)
    best = np.full(shape, np.inf)
    for b in sorted(boxes, key=lambda b: (b.area, b.cls)):
        r0, r1, c0, c1 = b.pixels()
        claim = _grabcut_rect(bgr, user, b, int(iterations))
        take = claim & (b.area < best)
        out[take] = b.cls
        best[take] = b.area
    if user is not None:
        seeded = user != IGNORE
        out[seeded] = user[seeded]
    return out


def _grabcut_rect(bgr: np.ndarray, user: np.ndarray | None, box: Box, iterations: int) -> np.ndarray:
    """The pixels one box's GrabCut claims, ``(H, W) bool`` (the whole box where OpenCV refuses)."""
    shape = bgr.shape[:2]
    r0, r1, c0, c1 = box.pixels()
    mask = np.zeros(shape, np.uint8)
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    seeded = user is not None and bool(np.any(user != IGNORE))
    try:
        if not seeded:
            cv2.grabCut(bgr, mask, (c0, r0, c1 - c0, r1 - r0), bgd_model, fgd_model, iterations,
                        cv2.GC_INIT_WITH_RECT)
        else:
            mask[:] = cv2.GC_BGD
            mask[r0:r1, c0:c1] = cv2.GC_PR_FGD
            inside = np.zeros(shape, bool)
            inside[r0:r1, c0:c1] = True
            mask[(user != IGNORE) & (user != box.cls)] = cv2.GC_BGD
            mask[(user == box.cls) & inside] = cv2.GC_FGD
            cv2.grabCut(bgr, mask, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    except cv2.error:
        claim = np.zeros(shape, bool)
        claim[r0:r1, c0:c1] = True
        return claim
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
