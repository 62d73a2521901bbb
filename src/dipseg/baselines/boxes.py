"""The seed-based baselines on boxes: the random walker and the trainable classifier.

Neither has a notion of a box, so both are seeded from them by one documented rule
(:func:`dipseg.boxes.box_seeds`): background outside every box, each box's class on the
central ``core`` of the box (20 % of its width and height), plus the user's labels. Their
answer is then kept to the boxes: a pixel given a box class outside that class's boxes
becomes background (:func:`dipseg.boxes.restrict_to_boxes`). GrabCut has its own rectangle
mode (:func:`dipseg.baselines.grabcut.grabcut_boxes`).
"""

from __future__ import annotations

import numpy as np

from ..boxes import Box, box_seeds, restrict_to_boxes, validate_boxes
from ..labels import validate_image, validate_labels
from .random_walker import random_walker
from .trainable import trainable

CORE = 0.2
"""Fraction of a box's width and height, about its centre, seeded with its class."""


def _seeded(image, labels, boxes, background):
    image = validate_image(image)
    shape = image.shape[:2]
    boxes = validate_boxes(boxes, shape, background=background)
    if not boxes:
        raise ValueError("need at least one box")
    user = None if labels is None else validate_labels(labels, shape=shape, allow_empty=True)
    return image, user, boxes, box_seeds(boxes, shape, user, background, CORE)


def random_walker_boxes(image: np.ndarray, labels: np.ndarray | None, boxes: list[Box], *, seed: int = 0,
                        background: int = 0) -> np.ndarray:
    """The random walker from box seeds (module docstring), kept to the boxes; ``(H, W) int64``."""
    image, user, boxes, seeds = _seeded(image, labels, boxes, background)
    return restrict_to_boxes(random_walker(image, seeds, seed=seed), boxes, background, user)


def trainable_boxes(image: np.ndarray, labels: np.ndarray | None, boxes: list[Box], *, seed: int = 0,
                    background: int = 0) -> np.ndarray:
    """The trainable random forest from box seeds (module docstring), kept to the boxes; ``(H, W) int64``."""
    image, user, boxes, seeds = _seeded(image, labels, boxes, background)
    return restrict_to_boxes(trainable(image, seeds, seed=seed), boxes, background, user)
