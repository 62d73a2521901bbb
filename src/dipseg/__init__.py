"""dipseg: segment an image from a handful of labelled pixels with a Deep Image Prior.

The library API is deliberately narrow::

    import dipseg
    seg = dipseg.segment(image, labels)          # image (H,W,3) uint8, labels (H,W) int, -1 unlabelled
    seg.classes                                  # (H,W) int64 class map

Layers, bottom to top (nothing imports upward):

* core: :mod:`dipseg.labels` (the label convention), :mod:`dipseg.samplers`,
  :mod:`dipseg.features`, :mod:`dipseg.palette`, :mod:`dipseg.io`, and :mod:`dipseg.dip`
  (the network, its configs and presets, the fit);
* :mod:`dipseg.baselines` -- GrabCut, random walker, trainable classifier;
* :mod:`dipseg.api` -- :func:`segment` and the one :data:`METHODS` registry;
* :mod:`dipseg.eval` -- datasets, metrics and the benchmark;
* interfaces: :mod:`dipseg.cli` and :mod:`dipseg.web`.
"""

__version__ = "0.1.0"

from .api import METHODS, Segmentation, available_methods, fit_model, load_model, segment  # noqa: E402
from .boxes import Box  # noqa: E402
from .dip.presets import DEFAULT_PRESET, PRESETS  # noqa: E402
from .labels import IGNORE  # noqa: E402
from .samplers import sample_blobs, sample_labels, sample_uniform  # noqa: E402

__all__ = [
    "Box",
    "IGNORE",
    "DEFAULT_PRESET",
    "METHODS",
    "PRESETS",
    "Segmentation",
    "available_methods",
    "fit_model",
    "load_model",
    "sample_blobs",
    "sample_labels",
    "sample_uniform",
    "segment",
    "__version__",
]
