"""What every baseline shares: input checks and the nearest-seed (Voronoi) rule."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from ..labels import labelled_classes, validate_image, validate_labels


def prepare(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate; return the image, an int64 copy of the labels and the labelled classes."""
    image = validate_image(image)
    labels = validate_labels(labels, shape=image.shape[:2])
    return image, labels, labelled_classes(labels)


def seed_distances(labels: np.ndarray, classes: np.ndarray) -> np.ndarray:
    """Euclidean distance from every pixel to the nearest seed of each class, shape ``(k, H, W)``."""
    return np.stack([ndimage.distance_transform_edt(labels != c) for c in classes])


def nearest_seed(labels: np.ndarray, classes: np.ndarray | None = None) -> np.ndarray:
    """Give every pixel the class of its nearest labelled pixel (Euclidean; ties to the lower class).

    Parameters
    ----------
    labels : ndarray, shape (H, W), integer
        Class index at labelled pixels, ``IGNORE`` elsewhere (at least one labelled pixel).
    classes : ndarray, shape (k,), optional
        The labelled classes, sorted (computed when omitted).

    Returns
    -------
    ndarray, shape (H, W), int64
    """
    if classes is None:
        classes = labelled_classes(labels)
    dist = seed_distances(labels, classes)
    return classes[np.argmin(dist, axis=0)].astype(np.int64)
