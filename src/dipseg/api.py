"""The library's one entry point: :func:`segment`, for DIPSEG and every baseline alike.

``segment(image, labels, method=...)`` takes the same arrays whatever the method and
returns a :class:`Segmentation` that carries its method, configuration, seed and version.
:data:`METHODS` is the one registry of method names: ``dipseg`` and its variants (such as
``dipseg-norgb``, the poster's ablation without the RGB term), each optionally with a
preset as ``dipseg:paper``; ``grabcut``, ``random-walker`` and ``trainable``
(:mod:`dipseg.baselines`). Heavy modules (torch, OpenCV) are imported on first use.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from . import __version__
from .dip.config import config_dict, given
from .dip.presets import DEFAULT_PRESET, get_preset
from .boxes import box_classes, box_labels, validate_boxes
from .labels import IGNORE, labelled_classes, validate_image, validate_labels

if TYPE_CHECKING:
    from .dip.fit import Callback, FitState


@dataclass(frozen=True)
class Method:
    """A named segmentation method of :data:`METHODS`.

    Attributes
    ----------
    name : str
    kind : {"dipseg", "baseline"}
        DIPSEG methods take a preset and :class:`~dipseg.dip.config.FitConfig` overrides.
    description : str
    fit_overrides : mapping
        DIPSEG variants: fit settings fixed by the variant (``dipseg-norgb``: ``rgb_weight=0``).
    target : str
        Baselines: ``"module:function"`` of the implementation, imported on first use.
    box_target : str
        Baselines: ``"module:function"`` taking ``(image, labels, boxes, *, seed, background)``,
        the method's use of boxes.
    """

    name: str
    kind: str
    description: str
    fit_overrides: Mapping[str, Any] = field(default_factory=dict)
    target: str | None = None
    box_target: str | None = None

    @property
    def is_dipseg(self) -> bool:
        return self.kind == "dipseg"

    def function(self) -> Callable[..., np.ndarray]:
        """The baseline's function ``f(image, labels, *, seed, **options)``."""
        if self.target is None:
            raise ValueError(f"{self.name} is a DIPSEG method; call dipseg.segment")
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def box_function(self) -> Callable[..., np.ndarray]:
        """The baseline's function ``f(image, labels, boxes, *, seed, background)`` for boxes."""
        if self.box_target is None:
            raise ValueError(f"method {self.name!r} does not take boxes")
        module, _, attr = self.box_target.partition(":")
        return getattr(importlib.import_module(module), attr)


METHODS: Mapping[str, Method] = MappingProxyType({
    "dipseg": Method("dipseg", "dipseg", "DIPSEG with a preset (default: the fast preset)"),
    "dipseg-norgb": Method(
        "dipseg-norgb", "dipseg", "DIPSEG without the RGB reconstruction loss (the poster's ablation)",
        MappingProxyType({"rgb_weight": 0.0}),
    ),
    "grabcut": Method("grabcut", "baseline", "OpenCV GrabCut from seeds, one-vs-rest",
                      target="dipseg.baselines.grabcut:grabcut", box_target="dipseg.baselines.grabcut:grabcut_boxes"),
    "random-walker": Method("random-walker", "baseline", "scikit-image's random walker on smoothed CIELAB",
                            target="dipseg.baselines.random_walker:random_walker",
                            box_target="dipseg.baselines.boxes:random_walker_boxes"),
    "trainable": Method("trainable", "baseline", "a random forest on multi-scale pixel features",
                        target="dipseg.baselines.trainable:trainable",
                        box_target="dipseg.baselines.boxes:trainable_boxes"),
})
"""Every method name :func:`segment` accepts (DIPSEG ones also as ``NAME:PRESET``)."""

DIPSEG_METHODS = tuple(name for name, m in METHODS.items() if m.is_dipseg)

MAX_SEED = 2**31 - 1
"""Largest seed: every method takes ``0 .. MAX_SEED`` (OpenCV's RNG, used by GrabCut, takes a C int)."""

DEVICES = ("auto", "cpu", "cuda")
"""Device names :func:`segment` accepts (also ``cuda:N``)."""

DEFAULT_THREADS = 1
"""torch threads of a DIPSEG fit when none are given.

On the project's 2-core machine, busy with other jobs, one fit of a VOC image took 12.6-15.1 s
with one thread and 297-401 s with two, which wait for each other when the cores are taken
(``benchmarks/threads.py``; table in the README, "Threads"). A fixed default also keeps the
result independent of the machine's core count: a fit is bit-reproducible only for a fixed
thread count.
"""


