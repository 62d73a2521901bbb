""""Start from the previous image": the fitted networks a server keeps, and the proposals they make.

When a fit of the web page finishes with a preset whose network sees the image
(:data:`dipseg.dip.transfer.TRANSFERABLE_INPUTS`; the default ``fast`` preset does), its
network is kept as a :class:`dipseg.dip.transfer.TransferModel` (built by
:func:`dipseg.api.model_from_fit`, the library's own recipe). Asking for a proposal on
another image runs :meth:`TransferModel.predict` there: no new fit, a fraction of a second.
The proposed mask becomes that image's current mask and its confident pixels
(``pseudo_labels``) its current labels, both unsaved, exactly as a fit would leave them; an
image that already has labels or a mask of its own is refused, so a proposal never replaces
anyone's work. A proposed image keeps the network that proposed it, so the next image can
start from it in turn (video frames: label the first, accept or correct the next ones).

Networks live in memory only (the last :data:`MAX_MODELS` images' entries); a restarted
server has none until an image is segmented again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import numpy as np

from ..api import model_from_fit
from ..dip.presets import PRESETS
from ..dip.transfer import TRANSFERABLE_INPUTS, TransferModel
from ..labels import IGNORE
from .body import encode_rle
from .errors import CannotTransfer, Conflict
from .jobs import class_summary, fit_size, full_size_mask
from .settings import Settings
from .store import UNLABELLED, ImageEntry, ImageStore

log = logging.getLogger("dipseg.web")

MAX_MODELS = 8
"""Images whose network is kept (least recently used are dropped). A proposed image shares
its source's network, so this bounds the distinct networks too."""


def can_transfer(preset) -> bool:
    """Whether fits with ``preset`` (:class:`dipseg.dip.presets.Preset`) can start other images: its network sees the image."""
    return preset.fit.input in TRANSFERABLE_INPUTS


def transferable_presets() -> list[str]:
    """Names of the presets whose network sees the image (those that can start the next image)."""
    return [name for name, p in PRESETS.items() if can_transfer(p)]


@dataclass(frozen=True)
class Kept:
    """The network an image can hand on to the next one.

    Attributes
    ----------
    model : TransferModel
    fitted_on : str
        Id of the image the network was fitted on (the image itself, or the one that
        proposed its mask).
    fitted_name : str
        That image's name, for messages and metadata.
    """

    model: TransferModel
    fitted_on: str
    fitted_name: str


