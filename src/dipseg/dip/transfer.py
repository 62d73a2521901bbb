"""One-shot transfer: a network fitted on one labelled image, applied to other images.

DIPSEG fits a network per image. When the network sees the image (``input`` is
``noise+image`` or ``noise+image+xy``), the fitted weights map *any* image to class
logits, so a network fitted on one labelled frame segments the next frames of a video,
or other tiles of a slide, without a new fit: a forward pass plus the full-resolution stage.

:class:`TransferModel` is that fitted network with everything needed to apply it again:
its configs, class ids, seed, the fitted image's input noise and the source labels (for
the box prior the fit used). It is saved to and loaded from one file
(:meth:`TransferModel.save`, :meth:`TransferModel.load`: a ``torch.save`` dict of tensors
and plain values, loadable with ``weights_only=True``).

**The input of another image.** The network's input is noise (+ image, + y/x). The image
channels are the new image's. The coordinates are linear in ``[-0.5, 0.5]`` at any size,
so they are relative positions. The noise is the fit's own noise tensor when the new
image's working shape equals the fitted one (video frames of one camera); for any other
shape it is noise of the new working shape drawn from the fit's seed with a CPU
``torch.Generator`` (the same draw as the fit's on a CPU: same seed, same distribution,
reproducible across devices). Noise alone (``input="noise"`` or ``"noise+xy"``) cannot see
the new image: such fits cannot transfer and :func:`check_transferable` says so.

**The full-resolution stage without labels.** The fit refines its upsampled probabilities
with a random walk seeded by the user's labels and colour models fitted to them. A new
image has no labels; its pseudo-labels are the pixels where the transferred prediction
(network logits plus the source's box prior) is confident (``max p >= confidence``),
eroded by ``erode`` pixels so that boundary pixels are left to the walk. They seed the
random walk and the colour models (weighted as in the source fit), exactly as the user's
labels do in a fit (``refine="seeds"``); ``refine="none"`` keeps the upsampled network
probabilities plus the box prior (no random walk, no colour models).

**Fine-tuning** (:meth:`TransferModel.predict` with ``finetune=N``) continues the fit on
the new image for ``N`` steps, warm-started from the transferred weights, with the
pseudo-labels (subsampled, :data:`FINETUNE_POINTS` per class) as labels.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from .. import __version__
from ..features import lab_features
from ..labels import IGNORE, labelled_classes, validate_image, validate_labels
from .augment import flip_average
from .build import build_network, make_input
from .colour import colour_logits, coverage_weight
from .config import FitConfig, NetworkConfig, config_dict, fit_shape, working_shape
from .device import resolve_device, single_threaded_blas, torch_threads
from .network import SkipNet
from .refine import GuidedFilter, Prepared, RandomWalk, _probs, finish_full_resolution, label_box_prior

MODEL_FORMAT = "dipseg-model"
"""``format`` entry of a saved model file."""

MODEL_FORMAT_VERSION = 1
"""Version of the saved file's layout (not of dipseg); bumped when the layout changes."""

TRANSFERABLE_INPUTS = ("noise+image", "noise+image+xy")
"""Input modes whose network sees the image, and so can be applied to another image."""

REFINE_MODES = ("seeds", "none")
"""Full-resolution stage of a transferred prediction: pseudo-label seeds, or none."""

COLOUR_MODES = ("source", "pseudo")
"""Colour models of a transfer: the source labels' (as the fit's), or fitted to the pseudo-labels."""

CONFIDENCE = 0.97
"""Default probability above which a transferred pixel becomes a pseudo-label."""

ERODE = 2
"""Default erosion (pixels at the stage's resolution) of each class's pseudo-labels."""

MASK_MODES = ("flow", "agree", "off")
"""Seeds from the source fit's mask (``predict(mask=...)``): moved by optical flow where the moved
image matches the new one, or where the transferred network agrees; only where the network
agrees, without flow; or none."""

MASK_ERODE = 1
"""Erosion (pixels at the stage's resolution) of each class of the source mask before it seeds."""

MASK_SIZE = 256
"""Longest side of the source image kept for the optical flow when the fit's stage is full size."""

