"""Sparse label maps: the one label convention every method shares, and its validation.

Every method in dipseg (DIPSEG and the classical baselines) takes the same
``labels`` array:

* shape ``(H, W)``, any integer dtype;
* ``IGNORE = -1`` marks an unlabelled pixel;
* ``0 .. K-1`` are class indices (Pascal VOC: 0 = background, 1..20 objects).

Ground-truth maps use the dataset convention instead: class indices plus a
``void`` value (255 for VOC) that is never scored and never sampled.
"""

from __future__ import annotations

import numpy as np

IGNORE = -1
"""Label value of an unlabelled pixel."""

VOID = 255
"""Ground-truth value of a pixel that is not scored (VOC's object borders)."""

def validate_image(image: np.ndarray) -> np.ndarray:
    """Check that ``image`` is an ``(H, W, 3) uint8`` array and return it unchanged.

    Raises
    ------
    ValueError
        If the array has another shape or dtype.
    """
    if not isinstance(image, np.ndarray):
        raise ValueError(f"image must be a numpy array of shape (H, W, 3), got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"image must have shape (H, W, 3), got {image.shape}")
    if image.dtype != np.uint8:
        raise ValueError(f"image must have dtype uint8 (0..255), got {image.dtype}")
    if image.shape[0] < 2 or image.shape[1] < 2:
        raise ValueError(f"image must be at least 2x2 pixels, got {image.shape[:2]}")
    return image


def validate_labels(
    labels: np.ndarray,
    shape: tuple[int, int] | None = None,
    num_classes: int | None = None,
    allow_empty: bool = False,
) -> np.ndarray:
    """Check a sparse label map and return it as ``int64``.

    Parameters
    ----------
    labels : ndarray, shape (H, W), integer
        Class index per pixel, ``IGNORE`` (-1) where unlabelled.
    shape : tuple of int, optional
        Expected ``(H, W)`` (the image's).
    num_classes : int, optional
        If given, every label must be below it.
    allow_empty : bool
        Accept a map without any labelled pixel (boxes carry the labels then).

    Returns
    -------
    ndarray, shape (H, W), int64
        A copy; the input is never modified.

    Raises
    ------
    ValueError
        On a wrong shape or dtype, a value that is not a class, or no labelled pixel.
    """
    if not isinstance(labels, np.ndarray):
        raise ValueError(f"labels must be a numpy array of shape (H, W), got {type(labels).__name__}")
    if labels.ndim != 2:
        raise ValueError(f"labels must have shape (H, W), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"labels must be an integer array (IGNORE={IGNORE} for unlabelled), got {labels.dtype}")
    if shape is not None and tuple(labels.shape) != tuple(shape):
        raise ValueError(
            f"label map is {labels.shape[1]}x{labels.shape[0]} (WxH) but the image is "
            f"{shape[1]}x{shape[0]}; draw the labels on the image itself"
        )
    out = labels.astype(np.int64, copy=True)
    bad = (out < IGNORE) | ((out >= num_classes) if num_classes is not None else False)
    if np.any(bad):
        value = int(out[bad][0])
        allowed = f"0..{num_classes - 1}" if num_classes is not None else ">= 0"
        raise ValueError(f"label value {value} is not a class (classes are {allowed}, {IGNORE} = unlabelled)")
    if not allow_empty and not np.any(out != IGNORE):
        raise ValueError("labels contain no labelled pixel; label at least one pixel of each class to segment")
    return out


def labelled_classes(labels: np.ndarray) -> np.ndarray:
    """Sorted class indices that have at least one labelled pixel."""
    values = np.unique(labels)
    return values[values != IGNORE]


def downscale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Move every labelled pixel to its cell of a coarser ``shape`` grid (no seed is lost).

    Where labels of several classes fall into one cell, the highest class id wins.

    Parameters
    ----------
    labels : ndarray (H0, W0) int
    shape : (H, W)

    Returns
    -------
    ndarray (H, W) int64
    """
    h0, w0 = labels.shape
    h, w = shape
    out = np.full(shape, IGNORE, dtype=np.int64)
    ys, xs = np.nonzero(labels != IGNORE)
    vals = labels[ys, xs]
    order = np.argsort(vals, kind="stable")
    out[(ys[order] * h) // h0, (xs[order] * w) // w0] = vals[order]
    return out
