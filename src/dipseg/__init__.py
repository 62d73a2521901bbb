"""dipseg: segment an image from a handful of labelled pixels with a Deep Image Prior.

The library API is deliberately narrow::

    import dipseg
    seg = dipseg.segment(image, labels)          # image (H,W,3) uint8, labels (H,W) int, -1 unlabelled
    seg.classes                                  # (H,W) int64 class map

See :func:`dipseg.segment`, :mod:`dipseg.labels` (samplers), :mod:`dipseg.io` (files).
"""

__version__ = "0.1.0"

from .labels import IGNORE, sample_blobs, sample_labels, sample_uniform  # noqa: E402
from .methods import Segmentation, available_methods, segment  # noqa: E402
from .presets import DEFAULT_PRESET, PRESETS  # noqa: E402

__all__ = [
    "IGNORE",
    "DEFAULT_PRESET",
    "PRESETS",
    "Segmentation",
    "available_methods",
    "sample_blobs",
    "sample_labels",
    "sample_uniform",
    "segment",
    "__version__",
]
