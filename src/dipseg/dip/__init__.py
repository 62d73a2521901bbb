"""DIPSEG itself: a Deep Image Prior network fitted per image to the RGB image and the labels.

Modules, bottom to top:

* :mod:`~dipseg.dip.config` -- :class:`NetworkConfig`, :class:`FitConfig` (no torch);
* :mod:`~dipseg.dip.presets` -- the named presets registry (no torch);
* :mod:`~dipseg.dip.network` -- the skip encoder-decoder;
* :mod:`~dipseg.dip.build` -- the network and its fixed input for a configuration;
* :mod:`~dipseg.dip.losses`, :mod:`~dipseg.dip.priors`, :mod:`~dipseg.dip.colour` -- the
  pairwise loss, the box prior and the per-class colour models;
* :mod:`~dipseg.dip.refine` -- back to full resolution along the image's edges;
* :mod:`~dipseg.dip.device` -- device and thread selection;
* :mod:`~dipseg.dip.fit` -- one image's fit (:func:`~dipseg.dip.fit.fit`).

Nothing here imports the baselines, the evaluation harness or the interfaces.
"""

from .config import FitConfig, NetworkConfig
from .presets import DEFAULT_PRESET, PRESETS, Preset, get_preset

__all__ = ["DEFAULT_PRESET", "PRESETS", "FitConfig", "NetworkConfig", "Preset", "get_preset"]