def check_seed(seed: Any, name: str = "seed") -> int:
    """Check that ``seed`` is a whole number in ``0 .. MAX_SEED`` and return it as ``int``.

    Raises
    ------
    ValueError
        Not an integer (bools are refused), negative, or above :data:`MAX_SEED`.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number in 0..{MAX_SEED}, got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"{name} must be in 0..{MAX_SEED}, got {int(seed)}")
    return int(seed)


def check_device_name(device: str) -> str:
    """Check a device name without importing torch (whether CUDA is there is checked at the fit).

    Raises
    ------
    ValueError
        Not ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
    """
    text = str(device)
    if text not in DEVICES and not (text.startswith("cuda:") and text[5:].isdigit()):
        raise ValueError(f"unknown device {text!r}: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'")
    return text


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
    threads : int or None
        torch threads of a DIPSEG fit (its result depends on them); None for the baselines.
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
    state: "FitState | None" = field(default=None, repr=False)
    threads: int | None = None

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description (everything but the arrays)."""
        return {
            "method": self.method,
            "preset": self.preset,
            "seed": self.seed,
            "threads": self.threads,
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
    name, _, suffix = method.partition(":")
    m = METHODS.get(name)
    if m is not None and m.is_dipseg:
        chosen = suffix or preset or DEFAULT_PRESET
        get_preset(chosen)
        return name, chosen
    if m is not None and not suffix:
        return name, None
    known = ", ".join(METHODS)
    raise ValueError(f"unknown method {method!r}; choose one of: {known} (DIPSEG takes a preset as dipseg:NAME)")


def available_methods() -> list[str]:
    """Names accepted by :func:`segment`."""
    return list(METHODS)


def dipseg_config(method: str, preset: str, fit_overrides: dict[str, Any] | None = None,
                  network_overrides: dict[str, Any] | None = None):
    """The preset of a DIPSEG method with the variant's and the caller's overrides applied.

    ``None`` overrides are dropped (:func:`dipseg.dip.config.given`); a variant's own
    settings (``dipseg-norgb``: ``rgb_weight=0``) win over the caller's. ``network_overrides``
    replace :class:`~dipseg.dip.config.NetworkConfig` fields (widths, depth, decoder...).

    Returns
    -------
    Preset

    Raises
    ------
    ValueError
        Not a DIPSEG method, unknown preset, or an override that is not a FitConfig /
        NetworkConfig field or has a bad value.
    """
    m = METHODS.get(method)
    if m is None or not m.is_dipseg:
        raise ValueError(f"{method!r} is not a DIPSEG method; choose one of: {', '.join(DIPSEG_METHODS)}")
    overrides = given(fit_overrides) | dict(m.fit_overrides)
    try:
        return get_preset(preset).with_fit(**overrides).with_network(**given(network_overrides))
    except TypeError as exc:
        raise ValueError(f"bad DIPSEG option: {exc}") from None


def segment(
    image: np.ndarray,
    labels: np.ndarray | None = None,
    method: str = "dipseg",
    *,
    boxes: Any = None,
    background: int = 0,
    tight_boxes: bool = False,
    preset: str | None = None,
    seed: int = 0,
    device: str = "auto",
    callback: Callback | None = None,
    preview_every: int | None = None,
    warm_start: FitState | None = None,
    threads: int | None = None,
    network: dict[str, Any] | None = None,
    **fit_overrides: Any,
) -> Segmentation:
    """Segment ``image`` from sparse ``labels`` with any method.

    Parameters
    ----------
    image : ndarray (H, W, 3) uint8
    labels : ndarray (H, W) int, optional
        Class index at labelled pixels, ``IGNORE`` (-1) elsewhere. May be omitted (or hold
        no label) when ``boxes`` are given.
    method : str
        ``dipseg``, ``dipseg-norgb``, ``dipseg:PRESET``, ``grabcut``, ``random-walker``
        or ``trainable``.
    boxes : list of (class, x0, y0, x1, y1) or :class:`dipseg.boxes.Box`, optional
        One box per object, in pixels (``x`` along columns, ``(0, 0, W, H)`` is the whole
        image; :mod:`dipseg.boxes`). Everything outside every box is ``background``; labels
        may be combined with boxes (a few clicks or strokes inside them). Each method's use
        of boxes is in docs/boxes.md (GrabCut: its rectangle mode, one run per box).
    background : int
        The class outside every box (0, VOC's background).
    tight_boxes : bool
        The boxes touch their objects on all four sides, as the boxes of detection data
        (Pascal VOC, COCO) and boxes derived from masks do; False (the default) for boxes
        drawn around an object with some margin. DIPSEG then favours each box's class
        inside its boxes (``FitConfig.box_inside``); the baselines make no use of it.
    preset : str, optional
        DIPSEG preset (default :data:`dipseg.dip.presets.DEFAULT_PRESET`).
    seed : int
        ``0 .. MAX_SEED``; same seed, same result (DIPSEG: on the same device and threads).
    device : {"auto", "cpu", "cuda"}
        DIPSEG only; baselines run on the CPU.
    callback, preview_every, warm_start
        See :func:`dipseg.dip.fit.fit` (DIPSEG only).
    threads : int, optional
        torch threads of a DIPSEG fit (default :data:`DEFAULT_THREADS`); recorded in the
        result's metadata, since the result depends on them.
    network : dict, optional
        :class:`dipseg.dip.config.NetworkConfig` fields to override (DIPSEG only), e.g.
        ``network={"channels_down": (8, 16, 32), ...}``.
    **fit_overrides
        :class:`dipseg.dip.config.FitConfig` fields to override, e.g. ``iterations=100``
        (``None`` values keep the preset's).

    Returns
    -------
    Segmentation

    Raises
    ------
    ValueError
        Bad image or labels, unknown method, preset or device name, a seed outside
        ``0 .. MAX_SEED``, fewer than one thread, DIPSEG options given to a baseline, or a
        bad box (outside the image, empty or inverted, a negative or background class), or
        ``tight_boxes`` that is not a bool or comes without boxes.
    """
    name, preset_name = parse_method(method, preset)
    seed = check_seed(seed)
    if isinstance(device, str):  # a torch.device is already checked
        check_device_name(device)
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ValueError(f"threads must be a whole number >= 1, got {threads!r}")
    image = validate_image(image)
    shape = image.shape[:2]
    if isinstance(background, bool) or not isinstance(background, (int, np.integer)) or background < 0:
        raise ValueError(f"background must be a class id >= 0, got {background!r}")
    box_list = validate_boxes(boxes, shape, background=int(background))
    if not isinstance(tight_boxes, (bool, np.bool_)):
        raise ValueError(f"tight_boxes must be True or False, got {tight_boxes!r}")
    if tight_boxes and not box_list:
        raise ValueError("tight_boxes=True says how boxes were drawn, but no boxes were given: pass boxes or drop it")
    if box_list:
        user = np.full(shape, IGNORE, np.int64) if labels is None else validate_labels(labels, shape=shape,
                                                                                       allow_empty=True)
        labels = user
        class_ids = np.union1d(labelled_classes(box_labels(box_list, shape, user, int(background))),
                               box_classes(box_list)).astype(np.int64)
    else:
        if labels is None:
            raise ValueError("give labels, boxes or both: labels=None and no boxes")
        labels = validate_labels(labels, shape=shape)
        class_ids = labelled_classes(labels)
    message = None
    if len(class_ids) == 1:
        message = f"only class {int(class_ids[0])} is labelled: every pixel gets that class"
    t0 = time.perf_counter()
    if METHODS[name].is_dipseg:
        from .dip.fit import fit

        p = dipseg_config(name, preset_name, fit_overrides, network)
        threads = int(threads) if threads is not None else DEFAULT_THREADS
        res = fit(
            image, labels, p.network, p.fit, seed=seed, device=device, callback=callback,
            preview_every=preview_every, warm_start=warm_start, threads=threads,
            boxes=box_list or None, background=int(background), tight_boxes=bool(tight_boxes),
        )
        info = {"iterations": res.iterations, "stopped": res.stopped, "losses": res.losses}
        if box_list:
            info["boxes"] = [b.as_list() for b in box_list]
            info["tight_boxes"] = bool(tight_boxes)
        return Segmentation(
            res.classes, res.probabilities, res.class_ids, name, preset_name, seed,
            time.perf_counter() - t0, config_dict(p.network, p.fit), info=info, message=message, state=res.state,
            threads=threads,
        )
    if given(fit_overrides) or given(network):
        options = sorted(given(fit_overrides)) + sorted(given(network))
        raise ValueError(f"method {name!r} takes no DIPSEG options, got {options}")
    if box_list:
        classes = METHODS[name].box_function()(image, labels, box_list, seed=seed, background=int(background))
        info = {"boxes": [b.as_list() for b in box_list], "tight_boxes": bool(tight_boxes)}
    else:
        classes = METHODS[name].function()(image, labels, seed=seed)
        info = {}
    return Segmentation(
        np.asarray(classes, dtype=np.int64), None, class_ids, name, None, seed,
        time.perf_counter() - t0, {"method": name}, info=info, message=message,
    )


def fit_model(
    image: np.ndarray,
    labels: np.ndarray,
    method: str = "dipseg",
    *,
    preset: str | None = None,
    seed: int = 0,
    device: str = "auto",
    callback: Callback | None = None,
    threads: int | None = None,
    network: dict[str, Any] | None = None,
    **fit_overrides: Any,
):
    """Fit DIPSEG on one labelled image and return a model that segments other images.

    ``model.predict(other_image)`` segments an image of any size with the same class ids,
    without a new fit; ``model.save(path)`` / :func:`load_model` keep it in a file. See
    :mod:`dipseg.dip.transfer` (and ``docs/transfer.md``) for what a transfer does.

    Parameters
    ----------
    image, labels, method, preset, seed, device, callback, threads, network, **fit_overrides
        As for :func:`segment` (DIPSEG methods only).

    Returns
    -------
    TransferModel
        Its ``source`` attribute is the :class:`Segmentation` of ``image`` itself.

    Raises
    ------
    ValueError
        As :func:`segment`; also a baseline method, an input mode whose network does not see
        the image (``noise``, ``noise+xy``: noise alone cannot transfer), or fewer than two
        labelled classes.
    """
    name, preset_name = parse_method(method, preset)
    if not METHODS[name].is_dipseg:
        raise ValueError(f"only DIPSEG methods can be fitted for transfer, not {name!r}; choose one of: "
                         f"{', '.join(DIPSEG_METHODS)}")
    p = dipseg_config(name, preset_name, fit_overrides, network)
    from .dip.transfer import check_transferable

    check_transferable(p.fit)
    image = validate_image(image)
    labels = validate_labels(labels, shape=image.shape[:2])
    if len(labelled_classes(labels)) < 2:
        raise ValueError("label at least two classes on the source image: a model of one class has nothing to transfer")
    seg = segment(image, labels, name, preset=preset_name, seed=seed, device=device, callback=callback,
                  threads=threads, network=network, **fit_overrides)
    model = model_from_fit(seg, image, labels)
    model.source = seg
    return model


def model_from_fit(seg: Segmentation, image: np.ndarray, labels: np.ndarray):
    """The :class:`~dipseg.dip.transfer.TransferModel` of a finished DIPSEG fit (what :func:`fit_model` returns).

    For callers that run :func:`segment` themselves (with a progress callback, previews or a
    warm start, as the web app does) and want the fitted network too. The network is copied,
    so ``seg.state`` can go on as a warm start.

    Parameters
    ----------
    seg : Segmentation
        A DIPSEG fit of ``image`` from ``labels`` (without boxes).
    image : ndarray (H, W, 3) uint8
    labels : ndarray (H, W) int
        The labels of that fit (``IGNORE`` where unlabelled).

    Returns
    -------
    TransferModel
        Without ``source`` (the caller holds ``seg``).

    Raises
    ------
    ValueError
        No network (a single-class fit, or a baseline) or an input mode that cannot transfer.
    """
    from .dip.transfer import TransferModel

    state = seg.state
    if state is None:
        raise ValueError("this fit has no network to transfer (only one class was labelled: label at least two)")
    info = dict(seg.info) | {"seconds": round(seg.seconds, 4), "threads": seg.threads,
                             "labelled_pixels": int((labels >= 0).sum())}
    colours = TransferModel.colour_samples(image, labels, state.config, seg.seed)
    return TransferModel.from_fit(state, labels, seg.seed, method=seg.method, preset=seg.preset, info=info,
                                  source_colours=colours, source_mask=seg.classes,
                                  source_image=TransferModel.small_source(image, state.config))


def load_model(path):
    """Read a model saved by ``TransferModel.save`` (see :func:`fit_model`).

    Raises
    ------
    ValueError
        Missing file, not a dipseg model file, or one this version cannot read.
    """
    from .dip.transfer import TransferModel

    return TransferModel.load(path)