FLOW_CHANGE = 0.1
"""Largest local colour change (sum of CIELAB / 100 differences, Gaussian-smoothed) at which a
flow-moved mask pixel is trusted whatever the network says."""

FLOW_SIGMA = 2.0
"""Smoothing (pixels) of the colour change map."""

FINETUNE_POINTS = 500
"""Pseudo-labelled pixels per class that a fine-tune trains on (a seeded random subset)."""


def check_transferable(config: FitConfig) -> None:
    """Refuse fits whose network cannot see a new image.

    Raises
    ------
    ValueError
        ``config.input`` is ``noise`` or ``noise+xy``.
    """
    if config.input not in TRANSFERABLE_INPUTS:
        raise ValueError(
            f"a fit with input {config.input!r} cannot be applied to another image: its network sees noise "
            f"{'and coordinates ' if 'xy' in config.input else ''}only, never the image; fit with input "
            f"{' or '.join(repr(m) for m in TRANSFERABLE_INPUTS)} (the fast preset uses 'noise+image+xy')"
        )


def _check_choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


@dataclass
class TransferResult:
    """A transferred segmentation of one image (the fields of :class:`dipseg.Segmentation`).

    Attributes
    ----------
    classes : ndarray (H, W) int64
    probabilities : ndarray (H, W, k) float32
        In the order of ``class_ids``.
    class_ids : ndarray (k,) int64
        The model's classes (those labelled on the source image).
    pseudo_labels : ndarray (H, W) int64
        The confident pixels used as seeds (``IGNORE`` elsewhere); a labelling a person
        can correct.
    seconds : float
    info : dict
        ``refine``, ``confidence``, ``noise`` (``"fit"`` or ``"regenerated"``), ``finetune``
        steps, pseudo-labelled pixels, ``source`` (the model's fit).
    """

    classes: np.ndarray
    probabilities: np.ndarray
    class_ids: np.ndarray
    pseudo_labels: np.ndarray
    seconds: float
    method: str
    preset: str | None
    seed: int
    config: dict
    info: dict = field(default_factory=dict)
    version: str = __version__
    message: str | None = None
    threads: int | None = None

    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable description (as :meth:`dipseg.Segmentation.metadata`)."""
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


def _to_config(cls, data: dict, what: str):
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"model file: {what} has settings this dipseg ({__version__}) does not know: {unknown}; "
                         "load it with the dipseg version that saved it")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class TransferModel:
    """A DIPSEG network fitted on one labelled image, applicable to other images.

    Build one with :func:`dipseg.fit_model` (or :meth:`from_fit`), or :meth:`load` it.

    Attributes
    ----------
    network : NetworkConfig
    config : FitConfig
    class_ids : ndarray (k,) int64
    seed : int
    method, preset : str, str or None
        How it was fitted (``dipseg``, ``fast``...), for the metadata.
    source_shape : (H, W)
        Size of the fitted image.
    source_labels : ndarray (H, W) int64
        The labels it was fitted with (the box prior of a transfer comes from them).
    source_mask : ndarray (H, W) int64 or None
        The fit's own answer on the source image (class ids), if known: ``predict(mask=...)``
        seeds the next images from it.
    source_image : ndarray (h, w, 3) uint8 or None
        The source image, small (:meth:`small_source`): the optical flow of ``mask="flow"``
        moves ``source_mask`` from it onto a new image.
    info : dict
        The fit's details (iterations, seconds...).
    version : str
        dipseg version that fitted it.
    """

    def __init__(self, model: SkipNet, network: NetworkConfig, config: FitConfig, class_ids, seed: int,
                 noise: torch.Tensor, source_labels: np.ndarray, source_colours: dict | None = None, *,
                 method: str = "dipseg", preset: str | None = None, info: dict | None = None,
                 version: str = __version__, source_mask: np.ndarray | None = None,
                 source_image: np.ndarray | None = None):
        check_transferable(config)
        self.model = model
        self.network, self.config = network, config
        self.class_ids = np.asarray(class_ids, dtype=np.int64)
        self.seed = int(seed)
        self.noise = noise.detach().cpu().float().contiguous()
        self.source_labels = np.asarray(source_labels, dtype=np.int64)
        self.source_shape = tuple(int(s) for s in self.source_labels.shape)
        self.source_mask = None if source_mask is None else np.asarray(source_mask, dtype=np.int64)
        if self.source_mask is not None and self.source_mask.shape != self.source_labels.shape:
            raise ValueError(f"source_mask has shape {self.source_mask.shape}, the source labels "
                             f"{self.source_labels.shape}: they must be of the same image")
        self.source_image = None if source_image is None else validate_image(source_image).copy()
        self.method, self.preset = method, preset
        self.info = dict(info or {})
        self.version = version
        # the source fit's colour-model weight, so a transfer weighs colours as the fit did
        self.colour_scale = coverage_weight(self.source_labels, self.class_ids) if config.colour_coverage else 1.0
        # CIELAB / 100 of each class's labelled pixels on the source image (at the stage's
        # resolution, as the fit's colour models saw them): the colour models of a transfer
        self.source_colours = {int(c): np.asarray(v, np.float64) for c, v in (source_colours or {}).items()}
        self._gmms = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_fit(cls, state, source_labels: np.ndarray, seed: int, **kwargs) -> "TransferModel":
        """From the :class:`~dipseg.dip.fit.FitState` of a finished fit (its network is copied).

        Raises
        ------
        ValueError
            No state (a single-class fit has no network), or an input mode that cannot transfer.
        """
        if state is None:
            raise ValueError("this fit has no network to transfer (only one class was labelled: label at least two)")
        check_transferable(state.config)
        model = copy.deepcopy(state.model).to("cpu").to(memory_format=torch.contiguous_format)
        noise = state.net_input[:, : state.config.input_channels]
        return cls(model, state.network, state.config, state.class_ids, seed, noise, source_labels,
                   kwargs.pop("source_colours", None), **kwargs)

    @staticmethod
    def colour_samples(image: np.ndarray, labels: np.ndarray, config: FitConfig, seed: int) -> dict:
        """CIELAB / 100 colours of each class's labelled pixels, as the fit's colour models took them.

        At the full-resolution stage's size (the random walk's), at most
        :data:`dipseg.dip.colour.MAX_SAMPLES` per class (a seeded subset, as the fit's).
        """
        from ..labels import downscale_labels
        from .colour import MAX_SAMPLES

        if config.colour_weight <= 0:
            return {}
        H, W = image.shape[:2]
        rs = working_shape((H, W), config.refine_size) if config.refine == "random-walk" else (H, W)
        import cv2

        small = cv2.resize(image, (rs[1], rs[0]), interpolation=cv2.INTER_AREA) if rs != (H, W) else image
        lab = lab_features(small).reshape(-1, 3)
        lab_labels = downscale_labels(labels, rs).ravel()
        rng = np.random.default_rng(seed)
        out = {}
        for c in labelled_classes(labels):
            idx = np.flatnonzero(lab_labels == c)
            if len(idx) > MAX_SAMPLES:
                idx = rng.choice(idx, MAX_SAMPLES, replace=False)
            out[int(c)] = lab[idx]
        return out

    @staticmethod
    def small_source(image: np.ndarray, config: FitConfig) -> np.ndarray:
        """The source image as a transfer keeps it: at the random walk's size, else at most :data:`MASK_SIZE` px."""
        import cv2

        H, W = image.shape[:2]
        rs = working_shape((H, W), config.refine_size if config.refine == "random-walk" else MASK_SIZE)
        return cv2.resize(image, (rs[1], rs[0]), interpolation=cv2.INTER_AREA) if rs != (H, W) else image.copy()

    @property
    def num_classes(self) -> int:
        return len(self.class_ids)

    def describe(self) -> dict[str, Any]:
        """JSON-serialisable description of the model (configs, classes, seed, source)."""
        return {
            "method": self.method, "preset": self.preset, "seed": self.seed, "version": self.version,
            "class_ids": [int(c) for c in self.class_ids], "source_shape": list(self.source_shape),
            "config": config_dict(self.network, self.config), "fit": self.info,
        }

    # ------------------------------------------------------------------ files
    def save(self, path: str | Path) -> Path:
        """Write the model to ``path`` (a ``torch.save`` dict; conventionally ``*.pt``).

        The file holds the weights (state dict), both configs, class ids, seed, dipseg
        version, the fitted input noise and the source labels: tensors and plain values
        only, so :func:`torch.load` with ``weights_only=True`` reads it.

        Raises
        ------
        OSError
            The file cannot be written.
        """
        path = Path(path)
        net = {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self.network).items()}
        payload = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "version": self.version,
            "method": self.method,
            "preset": self.preset,
            "seed": self.seed,
            "class_ids": [int(c) for c in self.class_ids],
            "network": net,
            "fit": asdict(self.config),
            "state_dict": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "noise": self.noise.clone(),
            "source_labels": torch.from_numpy(self.source_labels.astype(np.int16)),
            "source_colours": {str(c): torch.from_numpy(v.copy()) for c, v in self.source_colours.items()},
            "info": _plain(self.info),
        }
        if self.source_mask is not None:
            payload["source_mask"] = torch.from_numpy(self.source_mask.astype(np.int16))
        if self.source_image is not None:
            payload["source_image"] = torch.from_numpy(self.source_image.copy())
        torch.save(payload, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "TransferModel":
        """Read a model written by :meth:`save` (with ``weights_only=True``: no code runs).

        Raises
        ------
        ValueError
            Not a dipseg model file, a newer file layout, settings this version does not
            know, or weights that do not fit the configs.
        OSError
            The file cannot be read.
        """
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"model file {path} does not exist")
        try:
            data = torch.load(path, map_location="cpu", weights_only=True)
        except OSError:
            raise
        except Exception as exc:  # pickle / zip errors of a file that is not a torch.save file
            raise ValueError(f"{path} is not a dipseg model file ({exc.__class__.__name__}: {str(exc)[:120]})") from None
        if not isinstance(data, dict) or data.get("format") != MODEL_FORMAT:
            raise ValueError(f"{path} is not a dipseg model file (no format {MODEL_FORMAT!r} entry)")
        if int(data.get("format_version", 0)) > MODEL_FORMAT_VERSION:
            raise ValueError(f"{path} has model file layout {data['format_version']}; this dipseg "
                             f"({__version__}) reads up to {MODEL_FORMAT_VERSION}: upgrade dipseg")
        network = _to_config(NetworkConfig, data["network"], "the network")
        config = _to_config(FitConfig, data["fit"], "the fit")
        class_ids = [int(c) for c in data["class_ids"]]
        model = build_network(network, config, len(class_ids))
        try:
            model.load_state_dict(data["state_dict"])
        except RuntimeError as exc:
            raise ValueError(f"{path}: the weights do not fit the saved network configuration: "
                             f"{str(exc).splitlines()[0]}") from None
        return cls(model, network, config, class_ids, int(data["seed"]), data["noise"],
                   data["source_labels"].numpy().astype(np.int64),
                   {int(c): v.numpy() for c, v in data.get("source_colours", {}).items()},
                   method=data.get("method", "dipseg"),
                   preset=data.get("preset"), info=data.get("info", {}), version=data.get("version", "?"),
                   source_mask=data["source_mask"].numpy().astype(np.int64) if "source_mask" in data else None,
                   source_image=data["source_image"].numpy() if "source_image" in data else None)

    # ------------------------------------------------------------------ prediction
    def _input(self, image_t: torch.Tensor) -> tuple[torch.Tensor, str]:
        """The network input for an image at working resolution, and where its noise came from."""
        _, _, h, w = image_t.shape
        if tuple(self.noise.shape[-2:]) == (h, w):
            noise, origin = self.noise.to(image_t.device), "fit"
        else:
            gen = torch.Generator(device="cpu").manual_seed(self.seed)
            noise = (torch.rand((1, self.config.input_channels, h, w), generator=gen) * self.config.input_scale)
            noise, origin = noise.to(image_t.device), "regenerated"
        # make_input builds the image and coordinate channels; its noise is replaced by ours
        full = make_input(image_t, self.config, torch.Generator(device=image_t.device).manual_seed(0))
        full[:, : self.config.input_channels] = noise
        return full, origin

    def predict(self, image: np.ndarray, *, refine: str = "seeds", confidence: float = CONFIDENCE,
                erode: int = ERODE, colour: str = "source", carry: bool = True, box: bool = True, mask: str = "flow",
                finetune: int = 0, device: str | torch.device = "cpu",
                threads: int | None = None) -> TransferResult:
        """Segment ``image`` (any size) with the fitted network, without a new fit.

        Parameters
        ----------
        image : ndarray (H, W, 3) uint8
        refine : {"seeds", "none"}
            Full-resolution stage: the fit's own (random walk / guided filter of the
            config, colour models), seeded by the confident pixels; or none (the network's
            probabilities upsampled, plus the source's box prior).
        confidence : float in (0, 1)
            Probability above which a pixel becomes a pseudo-label.
        erode : int
            Erosion of each class's pseudo-labels, in pixels of the stage's resolution.
        colour : {"source", "pseudo"}
            Colour models of the source labels (as the fit's), or fitted to the pseudo-labels.
        carry : bool
            Also seed with the source's labels (same relative position) where the
            transferred prediction agrees with them.
        box : bool
            Add the source labels' box prior (``config.box_prior``, as the fit does) to the
            logits. On CamVid it helped ``uniform:10`` and hurt ``blobs:100`` (docs/transfer.md);
            on small synthetic shifted copies it hurt.
        mask : {"flow", "agree", "off"}
            Seeds from the source fit's own mask (models fitted by this version keep it):
            ``"flow"`` moves it onto ``image`` by dense optical flow (:func:`propagate_mask`)
            and keeps it where the moved source image matches ``image`` or the transferred
            network agrees; ``"agree"`` keeps it unmoved where the network agrees; ``"off"``
            seeds from the network's confident pixels alone. On CamVid, ``"flow"`` is what
            beats copying the mask (docs/transfer.md).
        finetune : int
            Steps of a warm-started fit on ``image`` with the pseudo-labels (0: none; a
            fresh fit's cost per step).
        device : str or torch.device
        threads : int, optional
            torch threads (None leaves torch's setting alone).

        Returns
        -------
        TransferResult

        Raises
        ------
        ValueError
            Bad image or options.
        """
        t0 = time.perf_counter()
        image = validate_image(image)
        _check_choice("refine", refine, REFINE_MODES)
        _check_choice("colour", colour, COLOUR_MODES)
        _check_choice("mask", mask, MASK_MODES)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence <= 1:
            raise ValueError(f"confidence must be a number in (0, 1], got {confidence!r}")
        for name, v in (("erode", erode), ("finetune", finetune)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"{name} must be a whole number >= 0, got {v!r}")
        dev = resolve_device(device)
        with torch_threads(threads), single_threaded_blas():
            classes, prob, pseudo, info = self._predict(image, refine, float(confidence), int(erode), colour, bool(carry),
                                                        bool(box), mask, dev)
            if finetune:
                classes, prob, ft_info = self._finetune(image, pseudo, prob, int(finetune), dev, threads)
                info |= ft_info
        info["finetune"] = int(finetune)
        info["source"] = self.describe()["fit"] | {"shape": list(self.source_shape)}
        return TransferResult(
            classes.astype(np.int64), prob, self.class_ids.copy(), pseudo, time.perf_counter() - t0,
            "dipseg-transfer", self.preset, self.seed, config_dict(self.network, self.config), info,
            threads=threads,
        )

    def _logits(self, image: np.ndarray, dev: torch.device) -> tuple[torch.Tensor, str]:
        H, W = image.shape[:2]
        h, w = fit_shape((H, W), self.network, self.config)
        full_t = torch.tensor(image, device=dev).permute(2, 0, 1)[None].float() / 255.0
        image_t = F.interpolate(full_t, size=(h, w), mode="area") if (h, w) != (H, W) else full_t
        x, origin = self._input(image_t)
        model = self.model.to(dev)
        # BatchNorm in training mode (batch statistics of this image), as the fit predicts
        model.train()
        with torch.no_grad():
            if self.config.tta_flip:
                logits = flip_average(model, x)
            else:
                _, logits = model(x)
        return logits, origin

    def _source_colour(self, small: np.ndarray) -> np.ndarray | None:
        """Log-likelihoods ``(k, h, w)`` of ``small``'s colours under the source's colour models."""
        from .colour import _fit_gmm

        cfg = self.config
        if not self.source_colours:
            return None
        if self._gmms is None:
            self._gmms = [_fit_gmm(self.source_colours[int(c)], cfg.colour_components, self.seed) for c in self.class_ids]
        h, w = small.shape[:2]
        x = lab_features(small).reshape(-1, 3)
        out = np.stack([g.score_samples(x) for g in self._gmms])
        if cfg.colour_floor is not None:
            out = np.logaddexp(out, cfg.colour_floor)
        out -= out.mean(0, keepdims=True)
        return np.clip(out, -cfg.colour_clip, cfg.colour_clip).reshape(-1, h, w).astype(np.float32)

    def _predict(self, image, refine, confidence, erode, colour_mode, carry, use_box, mask_mode, dev):
        cfg = self.config
        H, W = image.shape[:2]
        logits, origin = self._logits(image, dev)
        walk_stage = cfg.refine == "random-walk"
        rs = working_shape((H, W), cfg.refine_size) if walk_stage else (H, W)
        import cv2

        small = cv2.resize(image, (rs[1], rs[0]), interpolation=cv2.INTER_AREA) if rs != (H, W) else image
        k = self.num_classes
        box = None
        if use_box and cfg.box_prior > 0:
            box = label_box_prior(self.source_labels, self.class_ids, rs, cfg)
        coarse = _probs(logits, rs, box)  # (h, w, k)
        pseudo_small = _pseudo_labels(coarse, self.class_ids, confidence, erode)
        carried = 0
        if carry:
            # the source's own labels, at the same relative position, where the transferred
            # prediction agrees with them: all of them on the source image itself, fewer
            # as the scene moves
            from ..labels import downscale_labels

            src = downscale_labels(self.source_labels, rs)
            pos = np.searchsorted(self.class_ids, np.where(src == IGNORE, self.class_ids[0], src))
            agree = (src != IGNORE) & (coarse.argmax(-1) == pos)
            pseudo_small = np.where(agree, src, pseudo_small)
            carried = int(agree.sum())
        mask_seeded = 0
        if mask_mode != "off" and self.source_mask is not None:
            # the fit's own answer on the source image seeds the walk where it still holds: moved
            # along a dense optical flow where the moved image matches this one ("flow"), and
            # wherever the transferred network agrees with it
            consistent = None
            if mask_mode == "flow" and self.source_image is not None:
                seeds, consistent = propagate_mask(self.source_mask, self.source_image, small, self.class_ids)
            else:
                seeds = _mask_seeds(self.source_mask, rs, self.class_ids, MASK_ERODE)
            pos = np.searchsorted(self.class_ids, np.where(seeds == IGNORE, self.class_ids[0], seeds))
            ok = coarse.argmax(-1) == pos
            if consistent is not None:
                ok |= consistent
            ok &= (seeds != IGNORE) & (pseudo_small == IGNORE)
            pseudo_small = np.where(ok, seeds, pseudo_small)
            mask_seeded = int(ok.sum())
        info = {"refine": refine, "colour": colour_mode, "confidence": confidence, "erode": erode, "noise": origin,
                "pseudo_labelled": int((pseudo_small != IGNORE).sum()), "carried": carried,
                "mask_seeded": mask_seeded, "stage_shape": list(rs)}
        if refine == "none" or (pseudo_small == IGNORE).all():
            prob = coarse
            if rs != (H, W):
                prob = cv2.resize(prob, (W, H), interpolation=cv2.INTER_LINEAR)
                prob = prob[..., None] if prob.ndim == 2 else prob
            if refine != "none":
                info["refine"] = "none (no confident pixel)"
        else:
            prior = box
            colour = None
            if cfg.colour_weight > 0:
                colour = (self._source_colour(small) if colour_mode == "source"
                          else _colour(small, pseudo_small, self.class_ids, cfg, self.seed))
            if colour is not None:
                prior = cfg.colour_weight * self.colour_scale * colour + (0 if prior is None else prior)
            walk = guide = None
            if walk_stage:
                walk = RandomWalk(small, pseudo_small, self.class_ids, cfg.refine_strength, cfg.refine_beta)
                if rs != (H, W):
                    guide = GuidedFilter(image.astype(np.float32) / 255.0, cfg.refine_radius, cfg.refine_eps)
            elif cfg.refine == "guided":
                guide = GuidedFilter(image.astype(np.float32) / 255.0, cfg.refine_radius, cfg.refine_eps)
            prob = finish_full_resolution(Prepared((H, W), rs, prior, walk, guide), logits)
        classes = self.class_ids[prob.argmax(-1)]
        pseudo = _upscale_labels(pseudo_small, (H, W))
        return classes, prob.astype(np.float32), pseudo, info

    def _finetune(self, image, pseudo, prob, steps, dev, threads):
        """A warm-started fit on ``image`` with (a subset of) the pseudo-labels."""
        from .fit import FitState, fit, make_optimizer

        labels = _subsample(pseudo, self.class_ids, FINETUNE_POINTS, self.seed)
        # every class must be labelled for the warm start (the network has k outputs): a class
        # without a confident pixel gets its single most probable pixel
        flat = prob.reshape(-1, self.num_classes)
        for i, c in enumerate(self.class_ids):
            if not (labels == c).any():
                j = int(np.argmax(flat[:, i]))
                labels.flat[j] = c
        H, W = image.shape[:2]
        h, w = fit_shape((H, W), self.network, self.config)
        full_t = torch.tensor(image, device=dev).permute(2, 0, 1)[None].float() / 255.0
        image_t = F.interpolate(full_t, size=(h, w), mode="area") if (h, w) != (H, W) else full_t
        x, _ = self._input(image_t)
        model = copy.deepcopy(self.model).to(dev)
        cfg = replace(self.config, iterations=steps, quick_preview=False)
        state = FitState(model, make_optimizer(model, cfg), x, tuple(int(c) for c in self.class_ids), (h, w),
                         self.network, cfg)
        res = fit(image, labels, self.network, cfg, seed=self.seed, device=dev, warm_start=state, threads=threads)
        return res.classes, res.probabilities, {"finetune_labelled": int((labels != IGNORE).sum()),
                                                "finetune_stopped": res.stopped}


