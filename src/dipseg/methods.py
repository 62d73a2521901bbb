"""One entry point for every segmentation method: DIPSEG presets and the classical baselines.

``segment(image, labels, method=...)`` takes the same arrays whatever the method and
returns a :class:`Segmentation` that carries its method, configuration, seed and version.
Method names: ``dipseg`` and ``dipseg-norgb`` (the poster's ablation without the RGB
term), optionally with a preset as ``dipseg:paper``; ``grabcut``, ``random-walker`` and
``trainable`` (see :mod:`dipseg.baselines`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .fitting import Callback, FitState, config_dict, fit
from .labels import labelled_classes, validate_image, validate_labels
from .presets import DEFAULT_PRESET, get_preset

DIPSEG_METHODS = ("dipseg", "dipseg-norgb")


@dataclass
class Segmentation:
    """A segmentation and everything needed to reproduce it.

    Attributes
    ----------
    classes : ndarray (H, W) int64
        Class id per pixel; only labelled classes occur.
    probabilities : ndarray (H, W, k) float32 or None
        Per-class probabilities in the order of ``class_ids`` (DIPSEG only).
    class_ids : ndarray (k,) int64
        The labelled classes.
    method, preset : str
    seed : int
    seconds : float
        Wall time of the call.
    config : dict
        The full configuration (JSON-serialisable).
    version : str
        dipseg version.
    info : dict
        Method-specific details (iterations run, why the fit stopped, last losses).
    message : str or None
        A note for the user (e.g. only one class labelled).
    """

    classes: np.ndarray
    probabilities: np.ndarray | None
    class_ids: np.ndarray
    method: str
    preset: str | None
    seed: int
    seconds: float
    config: dict[str, Any]
    version: str = __version__
    info: dict[str, Any] = field(default_factory=dict)
    message: str | None = None
    state: FitState | None = field(default=None, repr=False)

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description (everything but the arrays)."""
        return {
            "method": self.method,
            "preset": self.preset,
            "seed": self.seed,
            "seconds": round(self.seconds, 4),
            "class_ids": [int(c) for c in self.class_ids],
            "config": self.config,
            "version": self.version,
            "info": self.info,
            "message": self.message,
        }


def parse_method(method: str, preset: str | None = None) -> tuple[str, str | None]:
    """Split ``"dipseg:paper"`` into ``("dipseg", "paper")`` and check both names.

    Raises
    ------
    ValueError
        Unknown method or preset.
    """
    from .baselines import BASELINES

    name, _, suffix = method.partition(":")
    if name in DIPSEG_METHODS:
        chosen = suffix or preset or DEFAULT_PRESET
        get_preset(chosen)
        return name, chosen
    if name in BASELINES and not suffix:
        return name, None
    known = ", ".join([*DIPSEG_METHODS, *BASELINES])
    raise ValueError(f"unknown method {method!r}; choose one of: {known} (DIPSEG takes a preset as dipseg:NAME)")


def available_methods() -> list[str]:
    """Names accepted by :func:`segment`."""
    from .baselines import BASELINES

    return [*DIPSEG_METHODS, *BASELINES]


def segment(
    image: np.ndarray,
    labels: np.ndarray,
    method: str = "dipseg",
    *,
    preset: str | None = None,
    seed: int = 0,
    device: str = "auto",
    callback: Callback | None = None,
    preview_every: int | None = None,
    warm_start: FitState | None = None,
    threads: int | None = None,
    **fit_overrides: Any,
) -> Segmentation:
    """Segment ``image`` from sparse ``labels`` with any method.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8
    labels : ndarray (H, W) int
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere.
    method : str
        ``dipseg``, ``dipseg-norgb``, ``dipseg:PRESET``, ``grabcut``, ``random-walker``
        or ``trainable``.
    preset : str, optional
        DIPSEG preset (default :data:`dipseg.presets.DEFAULT_PRESET`).
    seed : int
    device : {"auto", "cpu", "cuda"}
        DIPSEG only; baselines run on the CPU.
    callback, preview_every, warm_start, threads
        See :func:`dipseg.fitting.fit` (DIPSEG only).
    **fit_overrides
        :class:`dipseg.fitting.FitConfig` fields to override, e.g. ``iterations=100``.

    Returns
    -------
    Segmentation
    """
    name, preset_name = parse_method(method, preset)
    image = validate_image(image)
    labels = validate_labels(labels, shape=image.shape[:2])
    message = None
    if len(labelled_classes(labels)) == 1:
        message = f"only class {int(labelled_classes(labels)[0])} is labelled: every pixel gets that class"
    t0 = time.perf_counter()
    if name in DIPSEG_METHODS:
        p = get_preset(preset_name)
        if name == "dipseg-norgb":
            fit_overrides["rgb_weight"] = 0.0
        p = p.with_fit(**fit_overrides)
        res = fit(
            image, labels, p.network, p.fit, seed=seed, device=device, callback=callback,
            preview_every=preview_every, warm_start=warm_start, threads=threads,
        )
        info = {"iterations": res.iterations, "stopped": res.stopped, "losses": res.losses}
        return Segmentation(
            res.classes, res.probabilities, res.class_ids, name, preset_name, seed,
            time.perf_counter() - t0, config_dict(p.network, p.fit), info=info, message=message, state=res.state,
        )
    from .baselines import BASELINES

    if fit_overrides:
        raise ValueError(f"method {name!r} takes no DIPSEG options, got {sorted(fit_overrides)}")
    classes = BASELINES[name](image, labels, seed=seed)
    return Segmentation(
        np.asarray(classes, dtype=np.int64), None, labelled_classes(labels), name, None, seed,
        time.perf_counter() - t0, {"method": name}, message=message,
    )
