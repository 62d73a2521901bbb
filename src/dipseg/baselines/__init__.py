"""Classical seeded segmenters used as baselines: GrabCut, random walker, a trainable pixel classifier.

One algorithm per module. Every baseline has the signature ``f(image, labels, *, seed=0, **options)``:

* ``image``: ``(H, W, 3) uint8`` RGB;
* ``labels``: ``(H, W)`` integer, class index at labelled pixels, ``IGNORE`` (-1) elsewhere;
* returns an ``(H, W) int64`` class map whose values are only classes that occur in
  ``labels``, with their original ids (no remapping).

If a single class is labelled every pixel gets that class. Inputs are never modified.
Their method names are registered in :data:`dipseg.api.METHODS`.
"""

from __future__ import annotations

from .grabcut import grabcut
from .random_walker import BF_MAX_PIXELS, random_walker
from .seeds import nearest_seed
from .trainable import pixel_features, trainable

__all__ = ["BF_MAX_PIXELS", "grabcut", "nearest_seed", "pixel_features", "random_walker", "trainable"]