def _plain(value):
    """``value`` with NumPy scalars and tuples made plain (what ``weights_only`` loading accepts)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _pseudo_labels(prob: np.ndarray, class_ids: np.ndarray, confidence: float, erode: int) -> np.ndarray:
    """Class id where ``max p >= confidence``, each class's region eroded by ``erode`` pixels; IGNORE elsewhere."""
    sure = np.where(prob.max(-1) >= confidence, class_ids[prob.argmax(-1)], IGNORE)
    return _eroded(sure, class_ids, erode)


def propagate_mask(mask: np.ndarray, source: np.ndarray, target: np.ndarray, class_ids: np.ndarray,
                   change: float = FLOW_CHANGE, erode: int = MASK_ERODE) -> tuple[np.ndarray, np.ndarray]:
    """Move a mask of ``source`` onto ``target`` along a dense optical flow (Farneback).

    The flow is computed from ``target`` back to ``source`` at ``source``'s size, so every
    target pixel takes the class of the source pixel it came from; each class is then eroded
    by ``erode`` pixels (boundaries move least reliably). A pixel is *consistent* where the
    source image moved the same way matches the target (smoothed colour change below
    ``change``): there the moved mask can be trusted; elsewhere (occlusions, new content,
    an unrelated image) it cannot.

    Parameters
    ----------
    mask : (H0, W0) int
        Class ids on the source image (any resolution; resized by nearest neighbour).
    source : (h, w, 3) uint8
        The source image, small (the stage's resolution).
    target : (h2, w2, 3) uint8
        The new image at the resolution wanted for the result.
    class_ids : (k,) int
    change : float
        Largest smoothed colour change (summed CIELAB / 100) of a consistent pixel.
    erode : int
        Erosion of each moved class, in pixels of ``target``.

    Returns
    -------
    seeds : (h2, w2) int64
        Moved, eroded class ids; ``IGNORE`` where none.
    consistent : (h2, w2) bool
    """
    import cv2

    h, w = source.shape[:2]
    shape = target.shape[:2]
    tgt = target if shape == (h, w) else cv2.resize(target, (w, h), interpolation=cv2.INTER_AREA)
    flow = cv2.calcOpticalFlowFarneback(cv2.cvtColor(tgt, cv2.COLOR_RGB2GRAY), cv2.cvtColor(source, cv2.COLOR_RGB2GRAY),
                                        None, 0.5, 3, 15, 3, 5, 1.2, 0)
    mx = np.arange(w, dtype=np.float32)[None, :] + flow[..., 0]
    my = np.arange(h, dtype=np.float32)[:, None] + flow[..., 1]
    small = _upscale_labels(np.asarray(mask), (h, w)).astype(np.int32)
    moved = cv2.remap(small, mx, my, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=IGNORE)
    moved_img = cv2.remap(source, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    d = np.abs(lab_features(tgt) - lab_features(moved_img)).sum(-1).astype(np.float32)
    consistent = cv2.GaussianBlur(d, (0, 0), FLOW_SIGMA) < change
    if shape != (h, w):
        moved = _upscale_labels(moved, shape)
        consistent = cv2.resize(consistent.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
    return _mask_seeds(moved.astype(np.int64), shape, class_ids, erode), consistent


def _mask_seeds(mask: np.ndarray, shape: tuple[int, int], class_ids: np.ndarray, erode: int) -> np.ndarray:
    """``mask`` resized (nearest) to ``shape``, each class's region eroded by ``erode`` pixels; IGNORE elsewhere."""
    return _eroded(_upscale_labels(mask, shape), class_ids, erode)


def _eroded(labels: np.ndarray, class_ids: np.ndarray, erode: int) -> np.ndarray:
    """Each class's region of ``labels`` eroded by ``erode`` pixels (the image border counts as inside); IGNORE elsewhere."""
    from scipy import ndimage

    out = np.full(labels.shape, IGNORE, dtype=np.int64)
    for c in class_ids:
        m = labels == c
        if erode and m.any():
            m = ndimage.binary_erosion(m, iterations=erode, border_value=1)
        out[m] = c
    return out


def _upscale_labels(labels: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label map to ``shape``."""
    if labels.shape == tuple(shape):
        return labels
    import cv2

    return cv2.resize(labels.astype(np.int32), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST).astype(np.int64)


def _colour(small: np.ndarray, labels: np.ndarray, class_ids: np.ndarray, cfg: FitConfig, seed: int) -> np.ndarray:
    """Colour log-likelihoods ``(k, h, w)`` from the pseudo-labels; a class without any gets the lowest value."""
    present = [i for i, c in enumerate(class_ids) if (labels == c).sum() >= 2]
    k = len(class_ids)
    h, w = labels.shape
    if len(present) < 2:
        return np.zeros((k, h, w), np.float32)
    ids = class_ids[present]
    sub = colour_logits(lab_features(small), np.where(np.isin(labels, ids), labels, IGNORE), ids,
                        cfg.colour_components, cfg.colour_clip, cfg.colour_floor, seed)
    out = np.empty((k, h, w), np.float32)
    out[:] = sub.min(0, keepdims=True)
    out[present] = sub
    return out


def _subsample(labels: np.ndarray, class_ids: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """At most ``per_class`` labelled pixels of each class, a seeded random subset."""
    rng = np.random.default_rng(seed)
    out = np.full(labels.shape, IGNORE, dtype=np.int64)
    for c in class_ids:
        idx = np.flatnonzero(labels.ravel() == c)
        if len(idx) > per_class:
            idx = rng.choice(idx, per_class, replace=False)
        out.flat[idx] = c
    return out