class Transfers:
    """Fitted networks per image, and proposals made with them (thread-safe).

    Parameters
    ----------
    settings : Settings
    store : ImageStore
        Where proposals are recorded as an image's current labels and mask.
    """

    def __init__(self, settings: Settings, store: ImageStore):
        self.settings = settings
        self.store = store
        self.lock = threading.Lock()
        self.models: OrderedDict[str, Kept] = OrderedDict()
        # why an image's last fit left no network (boxes, one class): the 409 says so
        self.reasons: dict[str, str] = {}
        # one prediction at a time: a network is shared by the images it proposed, and
        # its BatchNorm layers run in training mode (they write their buffers)
        self.predicting = threading.Lock()

    @property
    def enabled(self) -> bool:
        """Whether some preset this server offers fits a network that sees the image (one that can start other images).

        Whether a given image can hand its network on depends on the preset its own last
        fit used (:meth:`keep_fit`), which the page picks per Segment.
        """
        return any(can_transfer(p) for p in self.settings.preset_configs.values())

    def check_enabled(self) -> None:
        """Refuse proposals on a server none of whose presets can transfer.

        Raises
        ------
        CannotTransfer
        """
        if not self.enabled:
            inputs = sorted({p.fit.input for p in self.settings.preset_configs.values()})
            raise CannotTransfer(
                f"every preset this server offers fits a network with input {' or '.join(map(repr, inputs))}, "
                "which never sees the image, so none can start another image; start dipseg serve without "
                f"overriding the input, so that presets whose input is {' or '.join(repr(m) for m in TRANSFERABLE_INPUTS)} "
                f"({', '.join(transferable_presets())}) are offered")

    def has(self, image_id: str) -> bool:
        """Whether a network is kept for ``image_id``."""
        with self.lock:
            return image_id in self.models

    def forget(self, image_id: str) -> None:
        """Drop the network of an image the store forgot."""
        with self.lock:
            self.models.pop(image_id, None)
            self.reasons.pop(image_id, None)

    def _put(self, image_id: str, kept: Kept | None, reason: str | None = None) -> None:
        # checked under this lock, which forget() takes too, so a network never outlives its image
        with self.lock:
            if not self.store.has(image_id):
                return
            self.reasons.pop(image_id, None)
            if kept is None:
                self.models.pop(image_id, None)
                if reason:
                    self.reasons[image_id] = reason
                return
            self.models[image_id] = kept
            self.models.move_to_end(image_id)
            while len(self.models) > MAX_MODELS:
                self.models.popitem(last=False)

    def keep_fit(self, entry: ImageEntry, seg, image: np.ndarray, labels: np.ndarray, boxes: list) -> None:
        """Keep the network of a finished fit of ``entry`` (``image`` and ``labels`` as fitted).

        Called by the fit's worker thread. A fit with boxes, or of one class, leaves no
        network: the image's older one is dropped too, since it no longer matches its mask.
        Never raises: a fit's mask does not depend on this.
        """
        if not self.enabled:
            return
        if seg.preset in self.settings.preset_configs and not can_transfer(self.settings.preset_configs[seg.preset]):
            self._put(entry.id, None, f"its last fit used the preset {seg.preset!r}, whose network never sees the "
                                      f"image: segment {entry.name} with one of {', '.join(transferable_presets())}")
            return
        if boxes:
            # a TransferModel carries painted labels only (its box prior and colour models
            # come from them); a box's class may have no painted pixel at all
            self._put(entry.id, None, f"its last fit used boxes, which a transfer cannot carry: paint labels "
                                      f"of every class on {entry.name} and segment it")
            return
        if seg.state is None:
            self._put(entry.id, None, f"its last fit had one class only: label at least two classes on "
                                      f"{entry.name} and segment it")
            return
        try:
            model = model_from_fit(seg, image, labels)
        except Exception:  # the fit itself succeeded; its mask is recorded either way
            log.exception("could not keep the network of %s for a transfer", entry.id)
            self._put(entry.id, None, "its network could not be kept (see the server log)")
            return
        self._put(entry.id, Kept(model, entry.id, entry.name))

    def source(self, entry: ImageEntry) -> Kept:
        """The network ``entry`` hands on.

        Raises
        ------
        Conflict
            None kept for it.
        """
        with self.lock:
            kept = self.models.get(entry.id)
            reason = self.reasons.get(entry.id)
            if kept is not None:
                self.models.move_to_end(entry.id)
        if kept is None:
            why = reason or (f"no network was fitted on it on this server yet (networks are kept in memory, for "
                             f"the last {MAX_MODELS} images)")
            raise Conflict(f"cannot start from {entry.name}: {why}; segment the previous image first")
        return kept

    def propose(self, target: ImageEntry, source: ImageEntry, image: np.ndarray) -> dict[str, Any]:
        """Segment ``target`` (pixels ``image``) with the network of ``source``; record it as its unsaved work.

        Runs the prediction (call it off the event loop). Large images are predicted at the
        size they would be fitted at (:func:`dipseg.web.jobs.fit_size`) and the mask scaled
        back, as fits are.

        Returns
        -------
        dict
            See :class:`dipseg.web.models.Proposal`.

        Raises
        ------
        CannotTransfer
            No preset of the server can transfer.
        Conflict
            ``target`` has labels or a mask of its own, or ``source`` has no network.
        """
        self.check_enabled()
        self._check_untouched(target)
        kept = self.source(source)
        H, W = image.shape[:2]
        size = fit_size((H, W), self.settings.max_fit_pixels)
        small = image
        if size != (H, W):
            import cv2

            small = cv2.resize(image, (size[1], size[0]), interpolation=cv2.INTER_AREA)
        t0 = time.perf_counter()
        with self.predicting:
            res = kept.model.predict(small, device=self.settings.device, threads=self.settings.threads)
        labels8 = _to_wire(res.pseudo_labels, (H, W))
        classes = full_size_mask(np.asarray(res.classes).astype(np.uint8), labels8)
        meta = dict(res.metadata(), fit_size=[size[1], size[0]],
                    transfer={"source_image": kept.fitted_name, "requested_from": source.name})
        # recorded only if the image is still untouched: a fit may have finished meanwhile
        version = self.store.set_proposal(target, classes, labels8, meta)
        self._put(target.id, Kept(kept.model, kept.fitted_on, kept.fitted_name))
        labelled = int((labels8 != UNLABELLED).sum())
        message = res.message
        if not labelled:
            message = "no pixel was confident enough to become a label: paint the labels yourself"
        q = quote(target.id, safe="")
        return {
            "id": target.id, "source": source.id, "fitted_on": kept.fitted_on,
            "width": W, "height": H, "labelled": labelled,
            "labels": {"width": W, "height": H, "rle": encode_rle(labels8)},
            "classes": class_summary(classes, self.settings.classes),
            "seconds": round(time.perf_counter() - t0, 3),
            "mask_url": f"/api/images/{q}/mask.png?v={version}",
            "metadata": _finite_json(meta),
            "message": message,
        }

    def _check_untouched(self, entry: ImageEntry) -> None:
        if self.store.has_labels(entry) or self.store.has_mask(entry):
            raise Conflict(f"{entry.name} already has labels or a mask of its own; a proposal never replaces "
                           "them (clear and save, or segment it from its own labels)")


def _finite_json(value: Any) -> Any:
    """``value`` with every non-finite float as None: JSON has no NaN (a fit's losses may hold one)."""
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _to_wire(pseudo: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Pseudo-labels (int, ``IGNORE`` elsewhere) as wire labels (uint8, 255 elsewhere) at ``shape`` (nearest)."""
    out = np.where(pseudo == IGNORE, UNLABELLED, pseudo).astype(np.uint8)
    if out.shape != tuple(shape):
        import cv2

        out = cv2.resize(out, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return out


__all__ = ["MAX_MODELS", "Kept", "Transfers", "can_transfer", "transferable_presets"]
